//! Cancel sessions and their events (cancel_sessions, session_events, offer_events,
//! churn_reasons): every statement on them. [`widget`] holds the batched widget statements
//! (`record_widget_sessions`, `record_widget_events`: the session outcome rules live in that
//! function, migration 20261203000000), [`apply`] the workers' writes of an offer's or a
//! cancellation's state, this file the reads, the expiry tick and the erasure and retention
//! statements of [`crate::privacy`].

pub mod apply;
pub mod widget;

pub use widget::{
    flush_events, flush_sessions, read_customers, CustomerKey, CustomerRow, EventJob, EventOffer,
    EventPayload, EventRow, EventWrite, SessionRow,
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{postgres::PgQueryResult, PgExecutor};
use uuid::Uuid;

/// The immutable part of a session that its events are checked against (who, which flow
/// version and variant, what it rendered).
#[derive(Clone, Debug)]
pub struct SessionMeta {
    pub tenant_id: Uuid,
    pub mode: String,
    pub customer_id: String,
    pub user_id: Option<Uuid>,
    pub flow_id: Option<Uuid>,
    pub flow_version: Option<i32>,
    pub variant: Option<String>,
    pub mrr_cents: i64,
    /// The offer ids the session rendered (after holdout, variant and guardrails).
    pub rendered_offers: Vec<String>,
}

/// The immutable part of session `id` of `tenant` (any mode: the caller checks it).
pub async fn meta(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<SessionMeta>, sqlx::Error> {
    sqlx::query_as!(
        SessionMeta,
        "SELECT tenant_id, mode, customer_id, user_id, flow_id, flow_version, variant, mrr_cents, rendered_offers
                       FROM cancel_sessions WHERE tenant_id = $1 AND id = $2",
        tenant,
        id,
    )
    .fetch_optional(db)
    .await
}

/// Session `id` of a tenant's mode as the API shows it (the row as JSON, without the
/// customer's attributes and the stored offer parameters).
pub async fn session_json(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    mode: &str,
    id: Uuid,
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT to_jsonb(s) - 'attributes' - 'offer_params' AS "session!" FROM cancel_sessions s WHERE tenant_id = $1 AND id = $2 AND mode = $3"#,
        tenant,
        id,
        mode,
    )
    .fetch_optional(db)
    .await
}

/// The widget events of session `id`, oldest first, as a JSON array of `{type,
/// client_event_id, payload, created_at}`.
pub async fn events_json(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(jsonb_agg(jsonb_build_object('type', type, 'client_event_id', client_event_id,
                'payload', payload, 'created_at', created_at) ORDER BY created_at, id), '[]'::jsonb) AS "events!"
           FROM session_events WHERE tenant_id = $1 AND session_id = $2"#,
        tenant,
        id,
    )
    .fetch_one(db)
    .await
}

/// Marks at most `limit` expired open sessions `abandoned`; returns how many. SKIP LOCKED: a
/// session an event is writing right now is left to the next call (the event itself is
/// refused as expired), and no lock order can deadlock. The `< 'infinity'` term selects
/// cancel_sessions_open_expiry_idx (see its migration).
pub async fn expire_open(db: impl PgExecutor<'_>, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
            "UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
              WHERE id IN (SELECT id FROM cancel_sessions
                            WHERE outcome IS NULL AND expires_at <= now() AND expires_at < 'infinity'
                            ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
            limit,
        )
        .execute(db)
        .await?
        .rows_affected())
}

// ---------------------------------------------------------------------------------------
// Erasure and retention ([`crate::privacy`])

/// Ends the open sessions of a customer (`abandoned`); returns how many. Takes their row
/// locks, so it serialises with the customer's session starts and events.
pub async fn end_open_of_customer(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    mode: &str,
    customer_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
          WHERE tenant_id = $1 AND mode = $2 AND customer_id = $3 AND outcome IS NULL",
        tenant,
        mode,
        customer_id,
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Removes the free-text feedback from the events of a customer's sessions; returns how many
/// events had some.
pub async fn erase_feedback_of_customer(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    mode: &str,
    customer_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE session_events e SET payload = e.payload - 'text'
           FROM cancel_sessions s
          WHERE s.tenant_id = $1 AND s.mode = $2 AND s.customer_id = $3
            AND e.tenant_id = s.tenant_id AND e.session_id = s.id AND e.payload ? 'text'",
        tenant,
        mode,
        customer_id,
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Gives a customer's sessions the id `pseudonym` and drops their copied attributes;
/// returns how many sessions.
pub async fn pseudonymise_customer(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    mode: &str,
    customer_id: &str,
    pseudonym: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE cancel_sessions SET customer_id = $4, attributes = '{}'::jsonb
          WHERE tenant_id = $1 AND mode = $2 AND customer_id = $3",
        tenant,
        mode,
        customer_id,
        pseudonym,
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Removes the free-text feedback of at most `limit` events older than `before`.
pub async fn sweep_feedback(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query!(
        "UPDATE session_events SET payload = payload - 'text'
                  WHERE id IN (SELECT id FROM session_events
                                WHERE created_at < $1 AND payload ? 'text' LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await
}

/// Drops the copied customer attributes of at most `limit` sessions older than `before`.
pub async fn sweep_attributes(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query!(
        "UPDATE cancel_sessions SET attributes = '{}'::jsonb
                  WHERE id IN (SELECT id FROM cancel_sessions
                                WHERE created_at < $1 AND attributes <> '{}'::jsonb LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await
}
