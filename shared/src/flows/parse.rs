//! Parsing a flow from JSON with type errors and unknown fields reported by path.

use serde_json::Value;

use super::error::{invalid, Invalid};
use super::model::{FlowDefinition, Step};

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
