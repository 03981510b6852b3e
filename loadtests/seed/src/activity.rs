//! The activity phase: each tenant's sessions in time order (with their customers drawn in
//! cohorts and their timelines), and the rows of `cancel_sessions`, `offer_events` and
//! `churn_reasons` they make.

use serde_json::json;
use uuid::Uuid;

use crate::{
    clock::{DAY, MARGIN, SEC},
    copy::Sink,
    flow::{OFFERS, REASONS},
    rng::{mix, Rng},
    shapes::{count_sessions, draw_shape, Outcome, Shape, VARIANTS},
    users::{SeedUser, TenantPlan, INTERVALS, PLANS, REGIONS},
};

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ActivityCounts {
    pub(crate) sessions: u64,
    pub(crate) offer_events: u64,
    pub(crate) churn_reasons: u64,
}

/// One generated session with its timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    user: u32,
    id: Uuid,
    shape: Shape,
    created: i64,
    reason_at: i64,
    /// Offer event times: the shown offers, then the accepted one.
    event_at: [i64; 4],
    ended: Option<i64>,
    applied: Option<i64>,
    validated: Option<i64>,
}

/// Encodes the rows of one tenant's sessions; shared by every block.
pub(crate) struct ActivityWriter<'a> {
    plan: &'a TenantPlan,
    users: &'a [SeedUser],
    attributes: &'a [String],
    accepted_offers: &'a [String; 4],
    ingested_now: bool,
}

impl ActivityWriter<'_> {
    fn reason(&self, out: &mut Sink, s: &Pending) -> anyhow::Result<()> {
        let Some(r) = s.shape.reason else {
            return Ok(());
        };
        // churn_reasons (tenant_id, user_id, session_id, reason_code, created_at
        //                [, ingested_at])
        out.row(if self.ingested_now { 5 } else { 6 });
        out.uuid(&self.plan.id);
        out.uuid(&self.users[s.user as usize].id);
        out.uuid(&s.id);
        out.text(REASONS[r as usize]);
        out.ts(s.reason_at);
        if !self.ingested_now {
            out.ts(s.reason_at);
        }
        out.flush_if_full()
    }

    fn offer_events(&self, out: &mut Sink, s: &Pending) -> anyhow::Result<()> {
        let u = &self.users[s.user as usize];
        let variant = (!s.shape.holdout).then(|| VARIANTS[s.shape.variant as usize]);
        let events = s.shape.shown[..s.shape.nshown as usize]
            .iter()
            .map(|&o| (o, false))
            .chain(s.shape.accepted.map(|a| (a, true)));
        for ((o, accepted), at) in events.zip(s.event_at) {
            let (offer_id, offer_type) = OFFERS[o as usize];
            // offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id,
            //   offer_type, accepted, mrr_cents, created_at[, ingested_at])
            out.row(if self.ingested_now { 10 } else { 11 });
            out.uuid(&self.plan.id);
            out.uuid(&u.id);
            out.uuid(&self.plan.flow_id);
            out.uuid(&s.id);
            out.opt_text(variant);
            out.text(offer_id);
            out.text(offer_type);
            out.boolean(accepted);
            out.int8(if accepted { u.mrr } else { 0 });
            out.ts(at);
            if !self.ingested_now {
                out.ts(at);
            }
        }
        out.flush_if_full()
    }

    fn session(&self, out: &mut Sink, s: &Pending) -> anyhow::Result<()> {
        let u = &self.users[s.user as usize];
        let shape = &s.shape;
        // cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id,
        //   flow_id, flow_version, variant, holdout, outcome, saved_offer_type,
        //   reason_code, offer_state, mrr_cents, validated_at, created_at, ended_at,
        //   attributes, accepted_offer, offer_applied_at, cancel_state[, updated_at])
        out.row(if self.ingested_now { 22 } else { 23 });
        out.uuid(&s.id);
        out.uuid(&self.plan.id);
        out.text("live");
        out.uuid(&u.id);
        out.text_fmt(format_args!("cus_{}", u.n));
        out.text_fmt(format_args!("sub_{}_{}", self.plan.short, u.n));
        out.uuid(&self.plan.flow_id);
        out.int4(1);
        out.opt_text((!shape.holdout).then(|| VARIANTS[shape.variant as usize]));
        out.boolean(shape.holdout);
        out.opt_text(shape.outcome.map(Outcome::as_str));
        out.opt_text(shape.accepted.map(|a| OFFERS[a as usize].1));
        out.opt_text(shape.reason.map(|r| REASONS[r as usize]));
        out.opt_text(shape.accepted.map(|_| "applied"));
        out.int8(u.mrr);
        out.opt_ts(s.validated);
        out.ts(s.created);
        out.opt_ts(s.ended);
        out.jsonb(
            &self.attributes[u.plan as usize * 6 + u.region as usize * 2 + u.interval as usize],
        );
        match shape.accepted {
            Some(a) => out.jsonb(&self.accepted_offers[a as usize]),
            None => out.null(),
        }
        out.opt_ts(s.applied);
        out.opt_text((shape.outcome == Some(Outcome::Canceled)).then_some("recorded"));
        if !self.ingested_now {
            // Like `ingested_at`: the session's last change, not the load.
            let last = [s.ended, s.applied, s.validated]
                .into_iter()
                .flatten()
                .max();
            out.ts(last.unwrap_or(s.created).max(s.created));
        }
        out.flush_if_full()
    }
}

