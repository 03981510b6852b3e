//! The flow as one customer sees it: guardrails that hide offer types, and the rendering
//! that applies the variant, the holdout and those guardrails.

use super::model::{FlowDefinition, Offer, OfferStep, OfferType, Step};

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
