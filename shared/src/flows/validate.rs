//! Semantic validation of a parsed flow: each check names the offending field by path.
//! The flow-level walk (name, targeting, steps, reason references, experiment, strings)
//! comes first, then the per-offer checks by offer type.

use std::collections::HashSet;

use super::error::{invalid, Invalid};
use super::model::{
    ConfirmStep, Discount, Experiment, FeedbackStep, FlowDefinition, Offer, OfferStep, OfferType,
    Op, Pause, PlanChange, Reason, Redirect, Rule, Step, SurveyStep, TrialExtension, ATTRIBUTES,
};

fn check_text(param: &str, v: &str, max: usize) -> Result<(), Invalid> {
    if v.trim().is_empty() {
        return Err(invalid(param, format!("{param} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(invalid(
            param,
            format!("{param} must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn check_id(param: &str, v: &str) -> Result<(), Invalid> {
    if v.is_empty()
        || v.len() > 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            param,
            format!("{param} must be 1-64 characters of letters, digits, '_' or '-'"),
        ));
    }
    Ok(())
}

impl FlowDefinition {
    /// Semantic validation; the error names the offending field by path.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("name", &self.name, 200)?;
        check_language(&self.language)?;
        check_ranking_score(self.ranking_score)?;
        for (i, r) in self.targeting.iter().enumerate() {
            check_rule(&format!("targeting[{i}]"), r)?;
        }
        if self.steps.is_empty() || self.steps.len() > 20 {
            return Err(invalid("steps", "a flow has 1 to 20 steps"));
        }
        let mut step_ids = HashSet::new();
        let mut offer_ids = HashSet::new();
        let mut reason_codes = HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let p = format!("steps[{i}]");
            check_id(&format!("{p}.id"), step.id())?;
            if !step_ids.insert(step.id().to_string()) {
                return Err(invalid(format!("{p}.id"), "step ids must be unique"));
            }
            match step {
                Step::Survey(SurveyStep { title, reasons, .. }) => {
                    check_survey(&p, title, reasons, &mut reason_codes)?;
                }
                Step::Feedback(FeedbackStep { title, .. })
                | Step::Confirm(ConfirmStep { title, .. }) => {
                    check_text(&format!("{p}.title"), title, 200)?;
                }
                Step::Offer(OfferStep { offers, .. }) => {
                    check_offer_step(&p, offers, &mut offer_ids)?;
                }
            }
        }
        check_offer_reasons(&self.steps, &reason_codes)?;
        if let Some(exp) = &self.experiment {
            check_experiment(exp, &offer_ids)?;
        }
        for (k, v) in &self.strings {
            check_text(&format!("strings.{k}"), v, 300)?;
        }
        Ok(())
    }
}

fn check_language(language: &str) -> Result<(), Invalid> {
    if !(2..=10).contains(&language.len())
        || !language
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-')
    {
        return Err(invalid(
            "language",
            "language must be a language tag such as en or pt-BR",
        ));
    }
    Ok(())
}

fn check_ranking_score(ranking_score: i32) -> Result<(), Invalid> {
    if !(-1_000_000..=1_000_000).contains(&ranking_score) {
        return Err(invalid(
            "ranking_score",
            "ranking_score must be between -1000000 and 1000000",
        ));
    }
    Ok(())
}

/// One targeting rule at `p` (`targeting[i]`): a known attribute and a value that suits the
/// operator.
fn check_rule(p: &str, r: &Rule) -> Result<(), Invalid> {
    let known = ATTRIBUTES.contains(&r.attribute.as_str())
        || r.attribute
            .strip_prefix("custom.")
            .is_some_and(|n| check_id("x", n).is_ok());
    if !known {
        return Err(invalid(
            format!("{p}.attribute"),
            format!(
                "unknown attribute {:?}; use one of {} or custom.<name>",
                r.attribute,
                ATTRIBUTES.join(", ")
            ),
        ));
    }
    let ok = match r.op {
        Op::In | Op::NotIn => r.value.as_array().is_some_and(|a| !a.is_empty()),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => r.value.is_number(),
        Op::Eq | Op::Neq => !r.value.is_null() && !r.value.is_array() && !r.value.is_object(),
        Op::Exists => true,
    };
    if !ok {
        return Err(invalid(format!("{p}.value"), "value does not suit the operator (in/not_in take a non-empty list, gt/gte/lt/lte a number, eq/neq a scalar)"));
    }
    Ok(())
}

/// A survey step at `p`; its reason codes are collected into `reason_codes` (unique across
/// the flow).
fn check_survey(
    p: &str,
    title: &str,
    reasons: &[Reason],
    reason_codes: &mut HashSet<String>,
) -> Result<(), Invalid> {
    check_text(&format!("{p}.title"), title, 200)?;
    if reasons.is_empty() || reasons.len() > 20 {
        return Err(invalid(
            format!("{p}.reasons"),
            "a survey has 1 to 20 reasons",
        ));
    }
    for (j, r) in reasons.iter().enumerate() {
        let rp = format!("{p}.reasons[{j}]");
        check_id(&format!("{rp}.code"), &r.code)?;
        check_text(&format!("{rp}.label"), &r.label, 200)?;
        if let Some(f) = &r.follow_up {
            check_text(&format!("{rp}.follow_up"), f, 500)?;
        }
        if !reason_codes.insert(r.code.clone()) {
            return Err(invalid(format!("{rp}.code"), "reason codes must be unique"));
        }
    }
    Ok(())
}

