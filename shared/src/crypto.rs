//! Key material: API key generation and hashing, constant-time comparison, and AES-256-GCM
//! encryption of tenant secrets under the deployment's master key.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::{distr::Alphanumeric, Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    #[error("ciphertext is malformed or was not encrypted with this master key")]
    Decrypt,
}

/// The deployment's master key (AES-256-GCM). Ciphertexts are `base64(nonce || sealed)`.
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn parse(b64: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptoError::BadMasterKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadMasterKey);
        }
        Aes256Gcm::new_from_slice(&bytes)
            .map(Self)
            .map_err(|_| CryptoError::BadMasterKey)
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the tenant id) as associated data
    /// so a ciphertext copied to another tenant's row does not decrypt.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                aes_gcm::aead::Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub fn decrypt(&self, ciphertext: &str, context: &str) -> Result<String, CryptoError> {
        let raw = STANDARD
            .decode(ciphertext)
            .map_err(|_| CryptoError::Decrypt)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                aes_gcm::aead::Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_round_trips_and_binds_context() {
        let k = MasterKey::parse(crate::config::DEV_MASTER_KEY).unwrap();
        let c = k.encrypt("rk_test_123", "tenant-a");
        assert!(!c.contains("rk_test_123"));
        assert_eq!(k.decrypt(&c, "tenant-a").unwrap(), "rk_test_123");
        assert!(k.decrypt(&c, "tenant-b").is_err());
        let other = MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        assert!(other.decrypt(&c, "tenant-a").is_err());
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
