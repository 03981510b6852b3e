//! Processing stored Stripe deliveries: an event is a nudge, so the object is re-fetched
//! from Stripe and upserted (one subscription at a time), and duplicate or out-of-order
//! deliveries converge on Stripe's latest state.

use std::sync::Arc;

use jobs::ProcessStripeEvent;
use serde_json::Value;
use shared::tenants::Mode;
use uuid::Uuid;

use crate::{
    runtime::{JobError, JobMeta},
    stripe_ctx::TenantStripe,
    WorkerState,
};

#[tracing::instrument(name = "job.process_stripe_event", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, stripe_event_row = %job.stripe_event_row, tenant_id = tracing::field::Empty, kind = tracing::field::Empty))]
pub async fn run(
    st: Arc<WorkerState>,
    _meta: JobMeta,
    job: ProcessStripeEvent,
) -> Result<(), JobError> {
    let row = sqlx::query!(
        "SELECT tenant_id, mode, type AS kind, object_id, payload FROM stripe_events WHERE id = $1",
        job.stripe_event_row,
    )
    .fetch_optional(&st.pools.primary)
    .await?;
    let Some(row) = row else {
        return Err(JobError::permanent(anyhow::anyhow!(
            "stripe event row {} not found",
            job.stripe_event_row
        )));
    };
    let (tenant, kind, object_id, payload) = (row.tenant_id, row.kind, row.object_id, row.payload);
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(tenant));
    span.record("kind", kind.as_str());
    let mode = Mode::parse(&row.mode).unwrap_or(Mode::Test);
    let creds = st.stripe.settings(&st.pools.primary, tenant, mode).await?;
    let object = &payload["data"]["object"];
    match kind.as_str() {
        k if k.starts_with("customer.subscription.") => {
            let sub_id = object_id
                .ok_or_else(|| JobError::permanent(anyhow::anyhow!("event without object id")))?;
            let churn = (k == "customer.subscription.deleted").then(|| {
                // `request` null (or without id) means Stripe did it (failed payments):
                // involuntary churn; otherwise an API or Dashboard call.
                if payload["request"].is_null() || payload["request"]["id"].is_null() {
                    "involuntary"
                } else {
                    "voluntary"
                }
            });
            sync_subscription(&st, &creds, tenant, mode, &sub_id, churn).await?;
        }
        "customer.created" | "customer.updated" => {
            let cus = object_id
                .ok_or_else(|| JobError::permanent(anyhow::anyhow!("event without object id")))?;
            sync_customer(&st, &creds, tenant, mode, &cus).await?;
        }
        "invoice.paid" | "invoice.payment_failed" => {
            if let Some(sub_id) = invoice_subscription(object) {
                sync_subscription(&st, &creds, tenant, mode, &sub_id, None).await?;
                if kind == "invoice.paid" {
                    let paid_at = object["status_transitions"]["paid_at"]
                        .as_i64()
                        .or_else(|| object["created"].as_i64())
                        .unwrap_or_else(|| chrono::Utc::now().timestamp());
                    // A save is validated when the customer pays after it.
                    sqlx::query!(
                        "UPDATE cancel_sessions SET validated_at = now()
                          WHERE tenant_id = $1 AND mode = $2 AND subscription_id = $3 AND outcome = 'saved'
                            AND validated_at IS NULL AND ended_at < to_timestamp($4)",
                        tenant,
                        mode.as_str(),
                        &sub_id,
                        paid_at as f64,
                    )
                    .execute(&st.pools.primary)
                    .await?;
                }
            }
        }
        _ => {}
    }
    sqlx::query!(
        "UPDATE stripe_events SET processed_at = now() WHERE id = $1",
        job.stripe_event_row,
    )
    .execute(&st.pools.primary)
    .await?;
    Ok(())
}

fn invoice_subscription(invoice: &Value) -> Option<String> {
    invoice["subscription"]
        .as_str()
        .or_else(|| invoice["parent"]["subscription_details"]["subscription"].as_str())
        .or_else(|| invoice["subscription"]["id"].as_str())
        .map(str::to_string)
}

