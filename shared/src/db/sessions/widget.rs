//! The widget's batched statements: the customer lookup of session start ([`CustomerRow`],
//! [`read_customers`]) and the group-committed writes of new sessions ([`flush_sessions`],
//! `record_widget_sessions`) and widget events ([`flush_events`], `record_widget_events`,
//! whose statuses [`EventWrite`] decodes). The api's batchers (`api::batch`, wired in
//! `api::state`) run them; the widget routes only submit.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What PostgreSQL knows of the customer, read in one query: the synced user and
/// subscription, and whether a recent save blocks a discount or a pause (the cooldowns).
pub struct CustomerRow {
    pub user_id: Option<Uuid>,
    pub user_plan: Option<String>,
    pub user_region: Option<String>,
    pub user_mrr: Option<i64>,
    pub user_created: Option<chrono::DateTime<chrono::Utc>>,
    pub user_attributes: Option<Value>,
    pub sub_status: Option<String>,
    pub sub_plan: Option<String>,
    pub sub_interval: Option<String>,
    pub sub_mrr: Option<i64>,
    pub sub_discounts: Option<Value>,
    pub recent_discount: bool,
    pub recent_pause: bool,
    pub recent_trial_extension: bool,
    pub recent_plan_change: bool,
}

/// One customer whose session is starting, as [`read_customers`] reads it
/// (`jsonb_to_recordset`, column for column).
#[derive(Debug, Clone, Serialize)]
pub struct CustomerKey {
    #[serde(rename = "t")]
    pub tenant_id: Uuid,
    #[serde(rename = "m")]
    pub mode: &'static str,
    #[serde(rename = "c")]
    pub customer_id: String,
    #[serde(rename = "s")]
    pub subscription_id: Option<String>,
    /// The tenant's cooldown days of discounts, pauses, trial extensions and plan changes.
    #[serde(rename = "dd")]
    pub discount_days: u32,
    #[serde(rename = "pd")]
    pub pause_days: u32,
    #[serde(rename = "td")]
    pub trial_extension_days: u32,
    #[serde(rename = "pcd")]
    pub plan_change_days: u32,
}

/// Reads what session start needs of many customers in one query (batched by the api):
/// one row per key, in order.
pub async fn read_customers(
    pool: sqlx::PgPool,
    batch: Vec<CustomerKey>,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    sqlx::query_as!(
        CustomerRow,
        r#"SELECT u.id AS "user_id?", u.plan AS user_plan, u.region AS user_region, u.mrr_cents AS "user_mrr?",
                u.created_at AS "user_created?", u.attributes AS "user_attributes?",
                s.status AS "sub_status?", s.plan AS sub_plan, s.billing_interval AS sub_interval,
                s.mrr_cents AS "sub_mrr?", s.discounts AS "sub_discounts?",
                cd.recent_discount AS "recent_discount!", cd.recent_pause AS "recent_pause!",
                cd.recent_trial_extension AS "recent_trial_extension!", cd.recent_plan_change AS "recent_plan_change!"
           FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t uuid, m text, c text, s text, dd integer, pd integer, td integer, pcd integer))
                WITH ORDINALITY AS e(t, m, c, s, dd, pd, td, pcd, ord)
           CROSS JOIN LATERAL (
                SELECT coalesce(bool_or(cs.saved_offer_type = 'discount' AND cs.created_at > now() - make_interval(days => e.dd)), false) AS recent_discount,
                       coalesce(bool_or(cs.saved_offer_type = 'pause' AND cs.created_at > now() - make_interval(days => e.pd)), false) AS recent_pause,
                       coalesce(bool_or(cs.saved_offer_type = 'trial_extension' AND cs.created_at > now() - make_interval(days => e.td)), false) AS recent_trial_extension,
                       coalesce(bool_or(cs.saved_offer_type = 'plan_change' AND cs.created_at > now() - make_interval(days => e.pcd)), false) AS recent_plan_change
                  FROM cancel_sessions cs
                 WHERE cs.tenant_id = e.t AND cs.mode = e.m AND cs.customer_id = e.c AND cs.outcome = 'saved') cd
           LEFT JOIN LATERAL (SELECT * FROM users WHERE tenant_id = e.t AND mode = e.m AND external_id = e.c LIMIT 1) u ON true
           LEFT JOIN LATERAL (SELECT * FROM subscriptions WHERE tenant_id = e.t AND mode = e.m AND stripe_subscription_id = e.s LIMIT 1) s ON true
          ORDER BY e.ord"#,
        sqlx::types::Json(&batch) as _,
    )
    .fetch_all(&pool)
    .await
}

/// One new cancel session as `record_widget_sessions` reads it (`jsonb_to_recordset`, column
/// for column: migration 20261202000007).
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub mode: &'static str,
    pub user_id: Option<Uuid>,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub flow_id: Option<Uuid>,
    pub flow_version: Option<i32>,
    pub variant: Option<String>,
    pub holdout: bool,
    pub mrr_cents: i64,
    /// The customer's attributes as the session saw them (targeting, the dashboard).
    pub attributes: Value,
    /// The offer ids the session rendered: the only offers its events may name.
    pub rendered_offers: Vec<String>,
    /// Seconds until the session expires (`SESSION_TTL_SECS`).
    pub ttl_secs: f64,
}

