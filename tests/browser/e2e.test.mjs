// End-to-end: the demo page served by the real API, the real widget, real sessions in
// PostgreSQL. run.sh starts the stack and passes it in the environment:
//   API_URL        http://127.0.0.1:<port> of the running retentionos-api
//   API_PID        its process id (scenario d kills it: run it last)
//   DATABASE_URL   the stack's database (outcomes are checked with psql)
//   OPS_TOKEN      the ops token the api runs with
//   STRIPE_API_BASE      the Stripe sandbox (rtos-stripe-sandbox) the api and workers use
//   DEMO_TENANT_ID, DEMO_PUBLISHABLE_KEY
//                  the "Demo" tenant of `retentionos-api demo --stripe-sandbox` (its test
//                  mode connected to the sandbox) and its page's key (scenario e)
//   RTOS_API_BIN, RTOS_WORKERS_BIN   the binaries (user create; the analytics rollup)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  launchBrowser, screenshot, watchPage, poll, newContext, cliUser, dashboardSignIn, DEADLINE_MS, WIDGET_DIR, sql,
  noSideScroll,
} from './lib.mjs';

const API = process.env.API_URL;
const API_PID = Number(process.env.API_PID);
const DATABASE_URL = process.env.DATABASE_URL;
const OPS_TOKEN = process.env.OPS_TOKEN || 'browser-ops-token';
if (!API || !DATABASE_URL) throw new Error('API_URL and DATABASE_URL must be set (run tests/browser/run.sh)');

const RUN = randomBytes(4).toString('hex');
const FLOW = {
  name: 'Default',
  language: 'en',
  is_default: true,
  ranking_score: 0,
  steps: [
    {
      id: 'survey', type: 'survey', title: 'Why are you leaving?',
      reasons: [
        { code: 'too_expensive', label: 'Too expensive' },
        { code: 'missing_features', label: 'Missing features' },
      ],
    },
    {
      id: 'offer', type: 'offer', title: 'Before you go',
      offers: [{
        id: 'disc20', type: 'discount', title: '20% off for 3 months', description: 'Stay and save',
        discount: { percent_off: 20, duration: 'repeating', duration_in_months: 3 },
      }],
    },
    { id: 'confirm', type: 'confirm', title: 'Confirm cancellation' },
  ],
};

let browser;
let publishableKey;

async function api(method, path, key, body) {
  const res = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}


// Polls the customer's session row until its outcome is `outcome` (DEADLINE_MS at most).
async function expectOutcome(customer, expected) {
  const q = `select outcome, saved_offer_type from cancel_sessions where customer_id='${customer}' order by created_at desc limit 1`;
  const row = await poll(() => {
    const r = sql(q);
    return r.split('|')[0] === expected.split('|')[0] ? r : null;
  }, { intervalMs: 250 });
  const last = row ?? sql(q);
  assert.equal(last, expected, `cancel_sessions row of ${customer}`);
}

// Gives the demo page's RetentionOS.open() a timeoutMs of `ms` (unless the page passes one):
// the flows below must not fail open because the stack, on a loaded machine, took longer
// than the widget's default 1.5 s to answer. The default deadline itself is checked
// exactly in widget.mock.test.mjs, and by scenario (d) on the page's clock.
function widgetTimeoutScript(ms) {
  return `(() => {
    let value;
    Object.defineProperty(window, 'RetentionOS', {
      configurable: true,
      enumerable: true,
      get() { return value; },
      set(v) {
        if (v && typeof v.open === 'function') {
          const open = v.open;
          v.open = (o) => open(Object.assign({ timeoutMs: ${Number(ms)} }, o));
        }
        value = v;
      },
    });
  })();`;
}

// A fresh browser context on /demo for a new customer, with the widget loaded.
// `clock: true`: the page runs on Playwright's fake clock, paused once the widget has loaded
// (its timers fire only when the test advances time), and the widget keeps its default
// timeoutMs.
async function openDemo(label, { clock = false, pk = publishableKey } = {}) {
  const customer = `cus_demo_browser_${label}_${RUN}`;
  const context = await newContext(browser, { viewport: { width: 1100, height: 800 } });
  if (clock) await context.clock.install();
  else await context.addInitScript({ content: widgetTimeoutScript(DEADLINE_MS) });
  const page = await context.newPage();
  const errors = watchPage(page, label);
  const res = await page.goto(`${API}/demo?pk=${encodeURIComponent(pk)}&customer=${encodeURIComponent(customer)}`);
  assert.equal(res.status(), 200, `GET /demo answered ${res.status()}`);
  await page.waitForFunction(() => window.RetentionOS && typeof window.RetentionOS.open === 'function');
  if (clock) await page.clock.pauseAt(Date.now() + 1000);
  return { customer, context, page, errors };
}

