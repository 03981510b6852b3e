//! Stripe webhook deliveries: which event types are acted on. The webhook route
//! (`POST /v1/webhooks/stripe/{tenant_id}`) stores and enqueues only these (every other type
//! is acknowledged and ignored); the dashboard's Stripe page lists them for the tenant's
//! webhook endpoint.

/// Event types we act on; every other type is acknowledged and ignored.
pub const HANDLED: &[&str] = &[
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "customer.created",
    "customer.updated",
    "invoice.paid",
    "invoice.payment_failed",
];