/// One tenant's session stream: sessions in time order, drawn from the tenant's own PRNG
/// streams.
pub(crate) struct TenantSessions<'a> {
    writer: ActivityWriter<'a>,
    shapes: Rng,
    rng: Rng,
    i: u64,
    n: u64,
    remaining: u64,
    start: i64,
    span: f64,
    now: i64,
    /// Customers with a session still in progress: a customer has at most one (the unique
    /// index `cancel_sessions_one_open_idx`), so a later in-progress draw is abandoned.
    open: std::collections::HashSet<u32>,
}

impl<'a> TenantSessions<'a> {
    fn new(writer: ActivityWriter<'a>, start: i64, span: f64, now: i64) -> Self {
        let p = writer.plan;
        let shapes = Rng::new(mix(p.seed, 1));
        Self {
            n: count_sessions(shapes.clone(), p.budget),
            shapes,
            rng: Rng::new(mix(p.seed, 2)),
            i: 0,
            remaining: p.budget,
            writer,
            start,
            span,
            now,
            open: Default::default(),
        }
    }

    /// The customer of the next session. Customers cancel in cohorts: the session at
    /// fraction `f` of the window belongs to a customer drawn uniformly from a window of
    /// 1/[`COHORTS`] of the customers around position `f` (wrapping). Every customer still
    /// gets about the same number of sessions, all within a few days of each other, and the
    /// customer-led indexes only ever change within a small slice (on a 10 M-event seed
    /// they otherwise outgrow `shared_buffers` and every insert misses the cache).
    fn pick_user(&mut self) -> u32 {
        let users = self.writer.users.len() as u64;
        let width = (users / COHORTS).max(users.min(16));
        let center = ((self.i as f64 + 0.5) / self.n as f64 * users as f64) as u64;
        ((center + users - width / 2 + self.rng.below(width)) % users) as u32
    }

    fn next(&mut self) -> Option<Pending> {
        if self.i == self.n {
            debug_assert_eq!(self.remaining, 0);
            return None;
        }
        let mut shape = draw_shape(&mut self.shapes, self.remaining);
        self.remaining -= shape.events();
        let user = self.pick_user();
        if shape.outcome.is_none() && !self.open.insert(user) {
            shape.outcome = Some(Outcome::Abandoned);
        }
        let rng = &mut self.rng;
        let created =
            self.start + ((self.i as f64 + rng.unit()) / self.n as f64 * self.span) as i64;
        self.i += 1;
        let id = rng.uuid_v7(created);
        let mut t = created;
        let mut reason_at = t;
        if shape.reason.is_some() {
            t += rng.range(2, 20) * SEC;
            reason_at = t;
        }
        let mut event_at = [0; 4];
        for at in event_at.iter_mut().take(shape.events() as usize) {
            t += rng.range(3, 40) * SEC;
            *at = t;
        }
        let ended = shape.outcome.map(|_| t + rng.range(10, 300) * SEC);
        let applied = ended
            .filter(|_| shape.accepted.is_some())
            .map(|e| e + rng.range(1, 30) * SEC);
        let validated = applied
            .filter(|_| rng.chance(0.7))
            .map(|a| a + rng.range(1, 7) * DAY + rng.below(DAY as u64) as i64)
            .filter(|v| *v < self.now);
        Some(Pending {
            user,
            id,
            shape,
            created,
            reason_at,
            event_at,
            ended,
            applied,
            validated,
        })
    }
}

/// See [`TenantSessions::pick_user`].
pub(crate) const COHORTS: u64 = 16;

