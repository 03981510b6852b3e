//! Outbound mail (`shared::mail`) against a real SMTP server (aiosmtpd, `harness::smtp`):
//! what arrives is exactly what was sent (UTF-8 subject and body, recipient, From, the
//! Message-ID `send` returned), a bad recipient is refused before anything is sent, log
//! mode needs no server, and a dead relay is an error, not a hang.

use std::time::Duration;

use harness::{smtp::ThrowawaySmtp, Env};
use shared::mail::{Mail, MailError, Mailer, SEND_DEADLINE};

/// Generous: the server records a message before it acknowledges it, so waits on it end
/// as soon as `send` has returned.
const DEADLINE: Duration = Duration::from_secs(60);

async fn mailer_for(smtp: Option<&ThrowawaySmtp>) -> Mailer {
    let mut env = Env::new().await;
    if let Some(smtp) = smtp {
        env.set("SMTP_URL", smtp.url());
    }
    env.set("MAIL_FROM", "RetentionOS Team <team@retentionos.test>");
    Mailer::from_config(&env.config()).expect("valid mail config")
}

fn invitation() -> Mail {
    let token = "tok_".to_string() + &"aB3-_x9Z".repeat(25);
    Mail {
        to: "Jürgen Beispiel <juergen@example.com>".into(),
        subject: "Einladung — Ünïcødé".into(),
        text: format!(
            "Hallo Jürgen,\n\n\
             Sie wurden zu „Acme“ eingeladen. Öffnen Sie diesen Link:\n\
             https://app.retentionos.test/dashboard/invitations/accept?token={token}\n\n\
             Grüße — Ünïcødé ✓\n"
        ),
    }
}

#[tokio::test]
async fn a_mail_arrives_with_its_utf8_subject_body_recipient_and_message_id() {
    let smtp = ThrowawaySmtp::start();
    let mailer = mailer_for(Some(&smtp)).await;
    assert!(!mailer.is_logging());
    let mail = invitation();

    let message_id = mailer.send(&mail).await.expect("sent");

    assert!(
        message_id.starts_with('<') && message_id.ends_with("@retentionos.test>"),
        "{message_id}"
    );
    let got = smtp.wait_for(1, DEADLINE).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    assert_eq!(m.parse_error, None);
    assert_eq!(m.mail_from, "team@retentionos.test");
    assert_eq!(m.rcpt_tos, ["juergen@example.com"]);
    assert_eq!(
        m.from.as_deref(),
        Some("RetentionOS Team <team@retentionos.test>")
    );
    assert_eq!(
        m.to.as_deref(),
        Some("Jürgen Beispiel <juergen@example.com>")
    );
    assert_eq!(m.subject.as_deref(), Some(mail.subject.as_str()));
    assert_eq!(m.text.as_deref(), Some(mail.text.as_str()));
    assert_eq!(m.message_id.as_deref(), Some(message_id.as_str()));

    // Each mail gets a Message-ID of its own (and the pooled connection is reused). A body
    // without a final line break arrives with one: mail is made of lines.
    let short = Mail {
        text: "Nur eine Zeile — ohne Umbruch".into(),
        ..mail
    };
    let second = mailer.send(&short).await.expect("sent again");
    assert_ne!(second, message_id);
    let got = smtp.wait_for(2, DEADLINE).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].message_id.as_deref(), Some(second.as_str()));
    assert_eq!(
        got[1].text.as_deref(),
        Some("Nur eine Zeile — ohne Umbruch\n")
    );
}

#[tokio::test]
async fn an_invalid_recipient_is_refused_and_nothing_is_sent() {
    let smtp = ThrowawaySmtp::start();
    let mailer = mailer_for(Some(&smtp)).await;
    for bad in [
        "",
        "not-an-address",
        "a@b@c",
        "two@example.com, more@example.com",
        "line@example.com\r\nBcc: victim@example.com",
    ] {
        let mail = Mail {
            to: bad.into(),
            ..invitation()
        };
        match mailer.send(&mail).await {
            Err(MailError::InvalidAddress(_)) => {}
            other => panic!("{bad:?}: expected InvalidAddress, got {other:?}"),
        }
    }
    // A valid mail afterwards is the first and only one the server ever got: the refused
    // sends had returned before it started, so anything of theirs would be here before it.
    let marker = mailer.send(&invitation()).await.expect("sent");
    let got = smtp.wait_for(1, DEADLINE).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].message_id.as_deref(), Some(marker.as_str()));
}

#[tokio::test]
async fn without_smtp_url_mail_is_logged_and_needs_no_server() {
    let mailer = mailer_for(None).await;
    assert!(mailer.is_logging());
    let id = mailer.send(&invitation()).await.expect("logged");
    assert!(id.ends_with("@retentionos.test>"), "{id}");
    // The recipient is still checked, as callers rely on it for their 400.
    let bad = Mail {
        to: "nobody".into(),
        ..invitation()
    };
    assert!(matches!(
        mailer.send(&bad).await,
        Err(MailError::InvalidAddress(_))
    ));
}

#[tokio::test]
async fn a_relay_that_is_down_is_a_transport_error_not_a_hang() {
    let mut smtp = ThrowawaySmtp::start();
    let mailer = mailer_for(Some(&smtp)).await;
    smtp.stop();

    // The outer bound only turns a hang into a clear failure; the mailer's own deadline
    // (SEND_DEADLINE) is shorter.
    let outcome = tokio::time::timeout(SEND_DEADLINE * 2, mailer.send(&invitation()))
        .await
        .expect("send gave up by itself");
    match outcome {
        Err(e @ MailError::Transport(_)) => {
            assert!(e.to_string().starts_with("sending mail failed"), "{e}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(smtp.messages().is_empty());
}
