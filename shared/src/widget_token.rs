//! Customer tokens for the widget: short-lived, bound to a tenant and a customer.
//!
//! `token = base64url(payload) + "." + hex(HMAC-SHA256(key = tenant's token signing secret, msg = base64url(payload)))`
//! where `payload` is the JSON object
//! `{"tid": tenant id, "cus": customer id, "sub": subscription id or null, "exp": unix seconds, "attrs": {...}?}`
//! and base64url is unpadded. README.md has a worked example a tenant can reproduce in any
//! language.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest lifetime a token may have.
pub const MAX_TTL_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub tid: uuid::Uuid,
    pub cus: String,
    #[serde(default)]
    pub sub: Option<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("the customer token is malformed")]
    Malformed,
    #[error("the customer token has expired")]
    Expired,
    #[error("the customer token expires too far in the future")]
    TooLong,
    #[error("the customer token's signature does not match")]
    BadSignature,
    #[error("the customer token belongs to another tenant")]
    WrongTenant,
}

fn mac(secret: &str, msg: &[u8]) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(msg);
    m
}

pub fn sign(claims: &Claims, secret_key: &str) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let sig = hex::encode(mac(secret_key, payload.as_bytes()).finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// Reads the claims without checking the signature (to find the tenant's keys).
pub fn peek(token: &str) -> Result<Claims, TokenError> {
    let (payload, _) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let raw = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)
}

/// Verifies against any of the tenant's usable token signing secrets (several during a
/// rotation's grace period).
pub fn verify(
    token: &str,
    tenant_id: uuid::Uuid,
    secret_keys: &[String],
    now: i64,
) -> Result<Claims, TokenError> {
    if token.len() > 8192 {
        return Err(TokenError::Malformed);
    }
    let (payload, sig_hex) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = hex::decode(sig_hex).map_err(|_| TokenError::Malformed)?;
    let claims = peek(token)?;
    let ok = secret_keys
        .iter()
        .any(|k| mac(k, payload.as_bytes()).verify_slice(&sig).is_ok());
    if !ok {
        return Err(TokenError::BadSignature);
    }
    if claims.tid != tenant_id {
        return Err(TokenError::WrongTenant);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.exp > now + MAX_TTL_SECS {
        return Err(TokenError::TooLong);
    }
    if claims.cus.is_empty() || claims.cus.len() > 255 {
        return Err(TokenError::Malformed);
    }
    // Claims end up in PostgreSQL (which refuses NUL) and in the tenant's analytics: a
    // control character anywhere in them makes the token malformed, never a 500 later.
    let attrs_clean = claims.attrs.as_ref().is_none_or(|a| {
        a.iter()
            .all(|(k, v)| crate::text::is_clean(k, false) && crate::text::find_control(v).is_none())
    });
    if !crate::text::is_clean(&claims.cus, false)
        || !claims
            .sub
            .as_deref()
            .is_none_or(|s| crate::text::is_clean(s, false))
        || !attrs_clean
    {
        return Err(TokenError::Malformed);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example in README.md ("Customer tokens"): keep the two in step.
    #[test]
    fn readme_worked_example() {
        let token = "eyJ0aWQiOiIwMTkzYTViMi03YzFlLTdkM2EtOWYwMC0xMjM0NTY3ODlhYmMiLCJjdXMiOiJjdXNfUDV4NyIsInN1YiI6InN1Yl8xUTJ3IiwiZXhwIjoxODkzNDU2MDAwfQ.4450dc42c1dabe14f887c40fefba1cdf2678a3716669f52503e60f30c4fd447b";
        let tenant = uuid::Uuid::parse_str("0193a5b2-7c1e-7d3a-9f00-123456789abc").unwrap();
        let key = "tsk_test_4eC39HqLyjWDarjtT1zdp7dc00000000".to_string();
        let c = verify(token, tenant, std::slice::from_ref(&key), 1_893_455_000).unwrap();
        assert_eq!(
            (c.cus.as_str(), c.sub.as_deref(), c.exp),
            ("cus_P5x7", Some("sub_1Q2w"), 1_893_456_000)
        );
        assert_eq!(sign(&c, &key), token);
    }

    #[test]
    fn round_trip_and_failures() {
        let t = uuid::Uuid::now_v7();
        let c = Claims {
            tid: t,
            cus: "cus_1".into(),
            sub: Some("sub_1".into()),
            exp: 1_000,
            attrs: None,
        };
        let tok = sign(&c, "sk_test_a");
        assert_eq!(
            verify(&tok, t, &["sk_test_b".into(), "sk_test_a".into()], 900),
            Ok(c.clone())
        );
        assert_eq!(
            verify(&tok, t, &["sk_test_b".into()], 900),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&tok, t, &["sk_test_a".into()], 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&tok, uuid::Uuid::nil(), &["sk_test_a".into()], 900),
            Err(TokenError::WrongTenant)
        );
        let (p, s) = tok.split_once('.').unwrap();
        let tampered = format!(
            "{}.{s}",
            URL_SAFE_NO_PAD
                .encode(br#"{"tid":"00000000-0000-0000-0000-000000000000","cus":"x","exp":5000}"#)
        );
        assert_eq!(
            verify(&tampered, t, &["sk_test_a".into()], 900),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(p, t, &["sk_test_a".into()], 900),
            Err(TokenError::Malformed)
        );
    }

    /// A genuinely signed token whose claims carry a control character is malformed (401 at
    /// the widget), never a 500 when the session is written.
    #[test]
    fn claims_with_control_characters_are_malformed() {
        let t = uuid::Uuid::now_v7();
        let base = Claims {
            tid: t,
            cus: "cus_1".into(),
            sub: None,
            exp: 1_000,
            attrs: None,
        };
        let mut attrs = serde_json::Map::new();
        attrs.insert("plan".into(), serde_json::json!(["pro\u{0}"]));
        let mut bad_key = serde_json::Map::new();
        bad_key.insert("pl\u{7f}an".into(), serde_json::json!("pro"));
        for c in [
            Claims {
                cus: "cus\u{0}1".into(),
                ..base.clone()
            },
            Claims {
                cus: "cus\n1".into(),
                ..base.clone()
            },
            Claims {
                sub: Some("sub\u{85}".into()),
                ..base.clone()
            },
            Claims {
                attrs: Some(attrs),
                ..base.clone()
            },
            Claims {
                attrs: Some(bad_key),
                ..base.clone()
            },
        ] {
            let tok = sign(&c, "sk_test_a");
            assert_eq!(
                verify(&tok, t, &["sk_test_a".into()], 900),
                Err(TokenError::Malformed),
                "{c:?}"
            );
        }
        let tok = sign(&base, "sk_test_a");
        assert!(verify(&tok, t, &["sk_test_a".into()], 900).is_ok());
    }
}
