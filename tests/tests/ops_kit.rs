//! The ops kit (`ops/`): the Grafana dashboard and the Prometheus recording and alerting rules
//! name only metrics (and, in selectors, only label names) that the api and the workers
//! really export, scraped after real traffic; the dashboard JSON is well formed; and the
//! rules pass `promtool check rules` and their unit tests (`promtool test rules`).
//!
//! promtool is Debian's `prometheus` package (`apt-get install -y prometheus`); the promtool
//! test fails with that instruction when it is missing. `ops/prometheus/check.sh` runs the
//! same promtool checks by hand.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use harness::{fake_stripe, wait_until, Env, TestApp};
use serde_json::{json, Value};
use shared::{
    tenants::{KeyKind, Mode},
    widget_token::{sign, Claims},
};

/// Names the expressions may use although a short test run does not make the services
/// export them. Each one says why.
const ALLOWED_UNSEEN: &[(&str, &str)] = &[
    (
        "up",
        "synthetic: Prometheus records it for every scrape target",
    ),
    (
        "http_requests_shed_total",
        "registered on the first load-shedding 503 (the api's shedding is being added)",
    ),
    (
        "http_rate_limited_total",
        "registered on the first 429 from the rate limiter (being added)",
    ),
    (
        "offers_applied_total",
        "registered when an offer is first applied on Stripe, which needs a Stripe double",
    ),
];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance", "__name__"];

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

fn read(rel: &str) -> String {
    let p = ops_dir().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------
// Reading the artefacts
// ---------------------------------------------------------------------------------------

/// The `expr:` values of a rules file. The files keep every `expr:` a one-line plain
/// scalar or a `|` / `>` block scalar (their headers say so); anything else fails here.
fn yaml_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let rest = trimmed
            .strip_prefix("- expr:")
            .or_else(|| trimmed.strip_prefix("expr:"));
        if let Some(rest) = rest {
            let v = rest.trim();
            if v.starts_with('|') || v.starts_with('>') {
                let mut block = Vec::new();
                i += 1;
                while i < lines.len() {
                    let l = lines[i];
                    let t = l.trim_start();
                    if !t.is_empty() && l.len() - t.len() <= indent {
                        break;
                    }
                    block.push(t);
                    i += 1;
                }
                out.push(
                    block
                        .join(if v.starts_with('>') { " " } else { "\n" })
                        .trim()
                        .to_string(),
                );
                continue;
            }
            assert!(!v.is_empty(), "empty expr on line {}", i + 1);
            let v = if (v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\''))
            {
                v[1..v.len() - 1].to_string()
            } else {
                assert!(
                    !v.starts_with('"') && !v.starts_with('\''),
                    "line {}: a quoted expr must be on one line",
                    i + 1
                );
                v.to_string()
            };
            out.push(v);
        }
        i += 1;
    }
    out
}

/// The names defined by `record:` in a rules file.
fn yaml_records(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            t.strip_prefix("- record:")
                .or_else(|| t.strip_prefix("record:"))
                .map(|v| v.trim().to_string())
        })
        .collect()
}

/// Every `expr` of the dashboard's panels and targets, and the metrics of its
/// `label_values(metric, label)` variables.
fn dashboard_exprs(dash: &Value) -> (Vec<String>, Vec<(String, String)>) {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&dash["panels"], &mut exprs);
    let mut label_values = Vec::new();
    for var in dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        let q = match &var["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        if let Some(inner) = q
            .trim()
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let (metric, label) = inner.split_once(',').expect("label_values(metric, label)");
            label_values.push((metric.trim().to_string(), label.trim().to_string()));
        } else {
            assert!(
                var["type"] != "query",
                "query variable {} is not label_values(metric, label)",
                var["name"]
            );
        }
    }
    (exprs, label_values)
}

/// Grafana variables replaced by values PromQL accepts (as check.sh does).
fn substitute_grafana(expr: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let mut out = String::new();
    let mut chars = e.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if chars.peek() == Some(&'{') {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
            } else {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    chars.next();
                }
            }
            out.push_str(".*");
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// A small PromQL reader: metric names and the label names of their selectors
// ---------------------------------------------------------------------------------------

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "Inf",
    "NaN",
    // Aggregation operators: `sum by (x) (...)` puts a clause between the name and `(`.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Blanks out string literals (keeping the quotes), so their contents are never read as names.
