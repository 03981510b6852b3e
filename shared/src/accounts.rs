//! Dashboard accounts: users, their server-side sessions and one-time links. The only reader
//! and writer of `dashboard_users`, `dashboard_sessions` and `dashboard_tokens`.
//!
//! - Passwords are argon2id PHC strings (the `argon2` crate's defaults: m = 19 MiB, t = 2),
//!   hashed and verified on the blocking pool. An unknown email costs the same verification
//!   as a wrong password (no account enumeration by timing).
//! - Lockout: [`MAX_FAILED_LOGINS`] consecutive failures lock the account for
//!   [`LOCKOUT`] (in PostgreSQL, so every api process sees it); a success resets the count.
//! - Sessions: the cookie carries a random token; only its SHA-256 is stored. A session ends
//!   after [`SESSION_IDLE`] without use or [`SESSION_MAX`] after sign-in, whichever is first.
//!   "Sign out everywhere" and a password change delete every session of the user.
//! - One-time links (set password, reset, invitation) store only the token's SHA-256, expire,
//!   and are redeemed once.
//!
//! Every change is audited in its own transaction (actor: the dashboard user, the CLI or
//! ops); a password or token never reaches the audit log.

use std::time::Duration;

use argon2::{
    password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier},
    Argon2,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, Change},
    crypto::{hash_key, random_token},
    tenants::Mode,
};

pub const MAX_FAILED_LOGINS: i32 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
pub const SESSION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;

/// What a user may do. `owner` and `admin` change configuration; `analyst` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Analyst,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Analyst];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Flows, settings, keys, copy to live.
    pub fn can_configure(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// `(param, message)`: input the caller can fix.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("the tenant does not exist")]
    UnknownTenant,
    #[error("the link is invalid, used or expired")]
    BadLink,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

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

/// A trimmed, lower-cased address with one `@`, no spaces or control characters.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let e = raw.trim().to_lowercase();
    let bad = |m: &str| Err(AccountError::Invalid("email", m.to_string()));
    if e.len() < 3 || e.len() > 254 {
        return bad("email must be 3 to 254 characters");
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("email must not contain spaces or control characters");
    }
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@') =>
        {
            Ok(e)
        }
        _ => bad("email must be an address like name@example.com"),
    }
}

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

async fn verify_password(pw: &str, hash: Option<String>) -> bool {
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

/// A `dashboard_users` row as the queries below select it.
struct UserRow {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: String,
}

fn user_of(row: UserRow) -> User {
    User {
        id: row.id,
        tenant_id: row.tenant_id,
        email: row.email,
        // The column's CHECK admits only the three roles.
        role: Role::parse(&row.role).unwrap_or(Role::Analyst),
    }
}

/// Creates a user of `tenant_id` (with a password, or none until a link sets it), audited
/// as `user.create` on `conn` (the caller's transaction).
pub async fn create_user(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &str,
    role: Role,
    password: Option<&str>,
    actor: &Actor,
) -> Result<User, AccountError> {
    let email = normalize_email(email)?;
    let hash = match password {
        Some(pw) => Some(hash_password(pw).await?),
        None => None,
    };
    let exists = sqlx::query_scalar!("SELECT id FROM tenants WHERE id = $1", tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(AccountError::UnknownTenant);
    }
    let id = Uuid::now_v7();
    let inserted = sqlx::query!(
        "INSERT INTO dashboard_users (id, tenant_id, email, role, password_hash)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING",
        id,
        tenant_id,
        &email,
        role.as_str(),
        hash,
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::EmailTaken);
    }
    audit::record(
        conn,
        actor,
        Change {
            tenant_id: Some(tenant_id),
            mode: None,
            action: "user.create",
            target_type: "dashboard_user",
            target_id: Some(id.to_string()),
            before: None,
            after: Some(json!({ "email": email, "role": role.as_str() })),
        },
    )
    .await?;
    Ok(User {
        id,
        tenant_id,
        email,
        role,
    })
}

