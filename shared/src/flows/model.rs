//! The flow definition tenants build, as stored and served: the flow itself, its targeting
//! rules and experiment, the four step kinds and the offer types with their settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowDefinition {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default = "default_language")]
    #[schema(pattern = "^[A-Za-z-]{2,10}$", default = "en")]
    pub language: String,
    #[serde(default)]
    #[schema(minimum = -1000000, maximum = 1000000)]
    pub ranking_score: i32,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub targeting: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    #[schema(min_items = 1, max_items = 20)]
    pub steps: Vec<Step>,
    /// Overrides of the widget's UI strings for this flow's language.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    #[schema(value_type = HashMap<String, String>)]
    pub strings: HashMap<String, String>,
}

fn default_language() -> String {
    "en".into()
}

/// A targeting rule; a flow matches when every rule matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `plan`, `mrr_cents`, `billing_interval`, `tenure_days`, `region`, `language`,
    /// `status` (`trialing`/`active`), or `custom.<name>`.
    #[schema(
        pattern = "^(plan|mrr_cents|billing_interval|tenure_days|region|language|status|custom\\.[A-Za-z0-9_-]{1,64})$"
    )]
    pub attribute: String,
    pub op: Op,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Share of customers (0-50 %) who see no offer at all (the control that proves lift).
    #[serde(default)]
    #[schema(maximum = 50)]
    pub holdout_percent: u32,
    #[schema(min_items = 1, max_items = 10)]
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub key: String,
    #[schema(minimum = 1, maximum = 10000)]
    pub weight: u32,
    /// Offers this variant shows (by offer id); all offers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    Survey(SurveyStep),
    Feedback(FeedbackStep),
    Offer(OfferStep),
    Confirm(ConfirmStep),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyStep {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_items = 1, max_items = 20)]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackStep {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferStep {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[schema(min_items = 1, max_items = 10)]
    pub offers: Vec<Offer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmStep {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 500)]
    pub follow_up: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: OfferType,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub percent_off: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub amount_off: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(once|repeating|forever)$")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 36)]
    pub duration_in_months: Option<u32>,
    /// Use this existing Stripe coupon instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub coupon_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    #[schema(minimum = 1, maximum = 12)]
    pub months: u32,
    /// Stripe's `pause_collection[behavior]`: `void`, `keep_as_draft` or `mark_uncollectible`.
    #[serde(default = "default_behavior")]
    #[schema(pattern = "^(void|keep_as_draft|mark_uncollectible)$")]
    pub behavior: String,
}

fn default_behavior() -> String {
    "void".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChange {
    #[schema(pattern = "^price_", max_length = 100)]
    pub price_id: String,
    /// `create_prorations`, `always_invoice` or `none`.
    #[serde(default = "default_proration")]
    #[schema(pattern = "^(create_prorations|always_invoice|none)$")]
    pub proration: String,
}

fn default_proration() -> String {
    "create_prorations".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialExtension {
    #[schema(minimum = 1, maximum = 365)]
    pub days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    #[schema(pattern = "^https?://", max_length = 2000)]
    pub url: String,
}

impl FlowDefinition {
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
