//! Safe by default and the audit log: exposed deployments refuse the development secrets,
//! the optional ops listener keeps metrics and the ops API off the public one, the demo page
//! signs tokens only for the demo tenant's demo customers, ops actions are audited and the
//! audit log cannot be rewritten.

use std::time::Duration;

use harness::{wait_until, Env, TestApp};
use jobs::{queues, Probe};
use serde_json::{json, Value};
use shared::tenants::{KeyKind, Mode};

const PATIENCE: Duration = Duration::from_secs(60);
const STRONG_OPS_TOKEN: &str = "3f9a1c0e7b2d48a6905e1f3c7d2b8a40";

#[tokio::test]
async fn an_exposed_api_refuses_to_start_with_development_secrets() {
    let env = Env::new().await;
    // 0.0.0.0 is never bound: the configuration is refused before.
    for (extra, refused) in [
        (vec![("API_ADDR", "0.0.0.0:0")], "MASTER_KEY"),
        (
            vec![
                ("API_ADDR", "0.0.0.0:0"),
                ("MASTER_KEY", "cHJvZHVjdGlvbi1tYXN0ZXIta2V5LTMyLWJ5dGVzISE="),
            ],
            "OPS_TOKEN",
        ),
        (
            vec![
                ("APP_ENV", "production"),
                ("MASTER_KEY", "cHJvZHVjdGlvbi1tYXN0ZXIta2V5LTMyLWJ5dGVzISE="),
                ("OPS_TOKEN", STRONG_OPS_TOKEN),
                ("DEMO_ENABLED", "1"),
            ],
            "DEMO_ENABLED",
        ),
    ] {
        let mut cmd = env.command(&harness::bin_path("rtos-test-api"));
        cmd.arg("serve").envs(extra.iter().copied());
        let out = cmd.output().expect("run api");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(&format!("environment variable {refused} is invalid")),
            "{extra:?}: {stderr}"
        );
    }
}

