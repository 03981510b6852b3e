//! The dashboard's list and detail pages: sessions and customers of the selected mode, read
//! through the API's own functions (`services::listings::list`, `services::sessions`,
//! `services::customers::customer`), so a page shows exactly what the API would answer.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{StatusCode, Uri},
    response::Response,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{chrome, page, Chrome, Signed, CSS_PATH};
use crate::{
    services::{
        customers, listings,
        listings::{ListQuery, Listing},
        sessions,
    },
    AppState,
};

const PAGE_SIZE: i64 = 50;

/// A value as shown in a cell: strings as they are, numbers, `–` for null or missing.
fn cell(v: &Value, k: &str) -> String {
    match v.get(k) {
        None | Some(Value::Null) => "–".into(),
        Some(Value::String(s)) if s.is_empty() => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A timestamp as `YYYY-MM-DD HH:MM UTC`.
fn when(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|| "–".into())
}

fn cents(v: &Value, k: &str) -> String {
    match v.get(k).and_then(Value::as_i64) {
        Some(c) => super::money(c),
        None => "–".into(),
    }
}

fn q(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

fn day(param: &'static str, s: &str) -> Result<Option<DateTime<Utc>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| Some(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()))
        .map_err(|_| format!("{param} must be a date (YYYY-MM-DD)"))
}

fn some(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_string())
}

// ---------------------------------------------------------------------------------------
// Sessions

#[derive(Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionFilters {
    /// `saved`, `canceled`, `abandoned` or `deflected` (empty: any).
    #[serde(default)]
    outcome: String,
    /// The offer type a session was saved with: `discount`, `pause`, `plan_change` or
    /// `trial_extension` (empty: any).
    #[serde(default)]
    offer_type: String,
    /// A churn reason code.
    #[serde(default)]
    reason: String,
    /// A customer id (the tenant's own).
    #[serde(default)]
    customer: String,
    /// Sessions created on or after this day, YYYY-MM-DD (UTC).
    #[serde(default)]
    #[param(format = Date)]
    from: String,
    /// Sessions created on or before this day (included), YYYY-MM-DD (UTC).
    #[serde(default)]
    #[param(format = Date)]
    to: String,
    /// The next page (the page's "Next" link).
    #[serde(default)]
    cursor: String,
}

struct SessionRow {
    id: String,
    created_at: String,
    customer_id: String,
    customer_q: String,
    outcome: String,
    offer_type: String,
    reason: String,
    offer_state: String,
    mrr: String,
}

#[derive(Template)]
#[template(path = "dashboard/sessions.html")]
struct SessionsPage {
    css: &'static str,
    chrome: Chrome,
    f: SessionFilters,
    outcomes: [(&'static str, &'static str); 5],
    offer_types: [(&'static str, &'static str); 5],
    rows: Vec<SessionRow>,
    next: Option<String>,
    error: Option<String>,
}

#[utoipa::path(
    get,
    path = "/app/sessions",
    operation_id = "app_sessions_page",
    tag = "dashboard",
    summary = "Dashboard: cancel sessions of the selected mode, filterable",
    description = "50 per page, newest first, through GET /v1/sessions's own function. A filter the API refuses (a date that is not YYYY-MM-DD, an unknown outcome, a cursor it did not return) is shown as its error, with status 400.",
    security(("dashboardSession" = [])),
    params(SessionFilters),
    responses(
        (status = 200, description = "The sessions page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The sessions page with the refused filter's error (no rows)", content_type = "text/html", body = String),
    )
)]
pub async fn sessions_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    uri: Uri,
    Query(f): Query<SessionFilters>,
) -> Response {
    let mut out = SessionsPage {
        css: CSS_PATH.as_str(),
        chrome: chrome(&st, &s, "sessions", uri.to_string()).await,
        f: f.clone(),
        outcomes: [
            ("", "Any"),
            ("saved", "Saved"),
            ("canceled", "Canceled"),
            ("abandoned", "Abandoned"),
            ("deflected", "Deflected"),
        ],
        offer_types: [
            ("", "Any"),
            ("discount", "Discount"),
            ("pause", "Pause"),
            ("plan_change", "Plan change"),
            ("trial_extension", "Trial extension"),
        ],
        rows: Vec::new(),
        next: None,
        error: None,
    };
    let dates = day("from", &f.from).and_then(|a| {
        // `to` includes its whole day.
        day("to", &f.to).map(|b| (a, b.map(|t| t + chrono::Duration::days(1))))
    });
    let (gte, lt) = match dates {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(e);
            return page(StatusCode::BAD_REQUEST, &out);
        }
    };
    let query = ListQuery {
        limit: Some(PAGE_SIZE),
        cursor: some(&f.cursor),
        outcome: some(&f.outcome),
        saved_offer_type: some(&f.offer_type),
        reason_code: some(&f.reason),
        customer_id: some(&f.customer),
        created_gte: gte,
        created_lt: lt,
        ..Default::default()
    };
    let res = listings::list(&st, (s.user.tenant_id, s.mode), Listing::Sessions, query).await;
    let body = match res {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e.body.message.clone());
            return page(e.status, &out);
        }
    };
    for r in body["data"].as_array().into_iter().flatten() {
        let customer = cell(r, "customer_id");
        out.rows.push(SessionRow {
            id: cell(r, "id"),
            created_at: when(r, "created_at"),
            customer_q: q(&customer),
            customer_id: customer,
            outcome: cell(r, "outcome").replace('–', "in progress"),
            offer_type: cell(r, "saved_offer_type"),
            reason: cell(r, "reason_code"),
            offer_state: cell(r, "offer_state"),
            mrr: cents(r, "mrr_cents"),
        });
    }
    if let Some(c) = body["next_cursor"].as_str() {
        out.next = Some(format!(
            "/app/sessions?outcome={}&offer_type={}&reason={}&customer={}&from={}&to={}&cursor={}",
            q(&f.outcome),
            q(&f.offer_type),
            q(&f.reason),
            q(&f.customer),
            q(&f.from),
            q(&f.to),
            q(c)
        ));
    }
    page(StatusCode::OK, &out)
}

