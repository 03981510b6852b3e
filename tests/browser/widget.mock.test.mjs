// Widget behaviour in a real browser (Debian's Chromium) against a mock API (mock-api.mjs):
// steps, events, retries, timeouts, fail-open, accessibility, style isolation, size budget.
// Needs no Rust stack: `node --test widget.mock.test.mjs` (run.sh runs it first).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { launchBrowser, screenshot, watchPage, WIDGET_DIR, poll, newContext, DEADLINE_MS } from './lib.mjs';
import { startMock, PUBLISHABLE_KEY, STRINGS_EN } from './mock-api.mjs';

let browser;
let mock;
let n = 0;

before(async () => {
  mock = await startMock();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await mock?.close();
});

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// The widget's timeoutMs on the test pages: the mock's answers must never race the widget's
// deadline on a loaded machine. The tests of the deadline itself pass their own value (or
// null for the widget's default) and drive the page's clock (openPage's `clock`).
const WIDGET_TIMEOUT_MS = DEADLINE_MS;

// Wraps the page's fetch before the widget loads: window.__net counts the requests in flight
// (from the call until the body has been read) and records the event type of each, and
// window.__netIdle() resolves at the start of a task where none is in flight. By then every
// promise callback queued by an earlier response has run, so a request the widget would chain
// on it (its event queue sends one event after the other) has been started and counted.
const NET_PROBE = `
window.__net = { pending: 0, calls: [] };
(function () {
  var realFetch = window.fetch;
  var ch = new MessageChannel();
  var waiters = [];
  ch.port1.onmessage = function () {
    if (__net.pending !== 0) return; // a new request started; its end schedules a new check
    var w = waiters; waiters = [];
    w.forEach(function (f) { f(); });
  };
  window.__netIdle = function () {
    return new Promise(function (resolve) {
      waiters.push(resolve);
      if (__net.pending === 0) ch.port2.postMessage(0);
    });
  };
  window.fetch = function (url, init) {
    var type = null;
    try { type = JSON.parse(init && init.body).type || null; } catch (e) { /* no JSON body */ }
    __net.calls.push({ url: String(url), type: type });
    __net.pending++;
    var settled = false;
    function settle() {
      if (settled) return;
      settled = true;
      if (--__net.pending === 0 && waiters.length) ch.port2.postMessage(0);
    }
    return realFetch.apply(this, arguments).then(function (r) {
      var text = r.text.bind(r);
      r.text = function () { return text().finally(settle); };
      return r;
    }, function (e) { settle(); throw e; });
  };
})();`;

