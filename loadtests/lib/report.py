#!/usr/bin/env python3
"""Writes loadtests/RESULTS.md from one run's raw outputs (stdlib only).

  report.py --work DIR --out RESULTS.md --command CMD --scenarios "a b" --status S --duration D

DIR holds meta.env, marks.tsv, samples.csv, k6-<scenario>.json, wrk-<name>.json,
overload-rate and metrics-<scenario>-{api,worker}.txt, as written by loadtests/run.
"""

import argparse
import json
import math
import os
import re

OPENLOOP_INFLIGHT = 4000
ALL = ["normal", "peak", "sustained", "connections", "targets", "targets-open", "max", "overload"]

TITLES = {
    "normal": "normal: spec 1,000 req/min, 100 VUs, mixed traffic",
    "peak": "peak: spec 2,000 req/min, 500 VUs, mixed traffic",
    "sustained": "sustained: spec 1,500 req/min, 300 VUs, memory-leak watch",
    "connections": "connections: 1,000 concurrent connections, mixed traffic with think time",
    "targets": "targets: our latency targets at their rates",
    "targets-open": "targets-open: our write-path latency targets at their rates, sent by rtos-openloop",
    "max": "max: maximum throughput per endpoint class (wrk), /healthz baseline in the same run",
    "overload": "overload: 3x the measured widget maximum, offered open loop",
}

# endpoint -> (label, class, spec floor text, floor ms, our target text, target ms)
EPS = {
    "session": ("widget: start session + flow (`POST /v1/widget/sessions`)", "widget",
                "< 250 ms total, TTFB < 100 ms", 250, "p99 < 10 ms (at 2,000 req/s)", 10),
    "event": ("widget: session event (`POST /v1/widget/sessions/{id}/events`)", "widget",
              "< 250 ms (widget API)", 250, "p99 < 25 ms (at 2,000 events/s)", 25),
    "webhook": ("webhook: Stripe ack (`POST /v1/webhooks/stripe/{tenant}`)", "webhook",
                "< 200 ms", 200, "p99 < 10 ms (at 500/s)", 10),
    "admin_read": ("admin reads (tenant, flows, flow, session)", "admin",
                   "< 200 ms", 200, "p99 < 30 ms", 30),
    "admin_write": ("admin: flow builder save (`PUT /v1/flows/{id}`)", "admin",
                    "< 300 ms", 300, "p99 < 30 ms", 30),
    "an_summary": ("analytics: summary", "analytics", "< 400 ms", 400,
                   "p99 < 50 ms cold, < 5 ms warm", 50),
    "an_offers": ("analytics: offers", "analytics", "< 200 ms (offer performance)", 200,
                  "p99 < 50 ms cold, < 5 ms warm", 50),
    "an_timeseries": ("analytics: timeseries", "analytics", "< 300 ms (time series)", 300,
                      "p99 < 50 ms cold, < 5 ms warm", 50),
    "an_reasons": ("analytics: churn reasons", "analytics", "< 250 ms (reasons aggregation)", 250,
                   "p99 < 50 ms cold, < 5 ms warm", 50),
    "baseline": ("baseline: `GET /healthz` (trivial handler)", "system",
                 "- (reference)", None, "- (reference)", None),
}

# endpoint -> server-side routes (method, route) in http_request_duration_seconds
ROUTES = {
    "session": [("POST", "/v1/widget/sessions")],
    "event": [("POST", "/v1/widget/sessions/{id}/events")],
    "webhook": [("POST", "/v1/webhooks/stripe/{tenant_id}")],
    "admin_read": [("GET", "/v1/tenant"), ("GET", "/v1/flows"), ("GET", "/v1/flows/{id}"),
                   ("GET", "/v1/sessions/{id}")],
    "admin_write": [("PUT", "/v1/flows/{id}")],
    "an_summary": [("GET", "/v1/analytics/summary")],
    "an_offers": [("GET", "/v1/analytics/offers")],
    "an_timeseries": [("GET", "/v1/analytics/timeseries")],
    "an_reasons": [("GET", "/v1/analytics/churn-reasons")],
    "baseline": [("GET", "/healthz")],
}

def CLASS_OF(ep):
    return EPS[ep][1]


TARGET_RATES = {"session": 2000, "event": 2000, "webhook": 500, "admin_read": 500,
                "an_summary": 50, "an_offers": 50, "an_timeseries": 50, "an_reasons": 50}

MEMORY_LIMIT_MB = 512  # the reference limit of ops/prometheus (retentionos:memory_limit_bytes)


def fnum(x, d=2):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:,.{d}f}"


def pct(x, d=2):
    return "-" if x is None else f"{100 * x:.{d}f} %"


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------


def read_meta(work):
    meta = {}
    try:
        for line in open(os.path.join(work, "meta.env")):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    except OSError:
        pass
    return meta


def read_marks(work):
    marks = {}
    try:
        for line in open(os.path.join(work, "marks.tsv")):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                marks[parts[0]] = (float(parts[1]), float(parts[2]), parts[3])
    except OSError:
        pass
    return marks


