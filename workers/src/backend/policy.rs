//! Our retry policy for a failed task: which final errors of the service stack are
//! retried on our durable schedule and which are dead-lettered at once.

use apalis::layers::catch_panic::PanicError;
use apalis_core::error::{AbortError, BoxDynError};

use crate::runtime::JobError;

pub(super) enum Failure {
    Permanent(String),
    Transient(String),
}

/// Our policy for the final error of the stack: our `JobError` as the handler returned it;
/// apalis's timeout (`tower::timeout::error::Elapsed`) and caught panic (`AbortError` of a
/// `PanicError`) are transient; any other abort is permanent; anything else (an extractor
/// error) transient.
pub(super) fn classify(e: &BoxDynError) -> Failure {
    if let Some(j) = e.downcast_ref::<JobError>() {
        return match j {
            JobError::Permanent(inner) => Failure::Permanent(format!("permanent: {inner:#}")),
            JobError::Transient(inner) => Failure::Transient(format!("{inner:#}")),
        };
    }
    if e.is::<tower::timeout::error::Elapsed>() {
        return Failure::Transient("timed out".into());
    }
    if let Some(a) = e.downcast_ref::<AbortError>() {
        if let Some(p) = std::error::Error::source(a).and_then(|s| s.downcast_ref::<PanicError>()) {
            return Failure::Transient(format!("handler panicked: {}", p.0));
        }
        return Failure::Permanent(format!("permanent: {a}"));
    }
    Failure::Transient(e.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::backend) fn is_permanent(e: &BoxDynError) -> bool {
        matches!(classify(e), Failure::Permanent(_))
    }

    /// Our policy for what reaches the settle layer: the handler's own verdict, apalis's
    /// timeout and caught panic retried, any other abort dead-lettered.
    #[test]
    fn failures_are_classified_by_our_policy() {
        let permanent: BoxDynError = JobError::permanent(anyhow::anyhow!("4xx")).into();
        let transient: BoxDynError = JobError::transient(anyhow::anyhow!("429")).into();
        let timeout: BoxDynError = tower::timeout::error::Elapsed::new().into();
        let panic: BoxDynError = AbortError::new(PanicError("boom".into())).into();
        let abort: BoxDynError = AbortError::new("do not retry").into();
        let other: BoxDynError = "missing data".into();
        assert!(is_permanent(&permanent));
        assert!(!is_permanent(&transient));
        assert!(!is_permanent(&timeout));
        match classify(&panic) {
            Failure::Transient(m) => assert!(m.contains("handler panicked: boom"), "{m}"),
            Failure::Permanent(m) => panic!("a panic is retried: {m}"),
        }
        assert!(is_permanent(&abort));
        assert!(!is_permanent(&other));
    }
}