// A tenant page on another origin than the API, with a cancel button that opens the widget.
function hostPage(token, { options = '', timeoutMs = WIDGET_TIMEOUT_MS, css = '', widgetSrc, preScript = '', netProbe = false } = {}) {
  const src = widgetSrc || `${mock.apiBase}/widget.js`;
  if (timeoutMs != null) options = `timeoutMs: ${timeoutMs}, ${options}`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${css ? `<style>${css}</style>` : ''}</head><body>
<h1>Tenant app</h1>
<input id="before" aria-label="before">
<button id="open" type="button">Cancel my plan</button>
<button id="after" type="button">Something else</button>
${netProbe ? `<script nonce="t">${NET_PROBE}</script>` : ''}
${preScript ? `<script nonce="t">${preScript}</script>` : ''}
<script src="${src}"></script>
<script nonce="t">
window.__calls = [];
window.__errors = [];
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) { __csp.push(e.violatedDirective + ' ' + e.blockedURI); });
window.addEventListener('error', function (e) { __errors.push(String(e.message)); });
window.addEventListener('unhandledrejection', function (e) { __errors.push('unhandled: ' + e.reason); });
function rec(name) { return function (arg) { __calls.push({ cb: name, arg: arg === undefined ? null : arg, t: performance.now() - window.__openedAt }); }; }
document.getElementById('open').addEventListener('click', function () {
  window.__openedAt = performance.now();
  window.__result = null;
  RetentionOS.open({ publishableKey: ${JSON.stringify(PUBLISHABLE_KEY)}, token: ${JSON.stringify(token)},
    onCancel: rec('onCancel'), onSaved: rec('onSaved'), onClose: rec('onClose'), ${options} })
    .then(function (r) { window.__result = r; });
});
</script></body></html>`;
}

// `clock: true`: the page runs on Playwright's fake clock, paused once the page has loaded, so
// the widget's timers (its timeoutMs, retry pauses, per-attempt deadlines) fire only when the
// test advances time with page.clock.runFor(ms): deadlines are checked exactly, whatever the
// machine's load, and the real network can take as long as it takes.
async function openPage(pageOpts = {}, { sessions, events, viewport, headers, clock } = {}) {
  const token = `cus_mock_${++n}`;
  if (sessions) mock.state.sessions[token] = sessions;
  if (events) mock.state.events[token] = events;
  mock.pages[token] = { html: hostPage(token, pageOpts), headers: headers || {} };
  const context = await newContext(browser, { viewport: viewport || { width: 1024, height: 768 } });
  if (clock) await context.clock.install();
  const page = await context.newPage();
  const errors = watchPage(page, token);
  await page.goto(`${mock.siteBase}/${token}`);
  if (clock) await page.clock.pauseAt(Date.now() + 1000);
  return { token, context, page, errors };
}

const calls = (page) => page.evaluate(() => window.__calls);
const waitCall = (page, cb, timeout = DEADLINE_MS) =>
  page.waitForFunction((name) => window.__calls.some((c) => c.cb === name), cb, { timeout });

// Waits until the page (opened with `netProbe: true`) has no request in flight and none
// chained on the last one (see NET_PROBE): whatever the widget was going to send, it sent.
async function netIdle(page) {
  await page.evaluate(() => {
    window.__idle = false;
    window.__netIdle().then(() => { window.__idle = true; });
  });
  await page.waitForFunction(() => window.__idle, null, { timeout: DEADLINE_MS });
}

// Waits until the mock has received the token's POST matching `pred` (the session request, or
// an event of a type): from then on the widget's timers for that request are running.
async function requestArrived(token, pred) {
  const r = await poll(() => mock.requestsFor(token).find((x) => x.method === 'POST' && pred(x)));
  assert.ok(r, `request of ${token} never arrived`);
  return r;
}
const isSession = (r) => r.path === '/v1/widget/sessions';
const isEvent = (type) => (r) => r.path.endsWith('/events') && JSON.parse(r.body).type === type;

// The deepest focused element, through shadow roots.
function focused(page) {
  return page.evaluate(() => {
    let a = document.activeElement;
    while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
    return {
      tag: a && a.tagName,
      id: a && a.id,
      text: a && (a.getAttribute('aria-label') || a.textContent || '').trim().slice(0, 60),
      inDialog: !!(a && a.closest && a.closest('[role=dialog]')),
    };
  });
}

async function noModal(page) {
  return page.evaluate(() => !document.querySelector('retentionos-modal'));
}

test('widget.js stays under 10 KB gzip', () => {
  const src = fs.readFileSync(path.join(WIDGET_DIR, 'widget.js'));
  const size = zlib.gzipSync(src, { level: 9 }).length;
  console.log(`widget.js: ${src.length} bytes, ${size} bytes gzip -9`);
  assert.ok(size < 10 * 1024, `gzip size ${size}`);
});

test('widget.js is ES2017, loads nothing else, never uses innerHTML or eval', async () => {
  const { parse } = await import('acorn');
  const src = fs.readFileSync(path.join(WIDGET_DIR, 'widget.js'), 'utf8');
  parse(src, { ecmaVersion: 2017, sourceType: 'script' }); // throws on newer syntax
  assert.doesNotMatch(src, /:\/\//, 'no hard-coded URL');
  assert.doesNotMatch(src, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/);
});

test('save path: survey with follow-up, feedback, reason-filtered offers, accept', async () => {
  const { token, context, page, errors } = await openPage({ netProbe: true });
  try {
    assert.equal(await page.evaluate(() => typeof RetentionOS.version), 'string');
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();

    // Session request: headers, body, apiBase derived from the script's origin (cross-origin).
    const sreq = mock.requestsFor(token).find((r) => r.path === '/v1/widget/sessions' && r.method === 'POST');
    assert.equal(sreq.headers.authorization, `Bearer ${PUBLISHABLE_KEY}`);
    assert.equal(sreq.headers['content-type'], 'application/json');
    assert.equal(sreq.headers['x-customer-token'], token);
    assert.equal(sreq.headers.origin, mock.siteBase);
    assert.equal(typeof JSON.parse(sreq.body), 'object');

    // The continue button waits for a reason; the follow-up appears for the reason that has one.
    const cont = dialog.getByRole('button', { name: 'Continue' });
    assert.equal(await cont.isDisabled(), true);
    await dialog.getByLabel('Missing features').check();
    assert.equal(await dialog.locator('textarea').count(), 0);
    await dialog.getByLabel('Too expensive').check();
    await dialog.getByLabel('What price would work?').fill('$20');
    await screenshot(page, 'mock-survey');
    await cont.click();

    await dialog.getByRole('heading', { name: 'Anything we could do better?' }).waitFor();
    const fb = dialog.locator('textarea');
    assert.equal(await fb.getAttribute('placeholder'), STRINGS_EN.feedback_placeholder);
    await fb.fill('More integrations please');
    await dialog.getByRole('button', { name: 'Send' }).click();

    // too_expensive: the discount and the pause, not the roadmap redirect.
    await dialog.getByRole('heading', { name: '20% off for 3 months' }).waitFor();
    assert.equal(await dialog.getByRole('heading', { name: 'Pause for a month' }).count(), 1);
    assert.equal(await dialog.getByRole('heading', { name: 'See our roadmap' }).count(), 0);
    assert.equal(await dialog.getByRole('button', { name: 'Pause instead' }).count(), 1);
    await screenshot(page, 'mock-offer');
    await dialog.getByRole('button', { name: 'Accept offer' }).click();

    await dialog.getByRole('heading', { name: STRINGS_EN.saved_title }).waitFor();
    await waitCall(page, 'onSaved');
    const c = await calls(page);
    assert.equal(c.length, 1);
    assert.equal(c[0].arg.offer.id, 'disc20');
    await screenshot(page, 'mock-saved');

    const evs = await poll(() => {
      const e = mock.eventsFor(token);
      return e.length >= 5 && e;
    });
    assert.deepEqual(evs.map((e) => e.type), ['reason_selected', 'feedback', 'offer_shown', 'offer_shown', 'offer_accepted']);
    assert.deepEqual(evs[0], { client_event_id: evs[0].client_event_id, type: 'reason_selected', reason_code: 'too_expensive', text: '$20' });
    assert.equal(evs[1].text, 'More integrations please');
    assert.deepEqual(evs.slice(2, 4).map((e) => e.offer_id).sort(), ['disc20', 'pause1']);
    assert.equal(evs[4].offer_id, 'disc20');
    for (const e of evs) assert.match(e.client_event_id, UUID_V4);
    const evReq = mock.requestsFor(token).find((r) => r.path.endsWith('/events') && r.method === 'POST');
    assert.equal(evReq.headers.authorization, `Bearer ${PUBLISHABLE_KEY}`);
    assert.equal(evReq.headers['x-customer-token'], token);

    // Closing the saved screen: onClose with outcome "saved", no abandoned event (checked once
    // the page has sent whatever it was going to send).
    await dialog.getByRole('button', { name: 'Close' }).first().click();
    assert.ok(await noModal(page));
    assert.equal((await calls(page)).at(-1).cb, 'onClose');
    assert.equal((await calls(page)).at(-1).arg.outcome, 'saved');
    await netIdle(page);
    assert.ok(!(await page.evaluate(() => window.__net.calls)).some((c) => c.type === 'abandoned'));
    assert.ok(!mock.eventsFor(token).some((e) => e.type === 'abandoned'));
    assert.equal((await page.evaluate(() => window.__result)).outcome, 'saved');
    assert.deepEqual(errors, []);
    assert.deepEqual(await page.evaluate(() => window.__errors), []);
  } finally {
    await context.close();
  }
});

test('decline and confirm: offers skipped when none match, Back, Cancel now on every step', async () => {
  const { token, context, page } = await openPage();
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    assert.ok(await dialog.getByRole('button', { name: 'Cancel now' }).isVisible());
    await dialog.getByLabel('Something else').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByRole('heading', { name: 'Anything we could do better?' }).waitFor();
    assert.ok(await dialog.getByRole('button', { name: 'Cancel now' }).isVisible());
    await dialog.getByRole('button', { name: 'Send' }).click(); // empty feedback: no event
    // "other" matches no offer: straight to the confirmation.
    await dialog.getByRole('heading', { name: 'Confirm cancellation' }).waitFor();
    assert.ok(await dialog.getByRole('button', { name: 'Cancel now' }).isVisible());
    // Back goes to the feedback step, then to the survey with the reason still selected.
    await dialog.getByRole('button', { name: 'Back' }).click();
    await dialog.getByRole('heading', { name: 'Anything we could do better?' }).waitFor();
    await dialog.getByRole('button', { name: 'Back' }).click();
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    assert.equal(await dialog.getByLabel('Something else').isChecked(), true);
    // Change to missing_features: the pause and the redirect show; decline both.
    await dialog.getByLabel('Missing features').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByRole('button', { name: 'Send' }).click();
    await dialog.getByRole('heading', { name: 'See our roadmap' }).waitFor();
    assert.ok(await dialog.getByRole('button', { name: 'Cancel now' }).isVisible());
    await dialog.getByRole('button', { name: 'No thanks' }).click();
    await dialog.getByRole('heading', { name: 'Confirm cancellation' }).waitFor();
    assert.ok(await dialog.getByText('You keep access until the end of the period.').isVisible());
    await screenshot(page, 'mock-confirm');
    await dialog.getByRole('button', { name: 'Cancel subscription' }).click();
    await waitCall(page, 'onCancel');
    assert.ok(await noModal(page));
    const c = await calls(page);
    assert.equal(c.length, 1);
    assert.equal(c[0].arg.reason, 'confirmed');
    const evs = await poll(() => {
      const e = mock.eventsFor(token);
      return e.some((x) => x.type === 'cancel_confirmed') && e;
    });
    assert.deepEqual(evs.map((e) => e.type + (e.reason_code ? ':' + e.reason_code : '') + (e.offer_id ? ':' + e.offer_id : '')), [
      'reason_selected:other',
      'reason_selected:missing_features',
      'offer_shown:pause1',
      'offer_shown:roadmap',
      'offer_declined:pause1',
      'offer_declined:roadmap',
      'cancel_confirmed',
    ]);
  } finally {
    await context.close();
  }
});

test('"Cancel now" on the first step records cancel_confirmed and calls onCancel', async () => {
  const { token, context, page } = await openPage();
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('button', { name: 'Cancel now' }).click();
    await waitCall(page, 'onCancel');
    assert.ok(await noModal(page));
    const evs = await poll(() => mock.eventsFor(token).length && mock.eventsFor(token));
    assert.deepEqual(evs.map((e) => e.type), ['cancel_confirmed']);
  } finally {
    await context.close();
  }
});

test('accessibility: dialog semantics, focus in, Tab trap, Escape records abandoned and restores focus', async () => {
  const { token, context, page } = await openPage();
  try {
    await page.focus('#open');
    await page.keyboard.press('Enter');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    assert.equal(await dialog.getAttribute('aria-modal'), 'true');
    const labelledby = await dialog.getAttribute('aria-labelledby');
    assert.ok(labelledby);
    assert.equal(await dialog.locator(`[id="${labelledby}"]`).textContent(), 'Why are you leaving?');
    assert.equal((await focused(page)).inDialog, true, 'focus moved into the modal');
    // Every control is a real button / input.
    assert.equal(await dialog.locator('[role=button]').count(), 0);

    // Tab forward through the whole modal and beyond: focus never leaves it and cycles.
    const seen = [];
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('Tab');
      const f = await focused(page);
      assert.equal(f.inDialog, true, `Tab #${i + 1} left the modal: ${JSON.stringify(f)}`);
      seen.push(f.text);
    }
    assert.ok(seen.includes('Close') && seen.includes('Cancel now'), seen.join(' | '));
    const firstIdx = seen.indexOf('Close');
    assert.ok(seen.indexOf('Close', firstIdx + 1) > firstIdx, `Tab cycles: ${seen.join(' | ')}`);
    // Shift+Tab from the first control (close) goes to the last one.
    while ((await focused(page)).text !== 'Close') await page.keyboard.press('Tab');
    await page.keyboard.press('Shift+Tab');
    const last = await focused(page);
    assert.equal(last.inDialog, true);
    assert.notEqual(last.text, 'Close');
    // Visible focus style on a focused button.
    const outline = await page.evaluate(() => {
      let a = document.activeElement;
      while (a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
      const s = getComputedStyle(a);
      return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
    });
    assert.notEqual(outline.style, 'none');
    assert.ok(outline.width >= 2, JSON.stringify(outline));
    await screenshot(page, 'mock-focus');

    // A click on the host page behind is impossible (overlay); focus pulled back if moved.
    await page.evaluate(() => document.getElementById('after').focus());
    assert.equal((await focused(page)).inDialog, true, 'focus trapped against programmatic moves');

    await page.keyboard.press('Escape');
    await waitCall(page, 'onClose');
    assert.ok(await noModal(page));
    const f = await focused(page);
    assert.equal(f.id, 'open', 'focus returned to the opener');
    const c = await calls(page);
    assert.deepEqual(c.map((x) => x.cb), ['onClose']);
    assert.equal(c[0].arg.outcome, 'abandoned');
    const evs = await poll(() => mock.eventsFor(token).length && mock.eventsFor(token));
    assert.deepEqual(evs.map((e) => e.type), ['abandoned']);
    // The page scrolls again.
    assert.equal(await page.evaluate(() => document.documentElement.style.overflow), '');
  } finally {
    await context.close();
  }
});

