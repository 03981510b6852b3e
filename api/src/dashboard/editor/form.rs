//! The flow editor's form and the flow definition JSON, both ways.
//!
//! Every input is named by the API's `param` path of its value (`name`,
//! `steps[1].offers[0].discount.percent_off`, `experiment.variants[2].weight`, ...), so a
//! validation error from [`crate::services::flows::validated`] lands on the field its `param`
//! names, and the form is turned into the very JSON body `PUT /v1/flows/{id}` takes: the
//! dashboard keeps no second copy of the flow rules. Values are coerced by key (numbers,
//! lists, targeting values as JSON when they parse); a value that does not coerce is passed
//! on as text so the API's own error names it. Empty optional fields are left out.
//!
//! Structural edits (add, remove or move a step, reason, offer, rule or variant) are
//! [`apply_op`] on the same JSON.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Idx(usize),
}

/// Largest list index and path depth a form may name (a hostile form cannot make the
/// server allocate more than the API would ever accept).
const MAX_INDEX: usize = 64;
const MAX_DEPTH: usize = 8;

/// The definition's top-level fields: anything else in the form (`csrf`, `op`, `_preview`)
/// is not part of the flow.
const TOP: &[&str] = &[
    "name",
    "language",
    "ranking_score",
    "is_default",
    "targeting",
    "experiment",
    "steps",
    "strings",
];
const INTS: &[&str] = &[
    "ranking_score",
    "holdout_percent",
    "weight",
    "amount_off",
    "duration_in_months",
    "months",
    "days",
];
const LISTS: &[&str] = &["reason_codes", "offer_ids"];
const OPTIONAL: &[&str] = &[
    "placeholder",
    "body",
    "description",
    "cta",
    "follow_up",
    "currency",
    "duration",
    "coupon_id",
    "behavior",
    "proration",
];
/// Offer parameter objects, one per offer type (the one of the selected type is kept).
pub const OFFER_PARAMS: &[&str] = &[
    "discount",
    "pause",
    "plan_change",
    "trial_extension",
    "redirect",
    "custom",
];

/// `steps[0].offers[1].title` → `[steps, 0, offers, 1, title]`; `None` when malformed or
/// beyond the bounds above.
pub fn parse_path(p: &str) -> Option<Vec<Seg>> {
    if p.is_empty() || p.len() > 200 {
        return None;
    }
    let mut out = Vec::new();
    for part in p.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        out.push(Seg::Key(key.to_string()));
        while !rest.is_empty() {
            let end = rest.find(']')?;
            let n: usize = rest.get(1..end)?.parse().ok()?;
            if !rest.starts_with('[') || n >= MAX_INDEX {
                return None;
            }
            out.push(Seg::Idx(n));
            rest = &rest[end + 1..];
        }
    }
    (out.len() <= MAX_DEPTH).then_some(out)
}

/// The form's pairs as a flow definition (see the module docs).
pub fn to_definition(pairs: &[(String, String)]) -> Value {
    let mut root = Value::Object(Map::new());
    for (k, v) in pairs {
        let Some(path) = parse_path(k) else { continue };
        let Some(Seg::Key(top)) = path.first() else {
            continue;
        };
        if !TOP.contains(&top.as_str()) {
            continue;
        }
        let Some(Seg::Key(last)) = path.iter().rev().find(|s| matches!(s, Seg::Key(_))) else {
            continue;
        };
        let value = if path.len() == 1 && top == "strings" {
            Some(strings_value(v))
        } else {
            coerce(last, v)
        };
        if let Some(value) = value {
            set(&mut root, &path, value);
        }
    }
    normalize(&mut root);
    root
}

/// `key = value` lines (the UI string overrides).
fn strings_value(raw: &str) -> Value {
    let mut m = Map::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Value::Object(m)
}

fn coerce(key: &str, raw: &str) -> Option<Value> {
    let t = raw.trim();
    if LISTS.contains(&key) {
        let items: Vec<Value> = t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
            .collect();
        return (!items.is_empty()).then_some(Value::Array(items));
    }
    if INTS.contains(&key) {
        if t.is_empty() {
            return None;
        }
        return Some(match t.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => Value::String(t.to_string()),
        });
    }
    match key {
        "percent_off" => {
            if t.is_empty() {
                return None;
            }
            Some(match t.parse::<f64>() {
                Ok(f) if f.is_finite() => json!(f),
                _ => Value::String(t.to_string()),
            })
        }
        "is_default" => Some(Value::Bool(matches!(t, "on" | "true"))),
        "value" | "custom" => {
            if t.is_empty() {
                return None;
            }
            Some(serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
        }
        k if OPTIONAL.contains(&k) && t.is_empty() => None,
        _ => Some(Value::String(t.to_string())),
    }
}

