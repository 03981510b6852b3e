//! A tenant's Stripe connection and the Stripe events received (stripe_settings,
//! stripe_events): every statement on them.
