//! The seeded cancel flow: survey reasons (with their weights), the four offers, and the
//! default flow definition every seeded tenant gets.

use anyhow::anyhow;
use serde_json::{json, Value};
use shared::flows::FlowDefinition;

/// Reason codes of the seeded survey (weights 30/15/20/12/10/13 %).
pub const REASONS: [&str; 6] = [
    "too_expensive",
    "missing_features",
    "not_using",
    "switching_competitor",
    "technical_issues",
    "other",
];
pub(crate) const REASON_LABELS: [&str; 6] = [
    "It's too expensive",
    "It's missing features I need",
    "I'm not using it enough",
    "I'm switching to another product",
    "I had technical issues",
    "Something else",
];
pub(crate) const REASON_WEIGHTS: [u32; 6] = [30, 15, 20, 12, 10, 13];

/// Offers of the seeded flow as `(offer_id, offer_type)`; the index is the offer number
/// used throughout (0 = discount, 1 = pause, 2 = plan change, 3 = trial extension).
pub const OFFERS: [(&str, &str); 4] = [
    ("disc20", "discount"),
    ("pause2", "pause"),
    ("downgrade", "plan_change"),
    ("trial14", "trial_extension"),
];
pub(crate) const DISCOUNT: u8 = 0;

/// The default flow every seeded tenant gets (published as version 1).
pub fn flow_definition() -> Value {
    let reasons: Vec<Value> = REASONS
        .iter()
        .zip(REASON_LABELS)
        .map(|(code, label)| json!({ "code": code, "label": label }))
        .collect();
    json!({
        "name": "Default cancel flow",
        "language": "en",
        "is_default": true,
        "experiment": {
            "holdout_percent": 10,
            "variants": [
                { "key": "a", "weight": 1 },
                { "key": "b", "weight": 1, "offer_ids": ["pause2", "downgrade"] }
            ]
        },
        "steps": [
            { "type": "survey", "id": "reason", "title": "Why are you canceling?", "reasons": reasons },
            { "type": "offer", "id": "offers", "title": "Before you go", "offers": [
                { "id": "disc20", "type": "discount", "title": "20% off for 3 months",
                  "description": "Stay and save 20% on your next three invoices.",
                  "reason_codes": ["too_expensive"],
                  "discount": { "percent_off": 20.0, "duration": "repeating", "duration_in_months": 3 } },
                { "id": "pause2", "type": "pause", "title": "Pause for 2 months",
                  "description": "Take a break; nothing is billed while paused.",
                  "pause": { "months": 2 } },
                { "id": "downgrade", "type": "plan_change", "title": "Switch to Basic",
                  "description": "Keep the essentials for less.",
                  "plan_change": { "price_id": "price_basic" } },
                { "id": "trial14", "type": "trial_extension", "title": "14 more days free",
                  "description": "Take two more weeks to decide.",
                  "trial_extension": { "days": 14 } }
            ] },
            { "type": "confirm", "id": "confirm", "title": "Confirm cancellation",
              "body": "Your subscription ends at the end of the current period." }
        ]
    })
}

/// The parsed and validated default flow.
pub fn parsed_flow() -> anyhow::Result<FlowDefinition> {
    let def = shared::flows::parse_flow(flow_definition())
        .map_err(|e| anyhow!("seed flow: {}: {}", e.param, e.message))?;
    def.validate()
        .map_err(|e| anyhow!("seed flow: {}: {}", e.param, e.message))?;
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::flows::{OfferType, Step};

    #[test]
    fn flow_definition_parses_and_validates() {
        let def = parsed_flow().expect("valid seed flow");
        assert!(def.is_default);
        let exp = def.experiment.as_ref().expect("experiment");
        assert_eq!(exp.holdout_percent, 10);
        assert_eq!(exp.variants.len(), 2);
        assert_eq!(
            exp.variants[1].offer_ids.as_deref(),
            Some(&["pause2".to_string(), "downgrade".to_string()][..])
        );
        let survey = def
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Survey(s) => Some(s),
                _ => None,
            })
            .expect("survey step");
        let codes: Vec<&str> = survey.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, REASONS);
        assert!(matches!(def.steps.last(), Some(Step::Confirm(_))));
        // The generator's offer table matches the definition.
        let offers: Vec<(String, &str)> = def
            .offers()
            .map(|o| (o.id.clone(), o.kind.as_str()))
            .collect();
        assert_eq!(
            offers,
            OFFERS
                .iter()
                .map(|(id, t)| (id.to_string(), *t))
                .collect::<Vec<_>>()
        );
        let disc = def.offer("disc20").expect("disc20");
        assert_eq!(disc.kind, OfferType::Discount);
        assert_eq!(disc.reason_codes, vec!["too_expensive".to_string()]);
        let d = disc.discount.as_ref().expect("discount settings");
        assert_eq!(d.percent_off, Some(20.0));
        assert_eq!(d.duration.as_deref(), Some("repeating"));
        assert_eq!(d.duration_in_months, Some(3));
        assert_eq!(
            def.offer("pause2").unwrap().pause.as_ref().unwrap().months,
            2
        );
        assert_eq!(
            def.offer("downgrade")
                .unwrap()
                .plan_change
                .as_ref()
                .unwrap()
                .price_id,
            "price_basic"
        );
        assert_eq!(
            def.offer("trial14")
                .unwrap()
                .trial_extension
                .as_ref()
                .unwrap()
                .days,
            14
        );
        // Round-trips as stored (the draft is the serialized definition).
        let again = shared::flows::parse_flow(serde_json::to_value(&def).unwrap()).unwrap();
        assert_eq!(again, def);
    }
}
