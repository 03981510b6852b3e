//! Verification of Stripe's `Stripe-Signature` webhook header.
//!
//! The header is `t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`. Each `v1` is
//! HMAC-SHA256(key = the whole `whsec_...` endpoint secret, message = `"{t}."` followed by
//! the raw body bytes), in lowercase hex. A delivery is genuine when **any** `v1` matches
//! **any** configured secret: during a secret roll Stripe signs with the old and the new
//! secret for up to 24 h, and test and live endpoints have different secrets. Other schemes
//! (`v0`, anything unknown) are ignored.
//!
//! Always verify the exact bytes received: a body parsed and re-serialised will not match.
//! The signature is checked before the timestamp, so [`WebhookError::StaleTimestamp`] means
//! "a genuine Stripe signature, outside the tolerance" (a replay, or a clock off by minutes),
//! never "someone sent garbage with an old `t`".

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Makes a verified event storable: PostgreSQL's `jsonb` and `text` refuse NUL, and a
/// delivery we cannot store would be answered 5xx and retried by Stripe for days. Every NUL
/// (in any string or key: the event id, metadata, anywhere) becomes U+FFFD in the stored
/// copy; the signature is checked on the raw bytes, never on this copy. Returns whether
/// anything was replaced.
pub fn make_storable(event: &mut serde_json::Value) -> bool {
    crate::text::replace_nul(event)
}

/// The name of the header Stripe signs deliveries with.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Stripe's own libraries accept deliveries signed up to 300 s ago.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a delivery was rejected. Every variant means "answer 400 and do not process"; they
/// are distinct so logs and metrics tell a misconfigured secret from an attack or a skew.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No `Stripe-Signature` header, or an empty one.
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    /// The header is not a list of `key=value` items with exactly one integer `t`.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// The header carries no `v1` signature (only `v0` or unknown schemes).
    #[error("Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    /// A `v1` signature matched, but `t` is further than the tolerance from now (either way).
    #[error("Stripe-Signature timestamp is outside the tolerance")]
    StaleTimestamp,
    /// No `v1` signature matches any configured secret (or no usable secret is configured).
    #[error("no Stripe-Signature v1 signature matches a configured secret")]
    SignatureMismatch,
}

/// The parts of a header we use.
#[derive(Debug)]
struct ParsedHeader<'a> {
    timestamp: i64,
    v1: Vec<&'a str>,
}

fn parse(header: &str) -> Result<ParsedHeader<'_>, WebhookError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(WebhookError::MissingHeader);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(WebhookError::Malformed)?;
        match key.trim() {
            "t" => {
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| WebhookError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    // Two timestamps: which one was signed is ambiguous.
                    return Err(WebhookError::Malformed);
                }
            }
            "v1" => v1.push(value.trim()),
            // `v0` (test-mode legacy scheme) and future schemes.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
    if v1.is_empty() {
        return Err(WebhookError::NoV1Signature);
    }
    Ok(ParsedHeader { timestamp, v1 })
}

fn mac(raw_body: &[u8], secret: &str, timestamp: i64) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(raw_body);
    mac.finalize().into_bytes().into()
}

/// Checks only the shape of a `Stripe-Signature` header (one integer `t`, at least one `v1`),
/// with no secret and no clock: what the webhook route checks before anything that costs a
/// lookup or a tenant's budget, so a stranger's unsigned traffic is turned away for free.
pub fn check_header_shape(header: &str) -> Result<(), WebhookError> {
    parse(header).map(|_| ())
}

/// Checks a delivery: `header` is the `Stripe-Signature` value (pass `""` when absent),
/// `raw_body` the exact bytes received, `secrets` every endpoint secret currently accepted
/// (empty strings are skipped: an empty HMAC key would let anyone sign), `now_unix` the
/// current time and `tolerance_secs` the allowed distance of `t` from it, in the past or
/// the future ([`DEFAULT_TOLERANCE_SECS`] in production).
pub fn verify(
    header: &str,
    raw_body: &[u8],
    secrets: &[&str],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let parsed = parse(header)?;
    // Hex-decode once; a candidate that is not 32 bytes of hex cannot match and is skipped.
    let candidates: Vec<[u8; 32]> = parsed
        .v1
        .iter()
        .filter_map(|sig| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(sig, &mut out).ok().map(|()| out)
        })
        .collect();
    // Every (secret, candidate) pair is compared, in constant time, without stopping early,
    // so the time taken says nothing about which secret or which signature matched.
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let expected = mac(raw_body, secret, parsed.timestamp);
        for candidate in &candidates {
            matched |= expected.ct_eq(candidate);
        }
    }
    if !bool::from(matched) {
        return Err(WebhookError::SignatureMismatch);
    }
    if now_unix.abs_diff(parsed.timestamp) > tolerance_secs.max(0).unsigned_abs() {
        return Err(WebhookError::StaleTimestamp);
    }
    Ok(())
}

