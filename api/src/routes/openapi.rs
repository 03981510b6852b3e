//! The OpenAPI 3.1 document, served at `/openapi.json`, generated from the code (utoipa, as
//! crates.io does): every handler carries its `#[utoipa::path]` (operation id, parameters,
//! request body, responses) next to its code, every module of routes lists its handlers in a
//! `Doc`, and [`document`] merges them and adds what every operation shares:
//! - the security schemes;
//! - the error answers the layers give any operation, in the one error envelope: 400 for a
//!   query or body that does not parse, 401 on a secured operation, 404 for an unknown path
//!   parameter, 413/415 for JSON bodies, 429 (rate limits) and 503 (overload, a dependency
//!   down) on every `/v1` operation, 503 on every operation (the shedder is in front of all);
//! - `servers` from `PUBLIC_BASE_URL` (the request's own origin when that is unset).
//!
//! Tests: `foundation::openapi_documents_every_route` checks that every route of the router
//! (path and method) is in the document and nothing else is; `tests/api-fuzz/run.sh` runs
//! Schemathesis against a live stack with every check (status codes, bodies and headers
//! conform, schema-valid requests are accepted, invalid ones refused, no 5xx).

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::IntoResponse,
    routing::get,
    Router,
};
use utoipa::{
    openapi::{
        path::Operation,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, OpenApi as Document, RefOr, Response, ResponseBuilder, Server,
    },
    OpenApi,
};

use serde_json::Value;

use crate::{error::ErrorEnvelope, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(get_openapi))
}

#[derive(OpenApi)]
#[openapi(paths(get_openapi))]
pub(crate) struct Doc;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RetentionOS API",
        description = "Churn-retention platform API. Every failure uses one JSON error envelope: {\"error\": {\"type\", \"code\", \"message\", \"param\"?}}. Every response carries x-request-id. Text inputs (JSON bodies, query strings, customer-token claims) must not carry control characters (NUL, U+0001-U+001F, DEL, U+0080-U+009F; tab, LF and CR only in free text): 400 invalid_characters with param naming the field. A field typed string is never null (400 naming it; omit it instead).",
    ),
    components(schemas(ErrorEnvelope)),
    tags(
        (name = "system", description = "Health, readiness, metrics and this document"),
        (name = "tenants", description = "Tenants (the ops token)"),
        (name = "keys", description = "API keys and token signing secrets"),
        (name = "flows", description = "The flow builder"),
        (name = "widget", description = "The embedded cancel flow's calls"),
        (name = "settings", description = "Tenant and Stripe settings"),
        (name = "webhooks", description = "Stripe webhooks"),
        (name = "sessions", description = "Cancel sessions"),
        (name = "listings", description = "Listings with cursor pagination"),
        (name = "analytics", description = "Analytics from the hourly rollups"),
        (name = "audit", description = "The audit log"),
        (name = "customers", description = "Customer data access and erasure"),
        (name = "ops", description = "The job platform's dead letters and probes"),
        (name = "assets", description = "The widget script and the demo page"),
        (name = "dashboard", description = "The tenant dashboard and the ops console (HTML)"),
    )
)]
struct ApiDoc;

/// The whole document, for a deployment reached at `server` (no `servers` entry when empty).
pub fn document(server: &str) -> Document {
    let mut doc = ApiDoc::openapi();
    for part in [
        Doc::openapi(),
        super::health::Doc::openapi(),
        super::tenants::Doc::openapi(),
        super::keys::Doc::openapi(),
        super::ops::Doc::openapi(),
        super::flows::Doc::openapi(),
        super::widget::Doc::openapi(),
        super::settings::Doc::openapi(),
        super::assets::Doc::openapi(),
        super::webhooks::Doc::openapi(),
        super::sessions::Doc::openapi(),
        super::analytics::Doc::openapi(),
        super::listings::Doc::openapi(),
        super::audit::Doc::openapi(),
        super::customers::Doc::openapi(),
        crate::dashboard::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    add_security_schemes(&mut doc);
    add_shared_errors(&mut doc);
    if !server.is_empty() {
        doc.servers = Some(vec![Server::new(server.trim_end_matches('/'))]);
    }
    doc
}

fn add_security_schemes(doc: &mut Document) {
    let bearer = |desc: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(desc))
                .build(),
        )
    };
    let header = |name: &str, desc: &str| {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, desc)))
    };
    let cookie = |name: &str, desc: &str| {
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(name, desc)))
    };
    let c = doc.components.get_or_insert_with(Default::default);
    c.add_security_scheme(
        "secretKey",
        bearer("A tenant secret key: sk_test_… or sk_live_…"),
    );
    c.add_security_scheme("opsToken", bearer("The deployment's OPS_TOKEN"));
    c.add_security_scheme(
        "publishableKey",
        bearer("A publishable key: pk_test_… or pk_live_…"),
    );
    c.add_security_scheme(
        "customerToken",
        header(
            "X-Customer-Token",
            "base64url(JSON claims) + '.' + hex(HMAC-SHA256(token signing secret tsk_…, \
             base64url(JSON claims))); see README. Tokens signed with an sk_ key are refused (401).",
        ),
    );
    c.add_security_scheme(
        "dashboardSession",
        cookie(
            "rtos_session",
            "The dashboard's session cookie (set by POST /app/login).",
        ),
    );
    c.add_security_scheme(
        "opsSession",
        cookie(
            "rtos_ops",
            "The ops console's session cookie (POST /app/ops/login).",
        ),
    );
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorEnvelope",
                    ))))
                    .build(),
            )
            .build(),
    )
}

