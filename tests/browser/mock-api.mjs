// A small stand-in for the RetentionOS widget API, used by widget.mock.test.mjs to exercise the
// widget's behaviour (retries, timeouts, fail-open, CORS) in a real browser without the Rust
// stack. The end-to-end suite (e2e.test.mjs) runs against the real API instead.
//
// Two servers on 127.0.0.1: `api` (serves /widget.js, /demo and the /v1/widget endpoints, with
// CORS) and `site` (a "tenant" page on another origin, so the widget runs cross-origin).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { WIDGET_DIR } from './lib.mjs';

export const PUBLISHABLE_KEY = 'pk_test_mock';

export const STRINGS_EN = {
  title: 'Before you go',
  cancel_now: 'Cancel now',
  continue: 'Continue',
  back: 'Back',
  close: 'Close',
  decline_offer: 'No thanks',
  accept_offer: 'Accept offer',
  confirm_cancel: 'Cancel subscription',
  saved_title: 'Great, you are staying',
  saved_body: 'Your offer is applied.',
  feedback_placeholder: 'Anything else?',
  submit: 'Send',
};

export const FLOW = {
  id: '7b1a3c1e-0000-4000-8000-000000000001',
  version: 3,
  language: 'en',
  steps: [
    {
      id: 'survey',
      type: 'survey',
      title: 'Why are you leaving?',
      reasons: [
        { code: 'too_expensive', label: 'Too expensive', follow_up: 'What price would work?' },
        { code: 'missing_features', label: 'Missing features' },
        { code: 'other', label: 'Something else' },
      ],
    },
    { id: 'fb', type: 'feedback', title: 'Anything we could do better?' },
    {
      id: 'offer',
      type: 'offer',
      title: 'Before you go',
      offers: [
        {
          id: 'disc20', type: 'discount', title: '20% off for 3 months', description: 'Stay and save',
          reason_codes: ['too_expensive'],
        },
        {
          id: 'pause1', type: 'pause', title: 'Pause for a month', description: 'Take a break', cta: 'Pause instead',
          reason_codes: ['too_expensive', 'missing_features'],
        },
        {
          id: 'roadmap', type: 'redirect', title: 'See our roadmap', description: 'It may be coming soon',
          reason_codes: ['missing_features'], redirect: { url: '/roadmap' },
        },
      ],
    },
    { id: 'confirm', type: 'confirm', title: 'Confirm cancellation', body: 'You keep access until the end of the period.' },
  ],
};

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A request that is never answered (the browser aborts it, or close() drops the connection).
const hang = () => new Promise(() => {});

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

