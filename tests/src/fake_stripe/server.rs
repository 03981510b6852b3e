//! The server: Stripe's error envelope ([`ApiError`]), the request pipeline every call
//! goes through (log, authentication, content type, injected faults, idempotency key,
//! execution, answer) and the response headers.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{
    fault::{take_fault, Fault},
    helpers::{format_secs, new_id, valid_api_key},
    idempotency::{claim_key, settle, Claim},
    params::decode_form,
    requests::LoggedRequest,
    router::execute,
    store::{lock, Shared},
    API_VERSION,
};

/// A Stripe-shaped error answer.
#[derive(Debug, Clone)]
pub(super) struct ApiError {
    pub(super) status: u16,
    pub(super) kind: &'static str,
    pub(super) code: Option<String>,
    pub(super) message: String,
    pub(super) param: Option<String>,
}

impl ApiError {
    pub(super) fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    pub(super) fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    pub(super) fn unknown_param(name: &str) -> Self {
        Self::invalid(format!("Received unknown parameter: {name}"), Some(name))
            .with_code("parameter_unknown")
    }

    pub(super) fn missing(kind: &str, id: &str) -> Self {
        Self {
            status: 404,
            ..Self::invalid(format!("No such {kind}: '{id}'"), Some("id"))
        }
        .with_code("resource_missing")
    }

    pub(super) fn body(&self) -> Value {
        json!({"error": {
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }})
    }
}

pub(super) type ApiResult = Result<Value, ApiError>;

pub(super) struct Request {
    pub(super) method: Method,
    pub(super) path: String,
    /// Query and form parameters together (Stripe reads both).
    pub(super) params: Vec<(String, String)>,
}

pub(super) async fn handle(
    State(store): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_id("req");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = uri.path().to_string();
    let query = decode_form(uri.query().unwrap_or("").as_bytes());
    let form = decode_form(&body);
    let idempotency_key = header("idempotency-key");
    let api_key = header("authorization")
        .and_then(|a| a.strip_prefix("Bearer ").map(|k| k.trim().to_string()));
    let log_index = {
        let mut s = lock(&store);
        s.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone().unwrap_or_default(),
            form: form.clone().unwrap_or_default(),
            idempotency_key: idempotency_key.clone(),
            api_key: api_key.clone(),
            stripe_version: header("stripe-version"),
            request_id: request_id.clone(),
            status: None,
            replayed: false,
        });
        s.log.len() - 1
    };
    let finish = |status: u16, replayed: bool| {
        let mut s = lock(&store);
        if let Some(entry) = s.log.get_mut(log_index) {
            entry.status = Some(status);
            entry.replayed = replayed;
        }
    };
    let respond = |status: u16, body: Value, extra: &[(&'static str, String)]| {
        finish(
            status,
            extra.iter().any(|(k, _)| *k == "idempotent-replayed"),
        );
        reply(status, body, &request_id, extra)
    };

    // Authentication, content type and encoding come first, as at Stripe.
    let Some(api_key) = api_key.filter(|k| valid_api_key(k)) else {
        let e = ApiError {
            status: 401,
            ..ApiError::invalid(
                "You did not provide a valid API key. Provide it as a Bearer token.",
                None,
            )
        };
        return respond(401, e.body(), &[]);
    };
    if !body.is_empty()
        && !header("content-type")
            .unwrap_or_default()
            .starts_with("application/x-www-form-urlencoded")
    {
        let e = ApiError::invalid(
            "Invalid request: Stripe takes application/x-www-form-urlencoded bodies.",
            None,
        );
        return respond(400, e.body(), &[]);
    }
    let (Some(query), Some(form)) = (query, form) else {
        let e = ApiError::invalid("Invalid form encoding.", None);
        return respond(400, e.body(), &[]);
    };
    let mut params = query;
    params.extend(form);
    let req = Request {
        method: method.clone(),
        path: path.clone(),
        params,
    };

    let fault = take_fault(&store, &method, &path);
    if let Some(Fault::Status429 { retry_after }) = &fault {
        let e = ApiError {
            status: 429,
            kind: "invalid_request_error",
            code: Some("rate_limit".into()),
            message: "Too many requests hit the API too quickly.".into(),
            param: None,
        };
        let mut extra = vec![("stripe-should-retry", "true".to_string())];
        if let Some(d) = retry_after {
            extra.push(("retry-after", format_secs(*d)));
        }
        return respond(429, e.body(), &extra);
    }
    let hang = lock(&store).hang.unwrap_or(Duration::from_secs(30));

    let mutating = method == Method::POST || method == Method::DELETE;
    let mut in_flight = match (mutating, &idempotency_key) {
        (true, Some(key)) => match claim_key(&store, &req, &api_key, key) {
            Claim::Claimed(guard) => Some(guard),
            Claim::Answer(status, body, extra) => return respond(status, body, &extra),
        },
        _ => None,
    };

    let server_error = || {
        ApiError {
            status: 500,
            kind: "api_error",
            code: None,
            message: "An unknown error occurred on Stripe's end (injected by the fake).".into(),
            param: None,
        }
        .body()
    };
    let outcome = |result: ApiResult| match result {
        Ok(body) => (200, body),
        Err(e) => (e.status, e.body()),
    };
    let (status, body) = match fault {
        Some(Fault::Status500) => (500, server_error()),
        Some(Fault::Status400 { code, message }) => (
            400,
            ApiError::invalid(message, None).with_code(&code).body(),
        ),
        Some(Fault::Timeout) => {
            tokio::time::sleep(hang).await;
            // Never executed: release the key unsaved.
            drop(in_flight.take());
            (500, server_error())
        }
        Some(Fault::Status500AfterApplying) => match execute(&store, &req) {
            Ok(_) => (500, server_error()),
            Err(e) => (e.status, e.body()),
        },
        Some(Fault::TimeoutAfterApplying) => {
            let (status, body) = outcome(execute(&store, &req));
            settle(in_flight.take(), status, &body, &request_id);
            tokio::time::sleep(hang).await;
            (status, body)
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            outcome(execute(&store, &req))
        }
        Some(Fault::Held(gate)) => {
            gate.pass().await;
            outcome(execute(&store, &req))
        }
        Some(Fault::Status429 { .. }) | None => outcome(execute(&store, &req)),
    };
    settle(in_flight, status, &body, &request_id);
    respond(status, body, &[])
}

pub(super) fn reply(
    status: u16,
    body: Value,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        "request-id",
        HeaderValue::from_str(request_id).expect("ascii id"),
    );
    h.insert("stripe-version", HeaderValue::from_static(API_VERSION));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    resp
}
