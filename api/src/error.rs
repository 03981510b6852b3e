//! The one JSON error envelope of the API, modelled on Stripe's:
//! `{"error": {"type": "...", "code": "...", "message": "...", "param": "..."}}`.
//! 5xx bodies never carry internals; the cause is logged once with the request id.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The class of error.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^(invalid_request|authentication_error|rate_limit_error|api_error)$")]
    pub kind: &'static str,
    /// A stable machine-readable code (e.g. `missing_field`, `route_not_found`).
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// The request field the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// The one error envelope every 4xx and 5xx JSON answer uses: `{"error": {...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after: Option<u64>,
    /// Internal cause (logged, never sent).
    pub source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                kind,
                code: code.to_string(),
                message: message.into(),
                param: None,
            },
            retry_after: None,
            source: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.body.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", code, message)
    }

    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid("parameter_invalid", message).with_param(param)
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            code,
            message,
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            &format!("{what}_not_found"),
            format!("No such {what}."),
        )
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request", code, message)
    }

    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", code, message).with_retry_after(1)
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            "Something went wrong on our side; it has been logged.",
        );
        e.source = Some(source.into());
        e
    }

    /// The envelope for a bare status (used by the fallback that wraps non-JSON errors).
    pub fn for_status(status: StatusCode) -> Self {
        let (kind, code, msg) = match status.as_u16() {
            404 => ("invalid_request", "route_not_found", "No such route."),
            405 => (
                "invalid_request",
                "method_not_allowed",
                "This route does not accept that method.",
            ),
            408 => (
                "invalid_request",
                "request_timeout",
                "The request took too long to arrive.",
            ),
            413 => (
                "invalid_request",
                "payload_too_large",
                "The request body is too large.",
            ),
            415 => (
                "invalid_request",
                "unsupported_media_type",
                "Send JSON with Content-Type: application/json.",
            ),
            429 => (
                "rate_limit_error",
                "rate_limited",
                "Too many requests; retry after the given delay.",
            ),
            503 => (
                "api_error",
                "unavailable",
                "The service is temporarily unavailable; retry shortly.",
            ),
            s if s >= 500 => (
                "api_error",
                "internal_error",
                "Something went wrong on our side; it has been logged.",
            ),
            _ => (
                "invalid_request",
                "invalid_request",
                "The request is invalid.",
            ),
        };
        Self::new(status, kind, code, msg)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        use shared::db::DbErrorExt;
        match &e {
            sqlx::Error::RowNotFound => ApiError::not_found("object"),
            _ if e.is_unique_violation() => ApiError::conflict(
                "already_exists",
                "An object with these identifiers already exists.",
            ),
            _ if e.is_foreign_key_violation() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "invalid_reference",
                "The request refers to an object that does not exist.",
            ),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                let mut err = ApiError::unavailable(
                    "database_unavailable",
                    "The database is unavailable; retry shortly.",
                );
                err.source = Some(e.into());
                err
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<jobs::QueueError> for ApiError {
    fn from(e: jobs::QueueError) -> Self {
        let mut err = ApiError::unavailable(
            "queue_unavailable",
            "The job queue is unavailable; retry shortly.",
        );
        err.source = Some(e.into());
        err
    }
}

impl From<jobs::ops::OpsError> for ApiError {
    fn from(e: jobs::ops::OpsError) -> Self {
        match e {
            jobs::ops::OpsError::UnknownQueue(_) => ApiError::not_found("queue"),
            jobs::ops::OpsError::Queue(q) => q.into(),
            jobs::ops::OpsError::Db(d) => d.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(src) = &self.source {
            if self.status.is_server_error() {
                tracing::error!(status = self.status.as_u16(), error = %format!("{src:#}"), "request failed");
            }
        }
        let mut res = (self.status, Json(ErrorEnvelope { error: self.body })).into_response();
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}
