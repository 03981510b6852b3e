//! Cancel flows: the definition tenants build (survey, feedback, offers, confirmation),
//! its validation with field paths, targeting rules, A/B assignment and guardrails.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A validation failure: the offending field by path (e.g. `steps[2].offers[0].discount.percent_off`).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub param: String,
    pub message: String,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        param: param.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowDefinition {
    pub name: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub ranking_score: i32,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub targeting: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    pub steps: Vec<Step>,
    /// Overrides of the widget's UI strings for this flow's language.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub strings: HashMap<String, String>,
}

fn default_language() -> String {
    "en".into()
}

/// A targeting rule; a flow matches when every rule matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `plan`, `mrr_cents`, `billing_interval`, `tenure_days`, `region`, `language`,
    /// `status` (`trialing`/`active`), or `custom.<name>`.
    pub attribute: String,
    pub op: Op,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Neq,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
}

pub const ATTRIBUTES: &[&str] = &[
    "plan",
    "mrr_cents",
    "billing_interval",
    "tenure_days",
    "region",
    "language",
    "status",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Share of customers (0-50 %) who see no offer at all (the control that proves lift).
    #[serde(default)]
    pub holdout_percent: u32,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub key: String,
    pub weight: u32,
    /// Offers this variant shows (by offer id); all offers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    Survey(SurveyStep),
    Feedback(FeedbackStep),
    Offer(OfferStep),
    Confirm(ConfirmStep),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SurveyStep {
    pub id: String,
    pub title: String,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeedbackStep {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OfferStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub offers: Vec<Offer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfirmStep {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

fn typed<T: serde::de::DeserializeOwned>(v: Value, prefix: &str) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let param = if inner == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{inner}")
        };
        let message = e.into_inner().to_string();
        invalid(param, message)
    })
}

/// Parses a flow from JSON, reporting type errors and unknown fields by path (serde's
/// internally tagged enums lose the path, so steps are dispatched by hand).
pub fn parse_flow(mut v: Value) -> Result<FlowDefinition, Invalid> {
    let steps = match v.as_object_mut().and_then(|o| o.remove("steps")) {
        Some(Value::Array(steps)) => steps,
        Some(_) => return Err(invalid("steps", "steps must be a list")),
        None => return Err(invalid("steps", "missing field `steps`")),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("steps".into(), Value::Array(vec![]));
    }
    let mut def: FlowDefinition = typed(v, "").map_err(|e| Invalid {
        param: e.param.trim_start_matches('.').to_string(),
        message: e.message,
    })?;
    for (i, mut step) in steps.into_iter().enumerate() {
        let p = format!("steps[{i}]");
        let kind = step
            .as_object_mut()
            .and_then(|o| o.remove("type"))
            .and_then(|t| t.as_str().map(str::to_string))
            .ok_or_else(|| {
                invalid(
                    format!("{p}.type"),
                    "each step needs a type: survey, feedback, offer or confirm",
                )
            })?;
        def.steps.push(match kind.as_str() {
            "survey" => Step::Survey(typed(step, &p)?),
            "feedback" => Step::Feedback(typed(step, &p)?),
            "offer" => Step::Offer(typed(step, &p)?),
            "confirm" => Step::Confirm(typed(step, &p)?),
            other => {
                return Err(invalid(
                    format!("{p}.type"),
                    format!("unknown step type {other:?}; use survey, feedback, offer or confirm"),
                ))
            }
        });
    }
    Ok(def)
}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::Survey(s) => &s.id,
            Step::Feedback(s) => &s.id,
            Step::Offer(s) => &s.id,
            Step::Confirm(s) => &s.id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OfferType {
    Discount,
    Pause,
    PlanChange,
    TrialExtension,
    Redirect,
    Custom,
}

impl OfferType {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferType::Discount => "discount",
            OfferType::Pause => "pause",
            OfferType::PlanChange => "plan_change",
            OfferType::TrialExtension => "trial_extension",
            OfferType::Redirect => "redirect",
            OfferType::Custom => "custom",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: OfferType,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cta: Option<String>,
    /// Shown only for these churn reasons (all reasons when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Discount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_change: Option<PlanChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_extension: Option<TrialExtension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_off: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_off: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_in_months: Option<u32>,
    /// Use this existing Stripe coupon instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    pub months: u32,
    /// Stripe's `pause_collection[behavior]`: `void`, `keep_as_draft` or `mark_uncollectible`.
    #[serde(default = "default_behavior")]
    pub behavior: String,
}