/// An offer step at `p`; its offer ids are collected into `offer_ids` (unique across the
/// flow).
fn check_offer_step(
    p: &str,
    offers: &[Offer],
    offer_ids: &mut HashSet<String>,
) -> Result<(), Invalid> {
    if offers.is_empty() || offers.len() > 10 {
        return Err(invalid(
            format!("{p}.offers"),
            "an offer step has 1 to 10 offers",
        ));
    }
    for (j, o) in offers.iter().enumerate() {
        let op = format!("{p}.offers[{j}]");
        o.validate(&op)?;
        if !offer_ids.insert(o.id.clone()) {
            return Err(invalid(
                format!("{op}.id"),
                "offer ids must be unique within a flow",
            ));
        }
    }
    Ok(())
}

/// Offers may only depend on reasons the survey asks for.
fn check_offer_reasons(steps: &[Step], reason_codes: &HashSet<String>) -> Result<(), Invalid> {
    for (i, step) in steps.iter().enumerate() {
        if let Step::Offer(OfferStep { offers, .. }) = step {
            for (j, o) in offers.iter().enumerate() {
                for (k, code) in o.reason_codes.iter().enumerate() {
                    if !reason_codes.contains(code) {
                        return Err(invalid(
                            format!("steps[{i}].offers[{j}].reason_codes[{k}]"),
                            format!("no survey reason has code {code:?}"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The experiment: holdout share, variant keys and weights, and offer ids that exist.
fn check_experiment(exp: &Experiment, offer_ids: &HashSet<String>) -> Result<(), Invalid> {
    if exp.holdout_percent > 50 {
        return Err(invalid(
            "experiment.holdout_percent",
            "holdout_percent must be between 0 and 50",
        ));
    }
    if exp.variants.is_empty() || exp.variants.len() > 10 {
        return Err(invalid(
            "experiment.variants",
            "an experiment has 1 to 10 variants",
        ));
    }
    let mut keys = HashSet::new();
    for (i, v) in exp.variants.iter().enumerate() {
        check_id(&format!("experiment.variants[{i}].key"), &v.key)?;
        if !keys.insert(v.key.clone()) {
            return Err(invalid(
                format!("experiment.variants[{i}].key"),
                "variant keys must be unique",
            ));
        }
        if v.weight == 0 || v.weight > 10_000 {
            return Err(invalid(
                format!("experiment.variants[{i}].weight"),
                "weight must be between 1 and 10000",
            ));
        }
        for (k, id) in v.offer_ids.iter().flatten().enumerate() {
            if !offer_ids.contains(id) {
                return Err(invalid(
                    format!("experiment.variants[{i}].offer_ids[{k}]"),
                    format!("no offer has id {id:?}"),
                ));
            }
        }
    }
    Ok(())
}

impl Offer {
    fn validate(&self, p: &str) -> Result<(), Invalid> {
        check_id(&format!("{p}.id"), &self.id)?;
        check_text(&format!("{p}.title"), &self.title, 200)?;
        if self.description.chars().count() > 1000 {
            return Err(invalid(
                format!("{p}.description"),
                "description must be at most 1000 characters",
            ));
        }
        self.check_settings_match_kind(p)?;
        match self.kind {
            OfferType::Discount => {
                let d = self.discount.as_ref().expect("checked above");
                check_discount(&format!("{p}.discount"), d)?;
            }
            OfferType::Pause => {
                let pz = self.pause.as_ref().expect("checked above");
                check_pause(p, pz)?;
            }
            OfferType::PlanChange => {
                let pc = self.plan_change.as_ref().expect("checked above");
                check_plan_change(p, pc)?;
            }
            OfferType::TrialExtension => {
                let t = self.trial_extension.as_ref().expect("checked above");
                check_trial_extension(p, t)?;
            }
            OfferType::Redirect => {
                let r = self.redirect.as_ref().expect("checked above");
                check_redirect(p, r)?;
            }
            OfferType::Custom => {}
        }
        Ok(())
    }

    /// The offer carries the settings of its own type (optional for custom) and no other.
    fn check_settings_match_kind(&self, p: &str) -> Result<(), Invalid> {
        let present = [
            ("discount", self.discount.is_some()),
            ("pause", self.pause.is_some()),
            ("plan_change", self.plan_change.is_some()),
            ("trial_extension", self.trial_extension.is_some()),
            ("redirect", self.redirect.is_some()),
            ("custom", self.custom.is_some()),
        ];
        let want = self.kind.as_str();
        for (name, is) in present {
            if name == want && !is && name != "custom" {
                return Err(invalid(
                    format!("{p}.{name}"),
                    format!("a {want} offer needs its {name} settings"),
                ));
            }
            if name != want && is {
                return Err(invalid(
                    format!("{p}.{name}"),
                    format!("{name} settings do not belong on a {want} offer"),
                ));
            }
        }
        Ok(())
    }
}

/// Discount settings at `dp` (`...offers[j].discount`): an existing coupon on its own, or an
/// amount plus a duration.
fn check_discount(dp: &str, d: &Discount) -> Result<(), Invalid> {
    if let Some(c) = &d.coupon_id {
        check_text(&format!("{dp}.coupon_id"), c, 200)?;
        if d.percent_off.is_some() || d.amount_off.is_some() {
            return Err(invalid(
                format!("{dp}.coupon_id"),
                "give either coupon_id or percent_off/amount_off, not both",
            ));
        }
        return Ok(());
    }
    check_discount_amount(dp, d)?;
    check_discount_duration(dp, d)
}

/// Exactly one of percent_off or amount_off (+ currency).
fn check_discount_amount(dp: &str, d: &Discount) -> Result<(), Invalid> {
    match (d.percent_off, d.amount_off) {
        (Some(pct), None) => {
            if !(pct > 0.0 && pct <= 100.0) {
                return Err(invalid(
                    format!("{dp}.percent_off"),
                    "percent_off must be greater than 0 and at most 100",
                ));
            }
            if d.currency.is_some() {
                return Err(invalid(
                    format!("{dp}.currency"),
                    "currency goes with amount_off only",
                ));
            }
        }
        (None, Some(amt)) => {
            if amt <= 0 {
                return Err(invalid(
                    format!("{dp}.amount_off"),
                    "amount_off must be a positive amount in the currency's smallest unit",
                ));
            }
            match &d.currency {
                Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()) => {}
                _ => {
                    return Err(invalid(
                        format!("{dp}.currency"),
                        "amount_off needs a three-letter lowercase ISO currency",
                    ))
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("{dp}.amount_off"),
                "give percent_off or amount_off, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                format!("{dp}.percent_off"),
                "give percent_off, amount_off + currency, or coupon_id",
            ))
        }
    }
    Ok(())
}

/// once/forever, or repeating with duration_in_months.
fn check_discount_duration(dp: &str, d: &Discount) -> Result<(), Invalid> {
    match d.duration.as_deref() {
        Some("once") | Some("forever") => {
            if d.duration_in_months.is_some() {
                return Err(invalid(
                    format!("{dp}.duration_in_months"),
                    "duration_in_months goes with duration repeating only",
                ));
            }
        }
        Some("repeating") => match d.duration_in_months {
            Some(m) if (1..=36).contains(&m) => {}
            _ => {
                return Err(invalid(
                    format!("{dp}.duration_in_months"),
                    "a repeating discount needs duration_in_months between 1 and 36",
                ))
            }
        },
        _ => {
            return Err(invalid(
                format!("{dp}.duration"),
                "duration must be once, repeating or forever",
            ))
        }
    }
    Ok(())
}

fn check_pause(p: &str, pz: &Pause) -> Result<(), Invalid> {
    if !(1..=12).contains(&pz.months) {
        return Err(invalid(
            format!("{p}.pause.months"),
            "months must be between 1 and 12",
        ));
    }
    if !["void", "keep_as_draft", "mark_uncollectible"].contains(&pz.behavior.as_str()) {
        return Err(invalid(
            format!("{p}.pause.behavior"),
            "behavior must be void, keep_as_draft or mark_uncollectible",
        ));
    }
    Ok(())
}

fn check_plan_change(p: &str, pc: &PlanChange) -> Result<(), Invalid> {
    if !pc.price_id.starts_with("price_") || pc.price_id.chars().count() > 100 {
        return Err(invalid(
            format!("{p}.plan_change.price_id"),
            "price_id must be a Stripe price id (price_...)",
        ));
    }
    if !["create_prorations", "always_invoice", "none"].contains(&pc.proration.as_str()) {
        return Err(invalid(
            format!("{p}.plan_change.proration"),
            "proration must be create_prorations, always_invoice or none",
        ));
    }
    Ok(())
}

fn check_trial_extension(p: &str, t: &TrialExtension) -> Result<(), Invalid> {
    if !(1..=365).contains(&t.days) {
        return Err(invalid(
            format!("{p}.trial_extension.days"),
            "days must be between 1 and 365",
        ));
    }
    Ok(())
}

fn check_redirect(p: &str, r: &Redirect) -> Result<(), Invalid> {
    if !(r.url.starts_with("https://") || r.url.starts_with("http://"))
        || r.url.chars().count() > 2000
    {
        return Err(invalid(
            format!("{p}.redirect.url"),
            "url must be an http(s) URL",
        ));
    }
    Ok(())
}