export async function startMock() {
  const state = {
    // Per customer token: how to answer the session request.
    //   { status, delayMs, body (object merged into the default answer), raw (string body),
    //     hold: true (never answer: the request is recorded, then left hanging until the
    //     browser gives up on it) }
    sessions: {},
    // Per customer token: how to answer event requests.
    //   { failFirst: N (answer 500 to the first N attempts of each client_event_id),
    //     delayMs: { <event type>: ms }, hold: [<event type>, ...] (never answer those),
    //     status: code }
    events: {},
    requests: [], // every request: { method, path, headers, body, at }
    eventsBySession: {}, // session id -> accepted events, in arrival order
    attempts: {}, // client_event_id -> attempts seen
  };

  const cors = {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': 'POST, OPTIONS',
    'Access-Control-Allow-Headers': 'Authorization, Content-Type, X-Customer-Token',
    'Access-Control-Max-Age': '600',
  };
  const json = (res, status, obj) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...cors });
    res.end(JSON.stringify(obj));
  };

  const api = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const body = req.method === 'POST' ? await readBody(req) : '';
    const rec = { method: req.method, path: url.pathname, headers: req.headers, body, at: Date.now() };
    state.requests.push(rec);
    try {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, cors);
        return res.end();
      }
      if (req.method === 'GET' && /^\/widget(\.[\w-]+)?\.js$/.test(url.pathname)) {
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
        return res.end(fs.readFileSync(path.join(WIDGET_DIR, 'widget.js')));
      }
      if (req.method === 'GET' && url.pathname === '/demo') {
        const origin = `http://${req.headers.host}`;
        const html = fs.readFileSync(path.join(WIDGET_DIR, 'demo.html'), 'utf8')
          .replaceAll('{{PUBLISHABLE_KEY}}', PUBLISHABLE_KEY)
          .replaceAll('{{CUSTOMER_TOKEN}}', url.searchParams.get('customer') || 'demo')
          .replaceAll('{{API_BASE}}', url.searchParams.get('api_base') || origin)
          .replaceAll('{{WIDGET_HASH}}', 'mock');
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        return res.end(html);
      }
      if (req.method === 'GET' && url.pathname === '/roadmap') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        return res.end('<!doctype html><title>Roadmap</title><h1 id="roadmap">Roadmap</h1>');
      }
      if (req.method === 'POST' && url.pathname === '/v1/widget/sessions') {
        if (req.headers.authorization !== `Bearer ${PUBLISHABLE_KEY}`) {
          return json(res, 401, { error: { code: 'unauthorized' } });
        }
        const token = req.headers['x-customer-token'] || '';
        const sc = state.sessions[token] || {};
        if (sc.hold) return hang();
        if (sc.delayMs) await sleep(sc.delayMs);
        if (sc.raw !== undefined) {
          res.writeHead(sc.status || 201, { 'Content-Type': 'application/json', ...cors });
          return res.end(sc.raw);
        }
        const id = randomUUID();
        state.eventsBySession[id] = [];
        const answer = {
          session_id: id, flow: FLOW, variant: null, holdout: false, language: 'en', strings: STRINGS_EN,
          ...(sc.body || {}),
        };
        return json(res, sc.status || 201, answer);
      }
      const m = url.pathname.match(/^\/v1\/widget\/sessions\/([^/]+)\/events$/);
      if (req.method === 'POST' && m) {
        const token = req.headers['x-customer-token'] || '';
        const ec = state.events[token] || {};
        let ev;
        try { ev = JSON.parse(body); } catch { return json(res, 400, { error: { code: 'invalid_json' } }); }
        const n = (state.attempts[ev.client_event_id] = (state.attempts[ev.client_event_id] || 0) + 1);
        if (ec.hold && ec.hold.includes(ev.type)) return hang();
        const delay = ec.delayMs && ec.delayMs[ev.type];
        if (delay) await sleep(delay);
        if (ec.failFirst && n <= ec.failFirst) return json(res, 500, { error: { code: 'internal' } });
        if (ec.status) return json(res, ec.status, { error: { code: 'forced' } });
        const list = (state.eventsBySession[m[1]] = state.eventsBySession[m[1]] || []);
        const duplicate = list.some((e) => e.client_event_id === ev.client_event_id);
        if (!duplicate) list.push(ev);
        return json(res, 202, { status: 'accepted', duplicate });
      }
      json(res, 404, { error: { code: 'not_found' } });
    } catch (e) {
      json(res, 500, { error: { code: 'mock_failure', message: String(e) } });
    }
  });

  // The tenant's site: pages a test puts in `pages` (served at /<name>), on another origin.
  const pages = {};
  const site = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const page = pages[url.pathname.slice(1)];
    if (!page) {
      res.writeHead(404);
      return res.end('not found');
    }
    // A page is its HTML, or { html, headers } (e.g. a Content-Security-Policy).
    const { html, headers } = typeof page === 'string' ? { html: page, headers: {} } : page;
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', ...headers });
    res.end(html);
  });

  const apiPort = await listen(api);
  const sitePort = await listen(site);
  const mock = {
    state,
    apiBase: `http://127.0.0.1:${apiPort}`,
    siteBase: `http://localhost:${sitePort}`,
    pages,
    // All accepted events of the session(s) opened with `token`.
    eventsFor(token) {
      const sessions = new Set(
        state.requests
          .filter((r) => r.method === 'POST' && r.headers['x-customer-token'] === token)
          .map((r) => (r.path.match(/^\/v1\/widget\/sessions\/([^/]+)\/events$/) || [])[1])
          .filter(Boolean),
      );
      return [...sessions].flatMap((id) => state.eventsBySession[id] || []);
    },
    requestsFor(token) {
      return state.requests.filter((r) => r.headers['x-customer-token'] === token);
    },
    close() {
      api.closeAllConnections?.();
      site.closeAllConnections?.();
      return Promise.all([new Promise((r) => api.close(r)), new Promise((r) => site.close(r))]);
    },
  };
  return mock;
}