fn default_behavior() -> String {
    "void".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanChange {
    pub price_id: String,
    /// `create_prorations`, `always_invoice` or `none`.
    #[serde(default = "default_proration")]
    pub proration: String,
}

fn default_proration() -> String {
    "create_prorations".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrialExtension {
    pub days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    pub url: String,
}

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
        if !(2..=10).contains(&self.language.len())
            || !self
                .language
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-')
        {
            return Err(invalid(
                "language",
                "language must be a language tag such as en or pt-BR",
            ));
        }
        if !(-1_000_000..=1_000_000).contains(&self.ranking_score) {
            return Err(invalid(
                "ranking_score",
                "ranking_score must be between -1000000 and 1000000",
            ));
        }
        for (i, r) in self.targeting.iter().enumerate() {
            let p = format!("targeting[{i}]");
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
                Op::Eq | Op::Neq => {
                    !r.value.is_null() && !r.value.is_array() && !r.value.is_object()
                }
                Op::Exists => true,
            };
            if !ok {
                return Err(invalid(format!("{p}.value"), "value does not suit the operator (in/not_in take a non-empty list, gt/gte/lt/lte a number, eq/neq a scalar)"));
            }
        }
        if self.steps.is_empty() || self.steps.len() > 20 {
            return Err(invalid("steps", "a flow has 1 to 20 steps"));
        }
        let mut step_ids = std::collections::HashSet::new();
        let mut offer_ids = std::collections::HashSet::new();
        let mut reason_codes = std::collections::HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let p = format!("steps[{i}]");
            check_id(&format!("{p}.id"), step.id())?;
            if !step_ids.insert(step.id().to_string()) {
                return Err(invalid(format!("{p}.id"), "step ids must be unique"));
            }
            match step {
                Step::Survey(SurveyStep { title, reasons, .. }) => {
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
                            return Err(invalid(
                                format!("{rp}.code"),
                                "reason codes must be unique",
                            ));
                        }
                    }
                }
                Step::Feedback(FeedbackStep { title, .. })
                | Step::Confirm(ConfirmStep { title, .. }) => {
                    check_text(&format!("{p}.title"), title, 200)?;
                }
                Step::Offer(OfferStep { offers, .. }) => {
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
                }
            }
        }
        // Offers may only depend on reasons the survey asks for.
        for (i, step) in self.steps.iter().enumerate() {
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
        if let Some(exp) = &self.experiment {
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
            let mut keys = std::collections::HashSet::new();
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
        }
        for (k, v) in &self.strings {
            check_text(&format!("strings.{k}"), v, 300)?;
        }
        Ok(())
    }

    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.steps.iter().flat_map(|s| match s {
            Step::Offer(o) => o.offers.as_slice(),
            _ => &[],
        })
    }

    pub fn offer(&self, id: &str) -> Option<&Offer> {
        self.offers().find(|o| o.id == id)
    }
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
        match self.kind {
            OfferType::Discount => {
                let d = self.discount.as_ref().expect("checked above");
                let dp = format!("{p}.discount");
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
                            return Err(invalid(format!("{dp}.amount_off"), "amount_off must be a positive amount in the currency's smallest unit"));
                        }
                        match &d.currency {
                            Some(c)
                                if c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()) => {}
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
                match d.duration.as_deref() {
                    Some("once") | Some("forever") => {
                        if d.duration_in_months.is_some() {
                            return Err(invalid(
                                format!("{dp}.duration_in_months"),
                                "duration_in_months goes with duration repeating only",
                            ));
                        }
                    }
                    Some("repeating") => {
                        match d.duration_in_months {
                            Some(m) if (1..=36).contains(&m) => {}
                            _ => return Err(invalid(
                                format!("{dp}.duration_in_months"),
                                "a repeating discount needs duration_in_months between 1 and 36",
                            )),
                        }
                    }
                    _ => {
                        return Err(invalid(
                            format!("{dp}.duration"),
                            "duration must be once, repeating or forever",
                        ))
                    }
                }
            }
            OfferType::Pause => {
                let pz = self.pause.as_ref().expect("checked above");
                if !(1..=12).contains(&pz.months) {
                    return Err(invalid(
                        format!("{p}.pause.months"),
                        "months must be between 1 and 12",
                    ));
                }
                if !["void", "keep_as_draft", "mark_uncollectible"].contains(&pz.behavior.as_str())
                {
                    return Err(invalid(
                        format!("{p}.pause.behavior"),
                        "behavior must be void, keep_as_draft or mark_uncollectible",
                    ));
                }
            }
            OfferType::PlanChange => {
                let pc = self.plan_change.as_ref().expect("checked above");
                if !pc.price_id.starts_with("price_") || pc.price_id.len() > 100 {
                    return Err(invalid(
                        format!("{p}.plan_change.price_id"),
                        "price_id must be a Stripe price id (price_...)",
                    ));
                }
                if !["create_prorations", "always_invoice", "none"].contains(&pc.proration.as_str())
                {
                    return Err(invalid(
                        format!("{p}.plan_change.proration"),
                        "proration must be create_prorations, always_invoice or none",
                    ));
                }
            }
            OfferType::TrialExtension => {
                let t = self.trial_extension.as_ref().expect("checked above");
                if !(1..=365).contains(&t.days) {
                    return Err(invalid(
                        format!("{p}.trial_extension.days"),
                        "days must be between 1 and 365",
                    ));
                }
            }
            OfferType::Redirect => {
                let r = self.redirect.as_ref().expect("checked above");
                if !(r.url.starts_with("https://") || r.url.starts_with("http://"))
                    || r.url.len() > 2000
                {
                    return Err(invalid(
                        format!("{p}.redirect.url"),
                        "url must be an http(s) URL",
                    ));
                }
            }
            OfferType::Custom => {}
        }
        Ok(())
    }
}

