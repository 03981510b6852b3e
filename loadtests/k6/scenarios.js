// RetentionOS k6 scenarios. Run through `loadtests/run`, which starts the stack, writes the
// fixtures and sets the environment:
//
//   SCENARIO   normal | peak | sustained | connections | targets
//              (overload is sent by loadtests/openloop, which is far lighter than k6)
//   DURATION   k6 duration string (each scenario has a default)
//   FIXTURES   fixtures.json written by lib/fixtures.py (base URL, keys, flow ids)
//   SUMMARY    where handleSummary writes the JSON summary
//   RUN_ID     makes customer and event ids unique across runs on one database
//
// Every request is tagged {class, ep}: class is the API's endpoint class (widget, webhook,
// admin, analytics, system) and ep the endpoint (session, event, webhook, admin_read,
// admin_write, an_summary, an_offers, an_timeseries, an_reasons, baseline). Per endpoint the
// script keeps its own metrics, which lib/report.py turns into RESULTS.md:
//   lat_<ep>       latency (ms) of admitted, successful responses
//   ttfb_<ep>      time to first byte (ms) of the same responses
//   lat_shed_<ep>  latency of 429/503 answers (load shedding, rate limiting)
//   n_<ep>, ok_<ep>, err_<ep>, shed429_<ep>, shed503_<ep>, na_<ep>, and
//   ra_missing429_<ep> / ra_missing503_<ep> (shed answers without a Retry-After header),
//   errs_<ep>_<status> (errors by status; 0 = no response: timeout, reset, refused)
// "err" is anything that is neither the expected status, nor a 429/503, nor (analytics
// only, while those endpoints are being built) a 404, which counts as "na".

import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';

const SCENARIO = __ENV.SCENARIO || 'normal';
const FX = JSON.parse(open(__ENV.FIXTURES));
const BASE = FX.base;
const RUN_ID = __ENV.RUN_ID || String(Date.now());
const SUMMARY = __ENV.SUMMARY || 'summary.json';

const EPS = ['session', 'event', 'webhook', 'admin_read', 'admin_write', 'an_summary',
  'an_offers', 'an_timeseries', 'an_reasons', 'baseline'];
const M = {};
for (const ep of EPS) {
  M[ep] = {
    lat: new Trend(`lat_${ep}`, true),
    ttfb: new Trend(`ttfb_${ep}`, true),
    latShed: new Trend(`lat_shed_${ep}`, true),
    n: new Counter(`n_${ep}`),
    ok: new Counter(`ok_${ep}`),
    err: new Counter(`err_${ep}`),
    shed429: new Counter(`shed429_${ep}`),
    shed503: new Counter(`shed503_${ep}`),
    raMissing429: new Counter(`ra_missing429_${ep}`),
    raMissing503: new Counter(`ra_missing503_${ep}`),
    na: new Counter(`na_${ep}`),
  };
}
// Errors by status (k6 metrics must exist before the test starts, so a fixed list).
const ERR_CODES = ['0', '400', '401', '403', '404', '405', '409', '413', '415', '422', '500',
  '502', '504', 'other'];
const ERRS = {};
for (const ep of EPS) {
  ERRS[ep] = {};
  for (const c of ERR_CODES) ERRS[ep][c] = new Counter(`errs_${ep}_${c}`);
}

// Sessions created before the run ("session_id token" lines): events go to the VU's own
// recent sessions first, else to one of these, so the event share of the mix is exact
// whichever VU the executor picks.
const POOL = __ENV.POOL
  ? new SharedArray('pool', () => open(__ENV.POOL).split('\n').filter((l) => l.length > 0)
    .map((l) => { const [id, token] = l.split(' '); return { id, token }; }))
  : [];

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

function dur(def) {
  return __ENV.DURATION || def;
}

// A light, separate stream of baseline requests (the trivial /healthz handler in the same
// binary) measured during every rate scenario, next to the real traffic.
const baselineScenario = () => ({
  executor: 'constant-arrival-rate', exec: 'baseline', rate: 2, timeUnit: '1s',
  duration: dur('2m'), preAllocatedVUs: 2, maxVUs: 10,
});

