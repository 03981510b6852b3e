//! Passwords: the length and character rules, argon2id hashing and verification on the
//! blocking pool, and the dummy hash that makes unknown emails cost a verification.

use argon2::{
    password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier},
    Argon2,
};

use super::users::AccountError;
use super::{MAX_PASSWORD, MIN_PASSWORD};

fn check_password(pw: &str) -> Result<(), AccountError> {
    let n = pw.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(AccountError::Invalid(
            "password",
            format!("password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    if pw.chars().any(|c| c.is_control()) {
        return Err(AccountError::Invalid(
            "password",
            "password must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// argon2id of `pw` (random salt), on the blocking pool.
pub async fn hash_password(pw: &str) -> Result<String, AccountError> {
    check_password(pw)?;
    let pw = pw.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))?
}

/// A fixed hash verified for unknown emails, so they cost what a wrong password costs.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"not a password of anyone")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

pub(super) async fn verify_password(pw: &str, hash: Option<String>) -> bool {
    let pw = pw.to_owned();
    tokio::task::spawn_blocking(move || {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok()
            && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_are_argon2id_and_verify() {
        assert!(matches!(
            hash_password("short").await,
            Err(AccountError::Invalid("password", _))
        ));
        let h = hash_password("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", Some(h.clone())).await);
        assert!(!verify_password("correct horse batterY", Some(h)).await);
        // An unknown user never verifies, even with the dummy's own password.
        assert!(!verify_password("not a password of anyone", None).await);
    }
}
