//! Cancel sessions and their events (cancel_sessions, session_events, offer_events,
//! churn_reasons): every statement on them, the batched widget write (`record_widget_events`)
//! among them.
