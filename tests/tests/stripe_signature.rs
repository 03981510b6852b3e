//! Our webhook verifier against headers made by Stripe's OFFICIAL Node library, and our
//! `sign` (which the fake Stripe uses) against the official verifier.
//!
//! The library is the `stripe` npm package pinned in `tests/stripe-sig/package.json` and
//! `package-lock.json`. When `tests/stripe-sig/node_modules` lacks it, the first test runs
//! `npm ci` there (once, under a file lock); without Node.js and npm the tests fail with a
//! message saying so. They never skip.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use serde_json::{json, Value};
use shared::stripe::webhook::{self, WebhookError, DEFAULT_TOLERANCE_SECS};

const SECRET: &str = "whsec_4eC39HqLyjWDarjtT1zdp7dc_test_endpoint";
const OLD_SECRET: &str = "whsec_old_rolled_secret_0000000000000000";
const NEW_SECRET: &str = "whsec_new_rolled_secret_1111111111111111";

fn helper_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("stripe-sig")
}

/// The `stripe` version package.json pins.
fn pinned_version() -> String {
    let pkg: Value = serde_json::from_slice(
        &std::fs::read(helper_dir().join("package.json")).expect("tests/stripe-sig/package.json"),
    )
    .unwrap();
    pkg["dependencies"]["stripe"]
        .as_str()
        .expect("package.json pins stripe")
        .to_string()
}

fn installed_version() -> Option<String> {
    let path = helper_dir().join("node_modules/stripe/package.json");
    let pkg: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    pkg["version"].as_str().map(str::to_string)
}

/// Installs the pinned library with `npm ci` unless it is already there. Test threads share
/// one attempt (`OnceLock`); test processes share a file lock.
fn ensure_installed() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let want = pinned_version();
        if installed_version().as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        let lock_path = std::env::temp_dir().join("retentionos-stripe-sig-npm.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{lock_path:?}: {e}"))?;
        lock.lock()
            .map_err(|e| format!("lock {lock_path:?}: {e}"))?;
        if installed_version().as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        eprintln!("installing stripe@{want} into tests/stripe-sig with `npm ci`");
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(helper_dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run npm ({e}): these tests need Node.js >= 20 and npm to run \
                     Stripe's official library (apt-get install nodejs npm)"
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "`npm ci --prefix tests/stripe-sig` failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        match installed_version() {
            Some(v) if v == want => Ok(()),
            other => Err(format!(
                "after npm ci, node_modules has stripe {other:?}, not {want}"
            )),
        }
    });
    if let Err(e) = result {
        panic!("Stripe's official library is not available: {e}");
    }
}

