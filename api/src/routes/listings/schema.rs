//! The listings' query parameters and answers, for the OpenAPI document. The listing is one
//! allow-listed query (`services::listings`) whose rows are `to_jsonb` of the selected
//! columns, so these types describe the answers rather than build them; each row type
//! refuses unknown fields (`additionalProperties: false`), so a column added to a listing and
//! not here fails the API fuzzer's response-schema check (`tests/api-fuzz/run.sh`). Every
//! row field is optional (`fields=` selects them) and null where the column is.
#![allow(dead_code)] // read by the schema derives only; `Serialize` is derived for the
                     // serde attributes they read

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `GET /v1/users`' query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f]{32}$")]
    cursor: Option<String>,
    /// Comma-separated fields to return (default all).
    #[param(
        pattern = r"^ *(id|external_id|email|plan|region|mrr_cents|attributes|created_at|updated_at) *(, *(id|external_id|email|plan|region|mrr_cents|attributes|created_at|updated_at) *)*$"
    )]
    fields: Option<String>,
    plan: Option<String>,
    region: Option<String>,
    /// Created at or after.
    created_gte: Option<DateTime<Utc>>,
    /// Created before.
    created_lt: Option<DateTime<Utc>>,
}

/// `GET /v1/subscriptions`' query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionsQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f]{32}$")]
    cursor: Option<String>,
    /// Comma-separated fields to return (default all).
    #[param(
        pattern = r"^ *(id|user_id|stripe_subscription_id|status|plan|price_id|billing_interval|mrr_cents|currency|current_period_start|current_period_end|cancel_at_period_end|pause_collection|discounts|trial_end|canceled_at|churn_kind|created_at|updated_at) *(, *(id|user_id|stripe_subscription_id|status|plan|price_id|billing_interval|mrr_cents|currency|current_period_start|current_period_end|cancel_at_period_end|pause_collection|discounts|trial_end|canceled_at|churn_kind|created_at|updated_at) *)*$"
    )]
    fields: Option<String>,
    plan: Option<String>,
    /// Stripe's subscription status.
    #[param(inline)]
    status: Option<SubscriptionStatus>,
    created_gte: Option<DateTime<Utc>>,
    created_lt: Option<DateTime<Utc>>,
}

/// `GET /v1/sessions`' query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f]{32}$")]
    cursor: Option<String>,
    /// Comma-separated fields to return (default all).
    #[param(
        pattern = r"^ *(id|user_id|customer_id|subscription_id|flow_id|flow_version|variant|holdout|outcome|saved_offer_type|reason_code|offer_state|offer_error|cancel_state|mrr_cents|validated_at|created_at|ended_at) *(, *(id|user_id|customer_id|subscription_id|flow_id|flow_version|variant|holdout|outcome|saved_offer_type|reason_code|offer_state|offer_error|cancel_state|mrr_cents|validated_at|created_at|ended_at) *)*$"
    )]
    fields: Option<String>,
    #[param(inline)]
    outcome: Option<Outcome>,
    /// The customer's plan.
    plan: Option<String>,
    /// The customer's region.
    region: Option<String>,
    /// Only sessions saved with this offer type.
    #[param(inline)]
    saved_offer_type: Option<shared::flows::OfferType>,
    /// Only sessions with this churn reason.
    reason_code: Option<String>,
    /// Only this customer's sessions (the id in the customer token).
    customer_id: Option<String>,
    created_gte: Option<DateTime<Utc>>,
    created_lt: Option<DateTime<Utc>>,
}

/// A session's outcome (an open session has none).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Saved,
    Canceled,
    Deflected,
    Abandoned,
}

/// Stripe's subscription status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
}

/// One page: newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Page<T> {
    data: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    has_more: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRow {
    id: Option<Uuid>,
    external_id: Option<String>,
    email: Option<String>,
    plan: Option<String>,
    region: Option<String>,
    mrr_cents: Option<i64>,
    #[schema(value_type = Option<Object>)]
    attributes: Option<Value>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRow {
    id: Option<Uuid>,
    user_id: Option<Uuid>,
    stripe_subscription_id: Option<String>,
    status: Option<String>,
    plan: Option<String>,
    price_id: Option<String>,
    billing_interval: Option<String>,
    mrr_cents: Option<i64>,
    currency: Option<String>,
    current_period_start: Option<DateTime<Utc>>,
    current_period_end: Option<DateTime<Utc>>,
    cancel_at_period_end: Option<bool>,
    /// Stripe's `pause_collection`.
    #[schema(value_type = Option<Object>)]
    pause_collection: Option<Value>,
    /// Stripe's discounts.
    discounts: Option<Vec<Value>>,
    trial_end: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
    /// `voluntary` or `involuntary`.
    churn_kind: Option<String>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRow {
    id: Option<Uuid>,
    user_id: Option<Uuid>,
    customer_id: Option<String>,
    subscription_id: Option<String>,
    flow_id: Option<Uuid>,
    flow_version: Option<i32>,
    variant: Option<String>,
    holdout: Option<bool>,
    outcome: Option<String>,
    saved_offer_type: Option<String>,
    reason_code: Option<String>,
    /// `pending`, `applied` or `failed`.
    offer_state: Option<String>,
    offer_error: Option<String>,
    cancel_state: Option<String>,
    mrr_cents: Option<i64>,
    validated_at: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}