/// What we know about a customer when choosing a flow.
pub type Attributes = serde_json::Map<String, Value>;

fn attr<'a>(attrs: &'a Attributes, name: &str) -> Option<&'a Value> {
    match name.strip_prefix("custom.") {
        Some(n) => attrs.get("custom").and_then(|c| c.get(n)),
        None => attrs.get(name),
    }
}

fn cmp_num(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

impl Rule {
    pub fn matches(&self, attrs: &Attributes) -> bool {
        let v = attr(attrs, &self.attribute);
        match self.op {
            Op::Exists => v.is_some_and(|v| !v.is_null()),
            Op::Eq => v == Some(&self.value),
            Op::Neq => v != Some(&self.value),
            Op::In => v.is_some_and(|v| self.value.as_array().is_some_and(|a| a.contains(v))),
            Op::NotIn => !v.is_some_and(|v| self.value.as_array().is_some_and(|a| a.contains(v))),
            Op::Gt => v.and_then(|v| cmp_num(v, &self.value)) == Some(std::cmp::Ordering::Greater),
            Op::Gte => matches!(
                v.and_then(|v| cmp_num(v, &self.value)),
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            ),
            Op::Lt => v.and_then(|v| cmp_num(v, &self.value)) == Some(std::cmp::Ordering::Less),
            Op::Lte => matches!(
                v.and_then(|v| cmp_num(v, &self.value)),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            ),
        }
    }
}

/// A published flow as the widget path needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedFlow {
    pub id: uuid::Uuid,
    pub version: i32,
    pub definition: FlowDefinition,
}

/// First targeted match by ranking_score (highest first), else the default flow.
pub fn choose_flow<'a>(
    flows: &'a [PublishedFlow],
    attrs: &Attributes,
) -> Option<&'a PublishedFlow> {
    let mut targeted: Vec<&PublishedFlow> = flows
        .iter()
        .filter(|f| !f.definition.targeting.is_empty())
        .collect();
    targeted.sort_by(|a, b| {
        b.definition
            .ranking_score
            .cmp(&a.definition.ranking_score)
            .then(a.id.cmp(&b.id))
    });
    targeted
        .into_iter()
        .find(|f| f.definition.targeting.iter().all(|r| r.matches(attrs)))
        .or_else(|| flows.iter().find(|f| f.definition.is_default))
}