fn set(root: &mut Value, path: &[Seg], value: Value) {
    let mut cur = root;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let next_is_idx = matches!(path.get(i + 1), Some(Seg::Idx(_)));
        let empty = || {
            if next_is_idx {
                Value::Array(vec![])
            } else {
                Value::Object(Map::new())
            }
        };
        match seg {
            Seg::Key(k) => {
                if !cur.is_object() {
                    *cur = Value::Object(Map::new());
                }
                let m = cur.as_object_mut().expect("an object");
                if last {
                    m.insert(k.clone(), value);
                    return;
                }
                cur = m.entry(k.clone()).or_insert_with(empty);
            }
            Seg::Idx(n) => {
                if !cur.is_array() {
                    *cur = Value::Array(vec![]);
                }
                let a = cur.as_array_mut().expect("an array");
                while a.len() <= *n {
                    a.push(Value::Null);
                }
                if last {
                    a[*n] = value;
                    return;
                }
                if a[*n].is_null() {
                    a[*n] = empty();
                }
                cur = &mut a[*n];
            }
        }
    }
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Array(a) => {
            a.retain(|x| !x.is_null());
            a.iter_mut().for_each(drop_nulls);
        }
        Value::Object(m) => m.values_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn normalize(root: &mut Value) {
    // Targeting values and custom offer payloads are free JSON: gaps are dropped elsewhere.
    drop_nulls(root);
    let m = root.as_object_mut().expect("an object");
    m.entry("steps").or_insert_with(|| Value::Array(vec![]));
    if let Some(exp) = m.get_mut("experiment") {
        let on = exp.get("enabled").and_then(Value::as_str) == Some("on");
        if let Some(e) = exp.as_object_mut() {
            e.remove("enabled");
        }
        if !on {
            m.remove("experiment");
        }
    }
    let Some(Value::Array(steps)) = m.get_mut("steps") else {
        return;
    };
    for step in steps.iter_mut().filter_map(Value::as_object_mut) {
        if step.get("type").and_then(Value::as_str) != Some("offer") {
            continue;
        }
        if step.get("title").and_then(Value::as_str) == Some("") {
            step.remove("title");
        }
        let Some(Value::Array(offers)) = step.get_mut("offers") else {
            continue;
        };
        for offer in offers.iter_mut().filter_map(Value::as_object_mut) {
            let kind = offer
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            for p in OFFER_PARAMS {
                if *p != kind {
                    offer.remove(*p);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Structural edits

/// A new step of `kind` (its id unique among `steps`).
fn new_step(kind: &str, steps: &[Value]) -> Option<Value> {
    let id = unique_id(kind, steps, "id");
    Some(match kind {
        "survey" => json!({ "id": id, "type": "survey", "title": "Why are you canceling?",
            "reasons": [{ "code": "too_expensive", "label": "It is too expensive" }] }),
        "feedback" => {
            json!({ "id": id, "type": "feedback", "title": "Anything we could do better?" })
        }
        "offer" => json!({ "id": id, "type": "offer", "offers": [new_offer(&[])] }),
        "confirm" => json!({ "id": id, "type": "confirm", "title": "Confirm your cancellation" }),
        _ => return None,
    })
}

fn new_offer(offers: &[Value]) -> Value {
    json!({ "id": unique_id("offer", offers, "id"), "type": "discount", "title": "25 % off for 3 months",
        "description": "", "discount": { "percent_off": 25, "duration": "repeating", "duration_in_months": 3 } })
}

/// `base`, `base_2`, `base_3`, … : the first not yet used as `field` in `items`.
fn unique_id(base: &str, items: &[Value], field: &str) -> String {
    let used = |c: &str| {
        items
            .iter()
            .any(|v| v.get(field).and_then(Value::as_str) == Some(c))
    };
    if !used(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|c| !used(c))
        .expect("an unused id")
}

fn get_mut<'a>(root: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = root;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str())?,
            Seg::Idx(n) => cur.get_mut(*n)?,
        };
    }
    Some(cur)
}

/// Applies one structural edit named by the form's `op` button:
/// `add_step:<kind>`, `add:<list path>` (`targeting`, `experiment.variants`,
/// `steps[i].reasons`, `steps[i].offers`), `remove:<item path>`, `up:<item path>`,
/// `down:<item path>`. Unknown or out-of-range edits are an error (nothing changes).
pub fn apply_op(root: &mut Value, op: &str) -> Result<(), &'static str> {
    let (verb, arg) = op.split_once(':').ok_or("unknown edit")?;
    if verb == "add_step" {
        let steps = root
            .get_mut("steps")
            .and_then(Value::as_array_mut)
            .ok_or("no steps")?;
        let step = new_step(arg, steps).ok_or("unknown step type")?;
        // New steps go before the confirmation (nothing after it is shown).
        let at = if arg == "confirm" {
            steps.len()
        } else {
            steps
                .iter()
                .position(|s| s.get("type").and_then(Value::as_str) == Some("confirm"))
                .unwrap_or(steps.len())
        };
        steps.insert(at, step);
        return Ok(());
    }
    let path = parse_path(arg).ok_or("unknown edit")?;
    if verb == "add" {
        let Some(Seg::Key(list)) = path.last() else {
            return Err("unknown edit");
        };
        if arg == "experiment.variants" && root.get("experiment").is_none() {
            root["experiment"] = json!({ "holdout_percent": 10, "variants": [] });
        }
        let target = get_mut(root, &path);
        let target = match target {
            Some(t) => t,
            None if list == "targeting" => {
                root["targeting"] = json!([]);
                get_mut(root, &path).ok_or("unknown edit")?
            }
            None => return Err("unknown edit"),
        };
        if target.is_null() {
            *target = json!([]);
        }
        let items = target.as_array_mut().ok_or("not a list")?;
        let item = match list.as_str() {
            "targeting" => json!({ "attribute": "plan", "op": "eq", "value": "" }),
            "variants" => json!({ "key": unique_id("variant", items, "key"), "weight": 50 }),
            "reasons" => json!({ "code": unique_id("reason", items, "code"), "label": "" }),
            "offers" => new_offer(items),
            _ => return Err("unknown edit"),
        };
        if items.len() >= MAX_INDEX {
            return Err("too many items");
        }
        items.push(item);
        return Ok(());
    }
    let (Some(Seg::Idx(i)), parent) = (path.last().cloned(), &path[..path.len() - 1]) else {
        return Err("unknown edit");
    };
    let items = get_mut(root, parent)
        .and_then(Value::as_array_mut)
        .ok_or("unknown edit")?;
    if i >= items.len() {
        return Err("no such item");
    }
    match verb {
        "remove" => {
            items.remove(i);
        }
        "up" if i > 0 => items.swap(i, i - 1),
        "down" if i + 1 < items.len() => items.swap(i, i + 1),
        "up" | "down" => {}
        _ => return Err("unknown edit"),
    }
    Ok(())
}

/// A flow to start from: a survey, a discount offer and the confirmation.
pub fn starter(name: &str) -> Value {
    json!({
        "name": name, "language": "en",
        "steps": [
            { "id": "survey", "type": "survey", "title": "Why are you canceling?", "reasons": [
                { "code": "too_expensive", "label": "It is too expensive" },
                { "code": "missing_features", "label": "It is missing features I need" },
                { "code": "not_using", "label": "I am not using it enough" } ] },
            { "id": "offers", "type": "offer", "offers": [
                { "id": "discount", "type": "discount", "title": "25 % off for 3 months",
                  "description": "Stay and pay less while you decide.",
                  "discount": { "percent_off": 25, "duration": "repeating", "duration_in_months": 3 } } ] },
            { "id": "confirm", "type": "confirm", "title": "Confirm your cancellation" }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paths_parse_and_hostile_ones_are_refused() {
        assert_eq!(
            parse_path("steps[1].offers[0].title").unwrap(),
            vec![
                Seg::Key("steps".into()),
                Seg::Idx(1),
                Seg::Key("offers".into()),
                Seg::Idx(0),
                Seg::Key("title".into())
            ]
        );
        for bad in [
            "",
            "steps[",
            "steps[x]",
            "steps[99999999]",
            "steps[1]x",
            ".name",
            "a.b.c.d.e.f.g.h.i",
            "na me",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_form_becomes_the_apis_definition() {
        let def = to_definition(&pairs(&[
            ("csrf", "x"),
            ("op", "save"),
            ("name", " Main "),
            ("language", "en"),
            ("ranking_score", "5"),
            ("is_default", "on"),
            ("strings", "title = Before you go\n\nclose=Close"),
            ("targeting[0].attribute", "mrr_cents"),
            ("targeting[0].op", "gte"),
            ("targeting[0].value", "1000"),
            ("targeting[1].attribute", "plan"),
            ("targeting[1].op", "in"),
            ("targeting[1].value", r#"["pro","team"]"#),
            ("experiment.enabled", "on"),
            ("experiment.holdout_percent", "10"),
            ("experiment.variants[0].key", "a"),
            ("experiment.variants[0].weight", "50"),
            ("experiment.variants[0].offer_ids", "d1, p1"),
            ("steps[0].id", "s"),
            ("steps[0].type", "survey"),
            ("steps[0].title", "Why?"),
            ("steps[0].reasons[0].code", "price"),
            ("steps[0].reasons[0].label", "Price"),
            ("steps[0].reasons[0].follow_up", ""),
            ("steps[1].id", "o"),
            ("steps[1].type", "offer"),
            ("steps[1].title", ""),
            ("steps[1].offers[0].id", "d1"),
            ("steps[1].offers[0].type", "discount"),
            ("steps[1].offers[0].title", "20 %"),
            ("steps[1].offers[0].reason_codes", "price"),
            ("steps[1].offers[0].discount.percent_off", "20"),
            ("steps[1].offers[0].discount.duration", "once"),
            ("steps[1].offers[0].pause.months", "2"),
            ("steps[1].offers[2].id", "p1"),
            ("steps[1].offers[2].type", "pause"),
            ("steps[1].offers[2].title", "Pause"),
            ("steps[1].offers[2].pause.months", "x2"),
            ("steps[1].offers[2].discount.percent_off", "20"),
        ]));
        assert_eq!(
            def,
            json!({
                "name": "Main", "language": "en", "ranking_score": 5, "is_default": true,
                "strings": { "title": "Before you go", "close": "Close" },
                "targeting": [
                    { "attribute": "mrr_cents", "op": "gte", "value": 1000 },
                    { "attribute": "plan", "op": "in", "value": ["pro", "team"] } ],
                "experiment": { "holdout_percent": 10, "variants": [ { "key": "a", "weight": 50, "offer_ids": ["d1", "p1"] } ] },
                "steps": [
                    { "id": "s", "type": "survey", "title": "Why?", "reasons": [ { "code": "price", "label": "Price" } ] },
                    { "id": "o", "type": "offer", "offers": [
                        { "id": "d1", "type": "discount", "title": "20 %", "reason_codes": ["price"],
                          "discount": { "percent_off": 20.0, "duration": "once" } },
                        // The gap at offers[1] is closed; a value that is not a number is passed
                        // on as text, for the API to name.
                        { "id": "p1", "type": "pause", "title": "Pause", "pause": { "months": "x2" } } ] }
                ]
            })
        );
        // The experiment is left out unless it is switched on; steps are always there.
        let def = to_definition(&pairs(&[
            ("name", "x"),
            ("experiment.holdout_percent", "10"),
        ]));
        assert_eq!(def, json!({ "name": "x", "steps": [] }));
    }

    #[test]
    fn the_api_names_the_field_of_a_bad_value() {
        let mut def = starter("F");
        def["steps"][1]["offers"][0]["discount"]["percent_off"] = json!("lots");
        let e = crate::services::flows::validated(def).unwrap_err();
        assert_eq!(
            e.body.param.as_deref(),
            Some("steps[1].offers[0].discount.percent_off")
        );
        assert!(crate::services::flows::validated(starter("F")).is_ok());
    }

    #[test]
    fn structural_edits() {
        let mut d = starter("F");
        apply_op(&mut d, "add_step:feedback").unwrap();
        // Before the confirmation, with an id of its own.
        assert_eq!(d["steps"][2]["type"], "feedback");
        assert_eq!(d["steps"][3]["type"], "confirm");
        apply_op(&mut d, "add_step:survey").unwrap();
        assert_eq!(d["steps"][3]["id"], "survey_2");
        apply_op(&mut d, "add:steps[1].offers").unwrap();
        assert_eq!(d["steps"][1]["offers"][1]["id"], "offer");
        apply_op(&mut d, "add:steps[0].reasons").unwrap();
        assert_eq!(d["steps"][0]["reasons"].as_array().unwrap().len(), 4);
        apply_op(&mut d, "up:steps[2]").unwrap();
        assert_eq!(d["steps"][1]["type"], "feedback");
        apply_op(&mut d, "down:steps[1]").unwrap();
        assert_eq!(d["steps"][2]["type"], "feedback");
        apply_op(&mut d, "up:steps[0]").unwrap(); // already first: no change
        assert_eq!(d["steps"][0]["type"], "survey");
        apply_op(&mut d, "remove:steps[2]").unwrap();
        assert_eq!(d["steps"].as_array().unwrap().len(), 4);
        apply_op(&mut d, "add:experiment.variants").unwrap();
        apply_op(&mut d, "add:experiment.variants").unwrap();
        assert_eq!(d["experiment"]["variants"][1]["key"], "variant_2");
        apply_op(&mut d, "add:targeting").unwrap();
        assert_eq!(d["targeting"][0]["attribute"], "plan");
        let before = d.clone();
        for bad in [
            "remove:steps[9]",
            "add:name",
            "explode:steps[0]",
            "add_step:quiz",
            "nonsense",
            "remove:name",
        ] {
            assert!(apply_op(&mut d, bad).is_err(), "{bad}");
        }
        assert_eq!(d, before);
    }
}