/// Sessions, offer events and churn reasons of every tenant.
///
/// The row order is chosen for the indexes, whose maintenance is most of the load time
/// and grows sharply once they outgrow `shared_buffers`: tenant after tenant, each in time
/// order, so the indexes led by `(tenant_id, created_at)` only grow at one end and those
/// on time alone fill in one sweep per tenant, while the customer-led ones change within
/// one cohort's slice (see [`TenantSessions::pick_user`]). Measured at 3 M events on this
/// schema: merging tenants in time order cost 30 % more database CPU, and uniformly
/// random customers 25 % more (growing with the size).
pub(crate) fn generate_activity(
    plans: &[TenantPlan],
    users: &[Vec<SeedUser>],
    accepted_offers: &[String; 4],
    now: i64,
    days: u32,
    ingested_now: bool,
    mut sinks: Vec<Sink>,
) -> anyhow::Result<ActivityCounts> {
    let mut reasons_out = sinks.pop().expect("three sinks");
    let mut events_out = sinks.pop().expect("three sinks");
    let mut sessions_out = sinks.pop().expect("three sinks");
    let mut counts = ActivityCounts::default();
    let attributes: Vec<String> = (0..PLANS.len() * REGIONS.len() * INTERVALS.len())
        .map(|i| {
            json!({
                "plan": PLANS[i / 6],
                "region": REGIONS[i / 2 % 3],
                "billing_interval": INTERVALS[i % 2],
            })
            .to_string()
        })
        .collect();
    let window = days.max(1) as i64 * DAY;
    let start = now - window;
    let span = (window - MARGIN) as f64;
    for (plan, users) in plans.iter().zip(users) {
        let writer = ActivityWriter {
            plan,
            users,
            attributes: &attributes,
            accepted_offers,
            ingested_now,
        };
        let mut sessions = TenantSessions::new(writer, start, span, now);
        while let Some(s) = sessions.next() {
            let writer = &sessions.writer;
            writer.reason(&mut reasons_out, &s)?;
            writer.offer_events(&mut events_out, &s)?;
            writer.session(&mut sessions_out, &s)?;
            counts.sessions += 1;
            counts.churn_reasons += s.shape.reason.is_some() as u64;
            counts.offer_events += s.shape.events();
        }
    }
    sessions_out.finish()?;
    events_out.finish()?;
    reasons_out.finish()?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_cancel_in_cohorts_and_all_get_sessions() {
        let plan = TenantPlan {
            id: Uuid::nil(),
            short: "000000000000".into(),
            flow_id: Uuid::nil(),
            budget: 200_000,
            users: 10_000,
            first_n: 0,
            seed: 3,
        };
        let users: Vec<SeedUser> = (0..plan.users)
            .map(|n| SeedUser {
                id: Uuid::nil(),
                n,
                mrr: 0,
                plan: 0,
                region: 0,
                interval: 0,
                created: 0,
                updated: 0,
            })
            .collect();
        let attributes = vec![String::new(); 18];
        let offers: [String; 4] = Default::default();
        let writer = ActivityWriter {
            plan: &plan,
            users: &users,
            attributes: &attributes,
            accepted_offers: &offers,
            ingested_now: false,
        };
        let now = 1_800_000_000 * SEC;
        let mut sessions = TenantSessions::new(writer, now - 30 * DAY, 30.0 * DAY as f64, now);
        let mut per_user = vec![0u32; users.len()];
        let (mut first, mut last) = (vec![i64::MAX; users.len()], vec![0i64; users.len()]);
        let mut events = 0;
        let mut previous = 0;
        while let Some(s) = sessions.next() {
            assert!(s.created >= previous, "sessions come in time order");
            previous = s.created;
            let u = s.user as usize;
            per_user[u] += 1;
            first[u] = first[u].min(s.created);
            last[u] = last[u].max(s.created);
            events += s.shape.events();
        }
        assert_eq!(events, plan.budget);
        let total: u32 = per_user.iter().sum();
        let mean = total as f64 / users.len() as f64;
        assert!(
            per_user.iter().all(|&c| c > 0),
            "every customer has sessions"
        );
        assert!(*per_user.iter().max().unwrap() as f64 <= mean * 3.0);
        // Apart from the customers that wrap around the window's ends, a customer's
        // sessions lie within about 1/16 of the window (plus the slice they straddle).
        let spread: Vec<i64> = (1000..9000).map(|u| last[u] - first[u]).collect();
        assert!(
            spread.iter().all(|&d| d <= 30 * DAY / 8),
            "{:?}",
            spread.iter().max()
        );
    }
}