test('fail open: API error answers onCancel({reason:"unavailable"}) and removes the modal', async () => {
  const { context, page } = await openPage({}, { sessions: { status: 500, raw: '{"error":{}}' } });
  try {
    await page.click('#open');
    await waitCall(page, 'onCancel');
    const c = await calls(page);
    assert.deepEqual(c.map((x) => [x.cb, x.arg.reason]), [['onCancel', 'unavailable']]);
    assert.ok(await noModal(page));
    assert.equal((await focused(page)).id, 'open');
  } finally {
    await context.close();
  }
});

test('fail open: a slow API is abandoned after timeoutMs (default 1500)', async () => {
  // The session request is never answered; the page's clock is the test's (see openPage).
  const { token, context, page } = await openPage({ timeoutMs: null }, { sessions: { hold: true }, clock: true });
  try {
    await page.click('#open');
    await page.locator('[role=dialog]').waitFor(); // the loading state shows at once
    await requestArrived(token, isSession);
    await page.clock.runFor(1499);
    assert.deepEqual(await calls(page), [], 'still waiting 1 ms before the default timeout');
    assert.equal(await noModal(page), false);
    await page.clock.runFor(1);
    await waitCall(page, 'onCancel');
    const c = await calls(page);
    assert.equal(c[0].arg.reason, 'unavailable');
    assert.ok(c[0].t >= 1400 && c[0].t < 2500, `called after ${c[0].t} ms of the page's clock`);
    assert.ok(await noModal(page));
  } finally {
    await context.close();
  }
});

