//! Personal data: erasure of one customer and the retention sweep. What is stored where is
//! listed in README.md ("Personal data"); this module is the one place that erases it.
//!
//! Erasure pseudonymises instead of deleting, so analytics keep their counts: every row of
//! the customer gets the same random `erased_…` id (never derived from the real one), the
//! email, token attributes and free-text feedback are removed, processed Stripe payload
//! copies naming the customer are redacted, and open sessions end (`abandoned`).

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgQueryResult;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{db::sessions, tenants::Mode};

/// What an erasure changed, table by table.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Erased {
    /// The id the customer's rows carry now (nothing links it to the erased id).
    pub pseudonym: String,
    pub users: u64,
    pub sessions: u64,
    pub sessions_ended: u64,
    pub feedback_texts: u64,
    pub stripe_payloads: u64,
}

impl Erased {
    pub fn is_empty(&self) -> bool {
        self.users + self.sessions + self.feedback_texts + self.stripe_payloads == 0
    }
}

/// Erases customer `customer_id` of `tenant` in `mode`, on `conn` (one transaction: the
/// caller's, with its audit row). Idempotent: a second call finds nothing.
pub async fn erase_customer(
    conn: &mut PgConnection,
    tenant: Uuid,
    mode: Mode,
    customer_id: &str,
) -> Result<Erased, sqlx::Error> {
    let pseudonym = format!("erased_{}", Uuid::new_v4().simple());
    let m = mode.as_str();
    // Serialises with session starts and events of this customer (the widget's writer takes
    // the session row locks; this takes them too, below).
    let ended = sessions::end_open_of_customer(&mut *conn, tenant, m, customer_id).await?;
    let feedback = sessions::erase_feedback_of_customer(&mut *conn, tenant, m, customer_id).await?;
    let sessions =
        sessions::pseudonymise_customer(&mut *conn, tenant, m, customer_id, &pseudonym).await?;
    // Processed deliveries only: an unprocessed one is still needed by its job (which
    // re-fetches from Stripe); the retention sweep redacts it later.
    let payloads = sqlx::query!(
        "UPDATE stripe_events SET payload = $4
          WHERE tenant_id = $1 AND mode = $2 AND processed_at IS NOT NULL
            AND NOT (payload ? 'redacted')
            AND (object_id = $3
                 OR payload->'data'->'object'->>'customer' = $3
                 OR payload->'data'->'object'->'customer'->>'id' = $3)",
        tenant,
        m,
        customer_id,
        json!({ "redacted": "erasure" }),
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let users = sqlx::query!(
        "UPDATE users SET external_id = $4, email = NULL, attributes = '{}'::jsonb, updated_at = now()
          WHERE tenant_id = $1 AND mode = $2 AND external_id = $3",
        tenant,
        m,
        customer_id,
        &pseudonym,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(Erased {
        pseudonym,
        users,
        sessions,
        sessions_ended: ended,
        feedback_texts: feedback,
        stripe_payloads: payloads,
    })
}

/// How long personal data is kept (days; 0 keeps it forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Full Stripe payload copies of processed deliveries (the row stays, for de-duplication).
    pub stripe_payload_days: u32,
    /// Free-text feedback and the token attributes copied onto sessions.
    pub feedback_days: u32,
    /// Audit rows.
    pub audit_days: u32,
}

/// What one sweep removed.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Swept {
    pub stripe_payloads: u64,
    pub feedback_texts: u64,
    pub session_attributes: u64,
    pub audit_events: u64,
}

/// Rows changed per statement: a sweep over a large backlog holds no lock for long.
const BATCH: i64 = 5000;

/// Runs `batch` (one statement that changes at most [`BATCH`] rows) until a run changes fewer.
async fn in_batches<F, Fut>(mut batch: F) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PgQueryResult, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?.rows_affected();
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(i64::from(days)))
}

/// Applies `r` as of `now` (the scheduled retention job; idempotent).
pub async fn sweep(pool: &PgPool, r: Retention, now: DateTime<Utc>) -> Result<Swept, sqlx::Error> {
    let mut out = Swept::default();
    if let Some(c) = cutoff(now, r.stripe_payload_days) {
        out.stripe_payloads = in_batches(|| {
            sqlx::query!(
                "UPDATE stripe_events SET payload = '{\"redacted\": \"retention\"}'::jsonb
                  WHERE id IN (SELECT id FROM stripe_events
                                WHERE received_at < $1 AND processed_at IS NOT NULL
                                  AND NOT (payload ? 'redacted')
                                LIMIT $2)",
                c,
                BATCH,
            )
            .execute(pool)
        })
        .await?;
    }
    if let Some(c) = cutoff(now, r.feedback_days) {
        out.feedback_texts = in_batches(|| sessions::sweep_feedback(pool, c, BATCH)).await?;
        out.session_attributes = in_batches(|| sessions::sweep_attributes(pool, c, BATCH)).await?;
    }
    if let Some(c) = cutoff(now, r.audit_days) {
        out.audit_events = crate::audit::purge_older_than(pool, c).await?;
    }
    Ok(out)
}