/// A valid `Stripe-Signature` header for `raw_body` signed with `secret` at time `t`:
/// `t={t},v1={hex}`. For tests and the fake Stripe server.
pub fn sign(raw_body: &[u8], secret: &str, t: i64) -> String {
    sign_with_secrets(raw_body, &[secret], t)
}

/// A header with one `v1` per secret, as Stripe sends during a secret roll.
pub fn sign_with_secrets(raw_body: &[u8], secrets: &[&str], t: i64) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac(raw_body, secret, t)));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_shape_is_checked_without_a_secret() {
        assert_eq!(check_header_shape(""), Err(WebhookError::MissingHeader));
        assert_eq!(check_header_shape("nonsense"), Err(WebhookError::Malformed));
        assert_eq!(
            check_header_shape("t=1,t=2,v1=ab"),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            check_header_shape("t=1,v0=ab"),
            Err(WebhookError::NoV1Signature)
        );
        assert_eq!(check_header_shape("t=1, v1=ab"), Ok(()));
    }

    const BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"customer.subscription.updated"}"#;
    const OLD: &str = "whsec_old_secret_0123456789";
    const NEW: &str = "whsec_new_secret_9876543210";
    const T: i64 = 1_767_225_600;

    fn ok(header: &str, secrets: &[&str]) -> Result<(), WebhookError> {
        verify(header, BODY, secrets, T + 10, DEFAULT_TOLERANCE_SECS)
    }

    #[test]
    fn known_vector_matches_an_independent_hmac() {
        // Python: hmac.new(b"whsec_abc", b"1700000000.hello", hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"hello", "whsec_abc", 1_700_000_000),
            "t=1700000000,v1=143e3a972876cf7aeb5ed09be39f63a5a566902ec1d418b8d00865c9d9ea7f9b"
        );
    }

    #[test]
    fn valid_signature_verifies() {
        assert_eq!(ok(&sign(BODY, NEW, T), &[NEW]), Ok(()));
    }

    #[test]
    fn missing_or_blank_header() {
        assert_eq!(ok("", &[NEW]), Err(WebhookError::MissingHeader));
        assert_eq!(ok("   ", &[NEW]), Err(WebhookError::MissingHeader));
    }

    #[test]
    fn malformed_headers() {
        let sig = sign(BODY, NEW, T);
        let v1 = sig.split_once(",v1=").unwrap().1;
        for header in [
            format!("v1={v1}"),                 // no timestamp
            format!("t=abc,v1={v1}"),           // timestamp not an integer
            format!("t={T},t={T},v1={v1}"),     // two timestamps
            format!("t={T},garbage,v1={v1}"),   // an item that is not key=value
            format!("t={T};v1={v1}"),           // wrong separator
            "whsec_looks_like_a_secret".into(), // not a header at all
        ] {
            assert_eq!(
                ok(&header, &[NEW]),
                Err(WebhookError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn whitespace_around_items_is_tolerated() {
        let sig = sign(BODY, NEW, T).replace(',', " , ");
        assert_eq!(ok(&sig, &[NEW]), Ok(()));
    }

    #[test]
    fn header_without_v1_is_rejected_even_with_a_valid_v0() {
        // A v0 carrying the right HMAC must not be accepted: only v1 is Stripe's scheme.
        let v1 = sign(BODY, NEW, T);
        let v0 = v1.replace("v1=", "v0=");
        assert_eq!(ok(&v0, &[NEW]), Err(WebhookError::NoV1Signature));
        assert_eq!(
            ok(&format!("t={T},v2=abcd"), &[NEW]),
            Err(WebhookError::NoV1Signature)
        );
    }

    #[test]
    fn v0_and_unknown_schemes_are_ignored_next_to_a_valid_v1() {
        let header = format!("{},v0=deadbeef,v9=zzz", sign(BODY, NEW, T));
        assert_eq!(ok(&header, &[NEW]), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        let header = sign(BODY, NEW, T);
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify(&header, &body, &[NEW], T, DEFAULT_TOLERANCE_SECS),
            Err(WebhookError::SignatureMismatch)
        );
        // Whitespace changes (a re-serialised body) fail too.
        let reserialised = b"{\"id\": \"evt_1\", \"object\": \"event\"}";
        assert_eq!(
            verify(&header, reserialised, &[NEW], T, DEFAULT_TOLERANCE_SECS),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            ok(&sign(BODY, OLD, T), &[NEW]),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn signature_for_another_timestamp_fails() {
        // Re-labelling a valid signature with a fresh `t` must not verify.
        let sig = sign(BODY, NEW, T);
        let relabelled = sig.replace(&format!("t={T}"), &format!("t={}", T + 1));
        assert_eq!(
            ok(&relabelled, &[NEW]),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn non_hex_or_short_signatures_do_not_match() {
        for v1 in ["zz", "abcd", &"g".repeat(64), ""] {
            assert_eq!(
                ok(&format!("t={T},v1={v1}"), &[NEW]),
                Err(WebhookError::SignatureMismatch),
                "{v1}"
            );
        }
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        // Stripe sends lowercase; hex decoding is case-insensitive and that is harmless.
        let header = sign(BODY, NEW, T);
        let (t, v1) = header.split_once(",v1=").unwrap();
        assert_eq!(ok(&format!("{t},v1={}", v1.to_uppercase()), &[NEW]), Ok(()));
    }

    #[test]
    fn empty_secrets_never_verify() {
        let forged = sign(BODY, "", T);
        assert_eq!(ok(&forged, &[""]), Err(WebhookError::SignatureMismatch));
        assert_eq!(ok(&forged, &[]), Err(WebhookError::SignatureMismatch));
        assert_eq!(
            ok(&sign(BODY, NEW, T), &[]),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn stale_timestamp_in_the_past_or_future_fails() {
        let header = sign(BODY, NEW, T);
        let at = |now| verify(&header, BODY, &[NEW], now, 300);
        assert_eq!(at(T + 300), Ok(()));
        assert_eq!(at(T - 300), Ok(()));
        assert_eq!(at(T + 301), Err(WebhookError::StaleTimestamp));
        assert_eq!(at(T - 301), Err(WebhookError::StaleTimestamp));
        assert_eq!(at(T + 86_400 * 3), Err(WebhookError::StaleTimestamp));
    }

    #[test]
    fn the_default_tolerance_is_inclusive_at_300_s_both_ways() {
        // Exactly at the boundary, with a fixed `now`: integration tests deliver at the real
        // clock and keep far from it (±400 s), so these cases live here.
        let header = sign(BODY, NEW, T);
        let at = |now| verify(&header, BODY, &[NEW], now, DEFAULT_TOLERANCE_SECS);
        assert_eq!(DEFAULT_TOLERANCE_SECS, 300);
        for (now, want) in [
            (T, Ok(())),
            // `t` in the past (a delivery signed a while ago).
            (T + 299, Ok(())),
            (T + 300, Ok(())),
            (T + 301, Err(WebhookError::StaleTimestamp)),
            (T + 400, Err(WebhookError::StaleTimestamp)),
            // `t` in the future (the sender's clock runs ahead).
            (T - 299, Ok(())),
            (T - 300, Ok(())),
            (T - 301, Err(WebhookError::StaleTimestamp)),
            (T - 400, Err(WebhookError::StaleTimestamp)),
        ] {
            assert_eq!(at(now), want, "now = t {:+}", now - T);
        }
    }

    #[test]
    fn a_stale_forgery_reports_a_mismatch_not_staleness() {
        let header = sign(BODY, OLD, T - 10_000);
        assert_eq!(ok(&header, &[NEW]), Err(WebhookError::SignatureMismatch));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        for t in [i64::MIN, i64::MAX] {
            let header = sign(BODY, NEW, t);
            assert_eq!(
                verify(&header, BODY, &[NEW], T, 300),
                Err(WebhookError::StaleTimestamp)
            );
        }
        let header = sign(BODY, NEW, T);
        assert_eq!(
            verify(&header, BODY, &[NEW], T, i64::MIN),
            Ok(()),
            "a negative tolerance means zero"
        );
    }

    #[test]
    fn rotation_header_with_two_v1_verifies_with_either_secret() {
        let header = sign_with_secrets(BODY, &[OLD, NEW], T);
        assert_eq!(header.matches("v1=").count(), 2);
        assert_eq!(ok(&header, &[OLD]), Ok(()));
        assert_eq!(ok(&header, &[NEW]), Ok(()));
        assert_eq!(ok(&header, &[NEW, OLD]), Ok(()));
        assert_eq!(
            ok(&header, &["whsec_other"]),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn any_configured_secret_verifies_a_single_signature() {
        // The endpoint has rolled to NEW but still accepts OLD (or test and live secrets are
        // configured side by side): a delivery signed with either one verifies.
        assert_eq!(ok(&sign(BODY, OLD, T), &[NEW, OLD]), Ok(()));
        assert_eq!(ok(&sign(BODY, NEW, T), &[NEW, OLD]), Ok(()));
    }

    #[test]
    fn one_bad_signature_among_good_ones_is_fine() {
        let header = format!("{},v1={}", sign(BODY, NEW, T), "0".repeat(64));
        assert_eq!(ok(&header, &[NEW]), Ok(()));
        let good = sign(BODY, NEW, T);
        let (_, good_v1) = good.split_once(',').unwrap();
        let header = format!("t={T},v1={},{good_v1}", "0".repeat(64));
        assert_eq!(ok(&header, &[NEW]), Ok(()));
    }
}
