//! Issue 15 item 6: secrets done properly. Customer tokens are signed with a per-tenant,
//! per-mode signing secret (API secret keys are stored as hashes only), ciphertexts name
//! their master key and are bound to column, tenant and mode, `secrets rotate-master`
//! re-encrypts everything under a new `MASTER_KEY`, and every key or secret change is audited.

use harness::{count, Env, TestApp};
use serde_json::{json, Value};
use shared::{
    crypto::{Aad, Column, MasterKey},
    tenants::{KeyKind, Mode, TenantWithKeys},
    widget_token::{sign, Claims},
};
use uuid::Uuid;

const KEY_A: &str = "oaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaE=";
const KEY_B: &str = "srKysrKysrKysrKysrKysrKysrKysrKysrKysrKysrI=";
const KEY_C: &str = "w8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8M=";
const WHSEC: &str = "whsec_rotation_secret";
const RK: &str = "rk_test_rotation_key_1234";

fn token(t: &TenantWithKeys, customer: &str, secret: &str) -> String {
    sign(
        &Claims {
            tid: t.tenant.id,
            cus: customer.into(),
            sub: None,
            exp: chrono::Utc::now().timestamp() + 600,
            attrs: None,
        },
        secret,
    )
}

/// Starts a widget session (no flow is published: 201 with `flow: null` when the token
/// verifies); returns the status.
async fn start_session(app: &TestApp, pk: &str, token: &str) -> u16 {
    app.client
        .post(app.url("/v1/widget/sessions"))
        .bearer_auth(pk)
        .header("x-customer-token", token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put_stripe(app: &TestApp, t: &TenantWithKeys, mode: Mode, api_key: &str) -> u16 {
    app.client
        .put(app.url("/v1/settings/stripe"))
        .bearer_auth(t.key(KeyKind::Secret, mode))
        .json(&json!({"mode": mode, "api_key": api_key, "webhook_secrets": [WHSEC]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A signed `customer.created` delivery to the tenant's webhook URL; returns the status and
/// the error code (if any).
async fn deliver(app: &TestApp, tenant: Uuid, event_id: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({
        "id": event_id, "object": "event", "type": "customer.created", "livemode": false,
        "created": chrono::Utc::now().timestamp(),
        "data": {"object": {"id": format!("cus_{event_id}"), "object": "customer"}},
        "request": null,
    }))
    .unwrap();
    let sig = shared::stripe::webhook::sign(&body, WHSEC, chrono::Utc::now().timestamp());
    let r = app
        .client
        .post(app.url(&format!("/v1/webhooks/stripe/{tenant}")))
        .header("content-type", "application/json")
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["error"]["code"].clone())
}

/// The Stripe key as the worker reads it before every Stripe call.
async fn worker_stripe_key(env: &Env, master: MasterKey, tenant: Uuid) -> Result<String, String> {
    let redis = shared::redis_conn::Redis::from_config(&env.config()).unwrap();
    let ctx = workers::stripe_ctx::StripeCtx::new("http://127.0.0.1:9", &redis, master);
    let pool = env.pool().await;
    ctx.settings(&pool, tenant, Mode::Test)
        .await
        .map(|s| s.api_key)
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn api_keys_are_hashes_only_and_a_stolen_row_cannot_sign_tokens() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Hashes Co").await;
    let cols: Vec<(String,)> = sqlx::query_as(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'api_keys' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let cols: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    assert!(!cols.contains(&"secret_enc"), "{cols:?}");
    assert!(cols.iter().all(|c| !c.contains("enc")), "{cols:?}");

    // Nothing in the key rows or the signing-secret rows is a usable signing key: the
    // plaintext appears nowhere, and tokens signed with what a stolen row holds are refused.
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT encode(key_hash, 'hex'), display FROM api_keys WHERE tenant_id = $1
         UNION ALL SELECT secret_enc, display FROM token_signing_secrets WHERE tenant_id = $1",
    )
    .bind(t.tenant.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 6, "four keys and two signing secrets");
    let dump = format!("{rows:?}");
    for s in [
        t.key(KeyKind::Secret, Mode::Test),
        t.key(KeyKind::Secret, Mode::Live),
        t.signing_secret(Mode::Test),
        t.signing_secret(Mode::Live),
    ] {
        assert!(!dump.contains(s), "plaintext stored");
    }
    for (a, b) in &rows {
        for stolen in [a, b] {
            assert_eq!(
                start_session(&app, pk, &token(&t, "cus_x", stolen)).await,
                401
            );
        }
    }
    // Without the master key a stolen signing-secret ciphertext does not open.
    let (enc,): (String,) = sqlx::query_as(
        "SELECT secret_enc FROM token_signing_secrets WHERE tenant_id = $1 AND mode = 'test'",
    )
    .bind(t.tenant.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let aad = Aad::new(Column::TokenSigningSecret, t.tenant.id, Mode::Test);
    assert!(MasterKey::parse(KEY_C)
        .unwrap()
        .decrypt(&enc, &aad)
        .is_err());
    assert_eq!(
        app.master().decrypt(&enc, &aad).unwrap(),
        t.signing_secret(Mode::Test)
    );
}

#[tokio::test]
async fn tokens_signed_with_the_sk_key_are_refused_and_the_signing_secret_works() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Signing Co").await;
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    let tsk = t.signing_secret(Mode::Test);
    assert!(tsk.starts_with("tsk_test_"), "{tsk}");
    assert!(t.signing_secret(Mode::Live).starts_with("tsk_live_"));
    // The breaking change: the secret API key no longer signs customer tokens.
    let sk = t.key(KeyKind::Secret, Mode::Test);
    assert_eq!(start_session(&app, pk, &token(&t, "cus_1", sk)).await, 401);
    assert_eq!(start_session(&app, pk, &token(&t, "cus_1", tsk)).await, 201);
    // The other mode's signing secret does not verify.
    let live = t.signing_secret(Mode::Live);
    assert_eq!(
        start_session(&app, pk, &token(&t, "cus_1", live)).await,
        401
    );
    // POST /v1/widget_tokens signs with the signing secret of the key's mode.
    let (status, body) = post(
        &app,
        sk,
        "/v1/widget_tokens",
        json!({"customer_id": "cus_srv"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let tok = body["token"].as_str().unwrap();
    assert_eq!(tok, {
        let c = shared::widget_token::peek(tok).unwrap();
        sign(&c, tsk)
    });
    assert_eq!(start_session(&app, pk, tok).await, 201);

    // The ops route shows the signing secrets once, next to the keys.
    let (status, created) = post(
        &app,
        app.ops_token(),
        "/v1/tenants",
        json!({"name": "Via Ops"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secrets = created["token_signing_secrets"].as_array().unwrap();
    let modes: Vec<&str> = secrets
        .iter()
        .map(|s| s["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["test", "live"]);
    assert!(secrets[0]["secret"]
        .as_str()
        .unwrap()
        .starts_with("tsk_test_"));
}

#[tokio::test]
async fn a_tenant_without_a_signing_secret_gets_a_clear_error_until_one_is_issued() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Upgraded Co").await;
    // As after the migration: the tenant predates signing secrets.
    sqlx::query("DELETE FROM token_signing_secrets WHERE tenant_id = $1")
        .bind(t.tenant.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let sk = t.key(KeyKind::Secret, Mode::Test);
    let (status, body) = post(
        &app,
        sk,
        "/v1/widget_tokens",
        json!({"customer_id": "cus_1"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "token_signing_secret_missing");
    let (ok, out) = app.env.api_cli(&["secrets", "issue-signing-secrets"]);
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["issued"], 2);
    let (ok, out) = app.env.api_cli(&["secrets", "issue-signing-secrets"]);
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["issued"], 0);
    let (status, body) = post(
        &app,
        sk,
        "/v1/widget_tokens",
        json!({"customer_id": "cus_1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    assert_eq!(
        start_session(&app, pk, body["token"].as_str().unwrap()).await,
        201
    );
}

#[tokio::test]
async fn signing_secret_rotation_keeps_the_old_one_for_the_grace_period_only() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Rotate Co").await;
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    let sk = t.key(KeyKind::Secret, Mode::Test);
    let old = t.signing_secret(Mode::Test).to_string();

    for bad in [
        json!({"grace_seconds": -1}),
        json!({"grace_seconds": 604_801}),
    ] {
        let (status, body) = post(&app, sk, "/v1/token_signing_secrets/rotate", bad).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "grace_seconds");
    }
    let (status, body) = post(
        &app,
        sk,
        "/v1/token_signing_secrets/rotate",
        json!({"grace_seconds": 3600}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let new = body["token_signing_secret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(new.starts_with("tsk_test_") && new != old);
    assert_eq!(body["token_signing_secret"]["mode"], "test");
    // During the grace period both verify; the helper signs with the new one.
    assert_eq!(start_session(&app, pk, &token(&t, "c1", &old)).await, 201);
    assert_eq!(start_session(&app, pk, &token(&t, "c2", &new)).await, 201);
    let (_, minted) = post(&app, sk, "/v1/widget_tokens", json!({"customer_id": "c3"})).await;
    let minted = minted["token"].as_str().unwrap();
    assert_eq!(
        minted,
        sign(&shared::widget_token::peek(minted).unwrap(), &new)
    );
    // Listing shows displays and expiry, never the plaintext.
    let listed: Value = app
        .client
        .get(app.url("/v1/token_signing_secrets"))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data[0]["expires_at"].is_null() && !data[1]["expires_at"].is_null());
    assert!(!listed.to_string().contains(&new) && !listed.to_string().contains(&old));
    // A live key does not see or rotate the test secrets.
    let live_list: Value = app
        .client
        .get(app.url("/v1/token_signing_secrets"))
        .bearer_auth(t.key(KeyKind::Secret, Mode::Live))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live_list["data"].as_array().unwrap().len(), 1);

    // The grace period ends (the clock is the database's: move the expiry instead of
    // waiting). A fresh api process has no cached secrets.
    sqlx::query(
        "UPDATE token_signing_secrets SET expires_at = now() - interval '1 second'
         WHERE tenant_id = $1 AND expires_at IS NOT NULL",
    )
    .bind(t.tenant.id)
    .execute(&app.pool)
    .await
    .unwrap();
    let fresh = TestApp::spawn_with(app.env.clone()).await;
    assert_eq!(start_session(&fresh, pk, &token(&t, "c4", &old)).await, 401);
    assert_eq!(start_session(&fresh, pk, &token(&t, "c5", &new)).await, 201);

    // Without grace the old secret stops at once (on this process, whose cache is cleared).
    let (status, body) = post(&fresh, sk, "/v1/token_signing_secrets/rotate", json!({})).await;
    assert_eq!(status, 201, "{body}");
    let newest = body["token_signing_secret"]["secret"].as_str().unwrap();
    assert_eq!(start_session(&fresh, pk, &token(&t, "c6", &new)).await, 401);
    assert_eq!(
        start_session(&fresh, pk, &token(&t, "c7", newest)).await,
        201
    );
}

#[tokio::test]
async fn ciphertexts_swapped_between_columns_tenants_or_modes_do_not_decrypt() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("Swap A").await;
    let b = app.create_tenant("Swap B").await;
    for t in [&a, &b] {
        assert_eq!(put_stripe(&app, t, Mode::Test, RK).await, 200);
    }
    let stored: Vec<(String,)> = sqlx::query_as("SELECT api_key_enc FROM stripe_settings")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let kid = app.master().current_kid().to_string();
    assert!(stored
        .iter()
        .all(|(c,)| c.starts_with(&format!("v1.{kid}."))));
    assert_eq!(deliver(&app, a.tenant.id, "evt_ok").await.0, 200);

    // Column swap: tenant A's Stripe key ciphertext put where its webhook secret was.
    sqlx::query(
        "UPDATE stripe_settings SET webhook_secrets_enc = jsonb_build_array(api_key_enc)
         WHERE tenant_id = $1",
    )
    .bind(a.tenant.id)
    .execute(&app.pool)
    .await
    .unwrap();
    // Tenant swap: tenant A's Stripe key ciphertext copied into tenant B's row.
    sqlx::query(
        "UPDATE stripe_settings SET api_key_enc = (SELECT api_key_enc FROM stripe_settings WHERE tenant_id = $1 AND mode = 'test')
         WHERE tenant_id = $2",
    )
    .bind(a.tenant.id)
    .bind(b.tenant.id)
    .execute(&app.pool)
    .await
    .unwrap();
    // Mode swap: tenant A's test signing secret ciphertext copied into its live row.
    sqlx::query(
        "UPDATE token_signing_secrets SET secret_enc = (SELECT secret_enc FROM token_signing_secrets WHERE tenant_id = $1 AND mode = 'test')
         WHERE tenant_id = $1 AND mode = 'live'",
    )
    .bind(a.tenant.id)
    .execute(&app.pool)
    .await
    .unwrap();

    let fresh = TestApp::spawn_with(app.env.clone()).await;
    // The swapped webhook secret does not decrypt: the delivery is refused, not a 500.
    let (status, code) = deliver(&fresh, a.tenant.id, "evt_swapped").await;
    assert_eq!(
        (status, code.as_str().unwrap()),
        (400, "signature_mismatch")
    );
    // The worker cannot read tenant A's key as tenant B's (a clean permanent error).
    assert_eq!(
        worker_stripe_key(&app.env, app.master(), a.tenant.id).await,
        Ok(RK.to_string())
    );
    let err = worker_stripe_key(&app.env, app.master(), b.tenant.id)
        .await
        .unwrap_err();
    assert!(err.contains("unreadable"), "{err}");
    // A live token signed with the test secret does not verify through the swapped row.
    let live_pk = a.key(KeyKind::Publishable, Mode::Live);
    let test_secret = a.signing_secret(Mode::Test);
    assert_eq!(
        start_session(&fresh, live_pk, &token(&a, "c", test_secret)).await,
        401
    );
    assert_eq!(
        start_session(
            &fresh,
            live_pk,
            &token(&a, "c", a.signing_secret(Mode::Live))
        )
        .await,
        401,
        "the live row no longer holds a readable secret"
    );
}

/// With `env`'s master keys: signed webhooks verify, the worker reads the Stripe key, and
/// customer tokens signed with the signing secret verify, for each tenant.
async fn everything_works(env: &Env, master: MasterKey, tenants: &[&TenantWithKeys], label: &str) {
    let app = TestApp::spawn_with(env.clone()).await;
    for (n, t) in tenants.iter().enumerate() {
        let (status, code) = deliver(&app, t.tenant.id, &format!("evt_{label}_{n}")).await;
        assert_eq!(status, 200, "{label}: webhook {code}");
        assert_eq!(
            worker_stripe_key(env, master.clone(), t.tenant.id).await,
            Ok(RK.to_string()),
            "{label}: Stripe key"
        );
        let pk = t.key(KeyKind::Publishable, Mode::Test);
        let tok = token(t, "cus_m", t.signing_secret(Mode::Test));
        assert_eq!(start_session(&app, pk, &tok).await, 201, "{label}: token");
    }
    app.stop().await;
}

/// Encrypt under key A; run with MASTER_KEY=B and MASTER_KEY_PREVIOUS=A (everything still
/// works, old-format ciphertexts too); `secrets rotate-master`; drop A (still works); with
/// neither key, decryption fails cleanly.
#[tokio::test]
async fn rotate_master_end_to_end() {
    let mut env_a = Env::new().await;
    env_a.set("MASTER_KEY", KEY_A);
    let app_a = TestApp::spawn_with(env_a.clone()).await;
    let t = app_a.create_tenant("Master Co").await;
    let legacy = app_a.create_tenant("Legacy Co").await;
    assert_eq!(put_stripe(&app_a, &t, Mode::Test, RK).await, 200);
    // A tenant whose Stripe settings were written before key ids (old format, old aad).
    let a = MasterKey::parse(KEY_A).unwrap();
    let api_aad = Aad::new(Column::StripeApiKey, legacy.tenant.id, Mode::Test);
    let hook_aad = Aad::new(Column::StripeWebhookSecret, legacy.tenant.id, Mode::Test);
    sqlx::query(
        "INSERT INTO stripe_settings (tenant_id, mode, api_key_enc, api_key_last4, webhook_secrets_enc)
         VALUES ($1, 'test', $2, '1234', $3)",
    )
    .bind(legacy.tenant.id)
    .bind(a.encrypt_legacy(RK, &api_aad))
    .bind(json!([a.encrypt_legacy(WHSEC, &hook_aad)]))
    .execute(&app_a.pool)
    .await
    .unwrap();
    app_a.stop().await;

    let mut env_b = env_a.clone();
    env_b
        .set("MASTER_KEY", KEY_B)
        .set("MASTER_KEY_PREVIOUS", KEY_A);
    let b_and_a = MasterKey::with_previous(KEY_B, &[KEY_A]).unwrap();
    let tenants = [&t, &legacy];
    everything_works(&env_b, b_and_a.clone(), &tenants, "b_with_a").await;
    let pool = env_b.pool().await;

    let (ok, out) = env_b.api_cli(&["secrets", "rotate-master", "--batch-size", "1"]);
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["master_key_id"], b_and_a.current_kid());
    assert_eq!(
        report["stripe_api_keys"],
        json!({"checked": 2, "reencrypted": 2, "unreadable": 0})
    );
    assert_eq!(
        report["stripe_webhook_secrets"],
        json!({"checked": 2, "reencrypted": 2, "unreadable": 0})
    );
    assert_eq!(
        report["token_signing_secrets"],
        json!({"checked": 4, "reencrypted": 4, "unreadable": 0})
    );
    let kid_b = format!("v1.{}.", b_and_a.current_kid());
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT api_key_enc FROM stripe_settings
         UNION ALL SELECT jsonb_array_elements_text(webhook_secrets_enc) FROM stripe_settings
         UNION ALL SELECT secret_enc FROM token_signing_secrets",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|(c,)| c.starts_with(&kid_b)), "{rows:?}");
    // Idempotent: a second run rewrites nothing.
    let (ok, out) = env_b.api_cli(&["secrets", "rotate-master"]);
    assert!(ok, "{out}");
    let again: Value = serde_json::from_str(&out).unwrap();
    for col in [
        "stripe_api_keys",
        "stripe_webhook_secrets",
        "token_signing_secrets",
    ] {
        assert_eq!(again[col]["reencrypted"], 0, "{col}");
    }
    // Audited, with the counts.
    let (actor, after): (String, Value) = sqlx::query_as(
        "SELECT actor_type, after FROM audit_events WHERE action = 'secrets.rotate_master'
         ORDER BY created_at LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, "cli");
    assert_eq!(after["token_signing_secrets"]["reencrypted"], 4);

    // The previous key is removed: everything still works.
    let mut env_b_only = env_b.clone();
    env_b_only.set("MASTER_KEY_PREVIOUS", "");
    everything_works(
        &env_b_only,
        MasterKey::parse(KEY_B).unwrap(),
        &tenants,
        "b_only",
    )
    .await;

    // With neither key: clean refusals, no panic, no 500.
    let mut env_c = env_b.clone();
    env_c
        .set("MASTER_KEY", KEY_C)
        .set("MASTER_KEY_PREVIOUS", "");
    let app_c = TestApp::spawn_with(env_c.clone()).await;
    let (status, code) = deliver(&app_c, t.tenant.id, "evt_c").await;
    assert_eq!(
        (status, code.as_str().unwrap()),
        (400, "signature_mismatch")
    );
    let err = worker_stripe_key(&env_c, MasterKey::parse(KEY_C).unwrap(), t.tenant.id)
        .await
        .unwrap_err();
    assert!(err.contains("unreadable"), "{err}");
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    let tok = token(&t, "cus_c", t.signing_secret(Mode::Test));
    assert_eq!(start_session(&app_c, pk, &tok).await, 401);
    let (status, body) = post(
        &app_c,
        t.key(KeyKind::Secret, Mode::Test),
        "/v1/widget_tokens",
        json!({"customer_id": "cus_c"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // rotate-master with neither key reports what it cannot read and fails.
    let (ok, out) = env_c.api_cli(&["secrets", "rotate-master"]);
    assert!(!ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["stripe_api_keys"]["unreadable"], 2);
    assert_eq!(report["token_signing_secrets"]["reencrypted"], 0);
}

#[tokio::test]
async fn key_and_secret_changes_are_audited_without_secrets() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Audit Co").await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    let (sk_id,): (Uuid,) = sqlx::query_as(
        "SELECT id FROM api_keys WHERE tenant_id = $1 AND kind = 'secret' AND mode = 'test'",
    )
    .bind(t.tenant.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();

    assert_eq!(put_stripe(&app, &t, Mode::Test, RK).await, 200);
    assert_eq!(
        put_stripe(&app, &t, Mode::Test, "rk_test_second_key_9876").await,
        200
    );
    let (status, rotated) = post(
        &app,
        &sk,
        "/v1/token_signing_secrets/rotate",
        json!({"grace_seconds": 60}),
    )
    .await;
    assert_eq!(status, 201);
    let new_secret = rotated["token_signing_secret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, pk_rotated) = post(
        &app,
        &sk,
        "/v1/keys/rotate",
        json!({"kind": "publishable", "grace_seconds": 0}),
    )
    .await;
    assert_eq!(status, 201);
    let new_pk = pk_rotated["key"]["key"].as_str().unwrap().to_string();
    let new_pk_id = pk_rotated["key"]["id"].as_str().unwrap().to_string();
    let r = app
        .client
        .delete(app.url(&format!("/v1/keys/{new_pk_id}")))
        .bearer_auth(&sk)
        .header("x-request-id", "req-audit-revoke")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Another mode's key cannot be revoked with this key (404, nothing audited).
    let (live_pk_id,): (Uuid,) = sqlx::query_as(
        "SELECT id FROM api_keys WHERE tenant_id = $1 AND kind = 'publishable' AND mode = 'live'",
    )
    .bind(t.tenant.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/v1/keys/{live_pk_id}")))
        .bearer_auth(&sk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // (action, actor_type, actor_id, mode, before, after, request_id)
    type AuditRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<Value>,
        Option<Value>,
        Option<String>,
    );
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT action, actor_type, actor_id, mode, before, after, request_id FROM audit_events
             WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(t.tenant.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "stripe_settings.update",
            "stripe_settings.update",
            "token_signing_secret.rotate",
            "api_key.rotate",
            "api_key.revoke",
        ]
    );
    for r in &rows {
        assert_eq!(r.1, "api_key");
        assert_eq!(r.2.as_deref(), Some(sk_id.to_string().as_str()));
        assert_eq!(r.3.as_deref(), Some("test"));
    }
    assert_eq!(rows[0].4, None, "first Stripe settings: nothing before");
    assert_eq!(
        rows[1].4,
        Some(json!({"api_key_last4": "1234", "webhook_secrets": 1}))
    );
    assert_eq!(
        rows[1].5,
        Some(json!({"api_key_last4": "9876", "webhook_secrets": 1}))
    );
    assert_eq!(
        rows[2].4.as_ref().unwrap()["retired"][0]["display"]
            .as_str()
            .unwrap(),
        format!("{}…", &t.signing_secret(Mode::Test)[..13])
    );
    assert_eq!(rows[2].4.as_ref().unwrap()["grace_seconds"], 60);
    assert_eq!(rows[4].6.as_deref(), Some("req-audit-revoke"));
    let dump = format!("{rows:?}");
    for secret in [
        RK,
        "rk_test_second_key_9876",
        WHSEC,
        t.signing_secret(Mode::Test),
        &new_secret,
        &new_pk,
        &sk,
    ] {
        assert!(!dump.contains(secret), "audit rows hold a secret: {dump}");
    }
    // The CLI's key actions are audited as `cli`.
    let (ok, out) = app.env.api_cli(&[
        "tenant",
        "rotate-signing-secret",
        "--tenant",
        &t.tenant.id.to_string(),
        "--mode",
        "live",
    ]);
    assert!(ok, "{out}");
    assert!(serde_json::from_str::<Value>(&out).unwrap()["secret"]
        .as_str()
        .unwrap()
        .starts_with("tsk_live_"));
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM audit_events WHERE actor_type = 'cli' AND action = 'token_signing_secret.rotate' AND mode = 'live'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_demo_page_signs_with_the_test_signing_secret() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Demo").await;
    // Only a demo tenant gets a demo page (tests/tests/safety.rs).
    sqlx::query("UPDATE tenants SET demo = true WHERE id = $1")
        .bind(t.tenant.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let pk = t.key(KeyKind::Publishable, Mode::Test);
    let html = app
        .client
        .get(app.url(&format!("/demo?pk={pk}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let config = html
        .split(r#"<script id="rtos-demo-config" type="application/json">"#)
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .unwrap_or_else(|| panic!("no demo config in {html}"));
    let config: Value = serde_json::from_str(config).unwrap();
    let tok = config["token"].as_str().unwrap();
    let claims = shared::widget_token::peek(tok).unwrap();
    assert_eq!(tok, sign(&claims, t.signing_secret(Mode::Test)));
    assert_eq!(start_session(&app, pk, tok).await, 201);
}