struct JobRow {
    kind: String,
    status: String,
    attempts: String,
    error: String,
    created: String,
    finished: String,
}

#[derive(Template)]
#[template(path = "dashboard/session.html")]
struct SessionPage {
    css: &'static str,
    chrome: Chrome,
    id: String,
    customer_id: String,
    customer_q: String,
    facts: Vec<(&'static str, String)>,
    events: Vec<(String, String, String)>,
    jobs: Vec<JobRow>,
}

#[utoipa::path(
    get,
    path = "/app/sessions/{id}",
    operation_id = "app_session_page",
    tag = "dashboard",
    summary = "Dashboard: one session with its timeline and Stripe jobs",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The cancel session's id (not a UUID: 404)")),
    responses(
        (status = 200, description = "The session page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 404, description = "The not-found page: no such session in this tenant and mode", content_type = "text/html", body = String),
    )
)]
pub async fn session_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let who = (s.user.tenant_id, s.mode);
    let chrome = chrome(&st, &s, "sessions", uri.to_string()).await;
    let found = match Uuid::parse_str(&id) {
        Ok(id) => match sessions::session(&st, who, id).await {
            Ok(v) => sessions::timeline(&st, who, id).await.map(|t| (v, t)),
            Err(e) => Err(e),
        },
        Err(_) => Err(crate::error::ApiError::not_found("session")),
    };
    let (v, t) = match found {
        Ok(x) => x,
        Err(e) => return super::not_found_page(chrome, e.status, "No such session in this mode."),
    };
    let customer = cell(&v, "customer_id");
    let mut facts = vec![
        ("Outcome", cell(&v, "outcome").replace('–', "in progress")),
        ("Started", when(&v, "created_at")),
        ("Ended", when(&v, "ended_at")),
        ("Reason", cell(&v, "reason_code")),
        ("Saved with", cell(&v, "saved_offer_type")),
        ("Offer state", cell(&v, "offer_state")),
        ("Offer error", cell(&v, "offer_error")),
        ("Cancel state", cell(&v, "cancel_state")),
        ("Cancel error", cell(&v, "cancel_error")),
        ("MRR", cents(&v, "mrr_cents")),
        ("Subscription", cell(&v, "subscription_id")),
        ("Variant", cell(&v, "variant")),
        ("Holdout", cell(&v, "holdout")),
        ("Flow version", cell(&v, "flow_version")),
        ("Validated", when(&v, "validated_at")),
    ];
    let rendered = v
        .get("rendered_offers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "–".into());
    facts.push(("Offers shown", rendered));
    let events = t["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let payload = e.get("payload").cloned().unwrap_or(Value::Null);
            let details = if payload.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                payload.to_string()
            };
            (when(e, "created_at"), cell(e, "type"), details)
        })
        .collect();
    let jobs = t["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| JobRow {
            kind: cell(j, "kind"),
            status: cell(j, "status"),
            attempts: cell(j, "attempts"),
            error: cell(j, "last_error"),
            created: when(j, "created_at"),
            finished: when(j, "finished_at"),
        })
        .collect();
    page(
        StatusCode::OK,
        &SessionPage {
            css: CSS_PATH.as_str(),
            chrome,
            id,
            customer_q: q(&customer),
            customer_id: customer,
            facts,
            events,
            jobs,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Customers

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerFilters {
    /// Only customers on this plan.
    #[serde(default)]
    plan: String,
    /// Go to this customer's page (a customer id, the tenant's own).
    #[serde(default)]
    customer: String,
    /// The next page (the page's "Next" link).
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "dashboard/customers.html")]
struct CustomersPage {
    css: &'static str,
    chrome: Chrome,
    plan: String,
    rows: Vec<(String, String, String, String, String, String)>,
    next: Option<String>,
    error: Option<String>,
}

#[utoipa::path(
    get,
    path = "/app/customers",
    operation_id = "app_customers_page",
    tag = "dashboard",
    summary = "Dashboard: customers of the selected mode",
    description = "50 per page, through GET /v1/users's own function; `customer` (the search box) goes to that customer's page instead.",
    security(("dashboardSession" = [])),
    params(CustomerFilters),
    responses(
        (status = 200, description = "The customers page", content_type = "text/html", body = String),
        (status = 303, description = "With `customer`: to /app/customers/{customer}; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The customers page with the refused filter's error (e.g. a cursor the API did not return)", content_type = "text/html", body = String),
    )
)]
pub async fn customers_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    uri: Uri,
    Query(f): Query<CustomerFilters>,
) -> Response {
    if let Some(c) = some(&f.customer) {
        return super::see_other(&format!("/app/customers/{}", q(&c)));
    }
    let mut out = CustomersPage {
        css: CSS_PATH.as_str(),
        chrome: chrome(&st, &s, "customers", uri.to_string()).await,
        plan: f.plan.clone(),
        rows: Vec::new(),
        next: None,
        error: None,
    };
    let query = ListQuery {
        limit: Some(PAGE_SIZE),
        cursor: some(&f.cursor),
        plan: some(&f.plan),
        ..Default::default()
    };
    let body = match listings::list(&st, (s.user.tenant_id, s.mode), Listing::Users, query).await {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e.body.message.clone());
            return page(e.status, &out);
        }
    };
    for r in body["data"].as_array().into_iter().flatten() {
        let ext = cell(r, "external_id");
        out.rows.push((
            q(&ext),
            ext,
            cell(r, "email"),
            cell(r, "plan"),
            cents(r, "mrr_cents"),
            when(r, "created_at"),
        ));
    }
    if let Some(c) = body["next_cursor"].as_str() {
        out.next = Some(format!(
            "/app/customers?plan={}&cursor={}",
            q(&f.plan),
            q(c)
        ));
    }
    page(StatusCode::OK, &out)
}

