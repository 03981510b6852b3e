//! The batched widget event writer at the database: `record_widget_events` called directly
//! (through `api::widget_batch::flush_events`, one `SELECT` of the function, its statuses
//! decoded into `EventWrite`), with no api in between. Duplicates within and across
//! batches, nothing recorded after an outcome, the offer rules, tenant and mode isolation,
//! and concurrent batches whose acceptances name the same customers in opposite orders
//! (the customer and session locks are taken in one order, so they never deadlock).

use api::widget_batch::{flush_events, EventWrite};
use harness::TestApp;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

struct Db {
    pool: PgPool,
    tenant: Uuid,
}

impl Db {
    async fn new() -> (TestApp, Db) {
        let app = TestApp::spawn().await;
        let t = app.create_tenant("Writes Co").await;
        let db = Db {
            pool: app.pool.clone(),
            tenant: t.tenant.id,
        };
        (app, db)
    }

    /// An open test-mode session of `customer` that rendered `disc20`.
    async fn session(&self, customer: &str) -> Uuid {
        let id = Uuid::now_v7();
        let row = json!([{"id": id, "tenant_id": self.tenant, "mode": "test", "customer_id": customer,
                          "holdout": false, "mrr_cents": 1000, "attributes": {},
                          "rendered_offers": ["disc20"], "ttl_secs": 600}]);
        let n = api::routes::widget::flush_sessions(self.pool.clone(), row.to_string())
            .await
            .unwrap();
        assert_eq!(n.len(), 1);
        id
    }

    async fn write(&self, events: Vec<Value>) -> Vec<EventWrite> {
        flush_events(self.pool.clone(), Value::Array(events).to_string())
            .await
            .unwrap()
    }

