//! Key material: API key generation and hashing, constant-time comparison, and AES-256-GCM
//! envelope encryption of tenant secrets under the deployment's master keys. Every
//! ciphertext names the master key that sealed it (`v1.<kid>.…`) and is bound to its
//! column, tenant and mode, so `MASTER_KEY` can be rotated and a ciphertext moved to
//! another row or column does not decrypt.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::{distr::Alphanumeric, Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::tenants::Mode;

/// Length of the random part of an API key (alphanumeric: ~190 bits of entropy).
pub const KEY_RANDOM_LEN: usize = 32;

/// A random alphanumeric string of `len` characters from the OS-seeded thread RNG.
pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// SHA-256 of an API key. Keys are long random strings, so a fast hash is safe (no
/// dictionary to attack) and keeps authentication to one indexed lookup.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    #[error("ciphertext was encrypted under master key {0}, which is not configured (MASTER_KEY / MASTER_KEY_PREVIOUS)")]
    UnknownKey(String),
    #[error("ciphertext is malformed or was not encrypted with this master key for this column, tenant and mode")]
    Decrypt,
}

/// What a ciphertext belongs to: the column, the tenant and the mode. It is the AES-GCM
/// associated data, so a ciphertext copied to another column, tenant or mode does not decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aad {
    pub column: Column,
    pub tenant: Uuid,
    pub mode: Mode,
}

/// Every encrypted column (the list `secrets rotate-master` walks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// `stripe_settings.api_key_enc`: the tenant's restricted Stripe key.
    StripeApiKey,
    /// `stripe_settings.webhook_secrets_enc`: each Stripe webhook signing secret.
    StripeWebhookSecret,
    /// `token_signing_secrets.secret_enc`: a customer-token signing secret.
    TokenSigningSecret,
}

impl Column {
    pub fn as_str(self) -> &'static str {
        match self {
            Column::StripeApiKey => "stripe_settings.api_key",
            Column::StripeWebhookSecret => "stripe_settings.webhook_secrets",
            Column::TokenSigningSecret => "token_signing_secrets.secret",
        }
    }
}

impl Aad {
    pub fn new(column: Column, tenant: Uuid, mode: Mode) -> Self {
        Self {
            column,
            tenant,
            mode,
        }
    }

    fn bytes(&self) -> String {
        format!(
            "{}:{}:{}",
            self.column.as_str(),
            self.tenant,
            self.mode.as_str()
        )
    }

    /// The associated data of ciphertexts written before key ids (`{tenant}:{mode}`, the
    /// same for every column): still read until `secrets rotate-master` rewrites them.
    fn legacy_bytes(&self) -> String {
        format!("{}:{}", self.tenant, self.mode.as_str())
    }
}

/// Prefix of the current ciphertext format: `v1.<kid>.<base64(nonce || sealed)>`.
const V1: &str = "v1";

/// One AES-256-GCM master key and its id (first 8 hex digits of the SHA-256 of the key
/// bytes: it names the key in every ciphertext without revealing it).
#[derive(Clone)]
struct KeyVersion {
    kid: String,
    aead: Aes256Gcm,
}

