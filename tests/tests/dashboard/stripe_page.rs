//! The Stripe connection settings page.

#[allow(unused_imports)]
use crate::*;
