//! What the API does, below HTTP: one module per resource with the reads, the changes and
//! their audit rows, the validation and the rows and constants they share. The HTTP routes
//! (`api::routes`) extract, call a service and answer; the dashboard (`api::dashboard`)
//! calls the same functions, so a page shows and changes exactly what the API would. Nothing
//! here knows a request: callers pass the tenant and mode, the actor and plain values, and
//! get plain values or an [`ApiError`](crate::error::ApiError) back. No module imports
//! `api::routes` but the application's assembly ([`crate::app_for`] merges its router).

pub mod analytics;
pub mod assets;
pub mod audit;
pub mod customers;
pub mod flows;
pub mod keys;
pub mod listings;
pub mod ops;
pub mod sessions;
pub mod settings;
pub mod webhooks;