function scenarios() {
  switch (SCENARIO) {
    // The specification's scenarios (docs/spec/performance-benchmarks.md section 7).
    case 'normal':
      return {
        normal: { executor: 'constant-arrival-rate', exec: 'mixed', rate: 1000, timeUnit: '1m',
          duration: dur('2m'), preAllocatedVUs: 100, maxVUs: 100 },
        baseline: baselineScenario(),
      };
    case 'peak':
      return {
        peak: { executor: 'constant-arrival-rate', exec: 'mixed', rate: 2000, timeUnit: '1m',
          duration: dur('2m'), preAllocatedVUs: 500, maxVUs: 500 },
        baseline: baselineScenario(),
      };
    case 'sustained':
      return {
        sustained: { executor: 'constant-arrival-rate', exec: 'mixed', rate: 1500, timeUnit: '1m',
          duration: dur('10m'), preAllocatedVUs: 300, maxVUs: 300 },
        baseline: Object.assign(baselineScenario(), { duration: dur('10m') }),
      };
    // 1,000 concurrent keep-alive connections (one per VU), mixed traffic with think time.
    case 'connections':
      return {
        connections: { executor: 'constant-vus', exec: 'connections', vus: 1000,
          duration: dur('1m') },
        baseline: Object.assign(baselineScenario(), { duration: dur('1m') }),
      };
    // Our latency targets at their rates (docs/PERFORMANCE.md), one endpoint after the other.
    case 'targets': {
      const d = __ENV.DURATION || '20s';
      const secs = parseDuration(d);
      const stage = (i, ep, rate, vus) => ({
        executor: 'constant-arrival-rate', exec: `only_${ep}`, rate, timeUnit: '1s',
        duration: d, startTime: `${i * (secs + 2)}s`, preAllocatedVUs: vus, maxVUs: vus * 4,
      });
      return {
        t_session: stage(0, 'session', 2000, 200),
        t_event: stage(1, 'event', 2000, 200),
        t_webhook: stage(2, 'webhook', 500, 100),
        t_admin: stage(3, 'admin_read', 500, 100),
        t_analytics: stage(4, 'analytics', 200, 50),
        baseline: Object.assign(baselineScenario(), { duration: `${5 * (secs + 2)}s` }),
      };
    }
    default:
      throw new Error(`unknown scenario ${SCENARIO}`);
  }
}

function parseDuration(d) {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) return 20;
  const n = Number(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2]];
}

export const options = {
  scenarios: scenarios(),
  discardResponseBodies: false,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  // No thresholds: lib/report.py compares against the targets, and the run always reports.
  noConnectionReuse: false,
  insecureSkipTLSVerify: true,
  // k6 keeps its own per-request metrics small; tags carry class and endpoint.
  systemTags: ['status', 'method', 'name', 'scenario', 'error_code'],
};

// ---------------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------------

const CLASS = {
  session: 'widget', event: 'widget', webhook: 'webhook', admin_read: 'admin',
  admin_write: 'admin', an_summary: 'analytics', an_offers: 'analytics',
  an_timeseries: 'analytics', an_reasons: 'analytics', baseline: 'system',
};

function record(ep, res, expected) {
  const m = M[ep];
  m.n.add(1);
  const s = res.status;
  if (s === expected || (ep === 'admin_write' && s === 200)) {
    m.ok.add(1);
    m.lat.add(res.timings.duration);
    m.ttfb.add(res.timings.waiting);
  } else if (s === 429 || s === 503) {
    (s === 429 ? m.shed429 : m.shed503).add(1);
    m.latShed.add(res.timings.duration);
    if (!res.headers['Retry-After']) (s === 429 ? m.raMissing429 : m.raMissing503).add(1);
  } else if (s === 404 && CLASS[ep] === 'analytics') {
    m.na.add(1);
  } else {
    m.err.add(1);
    (ERRS[ep][String(s)] || ERRS[ep].other).add(1);
  }
  return res;
}

