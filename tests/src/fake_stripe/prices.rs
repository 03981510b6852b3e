//! Prices (recurring, one product each): the stored object, test setup and the JSON shape
//! subscriptions embed.

use serde_json::{json, Value};

use super::{helpers::now, store::lock, FakeStripe};

#[derive(Debug, Clone)]
pub(super) struct Price {
    pub(super) id: String,
    pub(super) unit_amount: i64,
    pub(super) currency: String,
    pub(super) interval: String,
    pub(super) created: i64,
}

impl FakeStripe {
    /// A recurring price (`interval`: day, week, month or year); replaces one with that id.
    pub fn create_price(&self, id: &str, unit_amount: i64, currency: &str, interval: &str) {
        assert!(
            matches!(interval, "day" | "week" | "month" | "year"),
            "interval {interval}"
        );
        lock(&self.store).prices.insert(
            id.to_string(),
            Price {
                id: id.to_string(),
                unit_amount,
                currency: currency.to_string(),
                interval: interval.to_string(),
                created: now(),
            },
        );
    }
}

pub(super) fn render_price(p: &Price) -> Value {
    json!({
        "id": p.id,
        "object": "price",
        "active": true,
        "currency": p.currency,
        "unit_amount": p.unit_amount,
        "recurring": {"interval": p.interval, "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring",
        "product": format!("prod_{}", p.id.trim_start_matches("price_")),
        "created": p.created,
        "livemode": false,
    })
}
