//! The validation error shared by parsing and semantic validation: the offending field by
//! path plus a human-readable message.

/// A validation failure: the offending field by path (e.g. `steps[2].offers[0].discount.percent_off`).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub param: String,
    pub message: String,
}

pub(super) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        param: param.into(),
        message: message.into(),
    }
}
