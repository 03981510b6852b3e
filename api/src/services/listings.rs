//! Listings with cursor pagination (newest first, keyset on `(created_at, id)`), filters and
//! field selection, of a tenant's mode: users, subscriptions and cancel sessions. The listing
//! routes (`GET /v1/users`, `/v1/subscriptions`, `/v1/sessions`) and the dashboard's lists
//! read [`list`]; the cursors are the audit log's too.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::tenants::Mode;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// A listing's query (the dashboard's lists build one too).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub fields: Option<String>,
    pub plan: Option<String>,
    pub region: Option<String>,
    pub status: Option<String>,
    pub outcome: Option<String>,
    pub saved_offer_type: Option<String>,
    pub reason_code: Option<String>,
    pub customer_id: Option<String>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lt: Option<DateTime<Utc>>,
}

/// Which listing.
#[derive(Clone, Copy, Debug)]
pub enum Listing {
    Users,
    Subscriptions,
    Sessions,
}

struct Resource {
    table: &'static str,
    fields: &'static [&'static str],
    filters: &'static [&'static str],
}

const USERS: Resource = Resource {
    table: "users",
    fields: &[
        "id",
        "external_id",
        "email",
        "plan",
        "region",
        "mrr_cents",
        "attributes",
        "created_at",
        "updated_at",
    ],
    filters: &["plan", "region"],
};
const SUBSCRIPTIONS: Resource = Resource {
    table: "subscriptions",
    fields: &[
        "id",
        "user_id",
        "stripe_subscription_id",
        "status",
        "plan",
        "price_id",
        "billing_interval",
        "mrr_cents",
        "currency",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "pause_collection",
        "discounts",
        "trial_end",
        "canceled_at",
        "churn_kind",
        "created_at",
        "updated_at",
    ],
    filters: &["plan", "status"],
};
const SESSIONS: Resource = Resource {
    table: "cancel_sessions",
    fields: &[
        "id",
        "user_id",
        "customer_id",
        "subscription_id",
        "flow_id",
        "flow_version",
        "variant",
        "holdout",
        "outcome",
        "saved_offer_type",
        "reason_code",
        "offer_state",
        "offer_error",
        "cancel_state",
        "mrr_cents",
        "validated_at",
        "created_at",
        "ended_at",
    ],
    filters: &[
        "outcome",
        "plan",
        "region",
        "saved_offer_type",
        "reason_code",
        "customer_id",
    ],
};

const OUTCOMES: &[&str] = &["saved", "canceled", "deflected", "abandoned"];
const STATUSES: &[&str] = &[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];
const OFFER_TYPES: &[&str] = &[
    "discount",
    "pause",
    "plan_change",
    "trial_extension",
    "redirect",
    "custom",
];

pub(crate) fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id.simple())
}

pub(crate) fn decode_cursor(c: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || ApiError::invalid_param("cursor", "cursor is not one this API returned");
    let (t, id) = c.split_once('_').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(t.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// One page of a listing of a tenant's mode: `{data, next_cursor, has_more}`.
pub async fn list(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    which: Listing,
    q: ListQuery,
) -> ApiResult<Value> {
    let res = match which {
        Listing::Users => &USERS,
        Listing::Subscriptions => &SUBSCRIPTIONS,
        Listing::Sessions => &SESSIONS,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    // Enumerated filters refuse values no row can have (a typo is a 400, not an empty page).
    for (name, value, allowed) in [
        ("outcome", &q.outcome, OUTCOMES),
        ("status", &q.status, STATUSES),
        ("saved_offer_type", &q.saved_offer_type, OFFER_TYPES),
    ] {
        if let Some(v) = value {
            if !allowed.contains(&v.as_str()) {
                return Err(ApiError::invalid_param(
                    name,
                    format!("{name} must be one of {}", allowed.join(", ")),
                ));
            }
        }
    }
    let fields: Vec<&str> = match &q.fields {
        None => res.fields.to_vec(),
        Some(f) => {
            let mut out = Vec::new();
            for name in f.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let known = res.fields.iter().find(|k| **k == name).ok_or_else(|| {
                    ApiError::invalid_param(
                        "fields",
                        format!(
                            "unknown field {name:?}; available: {}",
                            res.fields.join(", ")
                        ),
                    )
                })?;
                out.push(*known);
            }
            if out.is_empty() {
                return Err(ApiError::invalid_param("fields", "name at least one field"));
            }
            out
        }
    };
    // Not a macro: the table, fields and filters come from the resource's allow lists.
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT t.created_at, t.id, (SELECT to_jsonb(r) FROM (SELECT ");
    // Field names come from the allow-list above, never from the request.
    qb.push(
        fields
            .iter()
            .map(|f| format!("t.{f}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    qb.push(") r) FROM ");
    qb.push(res.table);
    qb.push(" t");
    let joins_users = res.table == "cancel_sessions" && (q.plan.is_some() || q.region.is_some());
    if joins_users {
        qb.push(" JOIN users u ON u.id = t.user_id");
    }
    qb.push(" WHERE t.tenant_id = ").push_bind(tenant);
    qb.push(" AND t.mode = ").push_bind(mode.as_str());
    let prefix = if joins_users { "u." } else { "t." };
    for (name, value) in [
        ("plan", &q.plan),
        ("region", &q.region),
        ("status", &q.status),
        ("outcome", &q.outcome),
        ("saved_offer_type", &q.saved_offer_type),
        ("reason_code", &q.reason_code),
        ("customer_id", &q.customer_id),
    ] {
        let Some(v) = value else { continue };
        if !res.filters.contains(&name) {
            return Err(ApiError::invalid_param(
                name,
                format!("{} cannot be filtered by {name}", res.table),
            ));
        }
        let col = if matches!(name, "plan" | "region") {
            format!("{prefix}{name}")
        } else {
            format!("t.{name}")
        };
        qb.push(format!(" AND {col} = ")).push_bind(v.clone());
    }
    if let Some(t) = q.created_gte {
        qb.push(" AND t.created_at >= ").push_bind(t);
    }
    if let Some(t) = q.created_lt {
        qb.push(" AND t.created_at < ").push_bind(t);
    }
    if let Some(c) = &q.cursor {
        let (at, id) = decode_cursor(c)?;
        qb.push(" AND (t.created_at, t.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<(DateTime<Utc>, Uuid, Value)> =
        qb.build_query_as().fetch_all(&st.pools.read).await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<&(DateTime<Utc>, Uuid, Value)> = rows.iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|(at, id, _)| encode_cursor(*at, *id))
    } else {
        None
    };
    Ok(
        json!({ "data": page.iter().map(|r| r.2.clone()).collect::<Vec<_>>(), "next_cursor": next, "has_more": more }),
    )
}
