//! `rtos-openloop`: an open-loop HTTP load generator for the overload scenario.
//!
//! k6 needs most of a core for a few thousand requests per second, and on a 2-core box that
//! shares its CPU with the api and PostgreSQL, its own scheduling delay ends up in the
//! latencies it reports. This generator is a few microseconds of CPU per request: it sends
//! request `i` at `start + i / rate` whatever happened to earlier ones (open loop), and
//! measures each latency from that scheduled instant, so a stalled server is charged for the
//! wait (no coordinated omission). Requests that cannot start because `--max-inflight` are
//! already waiting are counted as dropped, as k6 counts dropped iterations.
//!
//! Usage: `rtos-openloop --url URL --rate N --secs S [--method POST] [--body TEXT]
//!   [--header 'name: value']... [--data FILE] [--expect 201] [--max-inflight 4000]
//!   [--timeout-secs 10] [--warmup-secs W] --out FILE`
//!
//! `--warmup-secs W` first sends at the same rate for W seconds (connections are opened, the
//! service reaches its steady state); those requests are reported apart (`warmup`) and the
//! main figures cover the `--secs` that follow.
//!
//! With `--data`, request `i` takes line `i mod n` of FILE (fields separated by tabs), and
//! `{1}`, `{2}`, ... in the URL, header values and body are replaced by that line's fields;
//! `{i}` is replaced everywhere by the request number (unique ids per request).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::{json, Value};

struct Args {
    url: String,
    method: http::Method,
    rate: f64,
    secs: f64,
    warmup: f64,
    body: Bytes,
    body_template: Option<String>,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    data: Vec<Vec<String>>,
    headers_raw: Vec<(http::HeaderName, String)>,
    expect: u16,
    max_inflight: usize,
    timeout: Duration,
    out: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: String::new(),
        method: http::Method::POST,
        rate: 0.0,
        secs: 0.0,
        warmup: 0.0,
        body: Bytes::from_static(b"{}"),
        body_template: None,
        headers: Vec::new(),
        data: Vec::new(),
        headers_raw: Vec::new(),
        expect: 201,
        max_inflight: 4000,
        timeout: Duration::from_secs(10),
        out: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = val()?,
            "--method" => a.method = val()?.parse()?,
            "--rate" => a.rate = val()?.parse()?,
            "--secs" => a.secs = val()?.parse()?,
            "--warmup-secs" => a.warmup = val()?.parse()?,
            "--body" => {
                let b = val()?;
                if b.contains("{i}") || (1..10).any(|n| b.contains(&format!("{{{n}}}"))) {
                    a.body_template = Some(b);
                } else {
                    a.body = Bytes::from(b);
                }
            }
            "--header" => {
                let h = val()?;
                let (k, v) = h.split_once(':').context("--header takes 'name: value'")?;
                let v = v.trim();
                if v.contains('{') {
                    a.headers_raw.push((k.trim().parse()?, v.to_string()));
                } else {
                    a.headers.push((k.trim().parse()?, v.parse()?));
                }
            }
            "--data" => {
                let path = val()?;
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
                a.data = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.split('\t').map(str::to_string).collect())
                    .collect();
            }
            "--expect" => a.expect = val()?.parse()?,
            "--max-inflight" => a.max_inflight = val()?.parse()?,
            "--timeout-secs" => a.timeout = Duration::from_secs_f64(val()?.parse()?),
            "--out" => a.out = val()?,
            "-h" | "--help" => {
                println!("see the doc comment of loadtests/openloop/src/main.rs");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if a.url.is_empty() || a.out.is_empty() || a.rate <= 0.0 || a.secs <= 0.0 {
        bail!("--url, --rate, --secs and --out are required");
    }
    Ok(a)
}

/// `text` with `{i}` and `{1}`, `{2}`, ... (fields of the data line) filled in.
fn fill(text: &str, i: u64, fields: &[String]) -> String {
    if !text.contains('{') {
        return text.to_string();
    }
    let mut out = text.replace("{i}", &i.to_string());
    for (n, f) in fields.iter().enumerate() {
        out = out.replace(&format!("{{{}}}", n + 1), f);
    }
    out
}

/// One finished request: status (0 = no response), Retry-After present, latency from the
/// scheduled instant and from the actual send (microseconds).
type Sample = (u16, bool, u64, u64, u32);