test('fail open: custom timeoutMs, unreachable apiBase, malformed answer', async () => {
  // a: the session request is never answered, the page's clock is the test's (see openPage).
  const a = await openPage({ timeoutMs: 300 }, { sessions: { hold: true }, clock: true });
  const b = await openPage({ options: 'apiBase: "http://127.0.0.1:9",' });
  const c = await openPage({}, { sessions: { raw: '<html>oops' } });
  try {
    for (const p of [a, b, c]) await p.page.click('#open');
    await requestArrived(a.token, isSession);
    await a.page.clock.runFor(299);
    assert.deepEqual(await calls(a.page), [], 'still waiting 1 ms before timeoutMs');
    await a.page.clock.runFor(1);
    for (const p of [a, b, c]) {
      await waitCall(p.page, 'onCancel');
      const cl = await calls(p.page);
      assert.equal(cl.length, 1);
      assert.equal(cl[0].arg.reason, 'unavailable');
      assert.ok(await noModal(p.page));
    }
    const ta = (await calls(a.page))[0].t;
    assert.ok(ta >= 300 && ta < 1200, `timeoutMs 300 honoured (${ta} ms of the page's clock)`);
  } finally {
    for (const p of [a, b, c]) await p.context.close();
  }
});

test('fail open: the widget script failing to load on the demo page cancels directly', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  try {
    // The demo's widget.js URL points at a closed port: window.RetentionOS never appears.
    await page.goto(`${mock.apiBase}/demo?customer=cus_demo_noscript&api_base=${encodeURIComponent('http://127.0.0.1:9')}`);
    assert.equal(await page.evaluate(() => typeof window.RetentionOS), 'undefined');
    await page.click('#cancel-subscription');
    await page.locator('#result').filter({ hasText: 'canceled' }).waitFor();
  } finally {
    await context.close();
  }
});