/// The error answers the layers and extractors give an operation, added where its own
/// `responses` does not already say more.
fn add_shared_errors(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/v1/");
        let has_path_params = path.contains('{');
        let ops: [&mut Option<Operation>; 6] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
            &mut item.options,
        ];
        for op in ops.into_iter().flatten() {
            let json_body = op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"));
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
            let secured = op
                .security
                .as_ref()
                .is_some_and(|s| !s.is_empty() && !path.starts_with("/app"));
            let mut add = |status: &str, desc: &str| {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(desc));
            };
            if json_body || (api && has_query) {
                add("400", "The request does not parse or is invalid");
            }
            if secured {
                add("401", "Missing, unknown or revoked credentials");
            }
            if api && has_path_params {
                add(
                    "404",
                    "No such object for this key (or another tenant's or mode's)",
                );
            }
            if json_body {
                add("413", "The request body is too large");
                add("415", "The body is not sent as application/json");
            }
            // The per-IP (and, on /v1, per-tenant) limits apply to everything but the probes.
            if !matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
                add("429", "Rate limited; retry after the Retry-After delay");
            }
            add(
                "503",
                "Overloaded or a dependency is down; retry after the Retry-After delay",
            );
        }
    }
}

/// The answer of `GET /openapi.json`, in outline (the OpenAPI 3.1 specification has the rest).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct OpenApiDocument {
    #[schema(pattern = "^3\\.1\\.")]
    openapi: String,
    #[schema(value_type = Object)]
    info: Value,
    #[schema(value_type = Option<Vec<Object>>)]
    servers: Option<Vec<Value>>,
    #[schema(value_type = Object)]
    paths: Value,
    #[schema(value_type = Object)]
    components: Value,
}

/// The document as JSON, for this deployment (`PUBLIC_BASE_URL`, or the request's own
/// origin when it is unset).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "get_openapi",
    tag = "system",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = OpenApiDocument))
)]
async fn get_openapi(State(st): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let server = if st.config.public_base_url.is_empty() {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .unwrap_or_default()
    } else {
        st.config.public_base_url.clone()
    };
    let body = document_json(&server).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// [`document`] as JSON, with the text rules of the extractors written into the schemas of
/// what requests send ([`text_patterns`]).
pub fn document_json(server: &str) -> Value {
    let mut doc = serde_json::to_value(document(server)).expect("the OpenAPI document serialises");
    inline_tagged_variants(&mut doc);
    optional_bodies_are_not_null(&mut doc);
    text_patterns(&mut doc);
    doc
}

/// An internally tagged enum (`#[serde(tag = "type")]`, e.g. a flow's `Step`) comes out of
/// utoipa as `oneOf: [{allOf: [{$ref: Variant}, {properties: {type}}]}]`; when the variant
/// refuses unknown fields (`additionalProperties: false`), no value can match both halves.
/// Each such variant is written out whole: the variant's schema with the tag property added.
fn inline_tagged_variants(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    let Some(all) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in all.values_mut() {
        let Some(variants) = schema.get_mut("oneOf").and_then(Value::as_array_mut) else {
            continue;
        };
        for v in variants.iter_mut() {
            let Some([first, tag]) = v.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
            else {
                continue;
            };
            let Some(name) = first
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                continue;
            };
            let mut whole = schemas[name].clone();
            let (Some(props), Some(tag_props)) = (
                whole.get_mut("properties").and_then(Value::as_object_mut),
                tag.get("properties").and_then(Value::as_object),
            ) else {
                continue;
            };
            for (k, p) in tag_props {
                props.insert(k.clone(), p.clone());
            }
            let required = whole
                .as_object_mut()
                .expect("an object schema")
                .entry("required")
                .or_insert_with(|| Value::Array(Vec::new()));
            for r in tag["required"].as_array().into_iter().flatten() {
                if let Some(list) = required.as_array_mut() {
                    list.push(r.clone());
                }
            }
            *v = whole;
        }
    }
}