/// Monthly recurring revenue of a subscription, in the smallest currency unit.
pub fn mrr_cents(sub: &Value) -> i64 {
    let mut total = 0.0;
    for item in sub["items"]["data"].as_array().into_iter().flatten() {
        let price = &item["price"];
        let amount =
            price["unit_amount"].as_f64().unwrap_or(0.0) * item["quantity"].as_f64().unwrap_or(1.0);
        let count = price["recurring"]["interval_count"]
            .as_f64()
            .unwrap_or(1.0)
            .max(1.0);
        let monthly = match price["recurring"]["interval"].as_str() {
            Some("year") => amount / 12.0,
            Some("week") => amount * 52.0 / 12.0,
            Some("day") => amount * 365.0 / 12.0,
            _ => amount,
        } / count;
        total += monthly;
    }
    // Discounts are not subtracted: saved MRR is the revenue kept.
    total.round() as i64
}

fn ts(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
}

async fn upsert_user(
    st: &WorkerState,
    tenant: Uuid,
    mode: Mode,
    customer: &str,
    email: Option<&str>,
    region: Option<&str>,
) -> Result<Uuid, JobError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO users (id, tenant_id, mode, external_id, email, region) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, mode, external_id) DO UPDATE
           SET email = coalesce(EXCLUDED.email, users.email), region = coalesce(EXCLUDED.region, users.region), updated_at = now()
         RETURNING id",
        Uuid::now_v7(),
        tenant,
        mode.as_str(),
        customer,
        email,
        region,
    )
    .fetch_one(&st.pools.primary)
    .await?;
    Ok(id)
}

pub async fn sync_customer(
    st: &WorkerState,
    creds: &TenantStripe,
    tenant: Uuid,
    mode: Mode,
    customer: &str,
) -> Result<(), JobError> {
    st.stripe.throttle(creds).await?;
    let c = match st
        .stripe
        .client
        .get_customer(&creds.api_key, customer)
        .await
    {
        Ok(c) => c,
        Err(e) => return Err(st.stripe.classify(creds, e).await),
    };
    upsert_user(
        st,
        tenant,
        mode,
        customer,
        c["email"].as_str(),
        c["address"]["country"].as_str(),
    )
    .await?;
    Ok(())
}

/// Re-fetches a subscription and upserts it (and its customer as a user), one subscription
/// at a time: a per-subscription lock in Redis is held from the fetch to the commit, so
/// concurrent deliveries cannot write an older state over a newer one. (A Redis lock rather
/// than a PostgreSQL advisory lock: no database connection is held during the Stripe call.)
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, mode = mode.as_str(), subscription = sub_id))]
pub async fn sync_subscription(
    st: &WorkerState,
    creds: &TenantStripe,
    tenant: Uuid,
    mode: Mode,
    sub_id: &str,
    churn: Option<&str>,
) -> Result<Value, JobError> {
    let lock = SubscriptionLock::acquire(st, tenant, sub_id).await?;
    let result = fetch_and_upsert(st, creds, tenant, mode, sub_id, churn).await;
    lock.release(st).await;
    result
}

/// Longer than any Stripe call (20 s client timeout) plus the upsert.
const LOCK_TTL_MS: u64 = 30_000;

struct SubscriptionLock {
    key: String,
    token: String,
}