test('no flow: onCancel at once with reason no_flow', async () => {
  const { context, page } = await openPage({}, { sessions: { body: { flow: null } } });
  try {
    await page.click('#open');
    await waitCall(page, 'onCancel');
    const c = await calls(page);
    assert.equal(c[0].arg.reason, 'no_flow');
    assert.ok(c[0].arg.session_id);
    assert.ok(await noModal(page));
  } finally {
    await context.close();
  }
});

test('holdout: offer steps are not shown', async () => {
  const { token, context, page } = await openPage({ netProbe: true }, { sessions: { body: { holdout: true } } });
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByLabel('Too expensive').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByRole('button', { name: 'Send' }).click();
    await dialog.getByRole('heading', { name: 'Confirm cancellation' }).waitFor();
    // Checked once the page has sent everything it was going to (reason_selected at least).
    await netIdle(page);
    assert.ok(mock.eventsFor(token).some((e) => e.type === 'reason_selected'));
    assert.ok(!(await page.evaluate(() => window.__net.calls)).some((c) => c.type === 'offer_shown'));
    assert.ok(!mock.eventsFor(token).some((e) => e.type === 'offer_shown'));
  } finally {
    await context.close();
  }
});

test('events are retried with the same client_event_id', async () => {
  // On the test's clock (see openPage): the retry pauses pass when the test says so, and no
  // attempt can hit its own deadline (8 s of the page's clock) while the machine is slow.
  const { token, context, page } = await openPage({ netProbe: true }, { events: { failFirst: 2 }, clock: true });
  const posts = () => mock.requestsFor(token).filter((r) => r.method === 'POST' && r.path.endsWith('/events'));
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByLabel('Missing features').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByRole('heading', { name: 'Anything we could do better?' }).waitFor();
    for (const failed of [1, 2]) {
      // Attempt `failed` was answered 500 and the widget is in its retry pause (nothing in
      // flight): 3 s of the page's clock end any pause (300 ms, 1 s) and reach no deadline.
      assert.ok(await poll(() => posts().length >= failed), `attempt ${failed} never arrived`);
      await netIdle(page);
      assert.equal(mock.eventsFor(token).length, 0);
      await page.clock.runFor(3000);
    }
    const ev = await poll(() => mock.eventsFor(token)[0]);
    assert.equal(ev.type, 'reason_selected');
    await netIdle(page);
    const ids = posts().map((r) => JSON.parse(r.body).client_event_id);
    assert.equal(ids.length, 3, 'two failures then one success');
    assert.equal(new Set(ids).size, 1, 'same client_event_id on every attempt');
  } finally {
    await context.close();
  }
});