/// utoipa writes an optional request body (`Option<T>`) as "T or null"; an optional body is
/// absent or a T (`null` is refused like any other non-object), so the null goes.
fn optional_bodies_are_not_null(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let Some(body) = op.get_mut("requestBody") else {
                continue;
            };
            if body.get("required") == Some(&Value::Bool(true)) {
                continue;
            }
            for content in body
                .get_mut("content")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|c| c.values_mut())
            {
                let Some(schema) = content.get_mut("schema") else {
                    continue;
                };
                let not_null: Option<Value> = ["oneOf", "anyOf"].iter().find_map(|k| {
                    let alts = schema.get(*k)?.as_array()?;
                    let rest: Vec<&Value> = alts
                        .iter()
                        .filter(|a| a.get("type") != Some(&Value::String("null".into())))
                        .collect();
                    (rest.len() == 1 && alts.len() == 2).then(|| rest[0].clone())
                });
                if let Some(s) = not_null {
                    *schema = s;
                }
            }
        }
    }
}

/// A character no text input may carry ([`shared::text::is_control`]), as a regex class.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// The same, less tab, LF and CR (allowed in free text, [`shared::text::allowed`]).
const CONTROL_FREE: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// The extractors refuse control characters in every string and key of a JSON body or a
/// query (400 `invalid_characters`; tab, LF and CR only in free-text fields), and the flow
/// validation refuses blank text: every string of a request body's or query's schema that
/// has no pattern of its own gets the pattern saying so (blank refused where it has a
/// `minLength`), and maps get the key rule as `propertyNames`. Free text is decided by the
/// field's name, as [`shared::text::find_control`] decides it.
fn text_patterns(doc: &mut Value) {
    // The component schemas a JSON request body reaches (through $refs, transitively).
    let mut roots: Vec<Value> = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            // Only the API's queries go through `ApiQuery` (the pages' and assets' do not).
            let api = path.starts_with("/v1/");
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(schema) =
                    op.pointer_mut("/requestBody/content/application~1json/schema")
                {
                    patch_schema(schema, "", false, false, &mut roots);
                }
                // (`get_mut`, not indexing: `value["x"]` on a `&mut` inserts a null.)
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for p in params.into_iter().flatten() {
                    if api && p.get("in").and_then(Value::as_str) == Some("query") {
                        let name = p["name"].as_str().unwrap_or_default().to_string();
                        if let Some(schema) = p.get_mut("schema") {
                            patch_schema(schema, &name, false, false, &mut roots);
                        }
                    }
                }
            }
        }
    }
    let mut done = std::collections::HashSet::new();
    while let Some(r) = roots.pop() {
        let Some(name) = r
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        else {
            continue;
        };
        if !done.insert(name.to_string()) {
            continue;
        }
        let mut more = Vec::new();
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            let blank = BLANK_REFUSED.contains(&name);
            patch_schema(schema, "", false, blank, &mut more);
        }
        roots.extend(more);
    }
}

/// The schemas whose required text (`minLength` 1) must not be blank either: the flow
/// definition's names, titles and labels (`shared::flows` validation trims them).
const BLANK_REFUSED: &[&str] = &["FlowDefinition", "Step", "Reason", "Offer", "Discount"];

fn patch_schema(
    schema: &mut Value,
    field: &str,
    free_tree: bool,
    blank: bool,
    refs: &mut Vec<Value>,
) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(r) = obj.get("$ref") {
        refs.push(r.clone());
        return;
    }
    let is_string = match obj.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let plain = !["pattern", "enum", "format", "const"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if is_string && plain {
        let free = free_tree || shared::text::FREE_TEXT_FIELDS.contains(&field);
        let class = if free { CONTROL_FREE } else { CONTROL };
        let blank_refused = blank && obj.get("minLength").and_then(Value::as_u64).unwrap_or(0) > 0;
        let pattern = if blank_refused {
            format!(r"^[^{class}]*[^\s{CONTROL}][^{class}]*$")
        } else {
            format!("^[^{class}]*$")
        };
        obj.insert("pattern".into(), Value::String(pattern));
    }
    for key in ["properties"] {
        if let Some(props) = obj.get_mut(key).and_then(Value::as_object_mut) {
            for (k, sub) in props.iter_mut() {
                let tree = free_tree || shared::text::FREE_TEXT_CONTAINERS.contains(&k.as_str());
                patch_schema(sub, k, tree, blank, refs);
            }
        }
    }
    if let Some(extra) = obj.get_mut("additionalProperties") {
        if extra.is_object() {
            patch_schema(extra, field, free_tree, blank, refs);
            obj.insert(
                "propertyNames".into(),
                serde_json::json!({ "pattern": format!("^[^{CONTROL}]*$") }),
            );
        }
    }
    if let Some(items) = obj.get_mut("items") {
        patch_schema(items, field, free_tree, blank, refs);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for sub in obj
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            patch_schema(sub, field, free_tree, blank, refs);
        }
    }
}