function req(ep, method, path, body, headers, name) {
  const params = {
    headers: Object.assign({ 'Content-Type': 'application/json' }, headers || {}),
    tags: { class: CLASS[ep], ep, name: name || path },
    timeout: '10s',
  };
  return http.request(method, BASE + path, body === undefined ? null : body, params);
}

function customerToken(cus, sub) {
  const claims = JSON.stringify({ tid: FX.tenant_id, cus, sub, exp: Math.floor(Date.now() / 1000) + 3600 });
  const payload = encoding.b64encode(claims, 'rawurl');
  // Signed with the tenant's token signing secret (tsk_test_…), never its sk_ key.
  return `${payload}.${crypto.hmac('sha256', FX.tsk, payload, 'hex')}`;
}

// Per-VU state: the VU's own open sessions (each a distinct customer) and its last event id.
const mine = [];
let lastEvent = null;

function uid() {
  return `${RUN_ID}_${SCENARIO}_${exec.vu.idInTest}_${exec.vu.iterationInScenario}_${Math.floor(Math.random() * 1e9)}`;
}

function doSession() {
  const cus = `cus_${uid()}`;
  const token = customerToken(cus, Math.random() < 0.5 ? `sub_${cus}` : null);
  const res = record('session', req('session', 'POST', '/v1/widget/sessions', '{}',
    { Authorization: `Bearer ${FX.pk}`, 'X-Customer-Token': token }), 201);
  if (res.status === 201) {
    const id = res.json('session_id');
    if (id) {
      mine.push({ id, token, n: 0 });
      if (mine.length > 20) mine.shift();
    }
  }
}

const EVENT_SEQ = [
  { type: 'reason_selected', reason_code: 'too_expensive' },
  { type: 'offer_shown', offer_id: 'disc20' },
  { type: 'feedback', text: 'Load test feedback: the price went up and we use it less.' },
  { type: 'offer_shown', offer_id: 'pause2' },
  { type: 'reason_selected', reason_code: 'missing_features' },
  { type: 'abandoned' },
];

const poolUse = {};

function doEvent() {
  let s;
  if (mine.length > 0) {
    s = mine[Math.floor(Math.random() * mine.length)];
  } else if (POOL.length > 0) {
    const i = Math.floor(Math.random() * POOL.length);
    poolUse[i] = (poolUse[i] || 0) + 1;
    s = { id: POOL[i].id, token: POOL[i].token, n: poolUse[i] - 1, pool: true };
  } else {
    return doSession();
  }
  // Pool sessions take events over and over: never their `abandoned`, which ends a session
  // (any later event would be a 409 session_ended).
  const seq = s.pool ? EVENT_SEQ.length - 1 : EVENT_SEQ.length;
  const ev = Object.assign({ client_event_id: `ce_${uid()}` }, EVENT_SEQ[s.n % seq]);
  s.n += 1;
  if (!s.pool && s.n >= EVENT_SEQ.length) mine.splice(mine.indexOf(s), 1);
  record('event', req('event', 'POST', `/v1/widget/sessions/${s.id}/events`, JSON.stringify(ev),
    { Authorization: `Bearer ${FX.pk}`, 'X-Customer-Token': s.token },
    '/v1/widget/sessions/{id}/events'), 202);
}

function doWebhook() {
  // 2 % are redeliveries of this VU's previous event: acknowledged 200 as duplicates.
  const id = lastEvent && Math.random() < 0.02 ? lastEvent : `evt_${uid()}`;
  lastEvent = id;
  const t = Math.floor(Date.now() / 1000);
  // 1,000 distinct subscriptions (the worker serialises processing per subscription).
  const sub = `sub_load_${Math.floor(Math.random() * 1000)}`;
  const body = JSON.stringify({ id, type: 'customer.subscription.updated', livemode: false,
    created: t, data: { object: { id: sub, object: 'subscription' } }, request: null });
  const sig = crypto.hmac('sha256', FX.webhook_secret, `${t}.${body}`, 'hex');
  record('webhook', req('webhook', 'POST', `/v1/webhooks/stripe/${FX.tenant_id}`, body,
    { 'Stripe-Signature': `t=${t},v1=${sig}` }, '/v1/webhooks/stripe/{tenant_id}'), 200);
}

