//! What the editor's template renders: the fields of a flow definition (saved or as the user
//! left it), each named by its API `param` path, with the API's validation error on the
//! field (or the list) its `param` names.

use serde_json::Value;

use super::form::OFFER_PARAMS;

/// One input.
pub struct Field {
    pub name: String,
    /// The element id (`f-` and the name with `[`, `]` and `.` as `-`).
    pub id: String,
    pub label: &'static str,
    pub value: String,
    /// `text`, `number`, `area`, `check` or `select`.
    pub kind: &'static str,
    pub options: &'static [(&'static str, &'static str)],
    pub checked: bool,
    pub hint: &'static str,
    pub err: Option<String>,
}

/// An item of a list (a rule, variant, reason): its path and fields.
pub struct Row {
    pub path: String,
    pub fields: Vec<Field>,
    pub err: Option<String>,
}

/// The parameters of one offer type.
pub struct Group {
    pub kind: &'static str,
    pub label: &'static str,
    pub fields: Vec<Field>,
    pub active: bool,
    pub err: Option<String>,
}

pub struct OfferView {
    pub path: String,
    pub fields: Vec<Field>,
    pub groups: Vec<Group>,
    pub err: Option<String>,
}

pub struct StepView {
    pub path: String,
    pub kind: String,
    pub label: &'static str,
    pub fields: Vec<Field>,
    pub reasons: Vec<Row>,
    pub reasons_err: Option<String>,
    pub offers: Vec<OfferView>,
    pub offers_err: Option<String>,
    pub err: Option<String>,
    pub first: bool,
    pub last: bool,
}

pub struct FlowView {
    pub general: Vec<Field>,
    pub rules: Vec<Row>,
    pub rules_err: Option<String>,
    pub experiment_on: bool,
    pub experiment: Vec<Field>,
    pub variants: Vec<Row>,
    pub experiment_err: Option<String>,
    pub steps: Vec<StepView>,
    pub steps_err: Option<String>,
    pub variant_keys: Vec<String>,
}

pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("es", "Spanish"),
    ("fr", "French"),
    ("de", "German"),
    ("pt", "Portuguese"),
];
const OPS: &[(&str, &str)] = &[
    ("eq", "equals"),
    ("neq", "does not equal"),
    ("in", "is one of"),
    ("not_in", "is none of"),
    ("gt", "greater than"),
    ("gte", "at least"),
    ("lt", "less than"),
    ("lte", "at most"),
    ("exists", "is set"),
];
const OFFER_TYPES: &[(&str, &str)] = &[
    ("discount", "Discount"),
    ("pause", "Pause"),
    ("plan_change", "Plan change"),
    ("trial_extension", "Trial extension"),
    ("redirect", "Redirect"),
    ("custom", "Custom"),
];
const DURATIONS: &[(&str, &str)] = &[
    ("", "(default: once)"),
    ("once", "once"),
    ("repeating", "repeating (months below)"),
    ("forever", "forever"),
];
const BEHAVIORS: &[(&str, &str)] = &[
    ("void", "void invoices"),
    ("keep_as_draft", "keep invoices as drafts"),
    ("mark_uncollectible", "mark invoices uncollectible"),
];
const PRORATIONS: &[(&str, &str)] = &[
    ("create_prorations", "create prorations"),
    ("always_invoice", "invoice at once"),
    ("none", "no proration"),
];

/// The API error being shown: its `param` (list indices of id lists folded into the list's
/// field) and message.
pub struct Error {
    pub param: String,
    pub message: String,
}

impl Error {
    pub fn new(param: &str, message: String) -> Self {
        // `…reason_codes[2]` and `…offer_ids[0]` are items of one comma-separated field;
        // `strings.title` is a line of the strings field.
        let mut p = param.to_string();
        for list in ["reason_codes", "offer_ids"] {
            if let Some(at) = p.find(&format!("{list}[")) {
                p.truncate(at + list.len());
            }
        }
        if p.starts_with("strings.") {
            p = "strings".into();
        }
        Error { param: p, message }
    }
}

pub fn field_id(name: &str) -> String {
    let mut id = String::from("f-");
    for c in name.chars() {
        match c {
            '[' | ']' | '.' if id.ends_with('-') => {}
            '[' | ']' | '.' => id.push('-'),
            c => id.push(c),
        }
    }
    id.trim_end_matches('-').to_string()
}

struct Ctx<'a>(Option<&'a Error>);

impl Ctx<'_> {
    /// The message when the error's param is one of `names`.
    fn at(&self, names: &[&str]) -> Option<String> {
        self.0
            .filter(|e| names.contains(&e.param.as_str()))
            .map(|e| e.message.clone())
    }

    fn field(&self, name: String, label: &'static str, value: &Value) -> Field {
        Field {
            err: self.at(&[&name]),
            id: field_id(&name),
            name,
            label,
            value: text(value),
            kind: "text",
            options: &[],
            checked: false,
            hint: "",
        }
    }
}