def read_samples(work):
    rows = []
    try:
        for line in open(os.path.join(work, "samples.csv")):
            t, name, cpu, rss, fds = line.strip().split(",")
            rows.append((float(t), name, float(cpu), int(rss), int(fds)))
    except (OSError, ValueError):
        pass
    return rows


def load_json(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def read_prom(path):
    """{(name, frozenset(labels)): value} from a Prometheus text exposition."""
    out = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    for line in lines:
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)", line)
        if not m:
            continue
        labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------------------------------
# Derived numbers
# ---------------------------------------------------------------------------------------


def window_resources(samples, start, end, cores):
    res = {}
    for name in ("api", "worker", "postgres", "loadgen", "machine"):
        rows = [r for r in samples if r[1] == name and start <= r[0] <= end + 0.5]
        if not rows:
            res[name] = None
            continue
        cpus = [r[2] / 100.0 / cores for r in rows]
        res[name] = {
            "cpu_avg": sum(cpus) / len(cpus),
            "cpu_max": max(cpus),
            "rss_max_mb": max(r[3] for r in rows) / 1024,
            "rss_first_mb": rows[0][3] / 1024,
            "rss_last_mb": rows[-1][3] / 1024,
            "fds_max": max(r[4] for r in rows),
            "rows": rows,
        }
    return res


def rss_growth(rows, start, end):
    """(first-minute mean, last-minute mean, growth, window note) of RSS in MB."""
    span = end - start
    w = 60.0 if span >= 180 else max(span * 0.2, 1.0)
    first = [r[3] for r in rows if r[0] <= start + w]
    last = [r[3] for r in rows if r[0] >= end - w]
    if not first or not last:
        return None
    a, b = sum(first) / len(first) / 1024, sum(last) / len(last) / 1024
    note = "first vs last minute" if w == 60.0 else f"first vs last {w:.0f} s (run shorter than 3 min)"
    return a, b, (b - a) / a if a else 0.0, note


def histogram_quantile(q, buckets):
    """Prometheus-style interpolation over [(le, cumulative count)]."""
    buckets = sorted(buckets)
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return buckets[-1][0]


def server_quantiles(before, after, routes):
    """(p50, p99, count) in ms for the given routes, from two api scrapes (delta)."""
    acc = {}
    for (name, labels), v in after.items():
        if name != "http_request_duration_seconds_bucket":
            continue
        d = dict(labels)
        if (d.get("method"), d.get("route")) not in routes:
            continue
        if not d.get("status", "").startswith("2"):
            continue
        le = float("inf") if d["le"] in ("+Inf", "Inf") else float(d["le"])
        acc[le] = acc.get(le, 0.0) + v - before.get((name, labels), 0.0)
    b = sorted(acc.items())
    if not b or b[-1][1] <= 0:
        return None
    p50, p99 = histogram_quantile(0.5, b), histogram_quantile(0.99, b)
    return p50 * 1000, p99 * 1000, b[-1][1]


def k6_ep(summary, ep):
    m = summary["metrics"]

    def cnt(name):
        v = m.get(name)
        return int(v["values"].get("count", 0)) if v else 0

    lat = m.get(f"lat_{ep}", {}).get("values")
    ttfb = m.get(f"ttfb_{ep}", {}).get("values")
    return {
        "n": cnt(f"n_{ep}"), "ok": cnt(f"ok_{ep}"), "err": cnt(f"err_{ep}"),
        "s429": cnt(f"shed429_{ep}"), "s503": cnt(f"shed503_{ep}"),
        "ra429": cnt(f"ra_missing429_{ep}"), "ra503": cnt(f"ra_missing503_{ep}"),
        "na": cnt(f"na_{ep}"), "lat": lat, "ttfb": ttfb,
        "err_by_status": {k[len(f"errs_{ep}_"):]: int(v["values"].get("count", 0))
                          for k, v in m.items() if k.startswith(f"errs_{ep}_")
                          and v["values"].get("count", 0) > 0},
        "lat_shed": m.get(f"lat_shed_{ep}", {}).get("values"),
    }


def verdict(ep, e, p99, ttfb99, rate_ok=True):
    label, cls, ftxt, fms, ttxt, tms = EPS[ep]
    if fms is None:
        return "reference"
    err_rate = e["err"] / e["n"] if e["n"] else 0.0
    floor_ok = p99 is not None and p99 < fms and err_rate < 0.005
    if ep == "session" and ttfb99 is not None:
        floor_ok = floor_ok and ttfb99 < 100
    target_ok = p99 is not None and p99 < tms and e["err"] == 0 and rate_ok
    if target_ok:
        return "target met"
    why = []
    if p99 is not None and p99 >= tms:
        why.append("p99")
    if e["err"]:
        why.append("errors")
    if not rate_ok:
        why.append("rate not reached")
    if floor_ok:
        return "floor met; target missed (" + ", ".join(why) + ")"
    return "**FLOOR MISSED** (" + ", ".join(why or ["p99"]) + ")"


# ---------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------


