//! One-time links (set password, reset, invitation): issuing, peeking and redeeming them.
//! Only the token's SHA-256 is stored.

use std::time::Duration;

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::password::hash_password;
use super::users::{user_actor, user_of, AccountError, User, UserRow};
use crate::{
    audit::{self, Change},
    crypto::{hash_key, random_token},
};

/// Purpose of a one-time link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    SetPassword,
    ResetPassword,
    Invitation,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::SetPassword => "set_password",
            LinkPurpose::ResetPassword => "reset_password",
            LinkPurpose::Invitation => "invitation",
        }
    }

    /// How long a link lives.
    pub fn ttl(self) -> Duration {
        match self {
            LinkPurpose::ResetPassword => Duration::from_secs(3600),
            LinkPurpose::SetPassword | LinkPurpose::Invitation => Duration::from_secs(72 * 3600),
        }
    }
}

/// Issues a one-time link token for `user_id` (its SHA-256 is stored); returns the token.
pub async fn issue_link(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: LinkPurpose,
) -> Result<String, sqlx::Error> {
    let token = random_token(43);
    sqlx::query!(
        "INSERT INTO dashboard_tokens (token_hash, tenant_id, user_id, purpose, expires_at)
         SELECT $1, tenant_id, id, $3, now() + make_interval(secs => $4) FROM dashboard_users WHERE id = $2",
        hash_key(&token),
        user_id,
        purpose.as_str(),
        purpose.ttl().as_secs_f64(),
    )
    .execute(conn)
    .await?;
    Ok(token)
}

/// Whether `token` is a live link (for showing its form); does not redeem it.
pub async fn peek_link(pool: &PgPool, token: &str) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as!(
        UserRow,
        "SELECT u.id, u.tenant_id, u.email, u.role FROM dashboard_tokens t
           JOIN dashboard_users u ON u.id = t.user_id
          WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()",
        hash_key(token),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(user_of))
}

/// Redeems a link once: sets the password, unlocks the account and ends every session of
/// the user (audited `user.password_set`). A used, expired or unknown token is `BadLink`.
pub async fn redeem_link(
    pool: &PgPool,
    token: &str,
    new_password: &str,
    actor_ip: Option<String>,
) -> Result<User, AccountError> {
    let hash = hash_password(new_password).await?;
    let mut tx = pool.begin().await?;
    let link = sqlx::query!(
        "UPDATE dashboard_tokens SET used_at = now()
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
          RETURNING user_id, purpose",
        hash_key(token),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(link) = link else {
        return Err(AccountError::BadLink);
    };
    let (user_id, purpose) = (link.user_id, link.purpose);
    let row = sqlx::query_as!(
        UserRow,
        "UPDATE dashboard_users SET password_hash = $2, failed_logins = 0, locked_until = NULL, updated_at = now()
          WHERE id = $1 RETURNING id, tenant_id, email, role",
        user_id,
        hash,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM dashboard_sessions WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?;
    let user = user_of(row);
    audit::record(
        &mut tx,
        &user_actor(&user, None, actor_ip),
        Change {
            tenant_id: Some(user.tenant_id),
            mode: None,
            action: "user.password_set",
            target_type: "dashboard_user",
            target_id: Some(user.id.to_string()),
            before: None,
            after: Some(json!({ "via": purpose })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}