test('a slow event POST does not block cancel or accept (callback within timeoutMs)', async () => {
  // The outcome events are never answered; the pages' clocks are the test's (see openPage),
  // so "within timeoutMs" is checked on the clock the widget's deadline runs on.
  const slow = { hold: ['cancel_confirmed', 'offer_accepted'] };
  const a = await openPage({ timeoutMs: 800 }, { events: slow, clock: true });
  const b = await openPage({ timeoutMs: 800 }, { events: slow, clock: true });
  try {
    await a.page.click('#open');
    const da = a.page.locator('[role=dialog]');
    await da.getByRole('button', { name: 'Cancel now' }).click();
    await requestArrived(a.token, isEvent('cancel_confirmed'));
    const t0 = await a.page.evaluate(() => performance.now() - window.__openedAt);
    await a.page.clock.runFor(799);
    assert.deepEqual(await calls(a.page), [], 'onCancel waits for the event up to timeoutMs');
    await a.page.clock.runFor(1);
    await waitCall(a.page, 'onCancel');
    const ca = (await calls(a.page))[0];
    assert.ok(ca.t - t0 <= 800, `onCancel after ${ca.t - t0} ms of the page's clock`);
    assert.ok(!mock.eventsFor(a.token).some((e) => e.type === 'cancel_confirmed'), 'the POST is still hanging');

    await b.page.click('#open');
    const db = b.page.locator('[role=dialog]');
    await db.getByLabel('Too expensive').check();
    await db.getByRole('button', { name: 'Continue' }).click();
    await db.getByRole('button', { name: 'Send' }).click();
    await db.getByRole('button', { name: 'Pause instead' }).click();
    await requestArrived(b.token, isEvent('offer_accepted'));
    const t1 = await b.page.evaluate(() => performance.now() - window.__openedAt);
    await b.page.clock.runFor(799);
    assert.deepEqual(await calls(b.page), [], 'onSaved waits for the event up to timeoutMs');
    await b.page.clock.runFor(1);
    await waitCall(b.page, 'onSaved');
    const cb = (await calls(b.page))[0];
    assert.ok(cb.t - t1 <= 800, `onSaved after ${cb.t - t1} ms of the page's clock`);
    assert.ok(!mock.eventsFor(b.token).some((e) => e.type === 'offer_accepted'), 'the POST is still hanging');
    assert.equal(cb.arg.offer.id, 'pause1');
    await db.getByRole('heading', { name: STRINGS_EN.saved_title }).waitFor();
  } finally {
    await a.context.close();
    await b.context.close();
  }
});

