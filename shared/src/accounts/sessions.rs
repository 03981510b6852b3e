//! Sign-in and sessions: password check with lockout, opening a session, looking one up
//! (renewing its idle expiry), the test/live switch, signing out and the expiry sweep.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use super::password::verify_password;
use super::users::{normalize_email, user_actor, user_of, AccountError, User, UserRow};
use super::{LOCKOUT, MAX_FAILED_LOGINS, SESSION_IDLE, SESSION_MAX};
use crate::{
    audit::{self, Change},
    crypto::{hash_key, random_token},
    tenants::Mode,
};

/// Why a sign-in was refused. Both say the same thing to the caller's face (no account
/// enumeration) except that a locked account says so.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the email or password is wrong")]
    Invalid,
    #[error("too many failed sign-ins: the account is locked until {0}")]
    Locked(DateTime<Utc>),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// A signed-in session as the dashboard sees it.
#[derive(Clone, Debug)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub user: User,
    pub csrf_token: String,
    pub mode: Mode,
}

/// Checks the password (and the lockout) and opens a session; returns it with the cookie
/// token.
pub async fn login(
    pool: &PgPool,
    email: &str,
    password: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<(Session, String), LoginError> {
    let email = normalize_email(email).unwrap_or_default();
    let row = sqlx::query!(
        "SELECT id, tenant_id, email, role, password_hash, locked_until
           FROM dashboard_users WHERE email = $1",
        &email,
    )
    .fetch_optional(pool)
    .await
    .map_err(AccountError::from)?;
    let Some(row) = row else {
        verify_password(password, None).await;
        return Err(LoginError::Invalid);
    };
    let id = row.id;
    if let Some(until) = row.locked_until.filter(|u| *u > Utc::now()) {
        return Err(LoginError::Locked(until));
    }
    if !verify_password(password, row.password_hash).await {
        // Counted in one statement (concurrent failures all count); the one that reaches
        // the limit locks the account and starts the count again.
        let locked = sqlx::query_scalar!(
            "UPDATE dashboard_users
                SET failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
                    locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + make_interval(secs => $3) ELSE locked_until END
              WHERE id = $1 RETURNING locked_until",
            id,
            MAX_FAILED_LOGINS,
            LOCKOUT.as_secs_f64(),
        )
        .fetch_one(pool)
        .await
        .map_err(AccountError::from)?;
        if let Some(until) = locked.filter(|u| *u > Utc::now()) {
            tracing::warn!(user_id = %id, "dashboard account locked after repeated failed sign-ins");
            return Err(LoginError::Locked(until));
        }
        return Err(LoginError::Invalid);
    }
    let tenant_id = row.tenant_id;
    let user = user_of(UserRow {
        id,
        tenant_id,
        email: row.email,
        role: row.role,
    });
    let token = random_token(43);
    let csrf = random_token(32);
    let mut tx = pool.begin().await.map_err(AccountError::from)?;
    sqlx::query!(
        "UPDATE dashboard_users SET failed_logins = 0, locked_until = NULL WHERE id = $1",
        id,
    )
    .execute(&mut *tx)
    .await
    .map_err(AccountError::from)?;
    sqlx::query!(
        "INSERT INTO dashboard_sessions (token_hash, tenant_id, user_id, csrf_token, idle_expires_at, expires_at, ip, user_agent)
         VALUES ($1, $8, $2, $3, now() + make_interval(secs => $4), now() + make_interval(secs => $5), $6, left($7, 300))",
        hash_key(&token),
        id,
        &csrf,
        SESSION_IDLE.as_secs_f64(),
        SESSION_MAX.as_secs_f64(),
        ip.as_deref(),
        user_agent.as_deref(),
        tenant_id,
    )
    .execute(&mut *tx)
    .await
    .map_err(AccountError::from)?;
    audit::record(
        &mut tx,
        &user_actor(&user, None, ip),
        Change {
            tenant_id: Some(user.tenant_id),
            mode: None,
            action: "user.sign_in",
            target_type: "dashboard_user",
            target_id: Some(user.id.to_string()),
            before: None,
            after: None,
        },
    )
    .await
    .map_err(AccountError::from)?;
    tx.commit().await.map_err(AccountError::from)?;
    Ok((
        Session {
            token_hash: hash_key(&token),
            user,
            csrf_token: csrf,
            mode: Mode::Test,
        },
        token,
    ))
}

/// The live session of a cookie token (renewing its idle expiry), or `None`.
pub async fn session(pool: &PgPool, token: &str) -> Result<Option<Session>, sqlx::Error> {
    let th = hash_key(token);
    let row = sqlx::query!(
        "UPDATE dashboard_sessions s
            SET idle_expires_at = least(s.expires_at, now() + make_interval(secs => $2))
           FROM dashboard_users u
          WHERE s.token_hash = $1 AND u.id = s.user_id
            AND s.expires_at > now() AND s.idle_expires_at > now()
          RETURNING u.id, u.tenant_id, u.email, u.role, s.csrf_token, s.mode",
        &th,
        SESSION_IDLE.as_secs_f64(),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Session {
        token_hash: th,
        user: user_of(UserRow {
            id: r.id,
            tenant_id: r.tenant_id,
            email: r.email,
            role: r.role,
        }),
        csrf_token: r.csrf_token,
        mode: Mode::parse(&r.mode).unwrap_or(Mode::Test),
    }))
}

/// The header's test/live switch.
pub async fn set_mode(pool: &PgPool, s: &Session, mode: Mode) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_sessions SET mode = $2 WHERE token_hash = $1",
        &s.token_hash,
        mode.as_str(),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends this session.
pub async fn logout(pool: &PgPool, s: &Session) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM dashboard_sessions WHERE token_hash = $1",
        &s.token_hash,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends every session of the user (audited `user.sign_out_everywhere`); returns how many.
pub async fn logout_everywhere(
    pool: &PgPool,
    s: &Session,
    ip: Option<String>,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query!(
        "DELETE FROM dashboard_sessions WHERE user_id = $1",
        s.user.id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit::record(
        &mut tx,
        &user_actor(&s.user, None, ip),
        Change {
            tenant_id: Some(s.user.tenant_id),
            mode: None,
            action: "user.sign_out_everywhere",
            target_type: "dashboard_user",
            target_id: Some(s.user.id.to_string()),
            before: None,
            after: Some(json!({ "sessions": n })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Deletes sessions and links past their end (the retention sweep calls it).
pub async fn delete_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let a = sqlx::query!(
        "DELETE FROM dashboard_sessions WHERE expires_at <= now() OR idle_expires_at <= now()",
    )
    .execute(pool)
    .await?
    .rows_affected();
    let b =
        sqlx::query!("DELETE FROM dashboard_tokens WHERE expires_at <= now() - interval '7 days'")
            .execute(pool)
            .await?
            .rows_affected();
    Ok(a + b)
}