#[derive(Template)]
#[template(path = "dashboard/customer.html")]
struct CustomerPage {
    css: &'static str,
    chrome: Chrome,
    customer_id: String,
    facts: Vec<(&'static str, String)>,
    subscriptions: Vec<Vec<String>>,
    sessions: Vec<(String, String, String, String, String, String)>,
    applied: usize,
}

#[utoipa::path(
    get,
    path = "/app/customers/{customer_id}",
    operation_id = "app_customer_page",
    tag = "dashboard",
    summary = "Dashboard: one customer (plan, MRR, subscriptions, sessions, applied offers)",
    security(("dashboardSession" = [])),
    params(("customer_id" = String, Path, description = "The tenant's own id for the customer")),
    responses(
        (status = 200, description = "The customer page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 404, description = "The not-found page: the mode has no such customer (nor any session of them)", content_type = "text/html", body = String),
    )
)]
pub async fn customer_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    uri: Uri,
    Path(customer_id): Path<String>,
) -> Response {
    let chrome = chrome(&st, &s, "customers", uri.to_string()).await;
    let v = match customers::customer(&st, (s.user.tenant_id, s.mode), &customer_id).await {
        Ok(v) => v,
        Err(e) => return super::not_found_page(chrome, e.status, "No such customer in this mode."),
    };
    let facts = match v.get("customer").filter(|c| !c.is_null()) {
        Some(c) => vec![
            ("Email", cell(c, "email")),
            ("Plan", cell(c, "plan")),
            ("MRR", cents(c, "mrr_cents")),
            ("Region", cell(c, "region")),
            ("Customer since", when(c, "created_at")),
        ],
        None => Vec::new(),
    };
    let subscriptions = v["subscriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                cell(x, "stripe_subscription_id"),
                cell(x, "status"),
                cell(x, "plan"),
                cents(x, "mrr_cents"),
                when(x, "current_period_end"),
                cell(x, "cancel_at_period_end"),
            ]
        })
        .collect();
    let sessions = v["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            (
                cell(x, "id"),
                when(x, "created_at"),
                cell(x, "outcome").replace('–', "in progress"),
                cell(x, "saved_offer_type"),
                cell(x, "reason_code"),
                cell(x, "offer_state"),
            )
        })
        .collect();
    let applied = v["applied_offers"].as_array().map_or(0, Vec::len);
    page(
        StatusCode::OK,
        &CustomerPage {
            css: CSS_PATH.as_str(),
            chrome,
            customer_id,
            facts,
            subscriptions,
            sessions,
            applied,
        },
    )
}
