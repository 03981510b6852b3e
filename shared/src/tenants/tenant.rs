//! The tenant record: creating a tenant with its four API keys, two token signing secrets
//! and default settings (optionally audited), and looking tenants up.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::keys::{issue_key, IssuedKey, KeyKind};
use super::settings::{store_settings, TenantSettings};
use super::Mode;
use crate::{
    crypto::MasterKey,
    signing_secrets::{self, IssuedSigningSecret},
};

/// A tenant (one customer of the platform).
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The four keys and two token signing secrets of a new tenant.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TenantWithKeys {
    pub tenant: Tenant,
    /// A secret and a publishable key for test and for live mode (shown this once).
    pub keys: Vec<IssuedKey>,
    /// The customer-token signing secret of test and of live mode (shown this once).
    pub token_signing_secrets: Vec<IssuedSigningSecret>,
}

impl TenantWithKeys {
    pub fn key(&self, kind: KeyKind, mode: Mode) -> &str {
        &self
            .keys
            .iter()
            .find(|k| k.kind == kind && k.mode == mode)
            .expect("a tenant is created with every kind and mode")
            .key
    }

    /// The customer-token signing secret of `mode`.
    pub fn signing_secret(&self, mode: Mode) -> &str {
        &self
            .token_signing_secrets
            .iter()
            .find(|s| s.mode == mode)
            .expect("a tenant is created with a signing secret per mode")
            .secret
    }
}

/// Creates a tenant with a secret and a publishable key and a customer-token signing
/// secret for test and for live mode, and the default settings of each mode.
pub async fn create_tenant(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
) -> Result<TenantWithKeys, sqlx::Error> {
    create_tenant_as(pool, master, name, false, None).await
}

/// Creates a tenant (a demo tenant when `demo`); with an actor, the `tenant.create` audit
/// event (name and demo flag, never keys or secrets) is written in the same transaction.
pub async fn create_tenant_as(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
    demo: bool,
    actor: Option<&crate::audit::Actor>,
) -> Result<TenantWithKeys, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let tenant = sqlx::query_as!(
        Tenant,
        "INSERT INTO tenants (id, name, demo) VALUES ($1, $2, $3) RETURNING id, name, created_at",
        Uuid::now_v7(),
        name,
        demo,
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(actor) = actor {
        crate::audit::record(
            &mut tx,
            actor,
            crate::audit::Change {
                tenant_id: Some(tenant.id),
                mode: None,
                action: "tenant.create",
                target_type: "tenant",
                target_id: Some(tenant.id.to_string()),
                before: None,
                after: Some(serde_json::json!({ "name": name, "demo": demo })),
            },
        )
        .await?;
    }
    let defaults = TenantSettings::default();
    let mut keys = Vec::with_capacity(4);
    let mut token_signing_secrets = Vec::with_capacity(2);
    for mode in [Mode::Test, Mode::Live] {
        store_settings(&mut *tx, tenant.id, mode, &defaults).await?;
        for kind in [KeyKind::Secret, KeyKind::Publishable] {
            keys.push(issue_key(&mut *tx, tenant.id, kind, mode).await?);
        }
        token_signing_secrets
            .push(signing_secrets::issue(&mut *tx, master, tenant.id, mode).await?);
    }
    tx.commit().await?;
    Ok(TenantWithKeys {
        tenant,
        keys,
        token_signing_secrets,
    })
}

pub async fn get_tenant(pool: &PgPool, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, name, created_at FROM tenants WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

pub async fn list_tenants(pool: &PgPool) -> Result<Vec<Tenant>, sqlx::Error> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, name, created_at FROM tenants ORDER BY created_at"
    )
    .fetch_all(pool)
    .await
}