fn strip_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    assert!(quote.is_none(), "unterminated string in {expr:?}");
    out
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}
fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// (metric name, label names used in its selector) for every selector of `expr`.
fn selectors(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let s: Vec<char> = strip_strings(expr).chars().collect();
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    let skip_ws = |mut i: usize| {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        i
    };
    // Reads a `{...}` matcher block starting at `i` (on the brace); returns its label names
    // and the index after the closing brace.
    let matchers = |mut i: usize| {
        let mut labels = BTreeSet::new();
        i += 1;
        while i < s.len() && s[i] != '}' {
            if is_ident_start(s[i]) {
                let start = i;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                let name: String = s[start..i].iter().collect();
                let j = skip_ws(i);
                if j < s.len() && (s[j] == '=' || s[j] == '!') {
                    labels.insert(name);
                }
            } else {
                i += 1;
            }
        }
        (labels, i + 1)
    };
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '[' {
            while i < s.len() && s[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            // A selector without a metric name ({__name__=...}): nothing to check by name.
            let (_, next) = matchers(i);
            i = next;
        } else if c.is_ascii_digit() || c == '.' {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let j = skip_ws(i);
            let next = s.get(j).copied();
            if LABEL_LISTS.contains(&word.as_str()) {
                if next == Some('(') {
                    while i < s.len() && s[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                }
            } else if KEYWORDS.contains(&word.as_str()) || next == Some('(') {
                // an operator keyword, or a function / aggregation name
            } else if next == Some('{') {
                let (labels, after) = matchers(j);
                out.push((word, labels));
                i = after;
            } else {
                out.push((word, BTreeSet::new()));
            }
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The services' real exposition
// ---------------------------------------------------------------------------------------

/// Series names of a Prometheus text exposition, each with the label names it carries.
fn exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let entry = out.entry(name.to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').expect("closing brace")];
            for (k, _) in strip_strings(body)
                .split(',')
                .filter_map(|p| p.split_once('='))
            {
                entry.insert(k.trim().to_string());
            }
        }
    }
    out
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let res = client.get(url).send().await.expect("scrape");
    assert_eq!(res.status(), 200, "GET {url}");
    res.text().await.unwrap()
}

fn flow_body() -> Value {
    json!({"name":"Default","language":"en","is_default":true,"steps":[
        {"id":"survey","type":"survey","title":"Why are you leaving?","reasons":[
            {"code":"too_expensive","label":"Too expensive"},{"code":"missing_features","label":"Missing features"}]},
        {"id":"offer","type":"offer","offers":[
            {"id":"disc20","type":"discount","title":"20% off","discount":{"percent_off":20,"duration":"repeating","duration_in_months":3}},
            {"id":"pause2","type":"pause","title":"Pause","pause":{"months":2}}]},
        {"id":"confirm","type":"confirm","title":"Confirm"}]})
}

/// Traffic that makes the services register their metrics: every endpoint class, a
/// webhook whose re-fetch fails (nothing listens on STRIPE_API_BASE), a forged webhook,
/// and rollup / reconcile ticks every second. The returned socket holds STRIPE_API_BASE's
/// port (bound, never listening: connections are refused) so that no other process can
/// take the port and answer the re-fetch; keep it until the test ends.
async fn exercise() -> (TestApp, workers::Running, tokio::net::TcpSocket) {
    let stripe_port = tokio::net::TcpSocket::new_v4().unwrap();
    stripe_port.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut env = Env::new().await;
    env.set("ROLLUP_INTERVAL_SECS", "1")
        .set("RECONCILE_INTERVAL_SECS", "1")
        .set("JOB_RETRY_BASE_MS", "200")
        .set(
            "STRIPE_API_BASE",
            format!("http://{}", stripe_port.local_addr().unwrap()),
        );
    let app = TestApp::spawn_with(env).await;
    let worker = app.start_worker().await;
    let t = app.create_tenant("Ops kit").await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    let pk = t.key(KeyKind::Publishable, Mode::Test).to_string();
    let c = &app.client;

    let res = c
        .put(app.url("/v1/settings/stripe"))
        .bearer_auth(&sk)
        .json(&json!({"mode":"test","api_key":"rk_test_ops","webhook_secrets":["whsec_ops"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "stripe settings");
    let res = c
        .post(app.url("/v1/flows"))
        .bearer_auth(&sk)
        .json(&flow_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "create flow");
    let flow: Value = res.json().await.unwrap();
    let flow_id = flow["id"].as_str().unwrap().to_string();
    let res = c
        .post(app.url(&format!("/v1/flows/{flow_id}/publish")))
        .bearer_auth(&sk)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "publish: {}", res.status());

    let token = sign(
        &Claims {
            tid: t.tenant.id,
            cus: "cus_ops".into(),
            sub: None,
            exp: chrono::Utc::now().timestamp() + 600,
            attrs: None,
        },
        t.signing_secret(Mode::Test),
    );
    let res = c
        .post(app.url("/v1/widget/sessions"))
        .bearer_auth(&pk)
        .header("x-customer-token", &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "widget session");
    let session: Value = res.json().await.unwrap();
    let sid = session["session_id"].as_str().unwrap().to_string();
    for (i, ev) in [
        json!({"type":"reason_selected","reason_code":"too_expensive"}),
        json!({"type":"offer_shown","offer_id":"disc20"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ev = ev;
        ev["client_event_id"] = json!(format!("ops-{i}"));
        let res = c
            .post(app.url(&format!("/v1/widget/sessions/{sid}/events")))
            .bearer_auth(&pk)
            .header("x-customer-token", &token)
            .json(&ev)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "widget event");
    }

    let hook = app.url(&format!("/v1/webhooks/stripe/{}", t.tenant.id));
    let event = json!({"id":"evt_ops_1","type":"customer.subscription.updated","livemode":false,
        "created": chrono::Utc::now().timestamp(),
        "data":{"object":{"id":"sub_x","object":"subscription"}},"request":null});
    assert_eq!(
        fake_stripe::deliver(&hook, &event, "whsec_ops")
            .await
            .status(),
        200
    );
    assert_eq!(
        fake_stripe::deliver(&hook, &event, "whsec_forged")
            .await
            .status(),
        400
    );

    for path in [
        "/v1/tenant".to_string(),
        "/v1/flows".to_string(),
        format!("/v1/flows/{flow_id}"),
        format!("/v1/sessions/{sid}"),
        "/v1/analytics/summary?from=2026-01-01&to=2026-12-31".to_string(),
    ] {
        let res = c.get(app.url(&path)).bearer_auth(&sk).send().await.unwrap();
        assert!(
            res.status().is_success() || res.status() == 404,
            "GET {path}: {}",
            res.status()
        );
    }
    assert_eq!(
        c.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    (app, worker, stripe_port)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dashboard_and_rules_name_only_exported_metrics() {
    let (app, worker, _stripe_port) = exercise().await;
    let worker_url = format!("http://{}/metrics", worker.metrics_addr);
    // Wait for what only the worker's background work registers.
    let needed = [
        "rollup_duration_seconds_count",
        "rollup_lag_seconds",
        "reconciler_restored_total",
        "stripe_errors_total",
        "stripe_requests_total",
        "job_duration_seconds_bucket",
        "jobs_total",
        "queue_oldest_ready_age_seconds",
        "process_resident_memory_bytes",
    ];
    let ok = wait_until(Duration::from_secs(60), || {
        let (client, url) = (app.client.clone(), worker_url.clone());
        async move {
            let text = scrape(&client, &url).await;
            let have = exposition(&text);
            needed.iter().all(|n| have.contains_key(*n))
        }
    })
    .await;
    let api_text = scrape(&app.client, &app.url("/metrics")).await;
    let worker_text = scrape(&app.client, &worker_url).await;
    let mut exported = exposition(&api_text);
    for (k, v) in exposition(&worker_text) {
        exported.entry(k).or_default().extend(v);
    }
    assert!(
        ok,
        "the worker never exported {:?}; it has {:?}",
        needed
            .iter()
            .filter(|n| !exported.contains_key(**n))
            .collect::<Vec<_>>(),
        exported.keys().collect::<Vec<_>>()
    );

    let recording = read("prometheus/recording.yml");
    let alerts = read("prometheus/alerts.yml");
    let mut recorded = yaml_records(&recording);
    recorded.extend(yaml_records(&alerts));
    let dash: Value = serde_json::from_str(&read("grafana/retentionos-dashboard.json"))
        .expect("the dashboard is JSON");
    let (dash_exprs, label_values) = dashboard_exprs(&dash);

    let mut sources: Vec<(String, String)> = Vec::new();
    sources.extend(
        yaml_exprs(&recording)
            .into_iter()
            .map(|e| ("recording.yml".into(), e)),
    );
    sources.extend(
        yaml_exprs(&alerts)
            .into_iter()
            .map(|e| ("alerts.yml".into(), e)),
    );
    sources.extend(
        dash_exprs
            .into_iter()
            .map(|e| ("dashboard".into(), substitute_grafana(&e))),
    );
    assert!(sources.iter().filter(|(f, _)| f == "recording.yml").count() >= 25);
    assert!(sources.iter().filter(|(f, _)| f == "alerts.yml").count() >= 15);
    assert!(sources.iter().filter(|(f, _)| f == "dashboard").count() >= 30);

    let allowed: BTreeMap<&str, &str> = ALLOWED_UNSEEN.iter().copied().collect();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (file, expr) in &sources {
        let sel = selectors(expr);
        assert!(
            !sel.is_empty() || expr.contains("vector("),
            "{file}: no metric in {expr:?}"
        );
        for (metric, labels) in sel {
            used.insert(metric.clone());
            if recorded.contains(&metric) || allowed.contains_key(metric.as_str()) {
                continue;
            }
            let Some(have) = exported.get(&metric) else {
                problems.push(format!("{file}: `{metric}` is not exported (in {expr:?})"));
                continue;
            };
            for l in labels {
                if !have.contains(&l) && !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!(
                        "{file}: `{metric}` has no label `{l}` (it has {have:?}) in {expr:?}"
                    ));
                }
            }
        }
    }
    for (metric, label) in &label_values {
        match exported.get(metric) {
            Some(have) if have.contains(label) || TARGET_LABELS.contains(&label.as_str()) => {}
            Some(have) => problems.push(format!(
                "dashboard variable: `{metric}` has no label `{label}` ({have:?})"
            )),
            None => problems.push(format!("dashboard variable: `{metric}` is not exported")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The allow-list stays honest: every entry is used, and none is exported already.
    for (name, why) in ALLOWED_UNSEEN {
        assert!(
            used.contains(*name),
            "allow-listed `{name}` ({why}) is not used any more"
        );
        assert!(
            !exported.contains_key(*name),
            "`{name}` is exported now: drop it from ALLOWED_UNSEEN"
        );
    }
    // The recording rules that the alerts and the dashboard read exist.
    for r in &recorded {
        assert!(
            r.contains(':'),
            "recording rule `{r}` should follow level:metric:operation"
        );
    }
    worker.shutdown().await;
    app.stop().await;
}

#[test]
fn dashboard_is_well_formed() {
    let dash: Value = serde_json::from_str(&read("grafana/retentionos-dashboard.json"))
        .expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "retentionos-main");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        let g = &p["gridPos"];
        for k in ["h", "w", "x", "y"] {
            assert!(g[k].is_u64(), "panel {id} gridPos.{k}");
        }
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "panel {id} wider than the grid"
        );
        titles.push(p["title"].as_str().unwrap_or("").to_lowercase());
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {id} datasource"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "panel {id} target expr"
            );
            assert!(
                refs.insert(t["refId"].as_str().expect("refId").to_string()),
                "panel {id} refId"
            );
        }
    }
    let all = titles.join(" | ");
    for topic in [
        "latency",
        "throughput",
        "error",
        "queue depth",
        "oldest ready job",
        "pool",
        "rollup",
        "cpu",
        "memory",
        "shedding",
    ] {
        assert!(all.contains(topic), "no panel about {topic}: {all}");
    }
}

#[test]
fn promql_reader_finds_metrics_and_labels() {
    let sel = selectors(
        r#"sum by (class, le) (rate(http_request_duration_seconds_bucket{class="widget", le="0.25", status!~"5.."}[1m])) / on (class) group_left () (x:y:z > 0) and ignoring(a) up offset 5m > bool 2 * 0.25"#,
    );
    let names: Vec<&str> = sel.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["http_request_duration_seconds_bucket", "x:y:z", "up"]
    );
    assert_eq!(
        sel[0].1,
        ["class", "le", "status"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(
        substitute_grafana(r#"rate(a{class=~"$class", q=~"${queue}"}[$__rate_interval])"#),
        r#"rate(a{class=~".*", q=~".*"}[5m])"#
    );
    let yaml = "rules:\n  - record: a:b\n    expr: sum(x)\n  - alert: A\n    expr: |\n      y\n        > 1\n    for: 5m\n";
    assert_eq!(yaml_exprs(yaml), ["sum(x)", "y\n> 1"]);
    assert_eq!(
        yaml_records(yaml),
        ["a:b".to_string()].into_iter().collect()
    );
}

fn promtool() -> &'static str {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool is not installed. Install it with `apt-get install -y prometheus` (Debian ships \
         promtool in that package); it validates ops/prometheus/*.yml. ops/prometheus/check.sh \
         runs the same checks by hand."
    );
    "promtool"
}

fn run_promtool(args: &[&str], dir: &Path) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_and_dashboard_queries_pass_promtool() {
    let dir = ops_dir().join("prometheus");
    run_promtool(&["check", "rules", "recording.yml", "alerts.yml"], &dir);
    run_promtool(&["test", "rules", "tests.yml"], &dir);
    run_promtool(&["check", "config", "prometheus.yml"], &dir);

    // The dashboard's queries, with Grafana's variables substituted, as recording rules.
    let dash: Value = serde_json::from_str(&read("grafana/retentionos-dashboard.json")).unwrap();
    let (exprs, _) = dashboard_exprs(&dash);
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&substitute_grafana(e)).unwrap()
        ));
    }
    let tmp = std::env::temp_dir().join(format!("rtos-ops-kit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("dashboard-rules.yml"), rules).unwrap();
    run_promtool(&["check", "rules", "dashboard-rules.yml"], &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
}
