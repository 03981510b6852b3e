//! Targeting: matching a flow's rules against what we know about a customer and choosing
//! the flow a customer sees among the published ones.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{FlowDefinition, Op, Rule};

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