/// Runs `tests/stripe-sig/sign.js` (see it for the request and answer shapes).
fn official(request: Value) -> Value {
    ensure_installed();
    let mut child = Command::new("node")
        .arg(helper_dir().join("sign.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): these tests need Node.js >= 20"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sign.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("sign.js prints JSON");
    assert_eq!(answer["version"], pinned_version().as_str());
    answer
}

/// Headers from the official `generateTestHeaderString`, one per (payload, secret, t).
fn official_headers(items: &[(&str, &str, i64)]) -> Vec<String> {
    let sign: Vec<Value> = items
        .iter()
        .map(|(payload, secret, t)| json!({"payload": payload, "secret": secret, "timestamp": t}))
        .collect();
    official(json!({ "sign": sign }))["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

/// The official verifier's verdict for (payload, header, secret) at `now`.
fn official_verify(items: &[(&str, &str, &str)], now: i64) -> Vec<Result<(), String>> {
    let verify: Vec<Value> = items
        .iter()
        .map(|(payload, header, secret)| {
            json!({"payload": payload, "header": header, "secret": secret,
                   "tolerance": DEFAULT_TOLERANCE_SECS, "received_at": now})
        })
        .collect();
    official(json!({ "verify": verify }))["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            if v["ok"] == true {
                Ok(())
            } else {
                Err(v["error"].as_str().unwrap_or("").to_string())
            }
        })
        .collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A realistic event body, pretty-printed as Stripe sends it, with non-ASCII text so the
/// byte handling (UTF-8 on both sides) is exercised.
fn payload() -> String {
    serde_json::to_string_pretty(&json!({
        "id": "evt_1QabcDEFghiJKL",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": 1_767_225_600,
        "data": {"object": {
            "id": "sub_1QabcDEFghiJKL",
            "object": "subscription",
            "status": "canceled",
            "metadata": {"note": "Zoë’s plan — 20 % off 🎉"}
        }},
        "livemode": false,
        "request": {"id": null, "idempotency_key": null},
        "type": "customer.subscription.deleted"
    }))
    .unwrap()
}

fn verify(header: &str, body: &str, secrets: &[&str], now: i64) -> Result<(), WebhookError> {
    webhook::verify(
        header,
        body.as_bytes(),
        secrets,
        now,
        DEFAULT_TOLERANCE_SECS,
    )
}

#[test]
fn official_header_verifies_and_matches_ours_byte_for_byte() {
    let body = payload();
    let t = now();
    let header = &official_headers(&[(&body, SECRET, t)])[0];
    assert!(header.starts_with(&format!("t={t},v1=")), "{header}");
    assert_eq!(verify(header, &body, &[SECRET], t), Ok(()));
    assert_eq!(verify(header, &body, &[SECRET], t + 299), Ok(()));
    assert_eq!(*header, webhook::sign(body.as_bytes(), SECRET, t));
}

#[test]
fn official_header_with_a_tampered_body_fails() {
    let body = payload();
    let t = now();
    let header = &official_headers(&[(&body, SECRET, t)])[0];
    let tampered = body.replace("\"canceled\"", "\"active\"");
    assert_ne!(tampered, body);
    assert_eq!(
        verify(header, &tampered, &[SECRET], t),
        Err(WebhookError::SignatureMismatch)
    );
    // Re-serialising (compact JSON) is a different body too.
    let compact = serde_json::to_string(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    assert_eq!(
        verify(header, &compact, &[SECRET], t),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn official_header_with_the_wrong_secret_fails() {
    let body = payload();
    let t = now();
    let header = &official_headers(&[(&body, "whsec_someone_elses_endpoint", t)])[0];
    assert_eq!(
        verify(header, &body, &[SECRET], t),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn official_header_with_a_stale_or_future_timestamp_fails() {
    let body = payload();
    let t = now();
    let headers = official_headers(&[(&body, SECRET, t - 301), (&body, SECRET, t + 301)]);
    for header in &headers {
        assert_eq!(
            verify(header, &body, &[SECRET], t),
            Err(WebhookError::StaleTimestamp),
            "{header}"
        );
    }
    // Just inside the tolerance, both ways.
    let headers = official_headers(&[(&body, SECRET, t - 300), (&body, SECRET, t + 300)]);
    for header in &headers {
        assert_eq!(verify(header, &body, &[SECRET], t), Ok(()), "{header}");
    }
}

#[test]
fn rotation_header_with_two_official_v1_signatures_verifies_with_either_secret() {
    let body = payload();
    let t = now();
    let h = official_headers(&[(&body, OLD_SECRET, t), (&body, NEW_SECRET, t)]);
    let (_, old_v1) = h[0].split_once(',').unwrap();
    let (_, new_v1) = h[1].split_once(',').unwrap();
    // What Stripe sends during a roll, with a legacy v0 for good measure.
    let header = format!("t={t},{old_v1},{new_v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39");
    assert_eq!(verify(&header, &body, &[OLD_SECRET], t), Ok(()));
    assert_eq!(verify(&header, &body, &[NEW_SECRET], t), Ok(()));
    assert_eq!(
        verify(&header, &body, &["whsec_unrelated"], t),
        Err(WebhookError::SignatureMismatch)
    );
    // The official verifier agrees on the combined header.
    let verdicts = official_verify(
        &[
            (&body, &header, OLD_SECRET),
            (&body, &header, NEW_SECRET),
            (&body, &header, "whsec_unrelated"),
        ],
        t,
    );
    assert_eq!(verdicts[0], Ok(()));
    assert_eq!(verdicts[1], Ok(()));
    assert!(verdicts[2].is_err());
    // And our own rotation header is the same string.
    assert_eq!(
        webhook::sign_with_secrets(body.as_bytes(), &[OLD_SECRET, NEW_SECRET], t),
        format!("t={t},{old_v1},{new_v1}")
    );
}

#[test]
fn our_signatures_pass_the_official_verifier() {
    let body = payload();
    let t = now();
    let ours = webhook::sign(body.as_bytes(), SECRET, t);
    let tampered = body.replace("🎉", "!");
    let verdicts = official_verify(
        &[
            (&body, &ours, SECRET),
            (&tampered, &ours, SECRET),
            (&body, &ours, "whsec_wrong"),
        ],
        t,
    );
    assert_eq!(verdicts[0], Ok(()));
    assert!(verdicts[1]
        .as_ref()
        .unwrap_err()
        .contains("No signatures found"));
    assert!(verdicts[2].is_err());
    // A header from a stale `t` is refused by the official verifier too.
    let stale = webhook::sign(body.as_bytes(), SECRET, t - 301);
    let verdict = &official_verify(&[(&body, &stale, SECRET)], t)[0];
    assert!(
        verdict.as_ref().unwrap_err().contains("tolerance"),
        "{verdict:?}"
    );
}