    async fn count(&self, sql: &'static str, session: Uuid) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(session)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// One element as the api builds it (`routes/widget/events.rs`).
fn event(db: &Db, session: Uuid, customer: &str, client_id: &str, kind: &str) -> Value {
    json!({
        "id": Uuid::now_v7(), "tenant_id": db.tenant, "mode": "test", "session_id": session,
        "customer_id": customer, "cooldown_days": null, "client_event_id": client_id,
        "type": kind, "payload": {}, "reason_code": null, "user_id": null, "flow_id": null,
        "variant": null, "mrr_cents": 1000, "offer": null, "outcome": null,
        "offer_state": null, "cancel_state": null, "job": null,
    })
}

/// An acceptance of `disc20` that ends the session `saved` with an outbox job.
fn acceptance(db: &Db, session: Uuid, customer: &str, client_id: &str) -> Value {
    let mut e = event(db, session, customer, client_id, "offer_accepted");
    e["offer"] = json!({"id": "disc20", "type": "discount", "definition": {"id": "disc20"},
                        "reason_codes": []});
    e["cooldown_days"] = json!(30);
    e["outcome"] = json!("saved");
    e["offer_state"] = json!("pending");
    e["job"] = json!({"id": Uuid::now_v7(), "queue": "stripe", "kind": "apply_offer",
                      "payload": {"session_id": session}});
    e
}

#[tokio::test]
async fn duplicates_are_recognised_within_and_across_batches() {
    let (_app, db) = Db::new().await;
    let s = db.session("cus_dup").await;
    let mut not_rendered = event(&db, s, "cus_dup", "b", "offer_shown");
    not_rendered["offer"] = json!({"id": "other", "type": "discount", "definition": {},
                                   "reason_codes": []});
    let first = db
        .write(vec![
            event(&db, s, "cus_dup", "a", "feedback"),
            event(&db, s, "cus_dup", "a", "feedback"),
            not_rendered,
        ])
        .await;
    // The repeat of `a` in the same batch is its duplicate; an offer the session did not
    // render is refused.
    assert_eq!(
        first,
        [
            EventWrite::Ok,
            EventWrite::Duplicate,
            EventWrite::OfferNotRendered
        ]
    );
    let again = db
        .write(vec![event(&db, s, "cus_dup", "a", "feedback")])
        .await;
    assert_eq!(again, [EventWrite::Duplicate]);
    let stored = db
        .count(
            "SELECT count(*) FROM session_events WHERE session_id = $1",
            s,
        )
        .await;
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn nothing_is_recorded_after_an_outcome() {
    let (_app, db) = Db::new().await;
    let s = db.session("cus_end").await;
    let r = db
        .write(vec![
            acceptance(&db, s, "cus_end", "acc"),
            event(&db, s, "cus_end", "cxl", "cancel_confirmed"),
            event(&db, s, "cus_end", "late", "feedback"),
        ])
        .await;
    assert_eq!(
        r,
        [
            EventWrite::OkJob,
            EventWrite::SessionEnded("saved".into()),
            EventWrite::SessionEnded("saved".into()),
        ]
    );
    // The acceptance's job is in the outbox, in the same transaction; nothing else was.
    let jobs = db
        .count(
            "SELECT count(*) FROM job_outbox WHERE payload->>'session_id' = $1::text",
            s,
        )
        .await;
    assert_eq!(jobs, 1);
    let events = db
        .count(
            "SELECT count(*) FROM session_events WHERE session_id = $1",
            s,
        )
        .await;
    assert_eq!(events, 1);
    // A second session of the customer may not take a discount within the cooldown.
    let s2 = db.session("cus_end").await;
    let r = db.write(vec![acceptance(&db, s2, "cus_end", "acc")]).await;
    assert_eq!(r, [EventWrite::OfferInCooldown]);
}

#[tokio::test]
async fn another_tenant_or_mode_sees_no_session() {
    let (_app, db) = Db::new().await;
    let s = db.session("cus_iso").await;
    let mut live = event(&db, s, "cus_iso", "x", "feedback");
    live["mode"] = json!("live");
    let mut other = event(&db, s, "cus_iso", "y", "feedback");
    other["tenant_id"] = json!(Uuid::now_v7());
    let unknown = event(&db, Uuid::now_v7(), "cus_iso", "z", "feedback");
    let r = db.write(vec![live, other, unknown]).await;
    assert_eq!(
        r,
        [
            EventWrite::NoSession,
            EventWrite::NoSession,
            EventWrite::NoSession
        ]
    );
}

/// Two batches at once, each accepting for customers A and B (in opposite orders in the
/// input): they take the customer locks in one (ascending) order and the session locks in
/// id order, so both commit; PostgreSQL would abort one with a deadlock error otherwise.
#[tokio::test]
async fn concurrent_batches_take_locks_in_one_order() {
    let (_app, db) = Db::new().await;
    for round in 0..10 {
        let (a, b) = (format!("cus_a{round}"), format!("cus_b{round}"));
        let (a1, b1, a2, b2) = (
            db.session(&a).await,
            db.session(&b).await,
            db.session(&format!("{a}_2")).await,
            db.session(&format!("{b}_2")).await,
        );
        // Each batch also writes an event on the other batch's sessions first (row locks
        // in both orders as written).
        let one = vec![
            acceptance(&db, a1, &a, "acc"),
            event(&db, b2, &format!("{b}_2"), "f1", "feedback"),
            acceptance(&db, b1, &b, "acc"),
        ];
        let two = vec![
            acceptance(&db, b2, &format!("{b}_2"), "acc"),
            event(&db, a1, &a, "f2", "feedback"),
            acceptance(&db, a2, &format!("{a}_2"), "acc"),
        ];
        let (r1, r2) = tokio::join!(
            flush_events(db.pool.clone(), Value::Array(one).to_string()),
            flush_events(db.pool.clone(), Value::Array(two).to_string()),
        );
        let (r1, r2) = (r1.expect("batch one"), r2.expect("batch two"));
        assert_eq!(r1[0], EventWrite::OkJob, "round {round}: {r1:?}");
        assert_eq!(r1[2], EventWrite::OkJob, "round {round}: {r1:?}");
        assert_eq!(r2[0], EventWrite::OkJob, "round {round}: {r2:?}");
        assert_eq!(r2[2], EventWrite::OkJob, "round {round}: {r2:?}");
        // The feedback on a session the other batch saved: before or after it, by commit
        // order, and nothing else.
        for r in [&r1[1], &r2[1]] {
            assert!(
                matches!(r, EventWrite::Ok) || *r == EventWrite::SessionEnded("saved".into()),
                "round {round}: {r:?}"
            );
        }
    }
}