test('redirect offer: accepting records the event, then opens the url', async () => {
  const { token, context, page } = await openPage();
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByLabel('Missing features').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByRole('button', { name: 'Send' }).click();
    await dialog.getByRole('heading', { name: 'See our roadmap' }).waitFor();
    await Promise.all([
      page.waitForURL(`${mock.siteBase}/roadmap`),
      dialog.getByRole('heading', { name: 'See our roadmap' }).locator('..').getByRole('button').click(),
    ]);
    const accepted = (e) => e.type === 'offer_accepted' && e.offer_id === 'roadmap';
    const evs = await poll(() => mock.eventsFor(token).some(accepted) && mock.eventsFor(token));
    assert.ok(evs && evs.some(accepted), JSON.stringify(mock.eventsFor(token)));
  } finally {
    await context.close();
  }
});

test('flow text is rendered as text, strings set the language, javascript: redirects are refused', async () => {
  const flow = {
    id: 'f', version: 1, language: 'fr',
    steps: [
      { id: 's', type: 'survey', title: '<b>Pourquoi ?</b>', reasons: [{ code: 'x', label: '<img src=x onerror="window.__pwned=1">' }] },
      { id: 'o', type: 'offer', offers: [{ id: 'evil', type: 'redirect', title: 'Voir', description: '', redirect: { url: 'javascript:window.__pwned=2' } }] },
    ],
  };
  const strings = { ...STRINGS_EN, cancel_now: 'Annuler maintenant', continue: 'Continuer', accept_offer: 'Accepter', title: 'Avant de partir', confirm_cancel: "Résilier l'abonnement", close: 'Fermer' };
  const { context, page } = await openPage({}, { sessions: { body: { flow, strings, language: 'fr' } } });
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: '<b>Pourquoi ?</b>' }).waitFor();
    assert.equal(await dialog.getAttribute('lang'), 'fr');
    assert.ok(await dialog.getByRole('button', { name: 'Annuler maintenant' }).isVisible());
    assert.ok(await dialog.getByRole('button', { name: 'Fermer' }).isVisible());
    // The markup in the label is text: no element was created, so no onerror can ever run.
    assert.equal(await dialog.locator('img').count(), 0);
    assert.equal(await dialog.locator('b').count(), 0);
    await dialog.getByLabel('<img src=x onerror="window.__pwned=1">').check();
    await dialog.getByRole('button', { name: 'Continuer' }).click();
    // The offer step has no title: the "title" string is used.
    await dialog.getByRole('heading', { name: 'Avant de partir' }).waitFor();
    await dialog.getByRole('button', { name: 'Accepter' }).click();
    await waitCall(page, 'onSaved');
    // A javascript: URL the widget had navigated to would be queued before this one, and
    // Chromium runs a page's pending javascript: URLs in order: once the sentinel ran, the
    // widget's would have run too.
    await page.evaluate(() => { location.assign('javascript:void(window.__sentinel=1)'); });
    await page.waitForFunction(() => window.__sentinel === 1);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
  } finally {
    await context.close();
  }
});