pub async fn user_by_id(pool: &PgPool, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as!(
        UserRow,
        "SELECT id, tenant_id, email, role FROM dashboard_users WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(user_of))
}

pub async fn user_by_email(pool: &PgPool, email: &str) -> Result<Option<User>, sqlx::Error> {
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    let row = sqlx::query_as!(
        UserRow,
        "SELECT id, tenant_id, email, role FROM dashboard_users WHERE email = $1",
        email,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(user_of))
}

/// A tenant's users with whether each has set a password, oldest first.
pub async fn list_users(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<(User, bool)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, tenant_id, email, role, password_hash IS NOT NULL AS "has_password!"
             FROM dashboard_users WHERE tenant_id = $1 ORDER BY created_at, id"#,
        tenant_id,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let user = user_of(UserRow {
                id: r.id,
                tenant_id: r.tenant_id,
                email: r.email,
                role: r.role,
            });
            (user, r.has_password)
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Team administration

/// Why a change to a teammate was refused.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("no such teammate")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("a team keeps at least one owner: make another teammate owner first")]
    LastOwner,
    #[error("type the new owner's email to confirm")]
    NotConfirmed,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What `by` may do to `target` (`new_role`: a role change; `None`: removal). Owners may do
/// anything to others; admins change and remove admins and analysts, never an owner, and
/// never make an owner; analysts nothing; nobody changes or removes themselves (so a team
/// never locks itself out by mistake).
pub fn may_manage(by: &User, target: &User, new_role: Option<Role>) -> Result<(), TeamError> {
    if by.tenant_id != target.tenant_id {
        return Err(TeamError::NotFound);
    }
    if by.id == target.id {
        return Err(TeamError::Forbidden(
            "you cannot change or remove yourself; ask another owner",
        ));
    }
    match by.role {
        Role::Owner => Ok(()),
        Role::Analyst => Err(TeamError::Forbidden("analysts cannot manage the team")),
        Role::Admin if target.role == Role::Owner => Err(TeamError::Forbidden(
            "admins cannot change or remove an owner",
        )),
        Role::Admin if new_role == Some(Role::Owner) => {
            Err(TeamError::Forbidden("only owners can make owners"))
        }
        Role::Admin => Ok(()),
    }
}

/// The tenant's owners, locked (`FOR UPDATE`) on `conn`'s transaction: two owners demoting
/// each other at once cannot leave the tenant without one.
async fn lock_owners(conn: &mut PgConnection, tenant_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM dashboard_users WHERE tenant_id = $1 AND role = 'owner' ORDER BY id FOR UPDATE",
        tenant_id,
    )
    .fetch_all(&mut *conn)
    .await
}

/// `target_id` of `by`'s tenant, locked.
async fn teammate(conn: &mut PgConnection, by: &User, target_id: Uuid) -> Result<User, TeamError> {
    let row = sqlx::query_as!(
        UserRow,
        "SELECT id, tenant_id, email, role FROM dashboard_users WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        target_id,
        by.tenant_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(user_of).ok_or(TeamError::NotFound)
}

async fn team_audit(
    conn: &mut PgConnection,
    actor: &Actor,
    target: &User,
    action: &'static str,
    before: serde_json::Value,
    after: Option<serde_json::Value>,
) -> Result<(), sqlx::Error> {
    audit::record(
        conn,
        actor,
        Change {
            tenant_id: Some(target.tenant_id),
            mode: None,
            action,
            target_type: "dashboard_user",
            target_id: Some(target.id.to_string()),
            before: Some(before),
            after,
        },
    )
    .await?;
    Ok(())
}

/// Gives teammate `target_id` `role` ([`may_manage`] rules; the last owner keeps the role),
/// audited as `user.role_change`.
pub async fn change_role(
    pool: &PgPool,
    by: &User,
    target_id: Uuid,
    role: Role,
    actor: &Actor,
) -> Result<User, TeamError> {
    let mut tx = pool.begin().await?;
    let owners = lock_owners(&mut tx, by.tenant_id).await?;
    let target = teammate(&mut tx, by, target_id).await?;
    may_manage(by, &target, Some(role))?;
    if target.role == Role::Owner && role != Role::Owner && owners.len() <= 1 {
        return Err(TeamError::LastOwner);
    }
    sqlx::query!(
        "UPDATE dashboard_users SET role = $2, updated_at = now() WHERE id = $1",
        target.id,
        role.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    team_audit(
        &mut tx,
        actor,
        &target,
        "user.role_change",
        json!({ "email": target.email, "role": target.role.as_str() }),
        Some(json!({ "email": target.email, "role": role.as_str() })),
    )
    .await?;
    tx.commit().await?;
    Ok(User { role, ..target })
}

/// Removes teammate `target_id` ([`may_manage`] rules; never the last owner): the user, their
/// sessions (signed out at once) and their links go; audited as `user.remove`.
pub async fn remove_user(
    pool: &PgPool,
    by: &User,
    target_id: Uuid,
    actor: &Actor,
) -> Result<User, TeamError> {
    let mut tx = pool.begin().await?;
    let owners = lock_owners(&mut tx, by.tenant_id).await?;
    let target = teammate(&mut tx, by, target_id).await?;
    may_manage(by, &target, None)?;
    if target.role == Role::Owner && owners.len() <= 1 {
        return Err(TeamError::LastOwner);
    }
    // Sessions and links go with the user (ON DELETE CASCADE).
    sqlx::query!("DELETE FROM dashboard_users WHERE id = $1", target.id)
        .execute(&mut *tx)
        .await?;
    team_audit(
        &mut tx,
        actor,
        &target,
        "user.remove",
        json!({ "email": target.email, "role": target.role.as_str() }),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(target)
}

/// A fresh invitation link for teammate `target_id`, who has not set a password yet (the
/// first mail was lost, or its link expired): earlier unused invitation links of theirs stop
/// working, so only the newest mail opens the account. The same rule as removal decides who
/// may; audited as `user.reinvite`. Returns the teammate and the new link's token.
pub async fn reinvite(
    pool: &PgPool,
    by: &User,
    target_id: Uuid,
    actor: &Actor,
) -> Result<(User, String), TeamError> {
    let mut tx = pool.begin().await?;
    let target = teammate(&mut tx, by, target_id).await?;
    may_manage(by, &target, None)?;
    let has_password = sqlx::query_scalar!(
        r#"SELECT password_hash IS NOT NULL AS "has_password!" FROM dashboard_users WHERE id = $1"#,
        target.id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if has_password {
        return Err(TeamError::Forbidden(
            "this teammate has already set a password; they can reset it from the sign-in page",
        ));
    }
    sqlx::query!(
        "UPDATE dashboard_tokens SET expires_at = least(expires_at, now())
          WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        target.id,
        LinkPurpose::Invitation.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    let token = issue_link(&mut tx, target.id, LinkPurpose::Invitation).await?;
    team_audit(
        &mut tx,
        actor,
        &target,
        "user.reinvite",
        json!({ "email": target.email, "role": target.role.as_str() }),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok((target, token))
}

/// Owner transfer: `by` (an owner) makes teammate `target_id` owner and becomes admin, in
/// one transaction, once `confirm` is the new owner's email; audited as
/// `user.owner_transfer`.
pub async fn transfer_ownership(
    pool: &PgPool,
    by: &User,
    target_id: Uuid,
    confirm: &str,
    actor: &Actor,
) -> Result<User, TeamError> {
    if by.role != Role::Owner {
        return Err(TeamError::Forbidden(
            "only an owner can hand over ownership",
        ));
    }
    let mut tx = pool.begin().await?;
    lock_owners(&mut tx, by.tenant_id).await?;
    let target = teammate(&mut tx, by, target_id).await?;
    may_manage(by, &target, Some(Role::Owner))?;
    if normalize_email(confirm).ok().as_deref() != Some(target.email.as_str()) {
        return Err(TeamError::NotConfirmed);
    }
    // The actor may have been demoted meanwhile: only a current owner hands over.
    let still = sqlx::query_scalar!(
        "SELECT role FROM dashboard_users WHERE id = $1 FOR UPDATE",
        by.id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if still.as_deref() != Some("owner") {
        return Err(TeamError::Forbidden(
            "only an owner can hand over ownership",
        ));
    }
    sqlx::query!(
        "UPDATE dashboard_users SET role = CASE WHEN id = $1 THEN 'owner' ELSE 'admin' END, updated_at = now()
          WHERE id IN ($1, $2)",
        target.id,
        by.id,
    )
    .execute(&mut *tx)
    .await?;
    team_audit(
        &mut tx,
        actor,
        &target,
        "user.owner_transfer",
        json!({ "owner": by.email, "new_owner_role": target.role.as_str() }),
        Some(json!({ "owner": target.email, "previous_owner_role": "admin" })),
    )
    .await?;
    tx.commit().await?;
    Ok(User {
        role: Role::Owner,
        ..target
    })
}

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

/// The audit actor of a dashboard user's request.
pub fn user_actor(user: &User, request_id: Option<String>, ip: Option<String>) -> Actor {
    Actor {
        kind: audit::ActorType::DashboardUser,
        id: Some(user.id.to_string()),
        request_id,
        ip,
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn who_may_manage_whom() {
        let t = Uuid::now_v7();
        let u = |role| User {
            id: Uuid::now_v7(),
            tenant_id: t,
            email: "x@y.z".into(),
            role,
        };
        let (owner, admin, analyst) = (u(Role::Owner), u(Role::Admin), u(Role::Analyst));
        let (owner2, admin2) = (u(Role::Owner), u(Role::Admin));
        let ok = |by: &User, target: &User, r| may_manage(by, target, r).is_ok();
        assert!(ok(&owner, &owner2, Some(Role::Admin)));
        assert!(ok(&owner, &admin, Some(Role::Owner)));
        assert!(ok(&owner, &analyst, None));
        assert!(ok(&admin, &admin2, Some(Role::Analyst)));
        assert!(ok(&admin, &analyst, Some(Role::Admin)));
        assert!(ok(&admin, &analyst, None));
        assert!(!ok(&admin, &owner, Some(Role::Admin)));
        assert!(!ok(&admin, &owner, None));
        assert!(!ok(&admin, &analyst, Some(Role::Owner)));
        assert!(!ok(&analyst, &admin, Some(Role::Analyst)));
        assert!(!ok(&analyst, &analyst.clone(), None));
        for me in [&owner, &admin] {
            assert!(
                !ok(me, me, Some(Role::Analyst)),
                "nobody changes themselves"
            );
            assert!(!ok(me, me, None), "nobody removes themselves");
        }
        let stranger = User {
            tenant_id: Uuid::now_v7(),
            ..u(Role::Analyst)
        };
        assert!(matches!(
            may_manage(&owner, &stranger, None),
            Err(TeamError::NotFound)
        ));
    }

    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "",
            "a",
            "ana",
            "ana@",
            "@x.io",
            "ana@localhost",
            "a b@x.io",
            "a@b@c.io",
            "a\0@x.io",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn roles_parse_and_only_owners_and_admins_configure() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        assert!(Role::Owner.can_configure() && Role::Admin.can_configure());
        assert!(!Role::Analyst.can_configure());
    }
}
