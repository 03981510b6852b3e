//! Extractors: the JSON body extractor whose rejections use the error envelope, and the
//! authentication extractors (`TenantAuth` for secret keys, `OpsAuth` for the ops token).

use axum::{
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;
use shared::tenants::{KeyIdentity, KeyKind};

use crate::{error::ApiError, AppState};

/// `Json<T>` with envelope rejections: malformed JSON, wrong content type, unknown fields
/// (request types use `deny_unknown_fields`) and oversized bodies (413).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::invalid(
            "malformed_json",
            format!("The body is not valid JSON: {}", inner(&e.body_text())),
        ),
        JsonRejection::JsonDataError(e) => {
            let text = inner(&e.body_text());
            // serde reports "path.to.field: message"; expose the path as `param`.
            let param = text
                .split_once(": ")
                .map(|(p, _)| p.to_string())
                .filter(|p| !p.contains(' ') && p != ".");
            let code = if text.contains("unknown field") {
                "unknown_field"
            } else if text.contains("missing field") {
                "missing_field"
            } else {
                "invalid_field"
            };
            let mut err = ApiError::invalid(code, text.clone());
            if let Some(p) = param {
                err = err.with_param(p);
            } else if let Some(f) = text.split('`').nth(1) {
                err = err.with_param(f);
            }
            err
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::invalid("invalid_body", other.body_text()),
    }
}

fn inner(text: &str) -> String {
    text.trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .trim_start_matches("Failed to parse the request body as JSON: ")
        .to_string()
}

/// The token of an `Authorization` value in the Bearer scheme. Schemes are case-insensitive
/// (RFC 9110 §11.1: `bearer`, `BEARER` and `Bearer` are the same); one or more spaces or tabs
/// separate scheme and token. `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reads `Authorization: Bearer <token>`.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_api_key",
            "Send your key as `Authorization: Bearer <key>`.",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized(
            "malformed_api_key",
            "The Authorization header is not valid text.",
        )
    })?;
    let token = bearer_token(value).ok_or_else(|| {
        ApiError::unauthorized(
            "malformed_api_key",
            "Use the Bearer scheme: `Authorization: Bearer <key>`.",
        )
    })?;
    Ok(token)
}

/// Resolves the bearer key, which must be of `want` kind.
async fn authenticate_key(
    parts: &Parts,
    state: &AppState,
    want: KeyKind,
) -> Result<KeyIdentity, ApiError> {
    let token = bearer(parts)?;
    let (shape, wrong_kind) = match want {
        KeyKind::Secret => (
            "That is not a RetentionOS API key (expected sk_test_… or sk_live_…).",
            ApiError::unauthorized(
                "secret_key_required",
                "This endpoint needs a secret key (sk_…); publishable keys are for the widget.",
            ),
        ),
        KeyKind::Publishable => (
            "That is not a RetentionOS publishable key (pk_test_… or pk_live_…).",
            ApiError::unauthorized(
                "publishable_key_required",
                "The widget uses a publishable key (pk_…); never put a secret key in a browser.",
            ),
        ),
    };
    let Some((kind, _)) = shared::tenants::parse_key_shape(token) else {
        return Err(ApiError::unauthorized("malformed_api_key", shape));
    };
    if kind != want {
        return Err(wrong_kind);
    }
    state
        .auth_cache
        .authenticate(&state.pools.primary, token)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_api_key",
                "The API key is unknown, expired or revoked.",
            )
        })
}

/// A request authenticated with one of the tenant's secret keys (`sk_test_…`/`sk_live_…`).
#[derive(Clone, Copy, Debug)]
pub struct TenantAuth(pub KeyIdentity);

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = authenticate_key(parts, state, KeyKind::Secret).await?;
        tracing::Span::current().record("tenant_id", tracing::field::display(id.tenant_id));
        crate::overload::check_tenant(state, id.tenant_id).await?;
        Ok(TenantAuth(id))
    }
}

/// A request authenticated with the deployment's `OPS_TOKEN`.
#[derive(Clone, Copy, Debug)]
pub struct OpsAuth;

impl FromRequestParts<AppState> for OpsAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if shared::crypto::ct_eq(token.as_bytes(), state.config.ops_token.expose().as_bytes()) {
            Ok(OpsAuth)
        } else {
            Err(ApiError::unauthorized(
                "invalid_ops_token",
                "The ops token is wrong.",
            ))
        }
    }
}

/// A widget request: a publishable key (`pk_…`) and a customer token signed by the tenant
/// (`X-Customer-Token`), from an allowed origin.
#[derive(Clone, Debug)]
pub struct WidgetAuth {
    pub key: KeyIdentity,
    pub claims: shared::widget_token::Claims,
}

impl FromRequestParts<AppState> for WidgetAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = authenticate_key(parts, state, KeyKind::Publishable).await?;
        let mode = key.mode;
        let settings = state
            .settings_cache
            .get(&state.pools.primary, key.tenant_id)
            .await?;
        check_origin(parts, &settings.allowed_origins)?;
        let customer_token = parts
            .headers
            .get("x-customer-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_customer_token",
                    "Send the customer token your backend signed as X-Customer-Token.",
                )
            })?;
        let secrets = state
            .settings_cache
            .signing_secrets(&state.pools.primary, &state.master, key.tenant_id, mode)
            .await?;
        let claims = shared::widget_token::verify(
            customer_token,
            key.tenant_id,
            &secrets,
            chrono::Utc::now().timestamp(),
        )
        .map_err(|e| {
            let code = match e {
                shared::widget_token::TokenError::Expired => "customer_token_expired",
                _ => "invalid_customer_token",
            };
            ApiError::unauthorized(code, e.to_string())
        })?;
        tracing::Span::current().record("tenant_id", tracing::field::display(key.tenant_id));
        crate::overload::check_tenant(state, key.tenant_id).await?;
        Ok(WidgetAuth { key, claims })
    }
}

/// Browsers send `Origin`; it must be the API's own origin or one the tenant allowed.
fn check_origin(parts: &Parts, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(()); // not a browser (server-to-server or a test client)
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host);
    if same_origin || allowed.iter().any(|a| a == origin || a == "*") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "origin_not_allowed",
            format!("Origin {origin} is not in this tenant's allowed_origins."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer k",
            "bearer k",
            "BEARER k",
            "Bearer   k ",
            "Bearer\tk",
        ] {
            assert_eq!(bearer_token(v), Some("k"), "{v:?}");
        }
        for v in ["Bearer", "Bearer ", "Bearerk", "Basic k", "Token k", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
