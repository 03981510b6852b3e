//! The audit log (`audit_events`), its only writer and reader. A change and its audit row
//! are written in one transaction: pass the transaction's connection to [`record`]. The
//! table is append-only (a trigger refuses UPDATE, TRUNCATE and any DELETE but the retention
//! job's, [`purge_older_than`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::tenants::Mode;

/// Who did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A tenant's secret API key (`actor_id` is the key id).
    ApiKey,
    /// The deployment's ops token.
    Ops,
    /// A dashboard user (`actor_id` is the user id).
    DashboardUser,
    /// A scheduled job (retention, expiry).
    System,
    /// The `retentionos-api` command line.
    Cli,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::ApiKey => "api_key",
            ActorType::Ops => "ops",
            ActorType::DashboardUser => "dashboard_user",
            ActorType::System => "system",
            ActorType::Cli => "cli",
        }
    }
}

/// The actor and the request it came with.
#[derive(Clone, Debug)]
pub struct Actor {
    pub kind: ActorType,
    pub id: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            kind: ActorType::System,
            id: None,
            request_id: None,
            ip: None,
        }
    }

    pub fn cli() -> Self {
        Actor {
            kind: ActorType::Cli,
            id: None,
            request_id: None,
            ip: None,
        }
    }
}

/// What was done, to what. `before`/`after` are summaries (never secrets: a rotated key is
/// named by id and display prefix, a Stripe key by its last four characters).
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub tenant_id: Option<Uuid>,
    pub mode: Option<Mode>,
    /// Dotted verb, e.g. `settings.update`, `flow.publish`, `api_key.rotate`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Appends one audit row on `conn` (the transaction of the change).
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    change: Change<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO audit_events (id, tenant_id, mode, actor_type, actor_id, action, target_type, target_id, before, after, request_id, ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        id,
        change.tenant_id,
        change.mode.map(Mode::as_str),
        actor.kind.as_str(),
        actor.id.as_deref(),
        change.action,
        change.target_type,
        change.target_id.as_deref(),
        change.before,
        change.after,
        actor.request_id.as_deref(),
        actor.ip.as_deref(),
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// One audit row as listed by the API.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    /// The tenant changed; null for a platform action (ops on the queues).
    pub tenant_id: Option<Uuid>,
    /// `test` or `live`; null for a change of no mode (tenant-wide, platform).
    #[schema(pattern = "^(test|live)$")]
    pub mode: Option<String>,
    /// `api_key`, `ops`, `dashboard_user`, `system` or `cli`.
    #[schema(pattern = "^(api_key|ops|dashboard_user|system|cli)$")]
    pub actor_type: String,
    /// The key id (`api_key`) or the user id (`dashboard_user`); null otherwise.
    pub actor_id: Option<String>,
    /// Dotted verb, e.g. `settings.update`, `flow.publish`, `api_key.rotate`.
    pub action: String,
    /// What kind of object changed (`settings`, `flow`, `api_key`, `queue`, ...).
    pub target_type: String,
    /// Which one (a flow id, a key id, a queue name, ...).
    pub target_id: Option<String>,
    /// A summary of the object before the change (never a secret); null when none.
    pub before: Option<Value>,
    /// A summary of the object after the change (never a secret); null when none.
    pub after: Option<Value>,
    /// The `x-request-id` of the request that made the change.
    pub request_id: Option<String>,
    /// The client address of that request.
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Filters of a listing; `tenant_id: None` lists every tenant (ops only).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub tenant_id: Option<Uuid>,
    /// Rows of this mode and rows that belong to no mode (tenant-wide changes).
    pub mode: Option<Mode>,
    pub action: Option<String>,
    pub actor_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: rows strictly older than this (created_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// Newest first, at most `limit` rows.
pub async fn list(pool: &PgPool, f: &Filter, limit: i64) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as!(
        AuditEvent,
        "SELECT id, tenant_id, mode, actor_type, actor_id, action, target_type, target_id, before, after,
                request_id, ip, created_at
           FROM audit_events
          WHERE ($1::uuid IS NULL OR tenant_id = $1)
            AND ($2::text IS NULL OR mode = $2 OR mode IS NULL)
            AND ($3::text IS NULL OR action = $3)
            AND ($4::text IS NULL OR actor_type = $4)
            AND ($5::text IS NULL OR target_id = $5)
            AND ($6::timestamptz IS NULL OR created_at >= $6)
            AND ($7::timestamptz IS NULL OR created_at < $7)
            AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9))
          ORDER BY created_at DESC, id DESC
          LIMIT $10",
        f.tenant_id,
        f.mode.map(Mode::as_str),
        f.action.as_deref(),
        f.actor_type.as_deref(),
        f.target_id.as_deref(),
        f.since,
        f.until,
        f.before.map(|b| b.0),
        f.before.map(|b| b.1),
        limit,
    )
    .fetch_all(pool)
    .await
}

/// The retention job's delete: rows older than `cutoff`. Returns how many went.
pub async fn purge_older_than(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Lets this transaction's DELETE through the table's append-only trigger.
    sqlx::query_scalar!("SELECT set_config('retentionos.audit_retention', 'on', true)")
        .fetch_one(&mut *tx)
        .await?;
    let gone = sqlx::query!("DELETE FROM audit_events WHERE created_at < $1", cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(gone)
}
