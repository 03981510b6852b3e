//! Cancel flows: the definition tenants build (survey, feedback, offers, confirmation),
//! its validation with field paths, targeting rules, A/B assignment and guardrails.
//!
//! The concerns live in submodules and are re-exported here, so `shared::flows::X` is the
//! path callers use: `model` (the types), `parse` (JSON with field paths), `validate`
//! (semantic checks), `targeting` (rules and flow choice), `experiment` (A/B assignment)
//! and `render` (guardrails and the customer's view). The tests below exercise them
//! together through the public paths.

mod error;
mod experiment;
mod model;
mod parse;
mod render;
mod targeting;
mod validate;

pub use error::Invalid;
pub use experiment::{assign, bucket};
pub use model::*;
pub use parse::parse_flow;
pub use render::{render_for_customer, Guardrails};
pub use targeting::{choose_flow, Attributes, PublishedFlow};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::HashMap;

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
