//! Issue 2: tenants and keys, auth failure modes, error envelope, request ids,
//! health/readiness, metrics, OpenAPI.

use std::time::Duration;

use harness::{count, Env, TestApp, ThrowawayRedis};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::tenants::{KeyKind, Mode};

fn assert_envelope(body: &Value, code: &str) {
    let e = &body["error"];
    assert!(e.is_object(), "no error envelope: {body}");
    assert_eq!(e["code"], code, "{body}");
    assert!(e["type"].is_string() && e["message"].is_string(), "{body}");
}

#[tokio::test]
async fn tenant_creation_by_ops_returns_four_keys_stored_hashed() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(app.ops_token())
        .json(&json!({ "name": "ACME" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    let mut prefixes: Vec<String> = keys
        .iter()
        .map(|k| k["key"].as_str().unwrap()[..8].to_string())
        .collect();
    prefixes.sort();
    assert_eq!(prefixes, ["pk_live_", "pk_test_", "sk_live_", "sk_test_"]);
    // Stored hashed: the plaintext appears nowhere in the table.
    let sk = keys
        .iter()
        .find(|k| k["kind"] == "secret" && k["mode"] == "test")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM api_keys WHERE encode(key_hash, 'escape') LIKE '%' || $1 || '%' OR display = $1")
        .bind(&sk)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // The key works.
    let me: Value = app
        .client
        .get(app.url("/v1/tenant"))
        .bearer_auth(&sk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"]["name"], "ACME");
    assert_eq!(me["mode"], "test");
}

#[tokio::test]
async fn cli_creates_a_tenant_and_prints_its_keys() {
    let env = Env::new().await;
    let (ok, out) = env.api_cli(&["tenant", "create", "--name", "CLI Co"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    for p in ["sk_test_", "pk_test_", "sk_live_", "pk_live_"] {
        assert!(
            keys.iter().any(|k| k.starts_with(p)),
            "{p} missing in {out}"
        );
    }
    let (ok, out) = env.api_cli(&["tenant", "list"]);
    assert!(ok && out.contains("CLI Co"), "{out}");
}

#[tokio::test]
async fn every_auth_failure_is_a_401_envelope() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("A").await;
    let url = app.url("/v1/tenant");
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing_api_key"),
        (Some("Basic abc".into()), "malformed_api_key"),
        (Some("Bearer ".into()), "malformed_api_key"),
        (Some("Bearerx abc".into()), "malformed_api_key"),
        (Some(format!("Token {sk}")), "malformed_api_key"),
        (Some("Bearer not-a-key".into()), "malformed_api_key"),
        (
            Some(format!("Bearer sk_test_{}", "x".repeat(32))),
            "invalid_api_key",
        ),
        (
            Some(format!(
                "Bearer {}",
                t.key(KeyKind::Publishable, Mode::Test)
            )),
            "secret_key_required",
        ),
    ];
    // The scheme is case-insensitive (RFC 9110): these all authenticate.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let res = app
            .client
            .get(&url)
            .header("authorization", format!("{scheme}  {sk}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "scheme {scheme:?}");
    }
    for (header, code) in cases {
        let mut req = app.client.get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{code}");
        assert_envelope(&res.json().await.unwrap(), code);
    }
    // Revoked key.
    let keys: Value = app
        .client
        .get(app.url("/v1/keys"))
        .bearer_auth(&sk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "secret")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .client
        .delete(app.url(&format!("/v1/keys/{key_id}")))
        .bearer_auth(&sk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.client.get(&url).bearer_auth(&sk).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_envelope(&res.json().await.unwrap(), "invalid_api_key");
    // Ops endpoints: missing and wrong token.
    let res = app
        .client
        .get(app.url("/v1/ops/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .client
        .get(app.url("/v1/ops/queues"))
        .bearer_auth("wrong-token-xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_envelope(&res.json().await.unwrap(), "invalid_ops_token");
    // A tenant key is not an ops token.
    let live = t.key(KeyKind::Secret, Mode::Live);
    let res = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(live)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotation_issues_a_new_key_and_retires_the_old_one() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Rot").await;
    let old = t.key(KeyKind::Secret, Mode::Live).to_string();
    let res = app
        .client
        .post(app.url("/v1/keys/rotate"))
        .bearer_auth(&old)
        .json(&json!({ "kind": "secret", "grace_seconds": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let new = res.json::<Value>().await.unwrap()["key"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(new.starts_with("sk_live_"));
    assert_eq!(
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&old)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&new)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // With a grace period the previous key keeps working until it ends.
    let res = app
        .client
        .post(app.url("/v1/keys/rotate"))
        .bearer_auth(&new)
        .json(&json!({ "kind": "secret", "grace_seconds": 3600 }))
        .send()
        .await
        .unwrap();
    let newer = res.json::<Value>().await.unwrap()["key"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&new)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&newer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn another_tenants_object_is_404() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    let a_keys: Value = app
        .client
        .get(app.url("/v1/keys"))
        .bearer_auth(a.key(KeyKind::Secret, Mode::Test))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a_key_id = a_keys["data"][0]["id"].as_str().unwrap().to_string();
    let res = app
        .client
        .delete(app.url(&format!("/v1/keys/{a_key_id}")))
        .bearer_auth(b.key(KeyKind::Secret, Mode::Test))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_envelope(&res.json().await.unwrap(), "key_not_found");
    // B's listing never shows A's keys, and A's key still works.
    let b_keys: Value = app
        .client
        .get(app.url("/v1/keys"))
        .bearer_auth(b.key(KeyKind::Secret, Mode::Test))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!b_keys.to_string().contains(&a_key_id));
    let (revoked,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(revoked, 0);
}

#[tokio::test]
async fn bad_bodies_get_the_envelope_and_change_nothing() {
    let mut env = Env::new().await;
    env.set("BODY_LIMIT_BYTES", "1024");
    let app = TestApp::spawn_with(env).await;
    let url = app.url("/v1/tenants");
    let before = count(&app.pool, "SELECT count(*) FROM tenants").await;
    let send = |body: String, ct: Option<&'static str>| {
        let mut r = app
            .client
            .post(&url)
            .bearer_auth(app.ops_token())
            .body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let res = send("{\"name\": ".into(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_envelope(&res.json().await.unwrap(), "malformed_json");
    let res = send(
        "{\"name\": \"x\", \"plan\": \"gold\"}".into(),
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_envelope(&body, "unknown_field");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("plan"),
        "{body}"
    );
    let res = send("{\"name\": 5}".into(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_envelope(&body, "invalid_field");
    assert_eq!(body["error"]["param"], "name");
    let res = send("{\"name\": \"x\"}".into(), Some("text/plain"))
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_envelope(&res.json().await.unwrap(), "unsupported_media_type");
    let res = send("{\"name\": \"x\"}".into(), None).await.unwrap();
    assert_eq!(res.status(), 415);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(5000));
    let res = send(big, Some("application/json")).await.unwrap();
    assert_eq!(res.status(), 413);
    assert_envelope(&res.json().await.unwrap(), "payload_too_large");
    let res = send("{\"name\": \"  \"}".into(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["param"], "name");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM tenants").await,
        before
    );
    // Unknown routes and wrong methods use the envelope too.
    let res = app.client.get(app.url("/v1/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_envelope(&res.json().await.unwrap(), "route_not_found");
    let res = app.client.put(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_envelope(&res.json().await.unwrap(), "method_not_allowed");
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    // Errors carry it too.
    let res = app
        .client
        .get(app.url("/v1/tenant"))
        .header("x-request-id", "req-err-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["x-request-id"], "req-err-1");
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "br");
}

#[tokio::test]
async fn readyz_follows_redis() {
    let mut redis = ThrowawayRedis::start();
    let mut env = Env::new().await;
    env.set("REDIS_URL", redis.url())
        .set("REDIS_TIMEOUT_MS", "1000");
    let app = TestApp::spawn_with(env).await;
    let ready = || async { app.client.get(app.url("/readyz")).send().await.unwrap() };
    assert_eq!(ready().await.status(), 200);
    redis.stop();
    let res = ready().await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_envelope(&body, "not_ready");
    assert_eq!(body["checks"]["redis"], false);
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    redis.start_again();
    // The api's connection reconnects with a backoff; a generous deadline costs nothing.
    let back = harness::wait_until(Duration::from_secs(60), || async {
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(back, "readyz did not recover after Redis came back");
}

#[tokio::test]
async fn readyz_requires_migrations() {
    let env = Env::new().await;
    let pool = env.pool().await;
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn_with(env).await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().await.unwrap()["checks"]["migrations"],
        false
    );
}

#[tokio::test]
async fn metrics_expose_latency_in_flight_and_pools() {
    let app = TestApp::spawn().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("route=\"/healthz\""), "{text}");
    assert!(text.contains("http_requests_in_flight"), "{text}");
    assert!(text.contains("db_pool_connections"), "{text}");
}

/// The document is generated from the handlers (`api/src/routes/openapi.rs`): every route
/// of the routers, path and method, is an operation and nothing else is; every operation has
/// a unique id, says its error statuses (no catch-all `default`), and every JSON answer has
/// a real schema (not a bare `{"type": "object"}`); `servers` is the deployment's address.
#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Every (path, method) routed in a file under routes/ or dashboard/.
    let api = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src");
    let mut src: Vec<String> = Vec::new();
    let mut dirs = vec![
        std::path::Path::new(api).join("routes"),
        std::path::Path::new(api).join("dashboard"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                src.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut routed = std::collections::BTreeSet::new();
    for file in &src {
        let mut rest = file.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(path) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = path.split('"').next().unwrap().to_string();
            // The method router: up to the parenthesis that closes `.route(`.
            let (mut depth, mut end) = (1, 0);
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let methods = &rest[..end];
            for m in ["get", "post", "put", "patch", "delete", "options"] {
                let call = format!("{m}(");
                let found = methods.match_indices(&call).any(|(i, _)| {
                    i == 0
                        || !methods.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && methods.as_bytes()[i - 1] != b'_'
                });
                if found {
                    routed.insert((path.clone(), m.to_string()));
                }
            }
        }
    }
    let mut documented = std::collections::BTreeSet::new();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.insert((path.clone(), method.clone()));
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} repeats");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                !responses.contains_key("default"),
                "{method} {path}: a catch-all default response"
            );
            for (status, r) in responses {
                if let Some(schema) = r.pointer("/content/application~1json/schema") {
                    assert_ne!(
                        schema,
                        &serde_json::json!({"type": "object"}),
                        "{method} {path} {status}: a bare object schema"
                    );
                }
            }
            if path.starts_with("/v1/") && method != "options" {
                assert!(
                    responses.contains_key("503") && responses.keys().any(|s| s.starts_with('4')),
                    "{method} {path}: no error responses"
                );
            }
        }
    }
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes missing from the document"
    );
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented operations that are not routed"
    );
    assert!(
        routed.len() >= 100,
        "only {} operations found",
        routed.len()
    );
    // `servers` is where this deployment answers (PUBLIC_BASE_URL, else the Host).
    let server = doc["servers"][0]["url"].as_str().unwrap();
    assert!(
        app.url("/").starts_with(server),
        "servers names {server}, the api is at {}",
        app.url("/")
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Headers").await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    // API success, API error, unknown route, the widget script, the demo page, probes.
    let reqs = [
        app.client.get(app.url("/v1/tenant")).bearer_auth(&sk),
        app.client.get(app.url("/v1/tenant")),
        app.client.get(app.url("/no/such/route")),
        app.client.get(app.url("/widget.js")),
        app.client.get(app.url("/demo")),
        app.client.get(app.url("/healthz")),
    ];
    for req in reqs {
        let res = req.send().await.unwrap();
        let path = res.url().path().to_string();
        let h = res.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(
            get("referrer-policy"),
            "strict-origin-when-cross-origin",
            "{path}"
        );
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert!(
            get("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        // PUBLIC_BASE_URL is not https here: no HSTS (it would pin plain-HTTP clients out).
        assert!(h.get("strict-transport-security").is_none(), "{path}");
    }
    // Behind TLS (PUBLIC_BASE_URL https), HSTS too.
    let mut env = Env::new().await;
    env.set("PUBLIC_BASE_URL", "https://retention.example.com");
    let tls = TestApp::spawn_with(env).await;
    let res = tls.client.get(tls.url("/healthz")).send().await.unwrap();
    assert_eq!(
        res.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
}