const ADMIN_READS = [
  ['/v1/tenant', '/v1/tenant'],
  ['/v1/flows', '/v1/flows'],
  [`/v1/flows/${FX.flow_id}`, '/v1/flows/{id}'],
  ['SESSION', '/v1/sessions/{id}'],
];

function doAdminRead() {
  let [path, name] = ADMIN_READS[Math.floor(Math.random() * ADMIN_READS.length)];
  if (path === 'SESSION') path = `/v1/sessions/${mine.length ? mine[0].id : FX.session_id}`;
  record('admin_read', req('admin_read', 'GET', path, undefined,
    { Authorization: `Bearer ${FX.sk}` }, name), 200);
}

function doAdminWrite() {
  // A flow builder save of the draft flow (never the published default).
  const body = Object.assign({}, FX.draft_body, { name: `Draft ${Math.floor(Math.random() * 1e6)}` });
  record('admin_write', req('admin_write', 'PUT', `/v1/flows/${FX.draft_flow_id}`,
    JSON.stringify(body), { Authorization: `Bearer ${FX.sk}` }, '/v1/flows/{id}'), 200);
}

const ANALYTICS = [
  ['an_summary', '/v1/analytics/summary?from=2026-01-01&to=2026-12-31', '/v1/analytics/summary'],
  ['an_offers', '/v1/analytics/offers', '/v1/analytics/offers'],
  ['an_timeseries', '/v1/analytics/timeseries?metric=sessions&interval=day', '/v1/analytics/timeseries'],
  ['an_reasons', '/v1/analytics/churn-reasons', '/v1/analytics/churn-reasons'],
];

function doAnalytics() {
  const [ep, path, name] = ANALYTICS[Math.floor(Math.random() * ANALYTICS.length)];
  record(ep, req(ep, 'GET', path, undefined, { Authorization: `Bearer ${FX.sk}` }, name), 200);
}

// The realistic mix (shares of requests): widget 60 % (sessions 25, events 35), Stripe
// webhooks 15 %, admin 15 % (reads 12, flow builder saves 3), analytics 10 %.
const MIX = [
  [25, doSession], [35, doEvent], [15, doWebhook], [12, doAdminRead], [3, doAdminWrite],
  [10, doAnalytics],
];

export function mixed() {
  let r = Math.random() * 100;
  for (const [w, f] of MIX) {
    if (r < w) return f();
    r -= w;
  }
  return doAnalytics();
}

export function connections() {
  // Stagger the first requests over 3 s (a real crowd does not arrive in one instant); the
  // 1,000 connections then stay open for the whole scenario.
  if (exec.vu.iterationInScenario === 0) sleep(Math.random() * 3);
  mixed();
  sleep(1 + Math.random() * 2);
}

export function baseline() {
  record('baseline', req('baseline', 'GET', '/healthz'), 200);
}

export function only_session() { doSession(); }
export function only_event() { doEvent(); }
export function only_webhook() { doWebhook(); }
export function only_admin_read() { doAdminRead(); }
export function only_analytics() { doAnalytics(); }

export function handleSummary(data) {
  const lines = [`k6 ${SCENARIO}: summary written to ${SUMMARY}`];
  for (const ep of EPS) {
    const n = data.metrics[`n_${ep}`];
    if (!n) continue;
    const lat = data.metrics[`lat_${ep}`];
    const v = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
    lines.push(`  ${ep.padEnd(14)} n=${n.values.count} ok=${v(`ok_${ep}`)} err=${v(`err_${ep}`)}`
      + ` 429=${v(`shed429_${ep}`)} 503=${v(`shed503_${ep}`)} 404(n/a)=${v(`na_${ep}`)}`
      + (lat ? ` p50=${lat.values.med.toFixed(2)}ms p99=${lat.values['p(99)'].toFixed(2)}ms` : ''));
  }
  return { [SUMMARY]: JSON.stringify(data, null, 1), stdout: lines.join('\n') + '\n' };
}
