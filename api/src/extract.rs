//! Extractors: the JSON body and query extractors whose rejections use the error envelope
//! and which refuse control characters in any text (the one edge check of input hygiene),
//! and the authentication extractors (`TenantAuth` for secret keys, `OpsAuth` for the ops
//! token, `WidgetAuth` for the widget).

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, JsonRejection, QueryRejection},
        FromRequest, FromRequestParts, Query, Request,
    },
    http::{header, request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;
use shared::tenants::{KeyIdentity, KeyKind};

use crate::{error::ApiError, state::AppState};

/// `Json<T>` with envelope rejections: malformed JSON, wrong content type, unknown fields
/// (request types use `deny_unknown_fields`), oversized bodies (413), and text with control
/// characters (400 `invalid_characters` naming the field, see [`check_json_text`]).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(unsupported_media_type());
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&body).map(ApiJson)
    }
}

/// The body as `T` (an empty or all-whitespace body is `T::default()`), with the same checks
/// and envelope as [`ApiJson`]: for routes whose body is optional.
pub fn parse_optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    check_json_text(body)?;
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(v)| v)
        .map_err(json_rejection)
}

/// Refuses a JSON body whose strings or keys carry control characters (NUL, C0 except tab,
/// LF and CR in free text, DEL, C1; see `shared::text`). The raw bytes are scanned first (the
/// widget's hot path pays only that scan); the parsed document is walked to name the field
/// only when the scan finds a candidate.
pub fn check_json_text(body: &[u8]) -> Result<(), ApiError> {
    if !shared::text::json_may_have_control(body) {
        return Ok(());
    }
    // Not JSON: the typed parse reports it.
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    match shared::text::find_control(&v) {
        None => Ok(()),
        Some(path) => Err(invalid_characters(&path)),
    }
}

fn invalid_characters(param: &str) -> ApiError {
    ApiError::invalid(
        "invalid_characters",
        format!(
            "{param} contains a control character (NUL, U+0001-U+001F, DEL or U+0080-U+009F; \
             tab, line feed and carriage return are allowed in free text only)"
        ),
    )
    .with_param(param)
}

/// `application/json` or any `application/*+json`, as axum's `Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    ty.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

fn body_rejection(rej: BytesRejection) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        ApiError::invalid("invalid_body", rej.body_text())
    }
}

/// `Query<T>` with envelope rejections and the same text hygiene as [`ApiJson`]: every
/// decoded name and value of the query string is checked for control characters (`%00` in a
/// listing filter is a 400 naming the parameter, never a database error), then the query is
/// read as `T` (unknown or malformed parameters: 400 `invalid_query`).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query_error =
            |rej: QueryRejection| ApiError::invalid("invalid_query", inner_query(&rej.body_text()));
        let pairs: Vec<(String, String)> = Query::try_from_uri(&parts.uri).map_err(query_error)?.0;
        for (name, value) in &pairs {
            if !shared::text::is_clean(name, false) || !shared::text::is_clean(value, false) {
                return Err(invalid_characters(name));
            }
        }
        let Query(v) = Query::<T>::try_from_uri(&parts.uri).map_err(|rej| {
            let text = inner_query(&rej.body_text());
            let mut err = ApiError::invalid("invalid_query", text.clone());
            if let Some(f) = text.split('`').nth(1) {
                err = err.with_param(f);
            }
            err
        })?;
        Ok(ApiQuery(v))
    }
}

fn inner_query(text: &str) -> String {
    text.trim_start_matches("Failed to deserialize query string: ")
        .to_string()
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
        "unsupported_media_type",
        "Send the body as JSON with Content-Type: application/json.",
    )
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
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

/// Names the tenant and mode on the request's span (the `request` span of the trace layer),
/// so every log line of an authenticated request says whose it is.
pub fn record_tenant(tenant_id: uuid::Uuid, mode: shared::tenants::Mode) {
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(tenant_id));
    span.record("mode", mode.as_str());
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = authenticate_key(parts, state, KeyKind::Secret).await?;
        record_tenant(id.tenant_id, id.mode);
        crate::overload::check_tenant(state, id.tenant_id, id.mode).await?;
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
            .get(&state.pools.primary, key.tenant_id, mode)
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
        record_tenant(key.tenant_id, mode);
        crate::overload::check_tenant(state, key.tenant_id, mode).await?;
        Ok(WidgetAuth { key, claims })
    }
}

/// Whether `origin` is the API's own (the request's `Host`).
pub fn same_origin(origin: &str, headers: &axum::http::HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

/// Browsers send `Origin`; it must be the API's own origin or one the tenant allowed
/// (exactly: `*` is not a wildcard, settings refuse it).
fn check_origin(parts: &Parts, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(()); // not a browser (server-to-server or a test client)
    };
    if same_origin(origin, &parts.headers) || allowed.iter().any(|a| a == origin) {
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
