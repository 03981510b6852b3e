//! The plan catalogue (plans, regions, intervals), each tenant's [`TenantPlan`], and the
//! users and subscriptions phases.

use uuid::Uuid;

use crate::{
    clock::{DAY, MARGIN},
    copy::Sink,
    rng::{mix, Rng},
};

pub(crate) const PLANS: [&str; 3] = ["basic", "pro", "team"];
pub(crate) const PLAN_WEIGHTS: [u32; 3] = [5, 3, 2];
pub(crate) const PLAN_MRR: [i64; 3] = [1900, 4900, 9900];
pub(crate) const REGIONS: [&str; 3] = ["us", "eu", "apac"];
pub(crate) const REGION_WEIGHTS: [u32; 3] = [5, 3, 2];
pub(crate) const INTERVALS: [&str; 2] = ["month", "year"];

#[derive(Debug, Clone)]
pub(crate) struct TenantPlan {
    pub(crate) id: Uuid,
    /// Unique per tenant; part of the Stripe subscription ids.
    pub(crate) short: String,
    pub(crate) flow_id: Uuid,
    pub(crate) budget: u64,
    pub(crate) users: u64,
    /// Users are numbered from `first_n + 1` (after any existing `cus_<n>`).
    pub(crate) first_n: u64,
    pub(crate) seed: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SeedUser {
    pub(crate) id: Uuid,
    pub(crate) n: u64,
    pub(crate) mrr: i64,
    pub(crate) plan: u8,
    pub(crate) region: u8,
    pub(crate) interval: u8,
    pub(crate) created: i64,
    pub(crate) updated: i64,
}

/// Users of every tenant (one sink); returns them for the later phases.
pub(crate) fn generate_users(
    plans: &[TenantPlan],
    now: i64,
    days: u32,
    mut sinks: Vec<Sink>,
) -> anyhow::Result<Vec<Vec<SeedUser>>> {
    let mut out = sinks.pop().expect("one sink");
    let mut all = Vec::with_capacity(plans.len());
    // Users sign up over the past two years, before the session window (so no session
    // precedes its user).
    let end = now - days as i64 * DAY - DAY;
    let start = (now - 730 * DAY).min(end - 30 * DAY);
    let span = end - start;
    for p in plans {
        let mut rng = Rng::new(mix(p.seed, 3));
        let mut list = Vec::with_capacity(p.users as usize);
        for i in 0..p.users {
            // Ids and customer numbers follow the cohort order (see `TenantSessions`);
            // sign-up times are independent of it.
            let order_at = start + ((i as f64 + 0.5) / p.users as f64 * span as f64) as i64;
            let created = start + rng.below(span as u64) as i64;
            let plan = rng.weighted(&PLAN_WEIGHTS) as u8;
            let u = SeedUser {
                id: rng.uuid_v7(order_at),
                n: p.first_n + i + 1,
                mrr: PLAN_MRR[plan as usize] + rng.range(-300, 300),
                plan,
                region: rng.weighted(&REGION_WEIGHTS) as u8,
                interval: rng.chance(0.25) as u8,
                created,
                updated: created + rng.below((now - MARGIN - created) as u64) as i64,
            };
            // users (id, tenant_id, mode, external_id, email, plan, region, mrr_cents,
            //        created_at, updated_at)
            out.row(10);
            out.uuid(&u.id);
            out.uuid(&p.id);
            out.text("live");
            out.text_fmt(format_args!("cus_{}", u.n));
            out.text_fmt(format_args!("customer{}@example.com", u.n));
            out.text(PLANS[u.plan as usize]);
            out.text(REGIONS[u.region as usize]);
            out.int8(u.mrr);
            out.ts(u.created);
            out.ts(u.updated);
            out.flush_if_full()?;
            list.push(u);
        }
        all.push(list);
    }
    out.finish()?;
    Ok(all)
}

/// One subscription per user (one sink), after the users are committed.
pub(crate) fn generate_subscriptions(
    plans: &[TenantPlan],
    users: &[Vec<SeedUser>],
    now: i64,
    mut sinks: Vec<Sink>,
) -> anyhow::Result<()> {
    let mut out = sinks.pop().expect("one sink");
    for (p, list) in plans.iter().zip(users) {
        let mut rng = Rng::new(mix(p.seed, 4));
        for u in list {
            let status =
                ["active", "trialing", "past_due", "canceled"][rng.weighted(&[82, 6, 4, 8])];
            let period = if u.interval == 0 { 30 * DAY } else { 365 * DAY };
            let period_start = (now - rng.below(period as u64) as i64).max(u.created);
            let canceled_at = (status == "canceled")
                .then(|| (now - MARGIN - rng.below(60 * DAY as u64) as i64).max(u.created + DAY));
            let churn_kind = canceled_at.map(|_| {
                if rng.chance(0.75) {
                    "voluntary"
                } else {
                    "involuntary"
                }
            });
            let trial_end = (status == "trialing").then(|| now + rng.range(1, 14) * DAY);
            let cancel_at_period_end = status == "active" && rng.chance(0.03);
            let updated = u.updated.max(canceled_at.unwrap_or(u.updated));
            let plan = PLANS[u.plan as usize];
            // subscriptions (id, tenant_id, user_id, mode, stripe_subscription_id, status,
            //   plan, price_id, billing_interval, mrr_cents, currency, current_period_start,
            //   current_period_end, cancel_at_period_end, trial_end, canceled_at, churn_kind,
            //   stripe_updated_at, created_at, updated_at)
            out.row(20);
            out.uuid(&rng.uuid_v7(u.created));
            out.uuid(&p.id);
            out.uuid(&u.id);
            out.text("live");
            out.text_fmt(format_args!("sub_{}_{}", p.short, u.n));
            out.text(status);
            out.text(plan);
            if u.interval == 0 {
                out.text_fmt(format_args!("price_{plan}"));
            } else {
                out.text_fmt(format_args!("price_{plan}_yearly"));
            }
            out.text(INTERVALS[u.interval as usize]);
            out.int8(if canceled_at.is_some() { 0 } else { u.mrr });
            out.text("usd");
            out.ts(period_start);
            out.ts(period_start + period);
            out.boolean(cancel_at_period_end);
            out.opt_ts(trial_end);
            out.opt_ts(canceled_at);
            out.opt_text(churn_kind);
            out.ts(updated);
            out.ts(u.created);
            out.ts(updated);
            out.flush_if_full()?;
        }
    }
    out.finish()?;
    Ok(())
}
