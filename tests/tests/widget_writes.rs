//! The batched widget event writer at the database: `record_widget_events` called directly
//! (through `shared::db::sessions::flush_events`, one `SELECT` of the function, its statuses
//! decoded into `EventWrite`), with no api in between. Duplicates within and across
//! batches, nothing recorded after an outcome, the offer rules, tenant and mode isolation,
//! and concurrent batches whose acceptances name the same customers in opposite orders
//! (the customer and session locks are taken in one order, so they never deadlock).

use harness::TestApp;
use serde_json::json;
use shared::db::sessions::{
    flush_events, flush_sessions, EventJob, EventOffer, EventPayload, EventRow, EventWrite,
    SessionRow,
};
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
        let row = SessionRow {
            id,
            tenant_id: self.tenant,
            mode: "test",
            user_id: None,
            customer_id: customer.into(),
            subscription_id: None,
            flow_id: None,
            flow_version: None,
            variant: None,
            holdout: false,
            mrr_cents: 1000,
            attributes: json!({}),
            rendered_offers: vec!["disc20".into()],
            ttl_secs: 600.0,
        };
        let n = flush_sessions(self.pool.clone(), vec![row]).await.unwrap();
        assert_eq!(n.len(), 1);
        id
    }

    async fn write(&self, events: Vec<EventRow>) -> Vec<EventWrite> {
        flush_events(self.pool.clone(), events).await.unwrap()
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
fn event(db: &Db, session: Uuid, customer: &str, client_id: &str, kind: &'static str) -> EventRow {
    EventRow {
        id: Uuid::now_v7(),
        tenant_id: db.tenant,
        mode: "test",
        session_id: session,
        customer_id: customer.into(),
        client_event_id: client_id.into(),
        kind,
        payload: EventPayload {
            reason_code: None,
            offer_id: None,
            text: None,
        },
        reason_code: None,
        user_id: None,
        flow_id: None,
        variant: None,
        mrr_cents: 1000,
        offer: None,
        cooldown_days: None,
        outcome: None,
        offer_state: None,
        cancel_state: None,
        job: None,
    }
}

fn offer(id: &str) -> EventOffer {
    EventOffer {
        id: id.into(),
        kind: "discount",
        definition: None,
        reason_codes: Vec::new(),
    }
}

/// An acceptance of `disc20` that ends the session `saved` with an outbox job.
fn acceptance(db: &Db, session: Uuid, customer: &str, client_id: &str) -> EventRow {
    let mut e = event(db, session, customer, client_id, "offer_accepted");
    let mut o = offer("disc20");
    o.definition = Some(
        serde_json::from_value(json!({"id": "disc20", "type": "discount", "title": "20 % off"}))
            .unwrap(),
    );
    e.offer = Some(o);
    e.cooldown_days = Some(30);
    e.outcome = Some("saved");
    e.offer_state = Some("pending");
    e.job = Some(EventJob {
        id: Uuid::now_v7(),
        queue: "stripe",
        kind: "apply_offer",
        payload: json!({"session_id": session}),
    });
    e
}

#[tokio::test]
async fn duplicates_are_recognised_within_and_across_batches() {
    let (_app, db) = Db::new().await;
    let s = db.session("cus_dup").await;
    let mut not_rendered = event(&db, s, "cus_dup", "b", "offer_shown");
    not_rendered.offer = Some(offer("other"));
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
    live.mode = "live";
    let mut other = event(&db, s, "cus_iso", "y", "feedback");
    other.tenant_id = Uuid::now_v7();
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
            flush_events(db.pool.clone(), one),
            flush_events(db.pool.clone(), two),
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

/// A selected reason is written to the session without moving `updated_at` (the rollup's
/// "figures moved" marker: a reason alone moves none of the session's figures) and as a
/// heap-only update (no indexed column changes, room on the page); a reason selected again
/// rewrites nothing; the outcome still moves `updated_at`.
#[tokio::test]
async fn a_selected_reason_is_a_heap_only_update_and_the_outcome_still_touches() {
    let (_app, db) = Db::new().await;
    let s = db.session("cus_hot").await;
    let session_row = || {
        sqlx::query_as::<_, (Option<String>, chrono::DateTime<chrono::Utc>)>(
            "SELECT reason_code, updated_at FROM cancel_sessions WHERE id = $1",
        )
        .bind(s)
        .fetch_one(&db.pool)
    };
    let (_, before) = session_row().await.unwrap();
    // Each reason in its own batch (one transaction each, as batches are), the function
    // called directly on one connection. The table's update counters of this backend are
    // what it flushed (pg_stat_user_tables) plus what it has not flushed yet
    // (pg_stat_xact_user_tables), read in one statement: exact, whenever the flush happens.
    let mut conn = db.pool.acquire().await.unwrap();
    let counters =
        "SELECT (s.n_tup_upd + x.n_tup_upd)::bigint, (s.n_tup_hot_upd + x.n_tup_hot_upd)::bigint
                      FROM pg_stat_user_tables s JOIN pg_stat_xact_user_tables x USING (relid)
                     WHERE s.relname = 'cancel_sessions'";
    for (i, (code, expected)) in [
        ("too_expensive", (1, 1)),
        ("missing_features", (1, 1)),
        ("missing_features", (0, 0)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(&db, s, "cus_hot", &format!("r{i}"), "reason_selected");
        e.reason_code = Some(code.to_string());
        let (upd0, hot0): (i64, i64) = sqlx::query_as(counters)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let statuses: serde_json::Value =
            sqlx::query_scalar("SELECT record_widget_events($1::jsonb)")
                .bind(sqlx::types::Json(vec![e]))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        let (upd1, hot1): (i64, i64) = sqlx::query_as(counters)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(statuses, json!(["ok"]));
        // (updates, heap-only updates): a change is one heap-only update, a repeat none.
        assert_eq!((upd1 - upd0, hot1 - hot0), expected, "reason {i} ({code})");
    }
    drop(conn);
    let (reason, after) = session_row().await.unwrap();
    assert_eq!(reason.as_deref(), Some("missing_features"));
    assert_eq!(after, before, "a reason alone does not touch updated_at");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM churn_reasons WHERE session_id = $1",
            s
        )
        .await,
        3
    );
    let r = db.write(vec![acceptance(&db, s, "cus_hot", "acc")]).await;
    assert_eq!(r, [EventWrite::OkJob]);
    let (_, ended) = session_row().await.unwrap();
    assert!(ended > before, "the outcome touches updated_at");
}