impl Field {
    fn kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }
    fn select(mut self, options: &'static [(&'static str, &'static str)]) -> Self {
        self.kind = "select";
        self.options = options;
        self
    }
    fn hint(mut self, hint: &'static str) -> Self {
        self.hint = hint;
        self
    }
}

/// A JSON value as the text of its input.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

impl FlowView {
    pub fn new(def: &Value, err: Option<&Error>) -> FlowView {
        let c = Ctx(err);
        let f = |name: &str, label, key: &str| c.field(name.into(), label, &def[key]);
        let strings = def["strings"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} = {}", text(v)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let mut is_default = f(
            "is_default",
            "Default flow (shown when no other flow's targeting matches)",
            "is_default",
        )
        .kind("check");
        is_default.checked = def["is_default"].as_bool().unwrap_or(false);
        let general = vec![
            f("name", "Name", "name"),
            f("language", "Language", "language").select(LANGUAGES),
            f("ranking_score", "Ranking", "ranking_score")
                .kind("number")
                .hint("When several flows match a customer, the highest ranking wins."),
            is_default,
            c.field("strings".into(), "Text overrides", &Value::String(strings))
                .kind("area")
                .hint("One per line, key = text (keys: title, continue, back, cancel_now, accept_offer, decline_offer, confirm_cancel, saved_title, saved_body, close)."),
        ];
        let rules = items(&def["targeting"])
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let p = format!("targeting[{i}]");
                Row {
                    fields: vec![
                        c.field(format!("{p}.attribute"), "Attribute", &r["attribute"])
                            .hint("plan, mrr_cents, billing_interval, tenure_days, region, language, status, or custom.<name>"),
                        c.field(format!("{p}.op"), "Operator", &r["op"]).select(OPS),
                        c.field(format!("{p}.value"), "Value", &r["value"])
                            .hint("Text, a number, or a JSON list for is one of: [\"pro\", \"team\"]"),
                    ],
                    err: c.at(&[&p]),
                    path: p,
                }
            })
            .collect();
        let exp = &def["experiment"];
        let variants: Vec<Row> = items(&exp["variants"])
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = format!("experiment.variants[{i}]");
                Row {
                    fields: vec![
                        c.field(format!("{p}.key"), "Key", &v["key"]),
                        c.field(format!("{p}.weight"), "Weight", &v["weight"])
                            .kind("number"),
                        c.field(format!("{p}.offer_ids"), "Offers shown", &v["offer_ids"])
                            .hint("Offer ids, comma-separated; empty shows every offer."),
                    ],
                    err: c.at(&[&p]),
                    path: p,
                }
            })
            .collect();
        let steps = items(&def["steps"]);
        let n = steps.len();
        FlowView {
            general,
            rules,
            rules_err: c.at(&["targeting"]),
            experiment_on: exp.is_object(),
            experiment: vec![c
                .field(
                    "experiment.holdout_percent".into(),
                    "Holdout (% of customers who see no offer)",
                    &exp["holdout_percent"],
                )
                .kind("number")],
            variant_keys: items(&exp["variants"])
                .iter()
                .filter_map(|v| v["key"].as_str().map(str::to_owned))
                .collect(),
            variants,
            experiment_err: c.at(&["experiment", "experiment.variants"]),
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, s)| step_view(&c, i, s, i == 0, i + 1 == n))
                .collect(),
            steps_err: c.at(&["steps"]),
        }
    }
}

fn step_view(c: &Ctx<'_>, i: usize, s: &Value, first: bool, last: bool) -> StepView {
    let p = format!("steps[{i}]");
    let kind = s["type"].as_str().unwrap_or_default().to_string();
    let mut fields = vec![c.field(format!("{p}.id"), "Step id", &s["id"])];
    let label = match kind.as_str() {
        "survey" => "Survey",
        "feedback" => "Feedback",
        "offer" => "Offers",
        "confirm" => "Confirmation",
        _ => "Step",
    };
    let title_label = if kind == "offer" {
        "Title (optional)"
    } else {
        "Title"
    };
    fields.push(c.field(format!("{p}.title"), title_label, &s["title"]));
    match kind.as_str() {
        "feedback" => fields.push(c.field(
            format!("{p}.placeholder"),
            "Placeholder (optional)",
            &s["placeholder"],
        )),
        "confirm" => fields.push(
            c.field(format!("{p}.body"), "Text (optional)", &s["body"])
                .kind("area"),
        ),
        _ => {}
    }
    let reasons = items(&s["reasons"])
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let rp = format!("{p}.reasons[{j}]");
            Row {
                fields: vec![
                    c.field(format!("{rp}.code"), "Code", &r["code"]),
                    c.field(format!("{rp}.label"), "Label", &r["label"]),
                    c.field(
                        format!("{rp}.follow_up"),
                        "Follow-up question (optional)",
                        &r["follow_up"],
                    ),
                ],
                err: c.at(&[&rp]),
                path: rp,
            }
        })
        .collect();
    let offers = items(&s["offers"])
        .iter()
        .enumerate()
        .map(|(j, o)| offer_view(c, &format!("{p}.offers[{j}]"), o))
        .collect();
    StepView {
        reasons_err: c.at(&[&format!("{p}.reasons")]),
        offers_err: c.at(&[&format!("{p}.offers")]),
        err: c.at(&[&p, &format!("{p}.type")]),
        path: p,
        kind,
        label,
        fields,
        reasons,
        offers,
        first,
        last,
    }
}

