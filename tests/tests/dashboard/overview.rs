//! The overview's charts, churn reasons, offer performance and experiments.

use super::*;

/// Seeds the three rollups (what the analytics worker writes from events) for a fixed range,
/// so every figure below is known: 2026-01-03 and 2026-01-05 in the range 2026-01-01 to
/// 2026-01-10 (tenant zone UTC), reasons also in the previous period, and a live row that
/// the test mode must not show.
async fn seed(app: &TestApp, tenant: Uuid) {
    // (mode, hour, variant, outcome, saved offer type, sessions, saved MRR cents)
    let sessions: &[(&str, &str, &str, &str, &str, i64, i64)] = &[
        (
            "test",
            "2026-01-03T10:00:00Z",
            "control",
            "saved",
            "discount",
            30,
            30000,
        ),
        (
            "test",
            "2026-01-03T10:00:00Z",
            "control",
            "canceled",
            "",
            10,
            0,
        ),
        (
            "test",
            "2026-01-03T10:00:00Z",
            "holdout",
            "saved",
            "",
            20,
            0,
        ),
        (
            "test",
            "2026-01-03T10:00:00Z",
            "holdout",
            "canceled",
            "",
            20,
            0,
        ),
        (
            "test",
            "2026-01-03T10:00:00Z",
            "b",
            "saved",
            "pause",
            1,
            1000,
        ),
        ("test", "2026-01-03T10:00:00Z", "b", "canceled", "", 9, 0),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "control",
            "saved",
            "discount",
            26,
            26000,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "control",
            "canceled",
            "",
            4,
            0,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "control",
            "abandoned",
            "",
            5,
            0,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "holdout",
            "saved",
            "",
            28,
            0,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "holdout",
            "canceled",
            "",
            12,
            0,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "c",
            "saved",
            "pause",
            5,
            5000,
        ),
        ("test", "2026-01-05T10:00:00Z", "c", "deflected", "", 6, 0),
        (
            "live",
            "2026-01-04T10:00:00Z",
            "livevariant",
            "saved",
            "pause",
            7,
            700,
        ),
    ];
    for (mode, hour, variant, outcome, kind, n, mrr) in sessions {
        sqlx::query(
            "INSERT INTO rollup_sessions_hourly (tenant_id, mode, hour, variant, outcome, saved_offer_type, sessions, saved_mrr_cents, validated)
             VALUES ($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, 0)",
        )
        .bind(tenant)
        .bind(mode)
        .bind(hour)
        .bind(variant)
        .bind(outcome)
        .bind(kind)
        .bind(n)
        .bind(mrr)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    // (mode, hour, variant, offer, type, shown, accepted, saved MRR cents)
    type OfferHour = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        i64,
        i64,
        i64,
    );
    let offers: &[OfferHour] = &[
        (
            "test",
            "2026-01-03T10:00:00Z",
            "control",
            "disc20",
            "discount",
            40,
            30,
            30000,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "control",
            "disc20",
            "discount",
            30,
            26,
            26000,
        ),
        (
            "test",
            "2026-01-03T10:00:00Z",
            "b",
            "pause1",
            "pause",
            10,
            1,
            1000,
        ),
        (
            "test",
            "2026-01-05T10:00:00Z",
            "c",
            "pause1",
            "pause",
            11,
            5,
            5000,
        ),
        (
            "live",
            "2026-01-04T10:00:00Z",
            "livevariant",
            "liveoffer",
            "pause",
            9,
            7,
            700,
        ),
    ];
    for (mode, hour, variant, offer, kind, shown, accepted, mrr) in offers {
        sqlx::query(
            "INSERT INTO rollup_offers_hourly (tenant_id, mode, hour, variant, offer_id, offer_type, shown, accepted, saved_mrr_cents)
             VALUES ($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(mode)
        .bind(hour)
        .bind(variant)
        .bind(offer)
        .bind(kind)
        .bind(shown)
        .bind(accepted)
        .bind(mrr)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let reasons: &[(&str, &str, &str, i64)] = &[
        ("test", "2026-01-03T10:00:00Z", "price", 6),
        ("test", "2026-01-05T10:00:00Z", "missing_feature", 2),
        ("test", "2025-12-25T10:00:00Z", "price", 2),
        ("test", "2025-12-25T10:00:00Z", "other", 2),
        ("live", "2026-01-04T10:00:00Z", "livereason", 3),
    ];
    for (mode, hour, code, n) in reasons {
        sqlx::query(
            "INSERT INTO rollup_reasons_hourly (tenant_id, mode, hour, reason_code, count)
             VALUES ($1, $2, $3::timestamptz, $4, $5)",
        )
        .bind(tenant)
        .bind(mode)
        .bind(hour)
        .bind(code)
        .bind(n)
        .execute(&app.pool)
        .await
        .unwrap();
    }
}

/// The `<tr ...>` row of a table that starts with `start` (up to its `</tr>`).
fn row<'a>(html: &'a str, start: &str) -> &'a str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find("</tr>").expect("a closed row")]
}

