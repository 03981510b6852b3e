//! Customers: the stored object, test setup and inspection, `GET /v1/customers/{id}` and
//! its JSON shape.

use serde_json::{json, Value};

use super::{
    helpers::{new_id, now},
    params::decode_segment,
    router::check_get_params,
    server::{ApiError, ApiResult, Request},
    store::{lock, Store},
    FakeStripe,
};

#[derive(Debug, Clone)]
pub(super) struct Customer {
    pub(super) id: String,
    pub(super) email: Option<String>,
    pub(super) created: i64,
}

impl FakeStripe {
    /// A customer (`cus_...`).
    pub fn create_customer(&self, email: &str) -> String {
        let id = new_id("cus");
        lock(&self.store).customers.insert(
            id.clone(),
            Customer {
                id: id.clone(),
                email: Some(email.to_string()),
                created: now(),
            },
        );
        id
    }

    pub fn customer(&self, id: &str) -> Option<Value> {
        lock(&self.store).customers.get(id).map(render_customer)
    }
}

pub(super) fn get_customer(s: &Store, req: &Request, id: &str) -> ApiResult {
    check_get_params(req)?;
    let c = s
        .customers
        .get(&decode_segment(id))
        .ok_or_else(|| ApiError::missing("customer", id))?;
    Ok(render_customer(c))
}

pub(super) fn render_customer(c: &Customer) -> Value {
    json!({
        "id": c.id,
        "object": "customer",
        "email": c.email,
        "name": null,
        "created": c.created,
        "livemode": false,
        "metadata": {},
    })
}