/// Starts the api with an ops listener; returns (public base, ops base, shutdown).
async fn spawn_split(env: &Env) -> (String, String, tokio::sync::oneshot::Sender<()>) {
    shared::telemetry::init_tracing_or(shared::config::LogFormat::Compact, "warn");
    let _ = shared::telemetry::prometheus();
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (p, o) = (public.local_addr().unwrap(), ops.local_addr().unwrap());
    let state = api::AppState::new(env.config()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        api::serve_split(public, Some(ops), state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (format!("http://{p}"), format!("http://{o}"), tx)
}

#[tokio::test]
async fn the_ops_listener_keeps_metrics_and_the_ops_api_off_the_public_one() {
    let env = Env::new().await;
    let token = env.vars["OPS_TOKEN"].clone();
    let (public, ops, stop) = spawn_split(&env).await;
    let c = reqwest::Client::new();
    let status = |base: &str, path: &str| {
        let req = c.get(format!("{base}{path}")).bearer_auth(&token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Public: probes and the tenant API, never metrics, the ops API or the tenant list.
    assert_eq!(status(&public, "/healthz").await, 200);
    assert_eq!(status(&public, "/readyz").await, 200);
    assert_eq!(
        status(&public, "/v1/tenant").await,
        401,
        "tenant API is public"
    );
    for path in [
        "/metrics",
        "/v1/ops/queues",
        "/v1/tenants",
        "/v1/ops/audit_events",
    ] {
        let res = c
            .get(format!("{public}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "public {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "route_not_found",
            "public {path}: {body}"
        );
    }
    let created = c
        .post(format!("{public}/v1/tenants"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 404, "POST /v1/tenants on public");
    // Ops: metrics, probes, ops API and tenants; nothing of the tenant API.
    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/v1/ops/queues",
        "/v1/tenants",
    ] {
        assert_eq!(status(&ops, path).await, 200, "ops {path}");
    }
    assert_eq!(status(&ops, "/v1/tenant").await, 404, "tenant API on ops");
    assert_eq!(status(&ops, "/widget.js").await, 404, "widget on ops");
    let _ = stop.send(());
}

#[tokio::test]
async fn the_demo_signs_tokens_only_for_the_demo_tenants_demo_customers() {
    let app = TestApp::spawn().await;
    let other = app.create_tenant("Not A Demo").await;
    let pk_other = other.key(KeyKind::Publishable, Mode::Test).to_string();
    let demo: Value = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(app.ops_token())
        .json(&json!({ "name": "Demo Co", "demo": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pk_demo = demo["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "publishable" && k["mode"] == "test")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |pk: &str, customer: Option<&str>| {
        let mut url = format!("{}?pk={pk}", app.url("/demo"));
        if let Some(c) = customer {
            url.push_str(&format!("&customer={c}"));
        }
        let req = app.client.get(url);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };
    // Another tenant's public test key: no token for any of its customers.
    let (s, body) = get(&pk_other, Some("cus_real_customer")).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("not_demo_tenant"), "{body}");
    let (s, body) = get(&pk_other, None).await;
    assert_eq!(s, 403, "{body}");
    // The demo tenant: its demo customers only.
    for bad in [
        "cus_real_customer",
        "cus_demo_",
        "cus_demo_a%20b",
        "cus_demox",
    ] {
        let (s, body) = get(&pk_demo, Some(bad)).await;
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(body.contains("\"param\":\"customer\""), "{bad}: {body}");
    }
    for good in [None, Some("cus_demo"), Some("cus_demo_visitor-7")] {
        let (s, body) = get(&pk_demo, good).await;
        assert_eq!(s, 200, "{good:?}: {body}");
        assert!(body.contains(&pk_demo), "{good:?}");
    }
    // The `demo` command finds the marked tenant, not one that is merely named "Demo".
    app.create_tenant("Demo").await;
    let run = app
        .env
        .command(&harness::bin_path("rtos-test-api"))
        .arg("demo")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(printed["tenant_id"], demo["tenant"]["id"], "{out}");
}

async fn ops_audit(app: &TestApp, query: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/v1/ops/audit_events{query}")))
        .bearer_auth(app.ops_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn dead_letter_actions_are_audited_and_the_audit_log_is_append_only() {
    let app = TestApp::spawn().await;
    let w = app.start_worker().await;
    let id = app
        .env
        .job_client()
        .enqueue_durable(
            &app.pool,
            None,
            &Probe {
                permanent_error: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let q = app.env.queues();
    assert!(
        wait_until(PATIENCE, || async {
            q.stats(queues::OPS).await.unwrap().dead == 1
        })
        .await
    );
    let res = app
        .client
        .post(app.url(&format!("/v1/ops/queues/ops/dead/{id}/retry")))
        .bearer_auth(app.ops_token())
        .header("x-request-id", "req-audit-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        wait_until(PATIENCE, || async {
            q.stats(queues::OPS).await.unwrap().dead == 1
        })
        .await
    );
    let res = app
        .client
        .delete(app.url("/v1/ops/queues/ops/dead"))
        .bearer_auth(app.ops_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // A failed action (unknown task) leaves no row.
    let res = app
        .client
        .post(app.url(&format!(
            "/v1/ops/queues/ops/dead/{}/retry",
            uuid::Uuid::new_v4()
        )))
        .bearer_auth(app.ops_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);

    let page = ops_audit(&app, "").await;
    let rows = page["data"].as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["dead_task.purge", "dead_task.retry"], "{page}");
    let retry = &rows[1];
    assert_eq!(retry["actor_type"], "ops");
    assert_eq!(retry["target_type"], "queue");
    assert_eq!(retry["target_id"], "ops");
    assert_eq!(retry["request_id"], "req-audit-1");
    assert_eq!(retry["ip"], "127.0.0.1");
    assert_eq!(retry["after"]["ids"], json!([id]));
    assert_eq!(rows[0]["after"]["count"], 1);
    // Filters and the cursor.
    let one = ops_audit(&app, "?limit=1").await;
    assert_eq!(one["has_more"], true);
    let next = one["next_cursor"].as_str().unwrap();
    let rest = ops_audit(&app, &format!("?limit=1&cursor={next}")).await;
    assert_eq!(rest["data"][0]["action"], "dead_task.retry", "{rest}");
    assert_eq!(rest["has_more"], false);
    let filtered = ops_audit(&app, "?action=dead_task.retry").await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);

    // Append-only: no update, delete or truncate, even with direct SQL.
    for sql in [
        "UPDATE audit_events SET action = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        harness::count(&app.pool, "SELECT count(*) FROM audit_events").await,
        2
    );
    // Only the retention path deletes, and only what is older than its cutoff.
    let gone =
        shared::audit::purge_older_than(&app.pool, chrono::Utc::now() - chrono::Duration::days(1))
            .await
            .unwrap();
    assert_eq!(gone, 0);
    let gone = shared::audit::purge_older_than(
        &app.pool,
        chrono::Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    assert_eq!(gone, 2);
    w.shutdown().await;
}

#[tokio::test]
async fn a_tenant_lists_only_its_own_audit_events_of_its_keys_mode() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("Audit A").await;
    let b = app.create_tenant("Audit B").await;
    let mut conn = app.pool.acquire().await.unwrap();
    let actor = shared::audit::Actor::system();
    for (tenant, mode, action) in [
        (a.tenant.id, Some(Mode::Test), "a.test"),
        (a.tenant.id, Some(Mode::Live), "a.live"),
        (a.tenant.id, None, "a.tenant_wide"),
        (b.tenant.id, Some(Mode::Test), "b.test"),
    ] {
        shared::audit::record(
            &mut conn,
            &actor,
            shared::audit::Change {
                tenant_id: Some(tenant),
                mode,
                action,
                target_type: "tenant",
                target_id: None,
                before: None,
                after: None,
            },
        )
        .await
        .unwrap();
    }
    let list = |key: String, query: &'static str| {
        let req = app
            .client
            .get(app.url(&format!("/v1/audit_events{query}")))
            .bearer_auth(key);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let actions = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, test) = list(a.key(KeyKind::Secret, Mode::Test).to_string(), "").await;
    assert_eq!(s, 200);
    assert_eq!(actions(&test), ["a.tenant_wide", "a.test"]);
    let (_, live) = list(a.key(KeyKind::Secret, Mode::Live).to_string(), "").await;
    assert_eq!(actions(&live), ["a.tenant_wide", "a.live"]);
    let (_, other) = list(b.key(KeyKind::Secret, Mode::Live).to_string(), "").await;
    assert!(actions(&other).is_empty(), "{other}");
    // A key cannot widen its view.
    let (s, err) = list(a.key(KeyKind::Secret, Mode::Test).to_string(), "?mode=live").await;
    assert_eq!(s, 400, "{err}");
    assert_eq!(err["error"]["param"], "mode");
    let (s, _) = list(a.key(KeyKind::Secret, Mode::Test).to_string(), "?limit=0").await;
    assert_eq!(s, 400);
    let (s, _) = list(
        a.key(KeyKind::Secret, Mode::Test).to_string(),
        "?cursor=nope",
    )
    .await;
    assert_eq!(s, 400);
}

/// Issue 15 item 8: creating a tenant (ops) is audited in the same transaction, with the
/// name and demo flag and never a key or a secret.
#[tokio::test]
async fn tenant_creation_is_audited_without_secrets() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(app.ops_token())
        .header("x-request-id", "req-tenant-1")
        .json(&json!({ "name": "Audited Co", "demo": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["tenant"]["id"].as_str().unwrap().to_string();
    let page = ops_audit(&app, "?action=tenant.create").await;
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{page}");
    let row = &rows[0];
    assert_eq!(row["actor_type"], "ops");
    assert_eq!(row["target_type"], "tenant");
    assert_eq!(row["target_id"], id.as_str());
    assert_eq!(row["tenant_id"], id.as_str());
    assert_eq!(row["request_id"], "req-tenant-1");
    assert_eq!(row["after"], json!({ "name": "Audited Co", "demo": true }));
    let text = row.to_string();
    for k in created["keys"].as_array().unwrap() {
        assert!(
            !text.contains(k["key"].as_str().unwrap()),
            "a key in the audit row"
        );
    }
    let (demo,): (bool,) = sqlx::query_as("SELECT demo FROM tenants WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(demo);
}