impl SubscriptionLock {
    async fn acquire(st: &WorkerState, tenant: Uuid, sub_id: &str) -> Result<Self, JobError> {
        let r = st.queues.redis();
        let key = r.key(&format!("lock:subscription:{tenant}:{sub_id}"));
        let token = shared::crypto::random_token(16);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut conn = r.conn.clone();
        loop {
            let ok: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL_MS)
                .query_async(&mut conn)
                .await
                .map_err(JobError::transient)?;
            if ok.is_some() {
                return Ok(Self { key, token });
            }
            if std::time::Instant::now() > deadline {
                return Err(JobError::transient(anyhow::anyhow!(
                    "subscription {sub_id} is being synced by another worker"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn release(self, st: &WorkerState) {
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        );
        let mut conn = st.queues.redis().conn.clone();
        let _: Result<i64, _> = script
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await;
    }
}

async fn fetch_and_upsert(
    st: &WorkerState,
    creds: &TenantStripe,
    tenant: Uuid,
    mode: Mode,
    sub_id: &str,
    churn: Option<&str>,
) -> Result<Value, JobError> {
    let sub = st.stripe.fetch_subscription(creds, sub_id).await?;
    let mut tx = st.pools.primary.begin().await?;
    let customer = sub["customer"]
        .as_str()
        .or_else(|| sub["customer"]["id"].as_str())
        .ok_or_else(|| JobError::permanent(anyhow::anyhow!("subscription without customer")))?
        .to_string();
    let user_id = sqlx::query_scalar!(
        "INSERT INTO users (id, tenant_id, mode, external_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, mode, external_id) DO UPDATE SET updated_at = now() RETURNING id",
        Uuid::now_v7(),
        tenant,
        mode.as_str(),
        &customer,
    )
    .fetch_one(&mut *tx)
    .await?;
    let item = &sub["items"]["data"][0];
    let price = &item["price"];
    let plan = price["nickname"]
        .as_str()
        .or_else(|| price["lookup_key"].as_str())
        .or_else(|| price["product"].as_str())
        .or_else(|| price["id"].as_str());
    let period_start =
        ts(&item["current_period_start"]).or_else(|| ts(&sub["current_period_start"]));
    let period_end = ts(&item["current_period_end"]).or_else(|| ts(&sub["current_period_end"]));
    let mrr = mrr_cents(&sub);
    let discounts = match &sub["discounts"] {
        Value::Array(a) => Value::Array(a.clone()),
        _ => Value::Array(vec![]),
    };
    let pause = if sub["pause_collection"].is_null() {
        None
    } else {
        Some(sub["pause_collection"].clone())
    };
    sqlx::query!(
        "INSERT INTO subscriptions (id, tenant_id, user_id, mode, stripe_subscription_id, status, plan, price_id, billing_interval,
                                    mrr_cents, currency, current_period_start, current_period_end, cancel_at_period_end,
                                    pause_collection, discounts, trial_end, canceled_at, churn_kind, stripe_updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, now())
         ON CONFLICT (stripe_subscription_id) DO UPDATE SET
            status = EXCLUDED.status, plan = EXCLUDED.plan, price_id = EXCLUDED.price_id,
            billing_interval = EXCLUDED.billing_interval, mrr_cents = EXCLUDED.mrr_cents, currency = EXCLUDED.currency,
            current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
            cancel_at_period_end = EXCLUDED.cancel_at_period_end, pause_collection = EXCLUDED.pause_collection,
            discounts = EXCLUDED.discounts, trial_end = EXCLUDED.trial_end, canceled_at = EXCLUDED.canceled_at,
            churn_kind = coalesce(EXCLUDED.churn_kind, subscriptions.churn_kind), user_id = EXCLUDED.user_id,
            stripe_updated_at = now(), updated_at = now()
         WHERE subscriptions.tenant_id = EXCLUDED.tenant_id",
        Uuid::now_v7(),
        tenant,
        user_id,
        mode.as_str(),
        sub_id,
        sub["status"].as_str().unwrap_or("unknown"),
        plan,
        price["id"].as_str(),
        price["recurring"]["interval"].as_str(),
        mrr,
        price["currency"].as_str(),
        period_start,
        period_end,
        sub["cancel_at_period_end"].as_bool().unwrap_or(false),
        pause,
        discounts,
        ts(&sub["trial_end"]),
        ts(&sub["canceled_at"]),
        churn,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE users SET plan = $2, mrr_cents = $3, updated_at = now() WHERE id = $1",
        user_id,
        plan,
        mrr,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sub)
}
