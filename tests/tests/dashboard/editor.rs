//! The flow editor, its live preview, versions, diff, restore and copy to live.

use serde_json::{json, Value};

#[allow(unused_imports)]
use super::*;

/// The pairs a browser would submit for the page's form `form_id` (inputs, checked boxes,
/// textareas, the selected option of each select; no submit buttons).
fn form_pairs(html: &str, form_id: &str) -> Vec<(String, String)> {
    let start = html.find(&format!("id=\"{form_id}\"")).expect("the form");
    let end = start + html[start..].find("</form>").expect("the form's end");
    let mut rest = &html[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let k = format!(" {name}=\"");
        let at = tag.find(&k)? + k.len();
        Some(unescape(&tag[at..at + tag[at..].find('"')?]))
    };
    let mut out = Vec::new();
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let tag_end = rest.find('>').unwrap() + 1;
        let tag = &rest[..tag_end];
        if tag.starts_with("<input ") {
            let kind = attr(tag, "type").unwrap_or_default();
            if let Some(n) = attr(tag, "name") {
                match kind.as_str() {
                    "checkbox" if tag.contains(" checked") => out.push((n, "on".into())),
                    "checkbox" => {}
                    _ => out.push((n, attr(tag, "value").unwrap_or_default())),
                }
            }
        } else if tag.starts_with("<textarea ") {
            let close = rest.find("</textarea>").unwrap();
            out.push((attr(tag, "name").unwrap(), unescape(&rest[tag_end..close])));
        } else if tag.starts_with("<select ") {
            let close = rest.find("</select>").unwrap();
            let body = &rest[tag_end..close];
            let options: Vec<&str> = body.split("<option ").skip(1).collect();
            let chosen = options
                .iter()
                .find(|o| o.contains(" selected>") || o.contains("\" selected"))
                .or(options.first())
                .map(|o| attr(&format!(" {o}"), "value").unwrap_or_default())
                .unwrap_or_default();
            if let Some(n) = attr(tag, "name") {
                out.push((n, chosen));
            }
        }
        rest = &rest[tag_end..];
    }
    out
}

fn with(mut pairs: Vec<(String, String)>, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in changes {
        match pairs.iter_mut().find(|(n, _)| n == k) {
            Some(p) => p.1 = v.to_string(),
            None => pairs.push((k.to_string(), v.to_string())),
        }
    }
    pairs
}

async fn post_pairs(
    app: &TestApp,
    path: &str,
    cookie: &str,
    pairs: &[(String, String)],
) -> reqwest::Response {
    client()
        .post(app.url(path))
        .header(header::COOKIE, format!("rtos_session={cookie}"))
        .form(pairs)
        .send()
        .await
        .unwrap()
}