before(async () => {
  const t = await api('POST', '/v1/tenants', OPS_TOKEN, { name: 'Browser Co', demo: true });
  assert.equal(t.status, 201, `POST /v1/tenants: ${t.text}`);
  const key = (kind) => t.json.keys.find((k) => k.kind === kind && k.mode === 'test').key;
  const secret = key('secret');
  publishableKey = key('publishable');
  const f = await api('POST', '/v1/flows', secret, FLOW);
  assert.equal(f.status, 201, `POST /v1/flows: ${f.text}`);
  const p = await api('POST', `/v1/flows/${f.json.id}/publish`, secret);
  assert.equal(p.status, 200, `POST /v1/flows/{id}/publish: ${p.text}`);
  console.log(`tenant ${t.json.tenant.id}, flow ${f.json.id} published`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

test('the API serves this widget.js, and the demo loads its content-hashed URL', async () => {
  const res = await fetch(`${API}/widget.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /javascript/);
  const body = await res.text();
  assert.equal(body, fs.readFileSync(path.join(WIDGET_DIR, 'widget.js'), 'utf8'), 'the api embeds the current widget/widget.js (rebuild?)');
  const demo = await fetch(`${API}/demo?pk=${encodeURIComponent(publishableKey)}&customer=cus_demo_browser_probe_${RUN}`);
  assert.equal(demo.status, 200);
  const html = await demo.text();
  assert.doesNotMatch(html, /\{\{[A-Z_]+\}\}/, 'every placeholder replaced');
  const src = html.match(/<script src="([^"]+\/widget[^"]*\.js[^"]*)"/)[1];
  const versioned = await fetch(src);
  assert.equal(versioned.status, 200);
  assert.match(versioned.headers.get('cache-control') || '', /immutable/, `${src}: ${versioned.headers.get('cache-control')}`);
});

test('(a) reason, offer, accept: saved with a discount', async () => {
  const { customer, context, page, errors } = await openDemo('a');
  try {
    await page.click('#cancel-subscription');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    await dialog.getByLabel('Too expensive').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    const offer = dialog.locator('.rtos-offer', { hasText: '20% off for 3 months' });
    await offer.waitFor();
    await screenshot(page, 'e2e-a-offer');
    await offer.getByRole('button').click();
    await page.locator('#result').filter({ hasText: /staying|saved/ }).waitFor();
    await screenshot(page, 'e2e-a-saved');
    await expectOutcome(customer, 'saved|discount');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(b) reason, decline, confirm: canceled', async () => {
  const { customer, context, page, errors } = await openDemo('b');
  try {
    await page.click('#cancel-subscription');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByLabel('Missing features').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.locator('.rtos-offer', { hasText: '20% off for 3 months' }).waitFor();
    await dialog.getByRole('button', { name: 'No thanks' }).click();
    await dialog.getByRole('heading', { name: 'Confirm cancellation' }).waitFor();
    await screenshot(page, 'e2e-b-confirm');
    await dialog.getByRole('button', { name: 'Cancel subscription', exact: true }).click();
    await page.locator('#result').filter({ hasText: 'canceled' }).waitFor();
    await screenshot(page, 'e2e-b-canceled');
    await expectOutcome(customer, 'canceled|');
    // Sent concurrently (reason_selected and offer_shown may arrive in either order).
    const types = sql(`select string_agg(e.type, ',' order by e.type) from session_events e join cancel_sessions s on s.id = e.session_id where s.customer_id='${customer}'`);
    assert.equal(types, 'cancel_confirmed,offer_declined,offer_shown,reason_selected');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(c) Escape closes the modal: abandoned, focus back on the button', async () => {
  const { customer, context, page, errors } = await openDemo('c');
  try {
    await page.focus('#cancel-subscription');
    await page.keyboard.press('Enter');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'cancel-subscription');
    await screenshot(page, 'e2e-c-abandoned');
    await expectOutcome(customer, 'abandoned|');
    assert.doesNotMatch(await page.locator('#result').textContent(), /canceled/);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(e) the whole loop: the demo tenant on the Stripe sandbox applies the offer, the dashboard shows it', async () => {
  const { STRIPE_API_BASE, DEMO_TENANT_ID, DEMO_PUBLISHABLE_KEY, RTOS_API_BIN, RTOS_WORKERS_BIN } = process.env;
  for (const [k, v] of Object.entries({ STRIPE_API_BASE, DEMO_TENANT_ID, DEMO_PUBLISHABLE_KEY, RTOS_API_BIN, RTOS_WORKERS_BIN })) {
    assert.ok(v, `${k} must be set (run tests/browser/run.sh)`);
  }
  // The customer accepts the demo flow's discount on /demo.
  const { customer, context, page, errors } = await openDemo('e', { pk: DEMO_PUBLISHABLE_KEY });
  const subscription = customer.replace(/^cus_demo/, 'sub_demo');
  try {
    assert.equal(await page.locator('#subscription-id').textContent(), subscription, 'the page names the customer\'s subscription');
    await page.click('#cancel-subscription');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    await dialog.getByLabel("It's too expensive").check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByRole('heading', { name: 'Anything we could do better?' }).waitFor();
    // Its primary button ("Submit" in the api's English strings): no feedback given.
    await dialog.locator('.rtos-foot .rtos-primary').click();
    const offer = dialog.locator('.rtos-offer', { hasText: '20% off for 3 months' });
    await offer.waitFor();
    await offer.getByRole('button').click();
    await page.locator('#result').filter({ hasText: /staying|saved/ }).waitFor();
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }

  // The workers apply it to the sandbox subscription: offer_state applied, never failed.
  const q = `select id, offer_state, coalesce(offer_error, ''), subscription_id from cancel_sessions where customer_id='${customer}' and tenant_id='${DEMO_TENANT_ID}' and outcome='saved'`;
  const row = await poll(() => {
    const r = sql(q);
    return ['applied', 'failed'].includes(r.split('|')[1]) ? r : null;
  }, { intervalMs: 250 });
  const [sessionId, offerState, offerError, subId] = (row ?? sql(q)).split('|');
  assert.equal(offerState, 'applied', `offer_state of ${customer} (${offerError})`);
  assert.equal(subId, subscription);
  const res = await fetch(`${STRIPE_API_BASE}/v1/subscriptions/${subscription}?expand[]=discounts`, {
    headers: { Authorization: 'Bearer sk_test_e2e_reader' },
  });
  assert.equal(res.status, 200, `sandbox GET /v1/subscriptions/${subscription}`);
  const sub = await res.json();
  assert.equal(sub.customer, customer);
  assert.equal(sub.status, 'active');
  assert.deepEqual(sub.discounts.map((d) => [d.coupon.percent_off, d.coupon.duration, d.coupon.duration_in_months]), [[20, 'repeating', 3]]);

  // The demo tenant's owner sees the applied offer on the session page...
  const owner = await cliUser(RTOS_API_BIN, DEMO_TENANT_ID, 'owner', `demo-owner-${RUN}@example.test`, `Demo-owner-${RUN}-pass`);
  const dash = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(dash, API, owner);
    const p = await dash.newPage();
    const perrors = watchPage(p, 'e-dashboard');
    await p.goto(`${API}/app/sessions/${sessionId}`);
    const field = (name) => p.locator(`dd[data-field="${name}"]`).textContent();
    assert.equal(await field('Outcome'), 'saved');
    assert.equal(await field('Saved with'), 'discount');
    assert.equal(await field('Offer state'), 'applied');
    assert.equal(await field('Subscription'), subscription);
    // The Stripe application: the apply_offer job, done.
    assert.equal(await p.locator('[data-job-state]').count(), 1);
    assert.equal(await p.locator('[data-job-state]').textContent(), 'done');
    await screenshot(p, 'dashboard-demo-session-1280', { fullPage: true });
    await p.setViewportSize({ width: 375, height: 812 });
    // Its tables scroll inside their cards: the page itself never scrolls sideways.
    const sw = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(sw <= 375, `the session page at 375 px scrolls sideways: scrollWidth ${sw}`);
    await screenshot(p, 'dashboard-demo-session-375', { fullPage: true });
    await p.setViewportSize({ width: 1280, height: 900 });

    // ... and, after one rollup, the save in the overview's figures (which read only the
    // rollups). The workers' scheduled rollup runs at each hour here; the CLI runs the same
    // rollup now, and the poll only waits for the page to serve the new figures.
    const out = execFileSync(RTOS_WORKERS_BIN, ['rollup'], { encoding: 'utf8', env: process.env, timeout: DEADLINE_MS });
    console.log(`rollup: ${out.trim().replace(/\s+/g, ' ')}`);
    const saved = await poll(async () => {
      await p.goto(`${API}/app`);
      const v = await p.locator('[data-metric="saved"]').textContent();
      return v === '1' ? v : null;
    }, { intervalMs: 250 });
    assert.equal(saved, '1', 'the overview counts the save after one rollup');

    // Every page of the dashboard on this real data, at 1280 and 375 px: each answers 200,
    // never scrolls sideways, raises no page error; a screenshot of each
    // (dashboard-tour-<page>-<width>.png).
    const flowId = sql(`select id from flows where tenant_id='${DEMO_TENANT_ID}' and mode='test' and deleted_at is null order by created_at limit 1`);
    assert.match(flowId, /^[0-9a-f-]{36}$/);
    const tour = [
      ['overview', '/app'],
      ['flows', '/app/flows'],
      ['flow-editor', `/app/flows/${flowId}`],
      ['sessions', '/app/sessions'],
      ['session', `/app/sessions/${sessionId}`],
      ['customers', '/app/customers'],
      ['customer', `/app/customers/${encodeURIComponent(customer)}`],
      ['settings', '/app/settings'],
      ['stripe', '/app/settings/stripe'],
      ['keys', '/app/keys'],
      ['install', '/app/install'],
      ['team', '/app/team'],
      ['audit', '/app/audit'],
    ];
    const shots = [];
    const visit = async (page, name, path, width) => {
      const res = await page.goto(`${API}${path}`);
      assert.equal(res.status(), 200, `${path}: ${res.status()}`);
      await noSideScroll(page, width, name);
      shots.push(await screenshot(page, `dashboard-tour-${name}-${width}`, { fullPage: true }));
    };
    for (const width of [1280, 375]) {
      await p.setViewportSize({ width, height: width === 375 ? 812 : 900 });
      for (const [name, path] of tour) await visit(p, name, path, width);
    }
    assert.deepEqual(perrors, []);

    // Signed out: the reset page; the operators' console behind its own sign-in.
    for (const width of [1280, 375]) {
      const other = await newContext(browser, { viewport: { width, height: width === 375 ? 812 : 900 } });
      try {
        const q = await other.newPage();
        const qerrors = watchPage(q, `e-ops-${width}`);
        await visit(q, 'reset-password', '/app/reset-password', width);
        await visit(q, 'ops-login', '/app/ops/login', width);
        await q.getByLabel('Ops token').fill(OPS_TOKEN);
        await Promise.all([q.waitForURL(`${API}/app/ops`), q.getByRole('button', { name: 'Sign in' }).click()]);
        const queue = await q.locator('tr[data-queue]').first().getAttribute('data-queue');
        await visit(q, 'ops-queues', '/app/ops', width);
        await visit(q, 'ops-dead-letters', `/app/ops/queues/${queue}/dead`, width);
        assert.deepEqual(qerrors, []);
      } finally {
        await other.close();
      }
    }
    console.log(`screenshots:\n  ${shots.join('\n  ')}`);
  } finally {
    await dash.close();
  }
});

test('(d) fail open: the API is down, Cancel still cancels within 3 s', async () => {
  // "Within 3 s" is checked on the page's clock (the one the widget's deadline runs on), not
  // on the wall clock of a machine that may be busy: see openDemo's `clock`.
  const { context, page } = await openDemo('d', { clock: true });
  try {
    assert.ok(API_PID > 0, 'API_PID must be set');
    process.kill(API_PID, 'SIGKILL');
    // Wait until the port refuses connections.
    const down = await poll(async () => {
      try { await fetch(`${API}/readyz`); return false; } catch { return true; }
    }, { intervalMs: 100 });
    assert.ok(down, 'the api still answers after SIGKILL');
    const t0 = Date.now();
    await page.click('#cancel-subscription');
    // The widget has mounted its modal and sent its session request (one synchronous step,
    // so its deadline timer is set), or has already failed open on the refused connection.
    await page.waitForFunction(() => !!document.querySelector('retentionos-modal') ||
      /canceled/.test(document.getElementById('result').textContent));
    // 3 s of the page's clock: whether the refusal or the widget's deadline comes first,
    // the customer must see the cancellation by then.
    await page.clock.runFor(3000);
    assert.match(await page.locator('#result').textContent(), /canceled/, 'canceled within 3 s of the page\'s clock');
    console.log(`fail-open: canceled message after ${Date.now() - t0} ms of wall-clock time`);
    assert.equal(await page.locator('[role=dialog]').count(), 0);
    await screenshot(page, 'e2e-d-fail-open');
  } finally {
    await context.close();
  }
});