fn offer_view(c: &Ctx<'_>, p: &str, o: &Value) -> OfferView {
    let kind = o["type"].as_str().unwrap_or("discount");
    let g = |k: &str| &o[k];
    let groups = OFFER_PARAMS
        .iter()
        .map(|&k| {
            let gp = format!("{p}.{k}");
            let v = g(k);
            let fl = |name: &str, label, key: &str| c.field(format!("{gp}.{name}"), label, &v[key]);
            let (label, fields) = match k {
                "discount" => (
                    "Discount",
                    vec![
                        fl("percent_off", "Percent off", "percent_off").kind("number"),
                        fl("amount_off", "Amount off (cents)", "amount_off")
                            .kind("number")
                            .hint("Percent off or an amount (with a currency), not both."),
                        fl("currency", "Currency (with an amount)", "currency"),
                        fl("duration", "Duration", "duration").select(DURATIONS),
                        fl(
                            "duration_in_months",
                            "Months (repeating)",
                            "duration_in_months",
                        )
                        .kind("number"),
                        fl(
                            "coupon_id",
                            "Existing Stripe coupon (optional)",
                            "coupon_id",
                        ),
                    ],
                ),
                "pause" => (
                    "Pause",
                    vec![
                        fl("months", "Months", "months").kind("number"),
                        fl("behavior", "While paused", "behavior").select(BEHAVIORS),
                    ],
                ),
                "plan_change" => (
                    "Plan change",
                    vec![
                        fl("price_id", "Stripe price id", "price_id"),
                        fl("proration", "Proration", "proration").select(PRORATIONS),
                    ],
                ),
                "trial_extension" => (
                    "Trial extension",
                    vec![fl("days", "Days", "days").kind("number")],
                ),
                "redirect" => ("Redirect", vec![fl("url", "URL (https)", "url")]),
                _ => (
                    "Custom",
                    vec![c
                        .field(gp.clone(), "Payload (JSON, passed to your webhook)", v)
                        .kind("area")],
                ),
            };
            Group {
                kind: k,
                label,
                fields,
                active: k == kind,
                err: c.at(&[&gp]),
            }
        })
        .collect();
    OfferView {
        fields: vec![
            c.field(format!("{p}.id"), "Offer id", &o["id"]),
            c.field(format!("{p}.type"), "Type", &o["type"])
                .select(OFFER_TYPES),
            c.field(format!("{p}.title"), "Title", &o["title"]),
            c.field(format!("{p}.description"), "Description", &o["description"])
                .kind("area"),
            c.field(format!("{p}.cta"), "Button text (optional)", &o["cta"]),
            c.field(
                format!("{p}.reason_codes"),
                "Only for these reasons",
                &o["reason_codes"],
            )
            .hint("Reason codes, comma-separated; empty shows the offer for every reason."),
        ],
        groups,
        err: c.at(&[p]),
        path: p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_land_on_the_field_their_param_names() {
        let def = super::super::form::starter("F");
        let e = Error::new(
            "steps[1].offers[0].reason_codes[1]",
            "no survey reason has code \"x\"".into(),
        );
        let v = FlowView::new(&def, Some(&e));
        let offer = &v.steps[1].offers[0];
        let f = offer
            .fields
            .iter()
            .find(|f| f.name == "steps[1].offers[0].reason_codes")
            .unwrap();
        assert_eq!(f.err.as_deref(), Some("no survey reason has code \"x\""));
        assert_eq!(f.id, "f-steps-1-offers-0-reason_codes");
        // Nowhere else.
        let others = v
            .steps
            .iter()
            .flat_map(|s| {
                s.fields
                    .iter()
                    .chain(s.offers.iter().flat_map(|o| o.fields.iter()))
            })
            .filter(|f| f.err.is_some())
            .count();
        assert_eq!(others, 1);
        // The discount group is the active one; its percent is shown.
        let g = offer.groups.iter().find(|g| g.active).unwrap();
        assert_eq!(g.kind, "discount");
        assert_eq!(g.fields[0].value, "25");
        let v = FlowView::new(&def, Some(&Error::new("strings.title", "too long".into())));
        assert_eq!(v.general[4].err.as_deref(), Some("too long"));
    }
}
