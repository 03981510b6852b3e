//! The Stripe subscriptions we mirror (subscriptions): every statement on them.