/// Deterministic bucket in 0..10000 for a customer within a flow.
pub fn bucket(flow_id: uuid::Uuid, customer_id: &str) -> u32 {
    let h = Sha256::digest(format!("{flow_id}:{customer_id}").as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 10_000
}

/// The A/B assignment: `(variant key, holdout)`.
pub fn assign(
    exp: Option<&Experiment>,
    flow_id: uuid::Uuid,
    customer_id: &str,
) -> (Option<String>, bool) {
    let Some(exp) = exp else { return (None, false) };
    let b = bucket(flow_id, customer_id);
    let holdout_cut = exp.holdout_percent * 100;
    if b < holdout_cut {
        return (None, true);
    }
    let total: u32 = exp.variants.iter().map(|v| v.weight).sum();
    // Rescale the remaining range onto the weights.
    let pos = ((b - holdout_cut) as u64 * total as u64 / (10_000 - holdout_cut) as u64) as u32;
    let mut acc = 0;
    for v in &exp.variants {
        acc += v.weight;
        if pos < acc {
            return (Some(v.key.clone()), false);
        }
    }
    (exp.variants.last().map(|v| v.key.clone()), false)
}

/// Guardrails that hide offers for a customer: a cooldown per offer type (a recent save
/// with an offer of that type) and, for discounts, an active coupon.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guardrails {
    pub discount_blocked: bool,
    pub pause_blocked: bool,
    pub trial_extension_blocked: bool,
    pub plan_change_blocked: bool,
}

impl Guardrails {
    /// Whether offers of this type are hidden.
    pub fn blocks(&self, kind: OfferType) -> bool {
        match kind {
            OfferType::Discount => self.discount_blocked,
            OfferType::Pause => self.pause_blocked,
            OfferType::TrialExtension => self.trial_extension_blocked,
            OfferType::PlanChange => self.plan_change_blocked,
            OfferType::Redirect | OfferType::Custom => false,
        }
    }
}

