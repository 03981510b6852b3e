//! Personal data: `DELETE /v1/customers/{id}` erases one customer's PII everywhere (keeping
//! anonymised counts), in the key's mode only, audited without the erased id; the retention
//! sweep removes payload copies, feedback and token attributes past their retention.

use std::time::Duration;

use harness::{count, wait_until, TestApp};
use serde_json::{json, Value};
use shared::tenants::{KeyKind, Mode, TenantWithKeys};
use sqlx::PgPool;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);

/// A customer with everything we store about one: a synced user with an email, a session
/// with token attributes and feedback, processed and unprocessed Stripe payload copies.
async fn customer_with_data(app: &TestApp, t: &TenantWithKeys, cus: &str, marker: &str) {
    let sk = t.key(KeyKind::Secret, Mode::Test);
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    sqlx::query(
        "INSERT INTO users (id, tenant_id, mode, external_id, email, plan, attributes)
         VALUES ($1, $2, 'test', $3, $4, 'pro', $5)",
    )
    .bind(Uuid::now_v7())
    .bind(t.tenant.id)
    .bind(cus)
    .bind(format!("{marker}@example.com"))
    .bind(json!({ "nickname": marker }))
    .execute(&app.pool)
    .await
    .unwrap();
    for (processed, n) in [(true, 1), (false, 2)] {
        sqlx::query(
            "INSERT INTO stripe_events (id, tenant_id, mode, event_id, type, object_id, payload, processed_at)
             VALUES ($1, $2, 'test', $3, 'customer.updated', $4, $5, CASE WHEN $6 THEN now() END)",
        )
        .bind(Uuid::now_v7())
        .bind(t.tenant.id)
        .bind(format!("evt_{n}_{}", Uuid::new_v4().simple()))
        .bind(cus)
        .bind(json!({ "data": { "object": { "id": cus, "email": format!("{marker}@example.com") } } }))
        .bind(processed)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let token: Value = app
        .client
        .post(app.url("/v1/widget_tokens"))
        .bearer_auth(sk)
        .json(&json!({ "customer_id": cus, "attributes": { "name": marker } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let session: Value = app
        .client
        .post(app.url("/v1/widget/sessions"))
        .bearer_auth(pk)
        .header("x-customer-token", &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["session_id"].as_str().unwrap().to_string();
    let res = app
        .client
        .post(app.url(&format!("/v1/widget/sessions/{sid}/events")))
        .bearer_auth(pk)
        .header("x-customer-token", &token)
        .json(&json!({
            "client_event_id": Uuid::new_v4().to_string(), "type": "feedback",
            "text": format!("I am {marker}, write to {marker}@example.com"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202, "{}", res.text().await.unwrap());
}

/// Rows of `table` whose text mentions `needle` anywhere.
async fn mentions(pool: &PgPool, table: &str, needle: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} x WHERE x::text LIKE '%' || $1 || '%'"
    )))
    .bind(needle)
    .fetch_one(pool)
    .await
    .unwrap();
    n
}

async fn erase(app: &TestApp, key: &str, customer: &str) -> (u16, Value) {
    let res = app
        .client
        .delete(app.url(&format!("/v1/customers/{customer}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn erasing_a_customer_removes_their_personal_data_everywhere_and_keeps_the_counts() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Privacy Co").await;
    customer_with_data(&app, &t, "cus_erase_me", "annerase").await;
    customer_with_data(&app, &t, "cus_keep_me", "bobkeep").await;
    let tables = ["users", "cancel_sessions", "session_events"];
    for table in tables {
        assert!(
            mentions(&app.pool, table, "annerase").await
                + mentions(&app.pool, table, "cus_erase_me").await
                > 0,
            "{table}"
        );
    }
    let sessions_before = count(&app.pool, "SELECT count(*) FROM cancel_sessions").await;
    let events_before = count(&app.pool, "SELECT count(*) FROM session_events").await;

    // A live key cannot erase test data (and finds nothing).
    let (s, live) = erase(&app, t.key(KeyKind::Secret, Mode::Live), "cus_erase_me").await;
    assert_eq!(s, 200, "{live}");
    assert_eq!(live["erased"], false, "{live}");
    assert_eq!(mentions(&app.pool, "users", "annerase").await, 1);

    let (s, body) = erase(&app, t.key(KeyKind::Secret, Mode::Test), "cus_erase_me").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["erased"], true);
    assert_eq!(
        body["counts"],
        json!({ "users": 1, "sessions": 1, "sessions_ended": 1, "feedback_texts": 1, "stripe_payloads": 1 }),
        "{body}"
    );
    let pseudonym = body["pseudonym"].as_str().unwrap();
    assert!(pseudonym.starts_with("erased_"), "{pseudonym}");
    for table in tables {
        for needle in ["annerase", "cus_erase_me"] {
            assert_eq!(
                mentions(&app.pool, table, needle).await,
                0,
                "{table} still has {needle}"
            );
        }
    }
    // The processed payload copy is redacted; the unprocessed delivery is still needed by
    // its job (the retention sweep redacts it later).
    let (redacted,): (Value,) =
        sqlx::query_as("SELECT payload FROM stripe_events WHERE object_id = 'cus_erase_me' AND processed_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(redacted, json!({ "redacted": "erasure" }));
    assert_eq!(mentions(&app.pool, "stripe_events", "annerase").await, 1);
    // The other customer is untouched; the counts are the same; the session ended.
    assert_eq!(mentions(&app.pool, "users", "bobkeep").await, 1);
    assert_eq!(mentions(&app.pool, "session_events", "bobkeep").await, 1);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM cancel_sessions").await,
        sessions_before
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM session_events").await,
        events_before
    );
    let (outcome, cus): (Option<String>, String) = sqlx::query_as(
        "SELECT outcome, customer_id FROM cancel_sessions WHERE customer_id LIKE 'erased_%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (outcome.as_deref(), cus.as_str()),
        (Some("abandoned"), pseudonym)
    );
    // Audited under the pseudonym; the audit log never names the erased id.
    let audit: Value = app
        .client
        .get(app.url("/v1/audit_events?action=customer.erase"))
        .bearer_auth(t.key(KeyKind::Secret, Mode::Test))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = audit["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert_eq!(rows[0]["target_id"], pseudonym);
    assert_eq!(rows[0]["after"]["users"], 1);
    assert_eq!(mentions(&app.pool, "audit_events", "cus_erase_me").await, 0);
    // Idempotent.
    let (s, again) = erase(&app, t.key(KeyKind::Secret, Mode::Test), "cus_erase_me").await;
    assert_eq!((s, &again["erased"]), (200, &json!(false)), "{again}");
    // Bad ids are a 400.
    let (s, bad) = erase(&app, t.key(KeyKind::Secret, Mode::Test), "cus%00x").await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "customer_id");
}

#[tokio::test]
async fn the_retention_sweep_removes_personal_data_past_its_retention() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Retention Co").await;
    customer_with_data(&app, &t, "cus_old", "oldcarol").await;
    customer_with_data(&app, &t, "cus_new", "newdave").await;
    // Carol's data is old: payloads 40 days, feedback and sessions 400 days.
    for sql in [
        "UPDATE stripe_events SET received_at = now() - interval '40 days' WHERE object_id = 'cus_old'",
        "UPDATE session_events e SET created_at = now() - interval '400 days' FROM cancel_sessions s WHERE s.id = e.session_id AND s.customer_id = 'cus_old'",
        "UPDATE cancel_sessions SET created_at = now() - interval '400 days' WHERE customer_id = 'cus_old'",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    let swept = shared::privacy::sweep(
        &app.pool,
        shared::privacy::Retention {
            stripe_payload_days: 30,
            feedback_days: 365,
            audit_days: 0,
        },
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        swept,
        shared::privacy::Swept {
            stripe_payloads: 1,
            feedback_texts: 1,
            session_attributes: 1,
            audit_events: 0,
        }
    );
    // Only the processed old payload went (the unprocessed one waits for its job).
    assert_eq!(mentions(&app.pool, "stripe_events", "oldcarol").await, 1);
    assert_eq!(mentions(&app.pool, "session_events", "oldcarol").await, 0);
    assert_eq!(mentions(&app.pool, "cancel_sessions", "oldcarol").await, 0);
    for table in ["stripe_events", "session_events", "cancel_sessions"] {
        assert!(mentions(&app.pool, table, "newdave").await > 0, "{table}");
    }
    // The scheduled job does the same through the worker, and is idempotent.
    let w = app.start_worker().await;
    app.env
        .job_client()
        .enqueue(&jobs::RetentionSweep { period: 1 }, Default::default())
        .await
        .unwrap();
    assert!(
        wait_until(PATIENCE, || async {
            count(
                &app.pool,
                "SELECT count(*) FROM scheduler_runs WHERE duty = 'retention' AND finished_at IS NOT NULL AND period = 1",
            )
            .await
                == 1
        })
        .await
    );
    let (detail,): (Value,) =
        sqlx::query_as("SELECT detail FROM scheduler_runs WHERE duty = 'retention' AND period = 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(detail["feedback_texts"], 0, "{detail}");
    w.shutdown().await;
}
