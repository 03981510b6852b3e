//! Team administration: who may manage whom, role changes, removal, re-invitations and
//! owner transfer, each in one transaction that keeps the tenant at least one owner.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::links::{issue_link, LinkPurpose};
use super::users::{normalize_email, user_of, Role, User, UserRow};
use crate::audit::{self, Actor, Change};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