class Report:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.meta = read_meta(self.work)
        self.marks = read_marks(self.work)
        self.samples = read_samples(self.work)
        self.cores = int(self.meta.get("cores") or os.cpu_count() or 2)
        self.out = []
        self.summary = []
        self.prev_api = {}

    def w(self, s=""):
        self.out.append(s)

    def resources(self, scen, start, end, extra_note=""):
        res = window_resources(self.samples, start, end, self.cores)
        self.w(f"Resources during {scen} (sampled from /proc every second; CPU as a share of the "
               f"whole {self.cores}-core machine, which also runs PostgreSQL, Redis and the load generator):")
        self.w()
        self.w("| process | CPU avg | CPU max | RSS max | RSS first -> last | open fds max | spec floor | our target |")
        self.w("|---|---|---|---|---|---|---|---|")
        for name in ("api", "worker", "postgres", "loadgen", "machine"):
            r = res.get(name)
            if not r:
                self.w(f"| {name} | n/a (no samples in the window) | | | | | | |")
                continue
            if name in ("postgres", "loadgen", "machine"):
                what = {"postgres": "PostgreSQL backends of this run's database (summed RSS counts shared memory repeatedly)",
                        "loadgen": "the load generator (k6 or wrk)",
                        "machine": "whole machine, other developers' builds and tests included (memory: used)"}[name]
                fd = {"postgres": f"{r['fds_max']} backends", "loadgen": str(r["fds_max"])}.get(name, "-")
                self.w(f"| {name} | {pct(r['cpu_avg'], 1)} | {pct(r['cpu_max'], 1)} | {r['rss_max_mb']:.0f} MB "
                       f"| {r['rss_first_mb']:.0f} -> {r['rss_last_mb']:.0f} MB | {fd} | {what} | - |")
                continue
            spec = ("CPU < 60 % on normal load; memory < 75 % "
                    f"({r['rss_max_mb'] / MEMORY_LIMIT_MB * 100:.0f} % of the {MEMORY_LIMIT_MB} MiB alert limit)")
            ours = "RSS < 256 MB under overload; growth < 5 % over the soak" if name == "api" else \
                "RSS growth < 5 % over the soak"
            self.w(f"| {name} | {pct(r['cpu_avg'], 1)} | {pct(r['cpu_max'], 1)} | {r['rss_max_mb']:.1f} MB "
                   f"| {r['rss_first_mb']:.1f} -> {r['rss_last_mb']:.1f} MB | {r['fds_max']} | {spec} | {ours} |")
        mach = res.get("machine")
        if mach:
            ours = sum((res.get(n) or {}).get("cpu_avg", 0.0) for n in ("api", "worker", "postgres", "loadgen"))
            other = max(0.0, mach["cpu_avg"] - ours)
            self.w(f"| others | {pct(other, 1)} | - | - | - | - | everything else on the box (other developers' "
                   "builds and tests, Redis, the kernel): machine minus the rows above | - |")
        if extra_note:
            self.w()
            self.w(extra_note)
        self.w()
        return res

    def queue_state(self, scen):
        wm = read_prom(os.path.join(self.work, f"metrics-{scen}-worker.txt"))
        if not wm:
            return
        rows = {}
        for (name, labels), v in wm.items():
            d = dict(labels)
            if name in ("queue_ready", "queue_scheduled", "queue_in_flight", "queue_dead",
                        "queue_oldest_ready_age_seconds"):
                rows.setdefault(d.get("queue", "?"), {})[name] = v
        if rows:
            cells = []
            for q in sorted(rows):
                r = rows[q]
                cells.append(f"{q} {int(r.get('queue_ready', 0))}/{int(r.get('queue_scheduled', 0))}/"
                             f"{int(r.get('queue_dead', 0))} (oldest ready {r.get('queue_oldest_ready_age_seconds', 0):.0f} s)")
            self.w("Job queues after the scenario (ready/scheduled/dead): " + "; ".join(cells) + ".")
        rc = sum(v for (n, _), v in wm.items() if n == "rollup_duration_seconds_count")
        rs = sum(v for (n, _), v in wm.items() if n == "rollup_duration_seconds_sum")
        if rc:
            self.w(f"Hourly rollups so far: {int(rc)} run(s), mean {rs / rc * 1000:.0f} ms "
                   f"(spec < 1 s; ours < 2 s for 1 M new events).")
        self.w()

    def not_run(self, scen):
        """Writes "n/a" for a scenario without results and records it in the summary."""
        reason = "not run in this invocation" if scen not in self.args.scenarios.split() \
            else f"no results ({self.args.status})"
        self.w(f"n/a: {reason}.")
        self.w()
        self.summary.append((scen, "n/a", reason))

    def server_side(self, scen):
        after = read_prom(os.path.join(self.work, f"metrics-{scen}-api.txt"))
        before = self.prev_api
        if after:
            self.prev_api = after
        return before, after

    # -- k6 latency scenarios ---------------------------------------------------------------

    def k6_section(self, scen):
        self.w(f"## {TITLES[scen]}")
        self.w()
        summ = load_json(os.path.join(self.work, f"k6-{scen}.json"))
        mark = self.marks.get(scen)
        if summ is None or mark is None:
            return self.not_run(scen)
        before, after = self.server_side(scen)
        start, end, status = mark
        m = summ["metrics"]
        secs = summ.get("state", {}).get("testRunDurationMs", (end - start) * 1000) / 1000
        dropped = int(m.get("dropped_iterations", {}).get("values", {}).get("count", 0))
        if scen == "targets":
            eps = [ep for ep in EPS if m.get(f"n_{ep}")]
        else:
            eps = list(EPS)  # the mix: every endpoint gets a row
        total = sum(k6_ep(summ, ep)["n"] for ep in eps if ep != "baseline")
        offered = {"normal": "1,000 req/min (16.7 req/s) with at most 100 VUs",
                   "peak": "2,000 req/min (33.3 req/s) with at most 500 VUs",
                   "sustained": "1,500 req/min (25 req/s) with at most 300 VUs",
                   "connections": "1,000 VUs, each its own keep-alive connection, one request then 1-3 s think time",
                   "targets": "each endpoint alone at its target rate, one after the other"}[scen]
        self.w(f"Offered: {offered}, for {secs:.0f} s (plus /healthz at 2 req/s as the baseline where shown). "
               f"Sent {total:,} requests ({total / secs:.1f} req/s); dropped iterations (k6 had no free VU): {dropped}; "
               f"k6 exit: {status}.")
        self.w()
        base = k6_ep(summ, "baseline") if "baseline" in eps else None
        base_p99 = base["lat"]["p(99)"] if base and base["lat"] else None
        self.w("| endpoint | n | req/s | p50 ms | p95 ms | p99 ms | max ms | p99 x baseline | server p99 ms | "
               "errors | 429 / 503 | spec floor | our target | verdict |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        worst = []
        all_errors = 0
        for ep in eps:
            e = k6_ep(summ, ep)
            label, cls, ftxt, fms, ttxt, tms = EPS[ep]
            all_errors += e["err"]
            stage_secs = secs
            if scen == "targets":
                stage_secs = parse_secs(self.args.duration, 20) if self.args.duration != "default" else 20
            rate = e["n"] / stage_secs if stage_secs else 0
            if e["n"] == 0:
                self.w(f"| {label} | 0 | 0 | n/a | n/a | n/a | n/a | n/a | n/a | 0 | 0 / 0 | {ftxt} | {ttxt} | "
                       f"n/a: no request of this kind was drawn in this short run |")
                continue
            if e["ok"] == 0 and e["na"] > 0 and e["err"] == 0:
                self.w(f"| {label} | {e['n']} | {rate:.1f} | n/a | n/a | n/a | n/a | n/a | n/a | 0 | 0 / 0 | {ftxt} | {ttxt} | "
                       f"n/a: endpoint answers 404 (being built) |")
                continue
            lat = e["lat"] or {}
            p99 = lat.get("p(99)")
            ttfb99 = (e["ttfb"] or {}).get("p(99)")
            rate_ok = True
            if scen == "targets" and ep in TARGET_RATES:
                if CLASS_OF(ep) == "analytics":
                    # 200/s over the four analytics endpoints, drawn at random: check the sum.
                    n_an = sum(k6_ep(summ, a)["n"] for a in EPS if CLASS_OF(a) == "analytics")
                    rate_ok = n_an / stage_secs >= 0.95 * 200
                else:
                    rate_ok = rate >= 0.95 * TARGET_RATES[ep]
            v = verdict(ep, e, p99, ttfb99, rate_ok)
            if "MISSED" in v or "missed" in v:
                worst.append(f"{ep}: {v}")
            ratio = "-"
            if p99 and base_p99:
                r = p99 / base_p99
                ratio = f"{r:.2f}x" if r < 10 else f"{r:.0f}x"
            sq = server_quantiles(before, after, ROUTES[ep]) if after else None
            sp99 = f"{sq[1]:.1f}" if sq else "-"
            err_txt = f"{e['err']} ({pct(e['err'] / e['n'])})" if e["n"] else "0"
            if e["err_by_status"]:
                err_txt += ": " + ", ".join(f"{n} x {'no response' if c == '0' else c}"
                                            for c, n in sorted(e["err_by_status"].items()))
            if e["na"]:
                err_txt += f"; {e['na']} x 404 (n/a)"
            shed = f"{e['s429']} / {e['s503']}"
            if e["s429"] + e["s503"]:
                shed += f" (no Retry-After: {e['ra429'] + e['ra503']})"
            extra = f"; TTFB p99 {ttfb99:.2f} ms" if ep == "session" and ttfb99 is not None else ""
            self.w(f"| {label} | {e['n']} | {rate:.1f} | {fnum(lat.get('med'))} | {fnum(lat.get('p(95)'))} | "
                   f"{fnum(p99)} | {fnum(lat.get('max'))} | {ratio} | {sp99} | {err_txt} | {shed} | {ftxt}{extra} | {ttxt} | {v} |")
        self.w()
        self.w("Latency is of admitted, successful responses as k6 sees them (loopback); server p99 is "
               "from the api's own `http_request_duration_seconds` histogram over the same scenario "
               "(2xx only, interpolated within buckets). Errors exclude 429/503 (counted apart) "
               "and analytics 404s while those endpoints are being built.")
        self.w()
        res = self.resources(scen, start, end)
        if scen == "sustained":
            self.w("Memory over the soak (target: RSS growth < 5 %; spec: no leak):")
            self.w()
            self.w("| process | RSS at start | RSS at end | growth | window | verdict |")
            self.w("|---|---|---|---|---|---|")
            for name in ("api", "worker"):
                r = res.get(name)
                g = rss_growth(r["rows"], start, end) if r else None
                if not g:
                    self.w(f"| {name} | n/a | n/a | n/a | no samples | n/a |")
                    continue
                ok = "target met" if g[2] < 0.05 else "**target missed**"
                if g[2] >= 0.05:
                    worst.append(f"{name} RSS {g[2] * 100:+.0f} % over the soak (target < 5 %)")
                self.w(f"| {name} | {g[0]:.1f} MB | {g[1]:.1f} MB | {g[2] * 100:+.1f} % | {g[3]} | {ok} |")
            self.w()
            if secs < 3000:
                ran = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
                self.w(f"This soak ran {ran}; the full one is `loadtests/run sustained --duration 1h`.")
                self.w()
        if scen == "connections":
            fd = res.get("api", {}) or {}
            self.w(f"Concurrency: 1,000 k6 VUs, each with its own connection; the api held up to "
                   f"{fd.get('fds_max', 'n/a')} open file descriptors. Errors across all endpoints: {all_errors} "
                   f"(target: none; spec: 100 concurrent without drop, 500 with acceptable degradation).")
            self.w()
        self.queue_state(scen)
        key = f"{total / secs:.1f} req/s, errors {all_errors}, dropped {dropped}"
        self.summary.append((scen, "; ".join(worst) if worst else "all rows meet our targets", key))

    # -- max (wrk) --------------------------------------------------------------------------

    def max_section(self):
        scen = "max"
        self.w(f"## {TITLES[scen]}")
        self.w()
        mark = self.marks.get("max")
        if mark is None:
            return self.not_run(scen)
        before, after = self.server_side("max")
        m = self.meta
        self.w(f"Closed loop: `wrk -t{m.get('wrk_threads', 2)} -c{m.get('wrk_connections', 128)} -d<D> --timeout 10s` "
               "per class, one class at a time with 2 s pauses, in the order of the table; `/healthz` is "
               "measured before and after, and the ratio uses their mean. Throughput counts responses with "
               "the expected status only. Latency here is under saturation, not comparable to the latency targets.")
        self.w()
        runs = {}
        for name in ("baseline", "session", "session_reopen", "event", "admin_read", "analytics", "baseline2", "webhook"):
            runs[name] = load_json(os.path.join(self.work, f"wrk-{name}.json"))

        def ok_rps(r):
            if not r or "requests" not in r:
                return None
            return (r["requests"] - r["status_errors"]) / (r["duration_us"] / 1e6)

        bases = [ok_rps(runs[b]) for b in ("baseline", "baseline2") if ok_rps(runs[b])]
        base = sum(bases) / len(bases) if bases else None
        targets = {
            "baseline": ("- (reference)", None),
            "session": (">= 50 % of the baseline", lambda rps: base and rps >= 0.5 * base),
            "session_reopen": ("no throughput target (worst case of session start)", None),
            "event": (">= 5,000 events/s", lambda rps: rps >= 5000),
            "admin_read": ("no throughput target (p99 < 30 ms)", None),
            "analytics": ("no throughput target (p99 < 50 ms)", None),
            "baseline2": ("- (reference)", None),
            "webhook": ("no throughput target (ack p99 < 10 ms at 500/s)", None),
        }
        labels = {"baseline": "baseline `GET /healthz` (before)", "baseline2": "baseline `GET /healthz` (after)",
                  "session": "widget: start session + flow (new customers)",
                  "session_reopen": "widget: re-open (every start supersedes an open session)",
                  "event": "widget: session event",
                  "admin_read": "admin reads (tenant, flows, flow)", "analytics": "analytics summary",
                  "webhook": "webhook: Stripe ack (unique events)"}
        self.w("| endpoint | ok req/s | ratio to baseline | p50 ms | p99 ms | max ms | unexpected statuses | socket errors | "
               "429/503 without Retry-After | our target | verdict |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|")
        worst = []
        for name, r in runs.items():
            tgt_txt, tgt = targets[name]
            if r is None:
                self.w(f"| {labels[name]} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | {tgt_txt} | n/a: not measured ({self.args.status}) |")
                continue
            if "na" in r:
                self.w(f"| {labels[name]} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | {tgt_txt} | n/a: {r['na']} |")
                continue
            rps = ok_rps(r)
            lat = r["latency_us"]
            se = r["socket_errors"]
            socket = sum(se.values())
            expected = {"session": "201", "session_reopen": "201", "event": "202"}.get(name, "200")
            unexpected = {k: v for k, v in r["statuses"].items() if k != expected}
            ratio = f"{rps / base * 100:.0f} %" if base else "-"
            if tgt is None:
                v = "reference" if name.startswith("baseline") else "measured"
            else:
                v = "target met" if tgt(rps) else "**target missed**"
                if "missed" in v:
                    worst.append(f"{name}: {rps:,.0f} req/s ({ratio} of baseline)")
            if unexpected or socket:
                v += " (errors)"
            if name == "session" and r.get("lines_reused"):
                v += f" ({r['lines_reused']:,} tokens reused: re-opens)"
            self.w(f"| {labels[name]} | {rps:,.0f} | {ratio} | {lat['p50'] / 1000:.2f} | {lat['p99'] / 1000:.2f} | "
                   f"{lat['max'] / 1000:.2f} | {json.dumps(unexpected) if unexpected else 0} | {socket} | "
                   f"{r.get('shed_without_retry_after', 0)} | {tgt_txt} | {v} |")
        self.w()
        start, end, _ = mark
        self.resources("max", start, end)
        self.queue_state("max")
        self.summary.append(("max", "; ".join(worst) if worst else "throughput targets met",
                             f"baseline {base:,.0f} req/s" if base else "-"))

    # -- targets-open -----------------------------------------------------------------------

    def targets_open_section(self):
        scen = "targets-open"
        self.w(f"## {TITLES[scen]}")
        self.w()
        mark = self.marks.get(scen)
        if mark is None:
            return self.not_run(scen)
        self.w("The write paths at our target rates again, each alone for the same length, sent by `rtos-openloop` "
               "(see `overload`) instead of k6: on this 2-core box k6 needs about a third of the machine at "
               "2,000 requests/s (it signs a customer token in JavaScript for every session), so the `targets` "
               "rows above measure the load generator's CPU contention as much as the api. Latency is measured "
               "from each request's scheduled send (open loop, queueing anywhere counts).")
        self.w()
        self.w("| endpoint | offered | sent | ok | p50 ms | p95 ms | p99 ms | max ms | p99 from send ms "
               "| server p99 ms | errors | 429 / 503 | spec floor | our target | verdict |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        before = self.prev_api or {}
        problems = []
        for ep in ("session", "event", "webhook"):
            name = f"{scen}-{ep}"
            r = load_json(os.path.join(self.work, f"openloop-{name}.json"))
            after = read_prom(os.path.join(self.work, f"metrics-{name}-api.txt"))
            label, _cls, ftxt, fms, ttxt, tms = EPS[ep]
            if r is None:
                self.w(f"| {label} | n/a | | | | | | | | | | | {ftxt} | {ttxt} | no result |")
                problems.append(ep)
                continue
            sq = server_quantiles(before, after, ROUTES[ep]) if after else None
            if after:
                before = after
            lat = r.get("lat_ok_from_schedule_ms") or {}
            sent_lat = r.get("lat_ok_from_send_ms") or {}
            p99 = lat.get("p99")
            rate_ok = r["ok"] >= 0.99 * r["offered"]
            v = verdict(ep, {"err": r["errors"], "n": r["sent"]}, p99, None, rate_ok)
            if v != "target met":
                problems.append(ep)
            self.w(f"| {label} | {r['rate']:,.0f}/s for {r['secs']:.0f} s | {r['sent']:,} | {r['ok']:,} "
                   f"| {fnum(lat.get('p50'))} | {fnum(lat.get('p95'))} | {fnum(p99)} | {fnum(lat.get('max'))} "
                   f"| {fnum(sent_lat.get('p99'))} | {f'{sq[1]:.1f}' if sq else 'n/a'} | {r['errors']:,} "
                   f"| {r['s429']:,} / {r['s503']:,} | {ftxt} | {ttxt} | {v} |")
        if before:
            self.prev_api = before
        self.w()
        start, end, _status = mark
        self.resources(scen, start, end)
        self.summary.append((scen, "targets missed: " + ", ".join(problems) if problems else "all rows meet our targets",
                             "write paths at 2,000 / 2,000 / 500 per second, open loop"))

    # -- overload ---------------------------------------------------------------------------

    def overload_section(self):
        scen = "overload"
        self.w(f"## {TITLES[scen]}")
        self.w()
        r = load_json(os.path.join(self.work, "openloop-overload.json"))
        mark = self.marks.get("overload")
        if r is None or mark is None:
            return self.not_run(scen)
        before, after = self.server_side("overload")
        start, end, status = mark
        rate = int(r["rate"])
        secs = r["secs"]
        n = r["sent"] or 1
        lat = r.get("lat_ok_from_schedule_ms") or {}
        lat_sent = r.get("lat_ok_from_send_ms") or {}
        shed_lat = r.get("lat_shed_ms") or {}
        res = window_resources(self.samples, start, end, self.cores)
        api = res.get("api") or {}
        crashed = "crashed" in status
        self.w(f"Offered {rate:,} widget session starts per second (3x the `max` measurement of that endpoint) "
               f"for {secs:.0f} s after a {(r.get('warmup') or {}).get('secs', 0):.0f} s warm-up at the same rate, open loop, by `rtos-openloop` (loadtests/openloop: request i is sent at "
               f"start + i/rate whatever happened to earlier ones, and its latency is measured from that "
               f"scheduled instant, so waiting in any queue counts; at most {OPENLOOP_INFLIGHT:,} in flight, "
               f"10 s client timeout). k6 is not used here: at these rates it needs more CPU than the api on "
               f"this 2-core box, and its own delays would be reported as the api's.")
        self.w()
        p99 = lat.get("p99")
        shed = r["s429"] + r["s503"]
        ra_ok = r["ra_missing_429"] + r["ra_missing_503"] == 0
        sq = server_quantiles(before, after, ROUTES["session"]) if after else None
        errs = {k: v for k, v in r["statuses"].items() if k not in (str(r["expect"]), "429", "503")}
        wu = r.get("warmup") or {}
        wl = wu.get("lat_ok_from_schedule_ms") or {}
        rows = [
            ("warm-up (not counted below): the first seconds at the same rate, while thousands of connections are opened",
             f"{wu.get('secs', 0):.0f} s: sent {wu.get('sent', 0):,}, admitted {wu.get('ok', 0):,}, shed "
             f"{wu.get('shed', 0):,}, errors {wu.get('errors', 0):,}; admitted p50 / p99 {fnum(wl.get('p50'))} / "
             f"{fnum(wl.get('p99'))} ms" if wu else "none", "-", "no errors, every rejection with Retry-After"),
            ("offered", f"{r['offered']:,} requests ({rate:,}/s)", "-", "-"),
            ("sent", f"{r['sent']:,} ({r['sent'] / secs:,.0f}/s); {r['dropped']:,} not sent "
                     f"({OPENLOOP_INFLIGHT:,} requests already in flight)", "-", "-"),
            ("admitted (201)", f"{r['ok']:,} ({r['ok'] / n * 100:.1f} %), {r['ok'] / secs:,.0f}/s", "-", "-"),
            ("admitted latency p50 / p95 / p99 / max (from the scheduled send)",
             f"{fnum(lat.get('p50'))} / {fnum(lat.get('p95'))} / {fnum(p99)} / {fnum(lat.get('max'))} ms",
             "graceful degradation", "p99 < 100 ms: " + ("met" if p99 is not None and p99 < 100 else "**missed**")),
            ("admitted latency p50 / p99 (from the actual send)",
             f"{fnum(lat_sent.get('p50'))} / {fnum(lat_sent.get('p99'))} ms", "-", "-"),
            ("admitted latency p50 / p99, server side (api histogram)",
             f"{sq[0]:.1f} / {sq[1]:.1f} ms" if sq else "n/a", "-", "-"),
            ("429 (rate limited)", f"{r['s429']:,} ({r['s429'] / n * 100:.1f} %), without Retry-After: "
                                   f"{r['ra_missing_429']}", "-", "with Retry-After"),
            ("503 (shed)", f"{r['s503']:,} ({r['s503'] / n * 100:.1f} %), without Retry-After: "
                           f"{r['ra_missing_503']}", "-", "with Retry-After"),
            ("rejection latency p50 / p99",
             f"{fnum(shed_lat.get('p50'))} / {fnum(shed_lat.get('p99'))} ms" if shed_lat else "n/a (nothing was rejected)",
             "-", "-"),
            ("other errors (timeouts, resets, other statuses)", f"{r['errors']:,} ({r['errors'] / n * 100:.1f} %)"
             + "".join(f"; {v:,} x {'no response' if c == '0' else c}" for c, v in sorted(errs.items())),
             "< 0.5 %", "0 non-shed errors: " + ("met" if r["errors"] == 0 else "**missed**")),
            ("api RSS max", f"{api.get('rss_max_mb', 0):.1f} MB", "< 75 % of the limit",
             "< 256 MB: " + ("met" if api and api["rss_max_mb"] < 256 else "**missed**")),
            ("api CPU avg / max (share of the machine)", f"{pct(api.get('cpu_avg'), 1)} / {pct(api.get('cpu_max'), 1)}", "-", "-"),
            ("api and worker alive afterwards", "no" if crashed else "yes", "no crash",
             "no crash: " + ("**missed**" if crashed else "met")),
        ]
        self.w("| measure | result | spec floor | our target |")
        self.w("|---|---|---|---|")
        for row in rows:
            self.w("| " + " | ".join(row) + " |")
        self.w()
        if shed == 0:
            self.w("Nothing was rejected with 429/503: the excess queued (latency) or timed out (errors).")
            self.w()
        elif not ra_ok:
            self.w("Some 429/503 answers had no `Retry-After` header.")
            self.w()
        self.resources("overload", start, end)
        problems = []
        if p99 is None or p99 >= 100:
            problems.append("admitted p99")
        if shed == 0:
            problems.append("no 429/503 shedding")
        elif not ra_ok:
            problems.append("Retry-After missing")
        if r["errors"] or (r.get("warmup") or {}).get("errors"):
            problems.append("errors")
        if crashed:
            problems.append("crash")
        if api and api["rss_max_mb"] >= 256:
            problems.append("RSS")
        self.summary.append(("overload", "target missed: " + ", ".join(problems) if problems else "targets met",
                             f"admitted {r['ok'] / n * 100:.0f} %, p99 {fnum(p99)} ms"))

    # -- document ---------------------------------------------------------------------------

    def build(self):
        a, m = self.args, self.meta
        body_start = len(self.out)
        for scen in ALL:
            if scen == "max":
                self.max_section()
            elif scen == "overload":
                self.overload_section()
            elif scen == "targets-open":
                self.targets_open_section()
            else:
                self.k6_section(scen)
        body = self.out[body_start:]
        self.out = self.out[:body_start]
        self.w("# RetentionOS load test results")
        self.w()
        self.w("Generated by `loadtests/run` (rewritten on every run; raw outputs in the work directory below).")
        self.w()
        self.w(f"- Command: `{a.command}`")
        self.w(f"- Date: {m.get('date', '?')}; commit {m.get('git', '?')}; run status: {a.status}")
        self.w(f"- Machine: {m.get('cpu', '?')}, {self.cores} cores, {m.get('mem_gib', '?')} GiB; PostgreSQL, Redis, "
               "the api, the worker and the load generator all share it.")
        self.w(f"- Tools: {m.get('k6', 'k6 ?')}; {m.get('wrk', 'wrk ?')}")
        self.w(f"- Stack: release build, `RUST_LOG=warn`, JSON logs; one api and one worker process; "
               f"database pool 20 connections; hourly rollup forced every {m.get('rollup_interval', 60)} s; "
               f"per-IP rate limit {'off' if m.get('ip_rate_limit', '0') == '0' else m.get('ip_rate_limit') + '/s'} "
               "(all load comes from 127.0.0.1), per-tenant limit raised in the tenant's settings; "
               "the worker's `STRIPE_API_BASE` is an unused local port, so webhook re-fetch jobs fail and "
               "retry in the background (acknowledgement latency is what is measured).")
        self.w(f"- Scenarios requested: {a.scenarios}; duration override: {a.duration}; work dir: `{self.work}`")
        self.w()
        self.w("Floors are `docs/spec/performance-benchmarks.md`; targets are `docs/PERFORMANCE.md`. A verdict "
               "compares p99 (and the error rate) with both. Traffic mix of normal/peak/sustained/"
               "connections: widget 60 % (session starts 25, events 35; every session a distinct "
               "customer with a valid signed token), signed Stripe webhooks 15 % (2 % redeliveries), "
               "admin 15 % (reads 12, flow builder saves 3), analytics 10 %.")
        self.w()
        self.w("## Summary")
        self.w()
        self.w("| scenario | result | verdict |")
        self.w("|---|---|---|")
        for scen, v, key in self.summary:
            self.w(f"| {scen} | {key} | {v} |")
        self.w()
        self.out.extend(body)
        self.analytics_bench()
        return "\n".join(self.out).rstrip() + "\n"

    def analytics_bench(self):
        """Includes loadtests/analytics/RESULTS.md (10 M offer events, cold and warm cache,
        rollup of 1 M new events) and loadtests/dashboard/RESULTS.md (every dashboard page on
        the same data set), each written by its own bench with its own command."""
        self.included(
            "analytics",
            "Analytics at volume",
            "(10 M offer events: each analytics endpoint cold and warm; rollup of 1 M new events). "
            "The targets: analytics p99 < 50 ms cold, < 5 ms warm (spec < 400 ms); rollup < 2 s for "
            "1 M new events, summary refresh < 100 ms (spec < 1 s).",
        )
        self.included(
            "dashboard",
            "Dashboard at volume",
            "(every dashboard page and partial on 10 M offer events, warm and, for the overview, "
            "cold). The target: server p99 < 50 ms per page.",
        )

    def included(self, name, title, missing):
        path = os.path.join(os.path.dirname(os.path.abspath(self.args.out)), name, "RESULTS.md")
        self.w(f"## {title} (`loadtests/{name}/bench`, included)")
        self.w()
        try:
            text = open(path).read()
        except OSError:
            self.w(f"n/a: `loadtests/{name}/RESULTS.md` does not exist yet; run `loadtests/{name}/bench` {missing}")
            self.w()
            return
        self.w("Measured separately (its own command and date below), not by this run.")
        self.w()
        for line in text.rstrip().splitlines():
            self.w("##" + line if line.startswith("#") else line)
        self.w()


def parse_secs(d, default):
    mm = re.match(r"^(\d+)(s|m|h)$", d or "")
    if not mm:
        return default
    return int(mm.group(1)) * {"s": 1, "m": 60, "h": 3600}[mm.group(2)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--scenarios", required=True)
    p.add_argument("--status", default="complete")
    p.add_argument("--duration", default="default")
    args = p.parse_args()
    text = Report(args).build()
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
