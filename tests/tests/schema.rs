//! The schema the specification requires (named by `migrations/20261127000001_init.sql`):
//! every required index exists (unique where it must be), and every tenant-owned table
//! carries `tenant_id`.

use harness::Env;

#[tokio::test]
async fn schema_has_every_required_index() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // (table, leading columns of some index, unique?) — the specification's list, each per
    // tenant where the table is tenant-owned.
    let required: &[(&str, &str, bool)] = &[
        ("users", "(id)", true),
        ("users", "(tenant_id, mode, external_id)", true),
        ("users", "(tenant_id, email)", false),
        ("users", "(tenant_id, plan)", false),
        ("users", "(tenant_id, region)", false),
        ("subscriptions", "(id)", true),
        ("subscriptions", "(tenant_id, user_id)", false),
        ("subscriptions", "(stripe_subscription_id)", true),
        ("subscriptions", "(tenant_id, status)", false),
        ("offer_events", "(id)", true),
        ("offer_events", "(tenant_id, user_id)", false),
        ("offer_events", "(tenant_id, flow_id)", false),
        ("offer_events", "(tenant_id, created_at)", false),
        ("offer_events", "(tenant_id, offer_type)", false),
        ("offer_events", "(tenant_id, accepted)", false),
        ("churn_reasons", "(id)", true),
        ("churn_reasons", "(tenant_id, user_id)", false),
        ("churn_reasons", "(tenant_id, reason_code)", false),
        ("churn_reasons", "(tenant_id, created_at)", false),
        ("flows", "(id)", true),
        ("flows", "(tenant_id, language)", false),
        ("flows", "(tenant_id, ranking_score DESC)", false),
        ("api_keys", "(key_hash)", true),
        ("stripe_events", "(tenant_id, event_id)", true),
        ("session_events", "(session_id, client_event_id)", true),
    ];
    for (table, cols, unique) in required {
        let found = rows.iter().any(|(t, def)| {
            t == table
                && def.ends_with(&format!("USING btree {cols}"))
                && (!unique || def.starts_with("CREATE UNIQUE"))
        });
        assert!(found, "missing index on {table} {cols} (unique: {unique})");
    }
    // Every tenant-owned table carries tenant_id.
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'
           AND table_type = 'BASE TABLE' AND table_name NOT IN
           ('tenants', '_sqlx_migrations', 'scheduler_runs', 'probe_runs', 'probe_effects', 'probe_gates', 'rollup_state', 'job_outbox')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (t,) in tables {
        let has: Option<(i32,)> = sqlx::query_as(
            "SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = 'tenant_id'",
        )
        .bind(&t)
        .fetch_optional(&pool)
        .await
        .unwrap();
        assert!(has.is_some(), "table {t} has no tenant_id");
    }
}