async fn draft(app: &TestApp, id: &str) -> Value {
    let (d,): (Value,) = sqlx::query_as("SELECT draft FROM flows WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    d
}

/// An owner's new flow: its id and the editor's HTML.
async fn new_flow(app: &TestApp, cookie: &str, name: &str) -> (String, String) {
    let html = get(app, "/app/flows", cookie).await.text().await.unwrap();
    assert!(html.contains("action=\"/app/flows/new\""), "{html}");
    let res = post(
        app,
        "/app/flows/new",
        cookie,
        &[("csrf", &csrf_of(&html)), ("name", name)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res).to_string();
    let id = to
        .strip_prefix("/app/flows/")
        .and_then(|r| r.strip_suffix("?notice=created"))
        .expect("to the editor")
        .to_string();
    let html = get(app, &to, cookie).await.text().await.unwrap();
    (id, html)
}

#[tokio::test]
async fn the_editor_round_trips_every_part_of_a_flow_through_the_api() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    let owner = signed_in(&app, "owner@acme.test").await;
    let (id, html) = new_flow(&app, &owner, "Winter flow").await;
    assert!(html.contains("Flow created."), "{html}");
    let starter = draft(&app, &id).await;
    assert_eq!(starter["name"], "Winter flow");

    // Submitting the page's own form unchanged saves the very same draft.
    let pairs = form_pairs(&html, "flow-editor");
    for name in [
        "name",
        "steps[0].reasons[2].label",
        "steps[1].offers[0].discount.percent_off",
        "steps[1].offers[0].pause.months",
        "experiment.holdout_percent",
    ] {
        assert!(pairs.iter().any(|(k, _)| k == name), "{name} in {pairs:?}");
    }
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(pairs.clone(), &[("op", "save")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/app/flows/{id}?notice=saved"));
    assert_eq!(draft(&app, &id).await, starter);

    // Structural edits re-render the unsaved form; saving that form keeps them.
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(pairs.clone(), &[("op", "add:steps[1].offers")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("You have unsaved changes."));
    assert_eq!(draft(&app, &id).await, starter, "nothing saved yet");
    let pairs = form_pairs(&html, "flow-editor");
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(pairs, &[("op", "add:targeting")]),
    )
    .await;
    let pairs = form_pairs(&res.text().await.unwrap(), "flow-editor");
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(pairs, &[("op", "add:experiment.variants")]),
    )
    .await;
    let pairs = form_pairs(&res.text().await.unwrap(), "flow-editor");
    // Every kind of value the API takes, through the fields the page rendered.
    let pairs = with(
        pairs,
        &[
            ("op", "save"),
            ("ranking_score", "7"),
            ("is_default", "on"),
            ("language", "fr"),
            ("strings", "title = Avant de partir"),
            ("targeting[0].attribute", "mrr_cents"),
            ("targeting[0].op", "gte"),
            ("targeting[0].value", "5000"),
            ("experiment.enabled", "on"),
            ("experiment.holdout_percent", "20"),
            ("experiment.variants[0].key", "pause_only"),
            ("experiment.variants[0].weight", "100"),
            ("experiment.variants[0].offer_ids", "offer"),
            ("steps[0].reasons[0].follow_up", "Which price would work?"),
            ("steps[1].offers[1].type", "pause"),
            ("steps[1].offers[1].title", "Take a break"),
            ("steps[1].offers[1].pause.months", "2"),
            ("steps[1].offers[1].pause.behavior", "keep_as_draft"),
            (
                "steps[1].offers[1].reason_codes",
                "too_expensive, not_using",
            ),
        ],
    );
    let res = post_pairs(&app, &format!("/app/flows/{id}"), &owner, &pairs).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let d = draft(&app, &id).await;
    assert_eq!(d["ranking_score"], 7);
    assert_eq!(d["is_default"], true);
    assert_eq!(d["language"], "fr");
    assert_eq!(d["strings"], json!({ "title": "Avant de partir" }));
    assert_eq!(
        d["targeting"],
        json!([{ "attribute": "mrr_cents", "op": "gte", "value": 5000 }])
    );
    assert_eq!(
        d["experiment"],
        json!({ "holdout_percent": 20, "variants": [{ "key": "pause_only", "weight": 100, "offer_ids": ["offer"] }] })
    );
    assert_eq!(
        d["steps"][0]["reasons"][0]["follow_up"],
        "Which price would work?"
    );
    assert_eq!(
        d["steps"][1]["offers"][1],
        json!({ "id": "offer", "type": "pause", "title": "Take a break", "description": "",
                "reason_codes": ["too_expensive", "not_using"],
                "pause": { "months": 2, "behavior": "keep_as_draft" } })
    );
    // The discount offer keeps only its own parameters.
    assert!(d["steps"][1]["offers"][0].get("pause").is_none());
    // The change is audited as the dashboard user.
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_events WHERE action = 'flow.update' AND target_id = $1 AND actor_type = 'dashboard_user'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(n, 2);
    // And the saved editor shows it all again.
    let html = get(&app, &format!("/app/flows/{id}"), &owner)
        .await
        .text()
        .await
        .unwrap();
    let again = form_pairs(&html, "flow-editor");
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(again, &[("op", "save")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(draft(&app, &id).await, d);
}

#[tokio::test]
async fn validation_errors_land_on_the_field_the_api_names_and_change_nothing() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    let owner = signed_in(&app, "owner@acme.test").await;
    let (id, html) = new_flow(&app, &owner, "F").await;
    let before = draft(&app, &id).await;
    let pairs = form_pairs(&html, "flow-editor");
    let cases = [
        (
            "steps[1].offers[0].discount.percent_off",
            "lots",
            "f-steps-1-offers-0-discount-percent_off",
        ),
        (
            "steps[1].offers[0].reason_codes",
            "too_expensive, nope",
            "f-steps-1-offers-0-reason_codes",
        ),
        ("steps[0].reasons[1].label", "", "f-steps-0-reasons-1-label"),
        ("name", "", "f-name"),
    ];
    for (field, value, id_attr) in cases {
        let res = post_pairs(
            &app,
            &format!("/app/flows/{id}"),
            &owner,
            &with(pairs.clone(), &[("op", "save"), (field, value)]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!(
                "id=\"{id_attr}\" name=\"{field}\" type=\"text\"{}value=\"{}\" aria-invalid=\"true\" aria-describedby=\"{id_attr}-err\"",
                if field.ends_with("percent_off") { " inputmode=\"decimal\" " } else { " " },
                value
            )),
            "{field}: {html}"
        );
        assert!(
            html.contains(&format!(
                "<div id=\"{id_attr}-err\" class=\"field-error\" data-error-for=\"{field}\">"
            )),
            "{field}"
        );
        // Exactly one field is marked.
        assert_eq!(html.matches("aria-invalid=\"true\"").count(), 1, "{field}");
        assert_eq!(draft(&app, &id).await, before);
    }
    // A structural edit the form cannot make is a 400 with the form kept.
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(pairs.clone(), &[("op", "remove:steps[9]")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("That edit cannot be made"));
    assert_eq!(draft(&app, &id).await, before);
}

#[tokio::test]
async fn analysts_read_the_editor_and_every_change_of_theirs_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, t.tenant.id, "analyst@acme.test", Role::Analyst).await;
    let owner = signed_in(&app, "owner@acme.test").await;
    let (id, owner_html) = new_flow(&app, &owner, "F").await;
    // Publish once so there is a version to restore.
    let res = post(
        &app,
        &format!("/app/flows/{id}/publish"),
        &owner,
        &[("csrf", &csrf_of(&owner_html)), ("back", "editor")],
        None,
    )
    .await;
    assert_eq!(
        location(&res),
        format!("/app/flows/{id}?notice=published_1")
    );
    let before = draft(&app, &id).await;
    let flows = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM flows")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        n
    };
    assert_eq!(flows().await, 1);

    let analyst = signed_in(&app, "analyst@acme.test").await;
    let html = get(&app, &format!("/app/flows/{id}"), &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Read only: your role cannot change flows."));
    assert!(html.contains("<fieldset disabled>"));
    assert!(!html.contains("id=\"save-draft\""));
    assert!(!html.contains("id=\"publish\""));
    assert!(!html.contains("Restore as draft"));
    assert!(!html.contains("/copy-to-live"));
    let list = get(&app, "/app/flows", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains("/app/flows/new"));
    let csrf = csrf_of(&html);
    let mut pairs = form_pairs(&owner_html, "flow-editor");
    pairs = with(
        pairs,
        &[("csrf", &csrf), ("op", "save"), ("name", "Hijacked")],
    );
    let res = post_pairs(&app, &format!("/app/flows/{id}"), &analyst, &pairs).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    for path in [
        "/app/flows/new".to_string(),
        format!("/app/flows/{id}/versions/1/restore"),
        format!("/app/flows/{id}/copy-to-live"),
    ] {
        let res = post(&app, &path, &analyst, &[("csrf", &csrf)], None).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(draft(&app, &id).await, before);
    assert_eq!(flows().await, 1);
    // The owner without a CSRF token is refused too.
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}"),
        &owner,
        &with(
            form_pairs(&owner_html, "flow-editor"),
            &[("csrf", "wrong"), ("op", "save")],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_preview_runs_the_widget_on_the_draft_without_saving() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    let owner = signed_in(&app, "owner@acme.test").await;
    let (id, html) = new_flow(&app, &owner, "F").await;
    let before = draft(&app, &id).await;

    // The frame: the real widget script, our preview script, the saved draft as data.
    let res = get(&app, &format!("/app/flows/{id}/preview"), &owner).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let frame = res.text().await.unwrap();
    let widget = frame
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(widget.starts_with("/widget.js?v="), "{widget}");
    let js = client()
        .get(app.url(&widget))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        js.contains("o.preview"),
        "the served widget takes the preview option"
    );
    let preview_js = frame
        .split("<script src=\"")
        .nth(2)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let res = get(&app, &preview_js, &owner).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let marker = "id=\"rtos-preview-data\">";
    let at = frame.find(marker).unwrap() + marker.len();
    let data: Value =
        serde_json::from_str(&frame[at..at + frame[at..].find("</script>").unwrap()]).unwrap();
    assert_eq!(data["flow"]["steps"], before["steps"]);
    assert!(data["strings"]["confirm_cancel"].is_string());

    // The editor's form, changed and unsaved, as the widget would get it.
    let pairs = form_pairs(&html, "flow-editor");
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}/preview"),
        &owner,
        &with(
            pairs.clone(),
            &[
                ("steps[1].offers[0].title", "Half price </script>"),
                ("language", "de"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let p: Value = res.json().await.unwrap();
    assert_eq!(
        p["flow"]["steps"][1]["offers"][0]["title"],
        "Half price </script>"
    );
    assert_eq!(p["language"], "de");
    assert_eq!(p["holdout"], false);
    // As the holdout sees it: no offer step.
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}/preview"),
        &owner,
        &with(pairs.clone(), &[("_preview", "holdout")]),
    )
    .await;
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["holdout"], true);
    assert!(p["flow"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["type"] != "offer"));
    // An invalid draft: the API's error envelope with the field's param.
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}/preview"),
        &owner,
        &with(pairs.clone(), &[("steps[2].title", "")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["param"], "steps[2].title");
    // Without the CSRF token: refused.
    let res = post_pairs(
        &app,
        &format!("/app/flows/{id}/preview"),
        &owner,
        &with(pairs, &[("csrf", "")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(draft(&app, &id).await, before, "a preview saves nothing");
}

#[tokio::test]
async fn versions_diff_restore_and_copy_to_live() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, other.tenant.id, "owner@other.test", Role::Owner).await;
    let owner = signed_in(&app, "owner@acme.test").await;
    let (id, html) = new_flow(&app, &owner, "F").await;
    let csrf = csrf_of(&html);
    let publish = || async {
        let res = post(
            &app,
            &format!("/app/flows/{id}/publish"),
            &owner,
            &[("csrf", &csrf), ("back", "editor")],
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    };
    publish().await;
    let v1 = draft(&app, &id).await;
    let pairs = with(
        form_pairs(&html, "flow-editor"),
        &[
            ("op", "save"),
            ("steps[1].offers[0].discount.percent_off", "40"),
        ],
    );
    let res = post_pairs(&app, &format!("/app/flows/{id}"), &owner, &pairs).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    publish().await;

    let html = get(&app, &format!("/app/flows/{id}"), &owner)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<li data-version=\"2\"><strong>Version 2</strong> <span class=\"badge\">published</span>"), "{html}");
    assert!(html.contains("<li data-version=\"1\">"));
    let html = get(&app, &format!("/app/flows/{id}/diff?a=1&b=2"), &owner)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(
            "<td class=\"sign\">−</td><td><code>            &#34;percent_off&#34;: 25.0</code>"
        ),
        "{html}"
    );
    assert!(html.contains(
        "<td class=\"sign\">+</td><td><code>            &#34;percent_off&#34;: 40.0</code>"
    ));
    assert_eq!(html.matches("class=\"d-add\"").count(), 1);
    assert_eq!(html.matches("class=\"d-del\"").count(), 1);
    // Unchanged parts far from the change are left out.
    assert!(!html.contains("Why are you canceling?"));
    let html = get(&app, &format!("/app/flows/{id}/diff?a=2&b=draft"), &owner)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("The two are identical."));
    let res = get(&app, &format!("/app/flows/{id}/diff?a=9&b=draft"), &owner).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Restore version 1 as the draft: the draft is v1 again, version 2 stays published.
    let res = post(
        &app,
        &format!("/app/flows/{id}/versions/1/restore"),
        &owner,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(location(&res), format!("/app/flows/{id}?notice=restored_1"));
    assert_eq!(draft(&app, &id).await, v1);
    let (pv,): (Option<i32>,) =
        sqlx::query_as("SELECT published_version FROM flows WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(pv, Some(2));
    let res = post(
        &app,
        &format!("/app/flows/{id}/versions/7/restore"),
        &owner,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Copy to live, publishing the test flow's published version (2) there.
    let res = post(
        &app,
        &format!("/app/flows/{id}/copy-to-live"),
        &owner,
        &[("csrf", &csrf), ("publish", "on")],
        None,
    )
    .await;
    assert_eq!(
        location(&res),
        format!("/app/flows/{id}?notice=copied_published")
    );
    let (live_id, live_pv, copied): (uuid::Uuid, Option<i32>, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT id, published_version, copied_from FROM flows WHERE mode = 'live' AND tenant_id = $1",
    )
    .bind(t.tenant.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(live_pv, Some(1));
    assert_eq!(copied.map(|c| c.to_string()), Some(id.clone()));
    let (def,): (Value,) =
        sqlx::query_as("SELECT definition FROM flow_versions WHERE flow_id = $1")
            .bind(live_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        def["steps"][1]["offers"][0]["discount"]["percent_off"],
        40.0
    );

    // In live mode the test flow is not there, and the live flow's editor has no copy button.
    let res = post(
        &app,
        "/app/mode",
        &owner,
        &[("csrf", &csrf), ("mode", "live"), ("back", "/app/flows")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, &format!("/app/flows/{id}"), &owner)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let html = get(&app, &format!("/app/flows/{live_id}"), &owner)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("to live customers"));
    assert!(!html.contains("/copy-to-live"));
    let res = post(
        &app,
        &format!("/app/flows/{live_id}/copy-to-live"),
        &owner,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Another tenant's owner cannot see or change the flow.
    let stranger = signed_in(&app, "owner@other.test").await;
    for path in [
        format!("/app/flows/{id}"),
        format!("/app/flows/{id}/preview"),
        format!("/app/flows/{id}/diff"),
    ] {
        assert_eq!(
            get(&app, &path, &stranger).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let page = get(&app, "/app/flows", &stranger)
        .await
        .text()
        .await
        .unwrap();
    let res = post(
        &app,
        &format!("/app/flows/{id}/versions/1/restore"),
        &stranger,
        &[("csrf", &csrf_of(&page))],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
