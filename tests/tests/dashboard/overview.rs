//! The overview's charts, churn reasons, offer performance and experiments.

#[allow(unused_imports)]
use crate::*;