test('no CSS leakage either way, responsive on a phone viewport', async () => {
  const css = 'button{font-size:40px!important;background:red!important} *{color:rgb(0,128,0)} h2{display:none}';
  const { context, page } = await openPage({ css }, { viewport: { width: 375, height: 667 } });
  try {
    const headBefore = await page.evaluate(() => document.head.innerHTML);
    const btnBefore = await page.evaluate(() => getComputedStyle(document.getElementById('after')).cssText || getComputedStyle(document.getElementById('after')).fontSize);
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    const heading = dialog.getByRole('heading', { name: 'Why are you leaving?' });
    await heading.waitFor();
    assert.ok(await heading.isVisible(), 'host h2{display:none} does not reach the widget');
    const btn = dialog.getByRole('button', { name: 'Cancel now' });
    const style = await btn.evaluate((el) => ({ size: getComputedStyle(el).fontSize, bg: getComputedStyle(el).backgroundColor }));
    assert.notEqual(style.size, '40px');
    assert.notEqual(style.bg, 'rgb(255, 0, 0)');
    assert.equal(await page.evaluate(() => document.head.innerHTML), headBefore, 'nothing added to <head>');
    assert.equal(await page.evaluate(() => document.querySelectorAll('body > style, body > link').length), 0);
    const after = await page.evaluate(() => getComputedStyle(document.getElementById('after')).cssText || getComputedStyle(document.getElementById('after')).fontSize);
    assert.equal(after, btnBefore);
    const box = await dialog.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 375 + 0.5, JSON.stringify(box));
    assert.ok(box.y + box.height <= 667 + 0.5, JSON.stringify(box));
    for (const name of ['Cancel now', 'Continue']) {
      const b = await dialog.getByRole('button', { name }).boundingBox();
      assert.ok(b.x >= 0 && b.x + b.width <= 375 + 0.5 && b.height >= 40, `${name}: ${JSON.stringify(b)}`);
    }
    await screenshot(page, 'mock-mobile');
  } finally {
    await context.close();
  }
});

test('open() never throws to the host page', async () => {
  const { context, page } = await openPage();
  try {
    const r = await page.evaluate(async () => {
      const out = [];
      for (const arg of [undefined, null, 42, { onCancel: 'nope' }]) {
        try {
          const p = RetentionOS.open(arg);
          out.push(typeof (p && p.then));
          await p;
          RetentionOS.close();
        } catch (e) {
          out.push('threw ' + e);
        }
      }
      // A throwing host callback is contained too.
      await RetentionOS.open({ publishableKey: 'bad', token: 't', onCancel() { throw new Error('host bug'); } });
      return out;
    });
    assert.deepEqual(r, ['function', 'function', 'function', 'function']);
    assert.deepEqual(await page.evaluate(() => window.__errors), []);
  } finally {
    await context.close();
  }
});

test('a page with a strict Content-Security-Policy gets a styled, working widget', async () => {
  const csp = `default-src 'none'; script-src ${mock.apiBase} 'nonce-t'; connect-src ${mock.apiBase}; style-src 'none'`;
  const { context, page } = await openPage({}, { headers: { 'Content-Security-Policy': csp } });
  try {
    await page.click('#open');
    const dialog = page.locator('[role=dialog]');
    await dialog.getByRole('heading', { name: 'Why are you leaving?' }).waitFor();
    const look = await dialog.evaluate((el) => ({
      bg: getComputedStyle(el).backgroundColor,
      overlay: getComputedStyle(el.parentElement).position,
      host: getComputedStyle(el.getRootNode().host).position,
    }));
    assert.deepEqual(look, { bg: 'rgb(255, 255, 255)', overlay: 'fixed', host: 'fixed' });
    await dialog.getByRole('button', { name: 'Cancel now' }).click();
    await waitCall(page, 'onCancel');
    assert.equal((await calls(page))[0].arg.reason, 'cancel_now');
    // No inline style attribute, no inline <style>, no other connection: nothing violated.
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
  } finally {
    await context.close();
  }
});

test('browsers without shadow DOM or constructable stylesheets: the fallbacks work', async () => {
  for (const preScript of [
    'delete Element.prototype.attachShadow;',
    'Object.defineProperty(window, "CSSStyleSheet", { value: function () { throw new TypeError("Illegal constructor"); } });',
  ]) {
    const { token, context, page, errors } = await openPage({ preScript });
    try {
      await page.click('#open');
      const dialog = page.locator('[role=dialog]');
      await dialog.getByLabel('Too expensive').check();
      await dialog.getByRole('button', { name: 'Continue' }).click();
      await dialog.getByRole('button', { name: 'Send' }).click();
      await dialog.locator('.rtos-offer', { hasText: '20% off' }).getByRole('button').click();
      await waitCall(page, 'onSaved');
      const look = await dialog.evaluate((el) => ({ bg: getComputedStyle(el).backgroundColor, overlay: getComputedStyle(el.parentElement).position }));
      assert.deepEqual(look, { bg: 'rgb(255, 255, 255)', overlay: 'fixed' }, preScript);
      await page.keyboard.press('Escape');
      assert.ok(await noModal(page));
      assert.ok(await poll(() => mock.eventsFor(token).some((e) => e.type === 'offer_accepted')));
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  }
});
