//! Team and password reset: invitations and reset links are one-time links
//! (`shared::accounts`) sent by mail (`shared::mail`, over `SMTP_URL`; logged when unset).
//! Owners invite any role, admins invite admins and analysts; analysts see the team only.
//! A reset request answers the same whether or not the email has an account.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
    Extension, Form,
};
use serde::Deserialize;
use shared::{
    accounts::{self, LinkPurpose, Role},
    mail::Mail,
};

use super::{chrome, csrf_ok, forbidden, link_url, page, same_site, Chrome, Signed, CSS_PATH};
use crate::{audit::ClientIp, AppState};

#[derive(Template)]
#[template(path = "dashboard/team.html")]
struct TeamPage {
    css: &'static str,
    chrome: Chrome,
    users: Vec<(String, &'static str, &'static str)>,
    can_invite: bool,
    roles: Vec<&'static str>,
    notice: Option<String>,
    error: Option<String>,
    field_error: Option<String>,
}

/// Roles `inviter` may give.
fn grantable(inviter: Role) -> Vec<Role> {
    match inviter {
        Role::Owner => Role::ALL.to_vec(),
        Role::Admin => vec![Role::Admin, Role::Analyst],
        Role::Analyst => Vec::new(),
    }
}

async fn team_view(
    st: &AppState,
    s: &accounts::Session,
    notice: Option<String>,
    error: Option<String>,
    field_error: Option<String>,
    status: StatusCode,
) -> Response {
    let users = accounts::list_users(&st.pools.primary, s.user.tenant_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(u, has_pw)| {
            (
                u.email,
                u.role.as_str(),
                if has_pw { "active" } else { "invited" },
            )
        })
        .collect();
    let roles: Vec<&'static str> = grantable(s.user.role).iter().map(|r| r.as_str()).collect();
    page(
        status,
        &TeamPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(st, s, "team", "/app/team".into()).await,
            users,
            can_invite: !roles.is_empty(),
            roles,
            notice,
            error,
            field_error,
        },
    )
}

pub async fn team_page(State(st): State<AppState>, Signed(s): Signed) -> Response {
    team_view(&st, &s, None, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

fn link_mail(to: &str, subject: &str, intro: &str, link: &str, hours: u64) -> Mail {
    Mail {
        to: to.to_string(),
        subject: subject.to_string(),
        text: format!(
            "{intro}\n\nSet your password here (the link works once, for {hours} hours):\n{link}\n\nIf you did not expect this mail, ignore it.\n"
        ),
    }
}

pub async fn invite(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<InviteForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let Some(role) = Role::parse(&f.role).filter(|r| grantable(s.user.role).contains(r)) else {
        return forbidden("your role cannot invite with that role");
    };
    let actor = accounts::user_actor(&s.user, None, ip.map(|e| e.0 .0.to_string()));
    let created = async {
        let mut tx = st.pools.primary.begin().await?;
        let user =
            accounts::create_user(&mut tx, s.user.tenant_id, &f.email, role, None, &actor).await?;
        let token = accounts::issue_link(&mut tx, user.id, LinkPurpose::Invitation).await?;
        tx.commit().await?;
        Ok::<_, accounts::AccountError>((user, token))
    }
    .await;
    let (user, token) = match created {
        Ok(x) => x,
        Err(e @ (accounts::AccountError::Invalid(..) | accounts::AccountError::EmailTaken)) => {
            return team_view(
                &st,
                &s,
                None,
                None,
                Some(e.to_string()),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "invitation failed");
            let msg = Some("The invitation could not be created; retry shortly.".to_string());
            return team_view(&st, &s, None, msg, None, StatusCode::SERVICE_UNAVAILABLE).await;
        }
    };
    let link = link_url(&st.config, "set-password", &token);
    let mail = link_mail(
        &user.email,
        "You are invited to RetentionOS",
        &format!(
            "{} invited you to their team on RetentionOS as {}.",
            s.user.email,
            role.as_str()
        ),
        &link,
        LinkPurpose::Invitation.ttl().as_secs() / 3600,
    );
    match st.mailer.send(&mail).await {
        Ok(_) => {
            let notice = Some(format!("Invitation sent to {}.", user.email));
            team_view(&st, &s, notice, None, None, StatusCode::OK).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "invitation mail failed");
            let msg = Some(format!(
                "{} was added but the mail could not be sent ({e}); ask an owner to invite again later.",
                user.email
            ));
            team_view(&st, &s, None, msg, None, StatusCode::BAD_GATEWAY).await
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/reset.html")]
struct ResetPage {
    css: &'static str,
    sent: bool,
    error: Option<String>,
}

pub async fn reset_page() -> Response {
    page(
        StatusCode::OK,
        &ResetPage {
            css: CSS_PATH.as_str(),
            sent: false,
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    email: String,
}

/// Sends a reset link when the email has an account; the answer is the same either way.
/// Each request counts toward the address's sign-in throttle (no mail bombing).
pub async fn reset(
    State(st): State<AppState>,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<ResetForm>,
) -> Response {
    if !same_site(&headers) {
        return forbidden("cross-site request refused");
    }
    let ip = ip.map(|e| e.0 .0);
    if ip.is_some_and(|ip| st.login_throttle.blocked(ip).is_some()) {
        let e = Some("Too many requests from your address; try again later.".to_string());
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            &ResetPage {
                css: CSS_PATH.as_str(),
                sent: false,
                error: e,
            },
        );
    }
    if let Some(ip) = ip {
        st.login_throttle.failed(ip);
    }
    match accounts::user_by_email(&st.pools.primary, &f.email).await {
        Ok(Some(user)) => {
            let token = async {
                let mut conn = st.pools.primary.acquire().await?;
                accounts::issue_link(&mut conn, user.id, LinkPurpose::ResetPassword).await
            }
            .await;
            match token {
                Ok(token) => {
                    let link = link_url(&st.config, "set-password", &token);
                    let mail = link_mail(
                        &user.email,
                        "Reset your RetentionOS password",
                        "Someone (hopefully you) asked to reset the password of this account.",
                        &link,
                        1,
                    );
                    if let Err(e) = st.mailer.send(&mail).await {
                        tracing::warn!(error = %e, "password reset mail failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "reset link failed"),
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "reset lookup failed"),
    }
    page(
        StatusCode::OK,
        &ResetPage {
            css: CSS_PATH.as_str(),
            sent: true,
            error: None,
        },
    )
}