impl KeyVersion {
    fn parse(b64: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptoError::BadMasterKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadMasterKey);
        }
        let aead = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self {
            kid: hex::encode(&Sha256::digest(&bytes)[..4]),
            aead,
        })
    }

    fn open(&self, raw: &[u8], aad: &str) -> Result<String, CryptoError> {
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self
            .aead
            .decrypt(
                Nonce::from_slice(nonce),
                aes_gcm::aead::Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

/// The deployment's master keys: the current one (`MASTER_KEY`, encrypts everything new)
/// and previous ones (`MASTER_KEY_PREVIOUS`, still accepted for decryption until
/// `retentionos-api secrets rotate-master` has re-encrypted everything under the current
/// key). Envelope: `v1.<kid>.<base64(nonce || AES-256-GCM(plaintext, aad))>`.
#[derive(Clone)]
pub struct MasterKey {
    current: KeyVersion,
    previous: Vec<KeyVersion>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("current", &self.current.kid)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MasterKey {
    /// A single master key (no previous keys).
    pub fn parse(b64: &str) -> Result<Self, CryptoError> {
        Self::with_previous(b64, &[])
    }

    /// The current key and the previous ones still accepted for decryption.
    pub fn with_previous(current: &str, previous: &[&str]) -> Result<Self, CryptoError> {
        let current = KeyVersion::parse(current)?;
        let previous = previous
            .iter()
            .map(|p| KeyVersion::parse(p))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|p| p.kid != current.kid)
            .collect();
        Ok(Self { current, previous })
    }

    /// `MASTER_KEY` and `MASTER_KEY_PREVIOUS` of the configuration.
    pub fn from_config(config: &crate::Config) -> Result<Self, CryptoError> {
        let previous: Vec<&str> = config
            .master_key_previous
            .iter()
            .map(|s| s.expose())
            .collect();
        Self::with_previous(config.master_key.expose(), &previous)
    }

    /// The id of the current key (as written in new ciphertexts).
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// Encrypts `plaintext` under the current key, bound to `aad`.
    pub fn encrypt(&self, plaintext: &str, aad: &Aad) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                aes_gcm::aead::Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.bytes().as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{V1}.{}.{}", self.current.kid, STANDARD.encode(out))
    }

    /// Decrypts a ciphertext of either format: `v1.<kid>.…` with the key it names, or a
    /// pre-key-id ciphertext (plain base64, associated data `{tenant}:{mode}`) with any
    /// configured key.
    pub fn decrypt(&self, ciphertext: &str, aad: &Aad) -> Result<String, CryptoError> {
        if let Some(rest) = ciphertext.strip_prefix("v1.") {
            let (kid, body) = rest.split_once('.').ok_or(CryptoError::Decrypt)?;
            let key = self
                .keys()
                .find(|k| k.kid == kid)
                .ok_or_else(|| CryptoError::UnknownKey(kid.to_string()))?;
            let raw = STANDARD.decode(body).map_err(|_| CryptoError::Decrypt)?;
            return key.open(&raw, &aad.bytes());
        }
        let raw = STANDARD
            .decode(ciphertext)
            .map_err(|_| CryptoError::Decrypt)?;
        let legacy = aad.legacy_bytes();
        self.keys()
            .find_map(|k| k.open(&raw, &legacy).ok())
            .ok_or(CryptoError::Decrypt)
    }

    /// True when `ciphertext` is not in the current format under the current key (what
    /// `secrets rotate-master` rewrites).
    pub fn is_current(&self, ciphertext: &str) -> bool {
        ciphertext
            .strip_prefix("v1.")
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(kid, _)| kid == self.current.kid)
    }

    /// Re-encrypts under the current key (`None` when it already is).
    pub fn reencrypt(&self, ciphertext: &str, aad: &Aad) -> Result<Option<String>, CryptoError> {
        if self.is_current(ciphertext) {
            return Ok(None);
        }
        let plain = self.decrypt(ciphertext, aad)?;
        Ok(Some(self.encrypt(&plain, aad)))
    }

    /// A ciphertext in the format written before key ids (base64, associated data
    /// `{tenant}:{mode}`), for tests of the upgrade path only.
    #[doc(hidden)]
    pub fn encrypt_legacy(&self, plaintext: &str, aad: &Aad) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                aes_gcm::aead::Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.legacy_bytes().as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    fn keys(&self) -> impl Iterator<Item = &KeyVersion> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn aad(column: Column, tenant: u128, mode: Mode) -> Aad {
        Aad::new(column, Uuid::from_u128(tenant), mode)
    }

    #[test]
    fn encrypt_round_trips_and_names_the_key() {
        let k = MasterKey::parse(crate::config::DEV_MASTER_KEY).unwrap();
        let a = aad(Column::StripeApiKey, 1, Mode::Test);
        let c = k.encrypt("rk_test_123", &a);
        assert!(!c.contains("rk_test_123"));
        assert!(c.starts_with(&format!("v1.{}.", k.current_kid())), "{c}");
        assert_eq!(k.current_kid().len(), 8);
        assert_eq!(k.decrypt(&c, &a).unwrap(), "rk_test_123");
        assert!(k.is_current(&c));
        assert_eq!(k.reencrypt(&c, &a).unwrap(), None);
    }

    #[test]
    fn a_ciphertext_swapped_between_columns_tenants_or_modes_does_not_decrypt() {
        let k = MasterKey::parse(&key(1)).unwrap();
        let a = aad(Column::StripeApiKey, 1, Mode::Test);
        let c = k.encrypt("rk_test_123", &a);
        for other in [
            aad(Column::StripeWebhookSecret, 1, Mode::Test),
            aad(Column::TokenSigningSecret, 1, Mode::Test),
            aad(Column::StripeApiKey, 2, Mode::Test),
            aad(Column::StripeApiKey, 1, Mode::Live),
        ] {
            assert_eq!(
                k.decrypt(&c, &other),
                Err(CryptoError::Decrypt),
                "{other:?}"
            );
        }
    }

    #[test]
    fn previous_keys_decrypt_until_re_encrypted_and_unknown_keys_fail_cleanly() {
        let a_key = MasterKey::parse(&key(1)).unwrap();
        let aad = aad(Column::StripeWebhookSecret, 7, Mode::Live);
        let under_a = a_key.encrypt("whsec_1", &aad);
        let b_with_a = MasterKey::with_previous(&key(2), &[&key(3), &key(1)]).unwrap();
        assert_ne!(b_with_a.current_kid(), a_key.current_kid());
        assert_eq!(b_with_a.decrypt(&under_a, &aad).unwrap(), "whsec_1");
        assert!(!b_with_a.is_current(&under_a));
        let under_b = b_with_a.reencrypt(&under_a, &aad).unwrap().unwrap();
        assert!(b_with_a.is_current(&under_b));
        let b_only = MasterKey::parse(&key(2)).unwrap();
        assert_eq!(b_only.decrypt(&under_b, &aad).unwrap(), "whsec_1");
        assert_eq!(
            b_only.decrypt(&under_a, &aad),
            Err(CryptoError::UnknownKey(a_key.current_kid().to_string()))
        );
        let neither = MasterKey::parse(&key(9)).unwrap();
        assert!(neither.decrypt(&under_b, &aad).is_err());
        assert!(neither.reencrypt(&under_b, &aad).is_err());
        // A forged kid or body is an error, never a panic.
        for bad in [
            "",
            "v1.",
            "v1.x",
            "v1.abc.%%%",
            "v1.abc.AAAA",
            "AAAA",
            "v2.x.y",
        ] {
            assert!(b_with_a.decrypt(bad, &aad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn old_format_ciphertexts_still_decrypt_with_current_or_previous_keys() {
        let a = MasterKey::parse(&key(1)).unwrap();
        let api = aad(Column::StripeApiKey, 5, Mode::Test);
        let old = a.encrypt_legacy("rk_test_9", &api);
        assert!(!old.starts_with("v1."));
        assert_eq!(a.decrypt(&old, &api).unwrap(), "rk_test_9");
        let b_with_a = MasterKey::with_previous(&key(2), &[&key(1)]).unwrap();
        assert_eq!(b_with_a.decrypt(&old, &api).unwrap(), "rk_test_9");
        let new = b_with_a.reencrypt(&old, &api).unwrap().unwrap();
        assert!(new.starts_with(&format!("v1.{}.", b_with_a.current_kid())));
        // The old format was bound to tenant and mode only; the new one to the column too.
        assert!(a
            .decrypt(&old, &aad(Column::StripeApiKey, 6, Mode::Test))
            .is_err());
        assert!(b_with_a
            .decrypt(&new, &aad(Column::StripeWebhookSecret, 5, Mode::Test))
            .is_err());
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let k = MasterKey::with_previous(&key(2), &[&key(1)]).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains(k.current_kid()), "{dbg}");
        assert!(!dbg.contains(&key(2)), "{dbg}");
    }

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = random_token(32);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_token(32));
        assert_eq!(hash_key("x"), hash_key("x"));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