/// The definition as this customer sees it: variant offers only, none in the holdout, and
/// offers blocked by guardrails removed (offer steps left empty are dropped).
pub fn render_for_customer(
    def: &FlowDefinition,
    variant: Option<&str>,
    holdout: bool,
    guard: Guardrails,
) -> FlowDefinition {
    let allowed: Option<Vec<String>> = variant.and_then(|k| {
        def.experiment
            .as_ref()
            .and_then(|e| e.variants.iter().find(|v| v.key == k))
            .and_then(|v| v.offer_ids.clone())
    });
    let mut out = def.clone();
    out.steps = def
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Offer(OfferStep { id, title, offers }) => {
                if holdout {
                    return None;
                }
                let kept: Vec<Offer> = offers
                    .iter()
                    .filter(|o| allowed.as_ref().is_none_or(|a| a.contains(&o.id)))
                    .filter(|o| !guard.blocks(o.kind))
                    .cloned()
                    .collect();
                (!kept.is_empty()).then(|| {
                    Step::Offer(OfferStep {
                        id: id.clone(),
                        title: title.clone(),
                        offers: kept,
                    })
                })
            }
            other => Some(other.clone()),
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow(v: Value) -> FlowDefinition {
        parse_flow(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "name": "F", "steps": [
                {"id": "s", "type": "survey", "title": "Why?", "reasons": [{"code": "price", "label": "Price"}]},
                {"id": "o", "type": "offer", "offers": [
                    {"id": "d", "type": "discount", "title": "20%", "discount": {"percent_off": 20, "duration": "once"}},
                    {"id": "p", "type": "pause", "title": "Pause", "pause": {"months": 2}}
                ]},
                {"id": "c", "type": "confirm", "title": "Bye"}
            ]
        })
    }

    #[test]
    fn validates_with_paths() {
        assert_eq!(flow(base()).validate(), Ok(()));
        let mut v = base();
        v["steps"][1]["offers"][0]["discount"]["percent_off"] = json!(150);
        assert_eq!(
            flow(v).validate().unwrap_err().param,
            "steps[1].offers[0].discount.percent_off"
        );
        let mut v = base();
        v["steps"][1]["offers"][0]["discount"] =
            json!({"percent_off": 10, "duration": "repeating"});
        assert_eq!(
            flow(v).validate().unwrap_err().param,
            "steps[1].offers[0].discount.duration_in_months"
        );
        let mut v = base();
        v["steps"][1]["offers"][0]["reason_codes"] = json!(["nope"]);
        assert_eq!(
            flow(v).validate().unwrap_err().param,
            "steps[1].offers[0].reason_codes[0]"
        );
        let mut v = base();
        v["steps"][1]["offers"][1]["discount"] = json!({"percent_off": 10, "duration": "once"});
        assert_eq!(
            flow(v).validate().unwrap_err().param,
            "steps[1].offers[1].discount"
        );
    }

    #[test]
    fn parse_errors_carry_paths() {
        let mut v = base();
        v["steps"][1]["offers"][0]["discount"]["percent_off"] = json!("x");
        assert_eq!(
            parse_flow(v).unwrap_err().param,
            "steps[1].offers[0].discount.percent_off"
        );
        let mut v = base();
        v["steps"][2]["colour"] = json!(1);
        let e = parse_flow(v).unwrap_err();
        assert_eq!(e.param, "steps[2].colour");
        assert!(e.message.contains("colour"));
        let mut v = base();
        v["ranking_score"] = json!("high");
        assert_eq!(parse_flow(v).unwrap_err().param, "ranking_score");
        let round = flow(base());
        assert_eq!(
            parse_flow(serde_json::to_value(&round).unwrap()).unwrap(),
            round
        );
    }

    #[test]
    fn guardrails_hide_every_offer_type_in_cooldown() {
        let mut v = base();
        v["steps"][1]["offers"] = json!([
            {"id": "d", "type": "discount", "title": "20%", "discount": {"percent_off": 20, "duration": "once"}},
            {"id": "p", "type": "pause", "title": "Pause", "pause": {"months": 2}},
            {"id": "t", "type": "trial_extension", "title": "Trial", "trial_extension": {"days": 7}},
            {"id": "pc", "type": "plan_change", "title": "Basic", "plan_change": {"price_id": "price_b"}},
            {"id": "r", "type": "redirect", "title": "Help", "redirect": {"url": "https://x.test"}}
        ]);
        let def = flow(v);
        let ids = |g: Guardrails| -> Vec<String> {
            render_for_customer(&def, None, false, g)
                .offers()
                .map(|o| o.id.clone())
                .collect()
        };
        assert_eq!(ids(Guardrails::default()), ["d", "p", "t", "pc", "r"]);
        let g = Guardrails {
            trial_extension_blocked: true,
            plan_change_blocked: true,
            ..Default::default()
        };
        assert_eq!(ids(g), ["d", "p", "r"]);
        let g = Guardrails {
            discount_blocked: true,
            pause_blocked: true,
            ..Default::default()
        };
        assert_eq!(ids(g), ["t", "pc", "r"]);
        assert!(render_for_customer(&def, None, true, Guardrails::default())
            .offers()
            .next()
            .is_none());
    }

    #[test]
    fn assignment_is_deterministic_and_weighted() {
        let exp = Experiment {
            holdout_percent: 10,
            variants: vec![
                Variant {
                    key: "a".into(),
                    weight: 3,
                    offer_ids: None,
                },
                Variant {
                    key: "b".into(),
                    weight: 1,
                    offer_ids: None,
                },
            ],
        };
        let id = uuid::Uuid::nil();
        let mut counts = HashMap::new();
        for i in 0..20_000 {
            let c = format!("cus_{i}");
            let a = assign(Some(&exp), id, &c);
            assert_eq!(a, assign(Some(&exp), id, &c));
            *counts.entry(a).or_insert(0) += 1;
        }
        let hold = counts[&(None, true)] as f64 / 20_000.0;
        let a = counts[&(Some("a".to_string()), false)] as f64;
        let b = counts[&(Some("b".to_string()), false)] as f64;
        assert!((hold - 0.10).abs() < 0.01, "{hold}");
        assert!((a / b - 3.0).abs() < 0.25, "{}", a / b);
    }

    #[test]
    fn targeting_picks_highest_ranked_match_else_default() {
        let mk = |score: i32, rules: Value, default: bool| PublishedFlow {
            id: uuid::Uuid::now_v7(),
            version: 1,
            definition: {
                let mut v = base();
                v["ranking_score"] = json!(score);
                v["targeting"] = rules;
                v["is_default"] = json!(default);
                flow(v)
            },
        };
        let flows = vec![
            mk(
                1,
                json!([{"attribute": "plan", "op": "eq", "value": "pro"}]),
                false,
            ),
            mk(
                5,
                json!([{"attribute": "plan", "op": "in", "value": ["pro", "team"]}, {"attribute": "mrr_cents", "op": "gte", "value": 5000}]),
                false,
            ),
            mk(0, json!([]), true),
        ];
        let attrs = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            choose_flow(&flows, &attrs(json!({"plan": "pro", "mrr_cents": 9000})))
                .unwrap()
                .id,
            flows[1].id
        );
        assert_eq!(
            choose_flow(&flows, &attrs(json!({"plan": "pro", "mrr_cents": 100})))
                .unwrap()
                .id,
            flows[0].id
        );
        assert_eq!(
            choose_flow(&flows, &attrs(json!({"plan": "free"})))
                .unwrap()
                .id,
            flows[2].id
        );
    }
}