/// The cells' texts of a row (`<th>` and `<td>`), tags stripped.
fn cells(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in row.split("</t") {
        if let Some(open) = part.rfind("<t") {
            let cell = &part[open..];
            if let Some(gt) = cell.find('>') {
                let inner = &cell[gt + 1..];
                // Strip nested tags (span, meter).
                let mut text = String::new();
                let mut in_tag = false;
                for ch in inner.chars() {
                    match ch {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        c if !in_tag => text.push(c),
                        _ => {}
                    }
                }
                out.push(text.trim().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_overview_charts_reasons_offers_and_experiments_show_the_seeded_figures() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    seed(&app, t.tenant.id).await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Analyst).await;
    let cookie = signed_in(&app, "ana@acme.test").await;
    let res = get(
        &app,
        "/app?range=custom&from=2026-01-01&to=2026-01-10",
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();

    // Figures of the range.
    assert!(html.contains("data-metric=\"save_rate\">64.3 %"), "{html}");
    assert!(html.contains("data-metric=\"saved\">110<"));
    assert!(html.contains("data-metric=\"saved_mrr_cents\">$620.00<"));
    assert!(html.contains("data-metric=\"sessions\">176<"));

    // The charts' series: embedded JSON for the script, one point per day (zero-filled),
    // and the same figures in the table a reader without JavaScript gets.
    let start = html
        .find(r#"<script type="application/json" id="overview-data">"#)
        .expect("the charts' data");
    let json = &html[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let data: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(data["interval"], "day");
    let x: Vec<i64> = data["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    // 2026-01-01 .. 2026-01-10, midnight of each day.
    assert_eq!(
        x,
        (0..10)
            .map(|d| 1_767_225_600 + d * 86_400)
            .collect::<Vec<_>>()
    );
    let series = |k: &str| -> Vec<Option<f64>> {
        data["series"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64())
            .collect()
    };
    let z = Some(0.0);
    assert_eq!(
        series("sessions"),
        [z, z, Some(90.0), z, Some(86.0), z, z, z, z, z]
    );
    assert_eq!(
        series("saves"),
        [z, z, Some(51.0), z, Some(59.0), z, z, z, z, z]
    );
    assert_eq!(
        series("saved_mrr"),
        [z, z, Some(310.0), z, Some(310.0), z, z, z, z, z]
    );
    let rate = series("save_rate");
    assert_eq!(rate[0], None, "no decided session, no rate");
    assert_eq!(rate[2], Some(0.5667));
    assert_eq!(rate[4], Some(0.7284));
    for key in ["sessions", "saves", "save_rate", "saved_mrr"] {
        assert!(html.contains(&format!("data-chart=\"{key}\"")), "{key}");
    }
    assert_eq!(
        cells(row(&html, "<tr><th scope=\"row\">2026-01-03</th>")),
        ["2026-01-03", "90", "51", "56.7 %", "$310.00"]
    );
    assert_eq!(
        cells(row(&html, "<tr><th scope=\"row\">2026-01-02</th>")),
        ["2026-01-02", "0", "0", "–", "$0.00"]
    );
    // Each chart's text alternative.
    assert!(
        html.contains("Sessions per day: 176 in total; highest 90 on 2026-01-03 (10 points)."),
        "{html}"
    );
    assert!(html.contains("Save rate per day: from 56.7 % to 72.8 %; highest 72.8 % on 2026-01-05"));
    // With JavaScript off the table is open; the scripts are our own, content-hashed.
    assert!(html.contains("<details class=\"chart-table\" open>"));

    // Churn reasons: share of this period, the previous period, the change in points.
    assert!(html.contains("8 answers this period, 4 in the previous one"));
    assert_eq!(
        cells(row(&html, "<tr data-reason=\"price\">")),
        ["price", "6", "75.0 %", "2 (50.0 %)", "+25.0 pts"]
    );
    assert_eq!(
        cells(row(&html, "<tr data-reason=\"missing_feature\">")),
        ["missing_feature", "2", "25.0 %", "none", "new this period"]
    );
    assert_eq!(
        cells(row(&html, "<tr data-reason=\"other\">")),
        ["other", "0", "0.0 %", "2 (50.0 %)", "-50.0 pts"]
    );

    // Offer performance per offer and variant.
    assert_eq!(
        cells(row(
            &html,
            "<tr data-offer=\"disc20\" data-variant=\"control\">"
        )),
        ["disc20", "discount", "control", "70", "56", "80.0 %", "$560.00"]
    );
    assert_eq!(
        cells(row(
            &html,
            "<tr class=\"total\" data-offer=\"pause1\" data-variant=\"all variants\">"
        )),
        [
            "pause1",
            "pause",
            "all variants",
            "21",
            "6",
            "28.6 %",
            "$60.00"
        ]
    );
    assert_eq!(
        cells(row(&html, "<tr data-offer=\"pause1\" data-variant=\"c\">")),
        ["pause1", "pause", "c", "11", "5", "45.5 %", "$50.00"]
    );

    // Experiments: lift against the holdout with Newcombe's 95 % interval.
    assert_eq!(
        cells(row(&html, "<tr data-variant=\"control\">")),
        [
            "control",
            "75",
            "70",
            "56",
            "80.0 %",
            "+20.0 pts",
            "+5.2 pts to +33.4 pts",
            "better than holdout"
        ]
    );
    assert_eq!(
        cells(row(&html, "<tr data-variant=\"b\">")),
        [
            "b",
            "10",
            "10",
            "1",
            "10.0 %",
            "-50.0 pts",
            "-63.0 pts to -17.7 pts",
            "worse than holdout"
        ]
    );
    assert_eq!(
        cells(row(&html, "<tr data-variant=\"c\">")),
        [
            "c",
            "11",
            "11",
            "5",
            "45.5 %",
            "-14.5 pts",
            "-40.7 pts to +14.2 pts",
            "not significant"
        ]
    );
    assert_eq!(
        cells(row(
            &html,
            "<tr class=\"holdout\" data-variant=\"holdout\">"
        )),
        ["holdout", "80", "80", "48", "60.0 %", "baseline", "–", "–"]
    );
    assert!(html.contains("Newcombe"));

    // Nothing of the live mode.
    for live in ["liveoffer", "livereason", "livevariant"] {
        assert!(!html.contains(live), "{live}");
    }

    // The API's offers route answers as before: no `decided` (the dashboard's extra).
    let sk = t
        .key(
            shared::tenants::KeyKind::Secret,
            shared::tenants::Mode::Test,
        )
        .to_string();
    let api: serde_json::Value = app
        .client
        .get(app.url("/v1/analytics/offers?from=2026-01-01&to=2026-01-10"))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let control = api["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variant"] == "control")
        .unwrap();
    assert_eq!(control["lift_vs_holdout"], 0.2);
    assert!(control.get("decided").is_none(), "{control}");
}

#[tokio::test]
async fn the_overview_says_when_there_is_no_experiment_or_holdout() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Analyst).await;
    let cookie = signed_in(&app, "ana@acme.test").await;
    let html = get(
        &app,
        "/app?range=custom&from=2026-01-01&to=2026-01-10",
        &cookie,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(html.contains("No experiment ran in this period"), "{html}");
    assert!(html.contains("No reasons given in this period"));
    assert!(html.contains("No offers were shown in this period"));
    assert!(html.contains("Sessions per day: 0 in total"));
    assert!(html.contains("Save rate per day: no data in this period."));

    // Variants but no holdout: rates, no lift.
    sqlx::query(
        "INSERT INTO rollup_sessions_hourly (tenant_id, mode, hour, variant, outcome, saved_offer_type, sessions, saved_mrr_cents, validated)
         VALUES ($1, 'test', '2026-01-03T10:00:00Z', 'control', 'saved', 'pause', 3, 300, 0),
                ($1, 'test', '2026-01-03T10:00:00Z', 'control', 'canceled', '', 1, 0, 0)",
    )
    .bind(t.tenant.id)
    .execute(&app.pool)
    .await
    .unwrap();
    // Weekly points beyond four months; the rollup bumps the cache generation, which this
    // direct insert does not: a range not asked before.
    let html = get(
        &app,
        "/app?range=custom&from=2025-09-01&to=2026-01-10",
        &cookie,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        html.contains("No decided holdout sessions in this period"),
        "{html}"
    );
    assert_eq!(
        cells(row(&html, "<tr data-variant=\"control\">")),
        ["control", "4", "4", "3", "75.0 %", "–", "–", "no data"]
    );
    assert!(html.contains("One point per week"));
    assert!(html.contains("Sessions per week: 4 in total"));
}

#[tokio::test]
async fn the_overview_scripts_and_chart_library_are_hashed_immutable_assets() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Analyst).await;
    let cookie = signed_in(&app, "ana@acme.test").await;
    let html = get(&app, "/app", &cookie).await.text().await.unwrap();
    let src = |prefix: &str, ext: &str| -> String {
        let path = html
            .split('"')
            .find(|p| p.starts_with(&format!("/app/assets/{prefix}.")) && p.ends_with(ext))
            .unwrap_or_else(|| panic!("no {prefix} {ext} asset in {html}"))
            .to_string();
        // name.<12 hex>.ext
        let hash = path.rsplit('.').nth(1).unwrap();
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{path}"
        );
        path
    };
    for (path, kind, needle) in [
        (
            src("uplot", ".js"),
            "text/javascript",
            "leeoniya/uPlot (v1.6.32)",
        ),
        (src("uplot", ".css"), "text/css", ".uplot"),
        (src("overview", ".js"), "text/javascript", "overview-data"),
    ] {
        let res = client().get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers();
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind));
        assert_eq!(
            h[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert!(res.text().await.unwrap().contains(needle), "{path}");
    }
    let res = client()
        .get(app.url("/app/assets/uplot.000000000000.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The page's CSP still allows no inline script: the data is JSON, not code.
    let res = get(&app, "/app", &cookie).await;
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
}