fn quantiles(mut v: Vec<u64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    let q = |p: f64| {
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    };
    json!({ "n": v.len(), "p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": q(1.0) })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Arc::new(parse_args()?);
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(conn);
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm_total = (a.rate * a.warmup).round() as u64;
    let total = warm_total + (a.rate * a.secs).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let (mut dropped, mut warm_dropped) = (0u64, 0u64);
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        if inflight.load(std::sync::atomic::Ordering::Relaxed) >= a.max_inflight {
            if i < warm_total {
                warm_dropped += 1;
            } else {
                dropped += 1;
            }
            continue;
        }
        inflight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fields: &[String] = if a.data.is_empty() {
            &[]
        } else {
            &a.data[i as usize % a.data.len()]
        };
        let mut req = http::Request::builder()
            .method(a.method.clone())
            .uri(fill(&a.url, i, fields));
        for (k, v) in &a.headers {
            req = req.header(k, v);
        }
        for (k, v) in &a.headers_raw {
            req = req.header(k, fill(v, i, fields));
        }
        let body = match &a.body_template {
            Some(t) => Bytes::from(fill(t, i, fields)),
            None => a.body.clone(),
        };
        let req = req.body(Full::new(body))?;
        let (client, samples, inflight, timeout) =
            (client.clone(), samples.clone(), inflight.clone(), a.timeout);
        tasks.spawn(async move {
            let sent = Instant::now();
            let res = tokio::time::timeout(timeout, async {
                let res = client.request(req).await?;
                let status = res.status().as_u16();
                let ra = res.headers().contains_key(http::header::RETRY_AFTER);
                res.into_body().collect().await?;
                Ok::<_, anyhow::Error>((status, ra))
            })
            .await;
            let done = Instant::now();
            let (status, ra) = match res {
                Ok(Ok(s)) => s,
                _ => (0, false),
            };
            let sample = (
                status,
                ra,
                (done - due).as_micros() as u64,
                (done - sent).as_micros() as u64,
                (due - start).as_secs() as u32,
            );
            samples.lock().expect("lock").push(sample);
            inflight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
        // Reap finished tasks now and then so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let offered_secs = start.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    let all = std::mem::take(&mut *samples.lock().expect("lock"));
    let warm_secs = a.warmup.ceil() as u32;
    let (warm, samples): (Vec<Sample>, Vec<Sample>) = all
        .iter()
        .partition(|s| (s.4) < warm_secs && a.warmup > 0.0);
    let warm_ok: Vec<u64> = warm
        .iter()
        .filter(|s| s.0 == a.expect)
        .map(|s| s.2)
        .collect();
    let warmup = json!({
        "secs": a.warmup, "sent": warm.len(), "not_sent": warm_dropped,
        "ok": warm_ok.len(), "shed": warm.iter().filter(|s| s.0 == 429 || s.0 == 503).count(),
        "errors": warm.iter().filter(|s| s.0 != a.expect && s.0 != 429 && s.0 != 503).count(),
        "lat_ok_from_schedule_ms": quantiles(warm_ok),
    });
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ok_sched, mut ok_sent, mut shed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ra_missing_429, mut ra_missing_503) = (0u64, 0u64);
    // Per second of the schedule: requests, shed, and the p99 of admitted latency, to tell a
    // steady tail from a few bad seconds.
    let mut per_sec: BTreeMap<u32, (u64, u64, Vec<u64>)> = BTreeMap::new();
    for (status, _, sched, _, sec) in &all {
        let e = per_sec.entry(*sec).or_default();
        e.0 += 1;
        if *status == a.expect {
            e.2.push(*sched);
        } else if *status == 429 || *status == 503 {
            e.1 += 1;
        }
    }
    let timeline: Vec<Value> = per_sec
        .into_iter()
        .map(|(sec, (n, shed, lat))| {
            let p99 = quantiles(lat).get("p99").cloned().unwrap_or(Value::Null);
            json!({ "second": sec, "n": n, "shed": shed, "p99_ms": p99 })
        })
        .collect();
    for (status, ra, sched, sent, _) in &samples {
        *by_status.entry(status.to_string()).or_default() += 1;
        if *status == a.expect {
            ok_sched.push(*sched);
            ok_sent.push(*sent);
        } else if *status == 429 || *status == 503 {
            shed.push(*sent);
            if !ra {
                if *status == 429 {
                    ra_missing_429 += 1;
                } else {
                    ra_missing_503 += 1;
                }
            }
        }
    }
    let count = |s: u16| by_status.get(&s.to_string()).copied().unwrap_or(0);
    let errors = samples.len() as u64 - count(a.expect) - count(429) - count(503);
    let report = json!({
        "url": a.url, "rate": a.rate, "secs": a.secs, "offered_secs": offered_secs,
        "offered": total - warm_total, "sent": samples.len(), "dropped": dropped, "warmup": warmup,
        "expect": a.expect, "ok": count(a.expect), "s429": count(429), "s503": count(503),
        "ra_missing_429": ra_missing_429, "ra_missing_503": ra_missing_503,
        "errors": errors, "statuses": by_status,
        "lat_ok_from_schedule_ms": quantiles(ok_sched),
        "lat_ok_from_send_ms": quantiles(ok_sent),
        "lat_shed_ms": quantiles(shed),
        "timeline": timeline,
    });
    std::fs::write(&a.out, serde_json::to_string_pretty(&report)?)?;
    println!("{report}");
    Ok(())
}