/// Writes batches of new sessions with `record_widget_sessions` (batched by the api): one
/// row per session. Each start supersedes the customer's open session (it becomes
/// `abandoned`); the unique index `cancel_sessions_one_open_idx` keeps one open session per
/// customer however many starts race, in one batch or in several (migration
/// 20261202000007: a new customer's start is one plain insert).
pub async fn flush_sessions(
    pool: sqlx::PgPool,
    batch: Vec<SessionRow>,
) -> Result<Vec<()>, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"SELECT record_widget_sessions($1::jsonb) AS "inserted!""#,
        sqlx::types::Json(&batch) as _,
    )
    .fetch_one(&pool)
    .await?;
    // One row per element (no conflict clause): the batcher checks the count.
    Ok(vec![(); inserted.max(0) as usize])
}

/// What `record_widget_events` did with one event (migration 20261202000002 lists the
/// statuses it returns; [`EventWrite::decode`] is their one reading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventWrite {
    /// Recorded.
    Ok,
    /// Recorded with its outbox job (push the job now).
    OkJob,
    /// This `client_event_id` was recorded before: nothing changed.
    Duplicate,
    /// No session of this tenant and mode has that id.
    NoSession,
    /// The session already has this outcome: nothing recorded.
    SessionEnded(String),
    /// Past the session's `expires_at`: nothing recorded.
    SessionExpired,
    /// An offer event for an offer the session did not render.
    OfferNotRendered,
    /// An acceptance of an offer limited to reasons the session did not select.
    OfferNotForReason,
    /// An acceptance while another session of the customer saved with that offer type
    /// within its cooldown.
    OfferInCooldown,
}

impl EventWrite {
    /// The function's status string; `None` for one this code does not know (a schema and
    /// code out of step).
    pub fn decode(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "ok_job" => Self::OkJob,
            "duplicate" => Self::Duplicate,
            "no_session" => Self::NoSession,
            "session_expired" => Self::SessionExpired,
            "offer_not_rendered" => Self::OfferNotRendered,
            "offer_not_for_reason" => Self::OfferNotForReason,
            "offer_in_cooldown" => Self::OfferInCooldown,
            other => Self::SessionEnded(other.strip_prefix("session_ended:")?.to_string()),
        })
    }
}

/// One widget event as `record_widget_events` reads it (`jsonb_to_recordset`, column for
/// column: migration 20261203000000): what the api validated and decided, so the function
/// only checks the session's state under its row lock and writes.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub mode: &'static str,
    pub session_id: Uuid,
    pub customer_id: String,
    pub client_event_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stored as the event's payload.
    pub payload: EventPayload,
    pub reason_code: Option<String>,
    pub user_id: Option<Uuid>,
    pub flow_id: Option<Uuid>,
    pub variant: Option<String>,
    pub mrr_cents: i64,
    /// The flow's offer an offer event names.
    pub offer: Option<EventOffer>,
    /// The tenant's cooldown for an accepted offer's type (none for redirects and custom).
    pub cooldown_days: Option<u32>,
    /// What an acceptance or a confirmed cancellation sets (applied only while the session
    /// has no outcome).
    pub outcome: Option<&'static str>,
    pub offer_state: Option<&'static str>,
    pub cancel_state: Option<&'static str>,
    /// The outbox job written with it (an offer to apply, a cancellation to perform).
    pub job: Option<EventJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventPayload {
    pub reason_code: Option<String>,
    pub offer_id: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventOffer {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Acceptances only: the offer as the session stores it (`accepted_offer`), with the
    /// reasons it is limited to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition: Option<crate::flows::Offer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventJob {
    pub id: Uuid,
    pub queue: &'static str,
    pub kind: &'static str,
    pub payload: Value,
}

/// Writes batches of widget events with `record_widget_events` (one status per element).
/// A status this code cannot read fails the flush as a decode error: the schema and the
/// code are out of step, and that must be loud.
pub async fn flush_events(
    pool: sqlx::PgPool,
    batch: Vec<EventRow>,
) -> Result<Vec<EventWrite>, sqlx::Error> {
    let statuses = sqlx::query_scalar!(
        r#"SELECT record_widget_events($1::jsonb) AS "statuses!: sqlx::types::Json<Vec<String>>""#,
        sqlx::types::Json(&batch) as _,
    )
    .fetch_one(&pool)
    .await?;
    statuses
        .0
        .iter()
        .map(|s| {
            EventWrite::decode(s).ok_or_else(|| {
                sqlx::Error::Decode(format!("record_widget_events returned {s:?}").into())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::EventWrite;

    #[test]
    fn every_status_of_the_function_decodes_and_nothing_else_does() {
        assert_eq!(EventWrite::decode("ok"), Some(EventWrite::Ok));
        assert_eq!(EventWrite::decode("ok_job"), Some(EventWrite::OkJob));
        assert_eq!(
            EventWrite::decode("session_ended:canceled"),
            Some(EventWrite::SessionEnded("canceled".into()))
        );
        assert_eq!(
            EventWrite::decode("offer_in_cooldown"),
            Some(EventWrite::OfferInCooldown)
        );
        for unknown in ["", "OK", "session_ended", "bogus", "ok "] {
            assert_eq!(EventWrite::decode(unknown), None, "{unknown:?}");
        }
    }
}
