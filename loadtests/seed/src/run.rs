//! The entry point, [`run`]: tenants, flows, then the `COPY` phases in dependency order
//! (users, subscriptions, activity), the checks on what was written, and `ANALYZE`.

use std::{sync::Arc, time::Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::crypto::MasterKey;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    activity::generate_activity,
    clock::{to_datetime, DAY},
    copy::pump,
    flow::{parsed_flow, OFFERS},
    rng::mix,
    shapes::split_events,
    users::{generate_subscriptions, generate_users, TenantPlan},
    SeedOptions, SeedReport,
};

/// Creates one published default live flow (version 1) for the tenant (the seeded data is
/// live); the tenant's other live flows lose the default role, as when publishing a default
/// flow.
pub(crate) async fn insert_flow(
    pool: &PgPool,
    tenant: Uuid,
    draft: &Value,
    created: DateTime<Utc>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE flows SET is_default = false WHERE tenant_id = $1 AND mode = 'live' AND is_default",
        tenant,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO flows (id, tenant_id, mode, name, language, ranking_score, is_default, draft, published_version, created_at, updated_at)
         VALUES ($1, $2, 'live', $3, 'en', 0, true, $4, 1, $5, $5)",
        id,
        tenant,
        draft["name"].as_str().unwrap_or("Default cancel flow"),
        draft,
        created,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO flow_versions (tenant_id, mode, flow_id, version, definition, published_at)
         VALUES ($1, 'live', $2, 1, $3, $4)",
        tenant,
        id,
        draft,
        created,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Seeds analytics data; see the module documentation.
pub async fn run(
    pool: &PgPool,
    master: &MasterKey,
    opts: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let now = Utc::now().timestamp_micros();
    let days = opts.days.max(1);
    let def = parsed_flow()?;
    let draft = serde_json::to_value(&def)?;
    let accepted_offers: [String; 4] = OFFERS.map(|(id, _)| {
        def.offer(id)
            .and_then(|o| serde_json::to_string(o).ok())
            .expect("the seed flow has every seeded offer")
    });

    // Tenants.
    let (tenants, first_n) = if opts.tenant_ids.is_empty() {
        if opts.tenants == 0 {
            bail!("seed: tenants must be at least 1 (or give tenant_ids)");
        }
        let mut ids = Vec::with_capacity(opts.tenants);
        for i in 0..opts.tenants {
            let name = format!("Seed tenant {} (seed {})", i + 1, opts.seed);
            let t = shared::tenants::create_tenant(pool, master, &name).await?;
            ids.push(t.tenant.id);
        }
        let n = ids.len();
        (ids, vec![0; n])
    } else {
        let ids = opts.tenant_ids.clone();
        let found = sqlx::query_scalar!("SELECT id FROM tenants WHERE id = ANY($1)", &ids)
            .fetch_all(pool)
            .await?;
        if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
            bail!("seed: tenant {missing} does not exist");
        }
        // Continue the numbering after existing `cus_<n>` customers.
        let existing = sqlx::query!(
            r#"SELECT tenant_id,
                      coalesce(max(substring(external_id from '^cus_([0-9]{1,18})$')::bigint), 0) AS "last_n!"
                 FROM users WHERE tenant_id = ANY($1) GROUP BY tenant_id"#,
            &ids,
        )
        .fetch_all(pool)
        .await?;
        let first_n = ids
            .iter()
            .map(|id| {
                existing
                    .iter()
                    .find(|e| e.tenant_id == *id)
                    .map_or(0, |e| e.last_n as u64)
            })
            .collect();
        (ids, first_n)
    };

    // Flows.
    let flow_created = to_datetime(now - days as i64 * DAY - DAY);
    let mut plans = Vec::with_capacity(tenants.len());
    for (i, (&id, budget)) in tenants
        .iter()
        .zip(split_events(opts.events, tenants.len()))
        .enumerate()
    {
        let flow_id = insert_flow(pool, id, &draft, flow_created).await?;
        let simple = id.simple().to_string();
        plans.push(TenantPlan {
            id,
            short: simple[simple.len() - 12..].to_string(),
            flow_id,
            budget,
            users: (budget / 20).max(10),
            first_n: first_n[i],
            seed: mix(opts.seed, i as u64 + 1),
        });
    }
    tracing::info!(
        tenants = plans.len(),
        events = opts.events,
        "seed: tenants and flows ready"
    );

    let conn_opts = pool.connect_options();

    // Users, then subscriptions (each COPY commits before the next phase, whose foreign
    // keys reference it).
    let user_plans = plans.clone();
    let (users, counts) = pump(
        &conn_opts,
        vec!["COPY users (id, tenant_id, mode, external_id, email, plan, region, mrr_cents, created_at, updated_at) FROM STDIN WITH (FORMAT binary)".into()],
        move |sinks| generate_users(&user_plans, now, days, sinks),
    )
    .await?;
    let user_count = counts[0];
    let users = Arc::new(users);
    let (sub_plans, sub_users) = (plans.clone(), users.clone());
    pump(
        &conn_opts,
        vec!["COPY subscriptions (id, tenant_id, user_id, mode, stripe_subscription_id, status, plan, price_id, billing_interval, mrr_cents, currency, current_period_start, current_period_end, cancel_at_period_end, trial_end, canceled_at, churn_kind, stripe_updated_at, created_at, updated_at) FROM STDIN WITH (FORMAT binary)".into()],
        move |sinks| generate_subscriptions(&sub_plans, &sub_users, now, sinks),
    )
    .await?;
    tracing::info!(users = user_count, "seed: users and subscriptions loaded");

    // Sessions, offer events, churn reasons.
    // `ingested_now`: leave `ingested_at` (and the sessions' `updated_at`, which the rollup
    // scans) to their `now()` defaults.
    let (ingested, updated) = if opts.ingested_now {
        ("", "")
    } else {
        (", ingested_at", ", updated_at")
    };
    let ingested_now = opts.ingested_now;
    // Not macros: COPY ... FROM STDIN (binary) streams through `copy_in_raw`, which the query
    // macros do not cover; the column lists are checked by COPY itself on the first row.
    let (generated, counts) = pump(
        &conn_opts,
        vec![
            format!("COPY cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version, variant, holdout, outcome, saved_offer_type, reason_code, offer_state, mrr_cents, validated_at, created_at, ended_at, attributes, accepted_offer, offer_applied_at, cancel_state{updated}) FROM STDIN WITH (FORMAT binary)"),
            format!("COPY offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id, offer_type, accepted, mrr_cents, created_at{ingested}) FROM STDIN WITH (FORMAT binary)"),
            format!("COPY churn_reasons (tenant_id, user_id, session_id, reason_code, created_at{ingested}) FROM STDIN WITH (FORMAT binary)"),
        ],
        move |sinks| {
            generate_activity(
                &plans,
                &users,
                &accepted_offers,
                now,
                days,
                ingested_now,
                sinks,
            )
        },
    )
    .await?;
    if counts[1] != opts.events || generated.offer_events != opts.events {
        bail!(
            "seed: wrote {} offer events, expected {}",
            counts[1],
            opts.events
        );
    }

    sqlx::raw_sql(
        "ANALYZE users, subscriptions, flows, flow_versions, cancel_sessions, offer_events, churn_reasons",
    )
    .execute(pool)
    .await?;

    let report = SeedReport {
        tenants,
        users: user_count,
        sessions: counts[0],
        offer_events: counts[1],
        churn_reasons: counts[2],
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        sessions = report.sessions,
        offer_events = report.offer_events,
        churn_reasons = report.churn_reasons,
        seconds = report.seconds,
        "seed: done"
    );
    Ok(report)
}
