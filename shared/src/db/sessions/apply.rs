//! What the workers read and write of a session while they apply its accepted offer or its
//! confirmed cancellation to Stripe (`workers::handlers::offers`): the session as the job
//! needs it, the offer's and the cancellation's state, the stored parameters and the
//! idempotency-key generations, and the cooldown check against the customer's other sessions.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A session as the offer and cancellation jobs read it.
pub struct ApplySession {
    pub tenant_id: Uuid,
    pub mode: String,
    pub subscription_id: Option<String>,
    pub accepted_offer: Option<Value>,
    pub offer_state: Option<String>,
    pub offer_params: Option<Value>,
    pub ended_at: Option<DateTime<Utc>>,
    pub cancel_state: Option<String>,
    pub offer_key_generation: i32,
    pub cancel_key_generation: i32,
}

/// Session `id` (any tenant: the job names it).
pub async fn load(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ApplySession>, sqlx::Error> {
    sqlx::query_as!(
        ApplySession,
        "SELECT tenant_id, mode, subscription_id, accepted_offer, offer_state, offer_params, ended_at, cancel_state,
                offer_key_generation, cancel_key_generation
           FROM cancel_sessions WHERE id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// The offer failed for good (`offer_state` failed, with why).
pub async fn fail_offer(db: impl PgExecutor<'_>, id: Uuid, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE cancel_sessions SET offer_state = 'failed', offer_error = $2 WHERE id = $1",
        id,
        why,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The offer is applied.
pub async fn offer_applied(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE cancel_sessions SET offer_state = 'applied', offer_error = NULL, offer_applied_at = now() WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// The cancellation failed for good (`cancel_state` failed, with why).
pub async fn fail_cancel(
    db: impl PgExecutor<'_>,
    id: Uuid,
    why: String,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE cancel_sessions SET cancel_state = 'failed', cancel_error = $2 WHERE id = $1",
        id,
        why
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The cancellation is applied.
pub async fn cancel_applied(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE cancel_sessions SET cancel_state = 'applied', cancel_error = NULL WHERE id = $1",
        id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The next idempotency-key generation of the offer's (`offer`) or the cancellation's
/// Stripe call (after a 500 whose change did not land).
pub async fn next_key_generation(
    db: impl PgExecutor<'_>,
    id: Uuid,
    offer: bool,
) -> Result<(), sqlx::Error> {
    if offer {
        sqlx::query!(
            "UPDATE cancel_sessions SET offer_key_generation = offer_key_generation + 1 WHERE id = $1",
            id,
        )
        .execute(db)
        .await?;
    } else {
        sqlx::query!(
            "UPDATE cancel_sessions SET cancel_key_generation = cancel_key_generation + 1 WHERE id = $1",
            id,
        )
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Stores the offer's Stripe parameters once (the first writer wins) and returns the stored
/// ones, which every retry reuses.
pub async fn store_offer_params(
    db: impl PgExecutor<'_>,
    id: Uuid,
    params: &Value,
) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE cancel_sessions SET offer_params = coalesce(offer_params, $2) WHERE id = $1 RETURNING offer_params AS "offer_params!""#,
        id,
        params,
    )
    .fetch_one(db)
    .await
}

/// Another session of this session's customer that saved with an offer of type `kind`
/// within `days` and has it applied, or accepted one earlier that is still pending (the
/// earlier acceptance wins).
pub async fn cooldown_conflict(
    db: impl PgExecutor<'_>,
    id: Uuid,
    kind: &str,
    days: i32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT o.id FROM cancel_sessions o, cancel_sessions me
          WHERE me.id = $1 AND o.tenant_id = me.tenant_id AND o.mode = me.mode
            AND o.customer_id = me.customer_id AND o.id <> me.id AND o.outcome = 'saved'
            AND o.saved_offer_type = $2 AND o.created_at > now() - make_interval(days => $3)
            AND (o.offer_state = 'applied'
                 OR (o.offer_state = 'pending'
                     AND (coalesce(o.ended_at, o.created_at), o.id) < (coalesce(me.ended_at, me.created_at), me.id)))
          LIMIT 1",
        id,
        kind,
        days,
    )
    .fetch_optional(db)
    .await
}
