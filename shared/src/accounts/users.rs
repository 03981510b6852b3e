//! Users: roles, the user record and its errors, email normalisation, creating and looking
//! up users, and the audit actor of a user's request.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::password::hash_password;
use crate::audit::{self, Actor, Change};

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

/// A `dashboard_users` row as the queries below select it.
pub(super) struct UserRow {
    pub(super) id: Uuid,
    pub(super) tenant_id: Uuid,
    pub(super) email: String,
    pub(super) role: String,
}

pub(super) fn user_of(row: UserRow) -> User {
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

/// The audit actor of a dashboard user's request.
pub fn user_actor(user: &User, request_id: Option<String>, ip: Option<String>) -> Actor {
    Actor {
        kind: audit::ActorType::DashboardUser,
        id: Some(user.id.to_string()),
        request_id,
        ip,
    }
}

#[cfg(test)]
mod tests {
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
