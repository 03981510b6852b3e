// The tenant dashboard (/app) in Chromium against the real stack: sign-in, the test/live
// switch, roles, CSRF, lockout, set-password links, screenshots at two widths and the first
// contentful paint. run.sh starts the stack and passes it in the environment:
//   API_URL        http://127.0.0.1:<port> of the running retentionos-api
//   DATABASE_URL   the stack's database (sessions and lockouts are checked with psql)
//   OPS_TOKEN      the ops token the api runs with (POST /v1/tenants)
//   RTOS_API_BIN   the retentionos-api binary the api runs (`user create` makes the users;
//                  it reads the same configuration: DATABASE_URL, MASTER_KEY, ...)
// Each test makes its own tenant and users (random emails). The api's per-address sign-in
// throttle (10 failures in 5 min from one address, per api process) is shared by the whole
// file: all of it comes from 127.0.0.1, and it fails at most 7 sign-ins in a row (scenario
// 6's six and scenario 7's first; the next successful sign-in resets the count).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { promisify } from 'node:util';
import {
  launchBrowser, screenshot, watchPage, poll, newContext, sql, lit, dashboardStack, opsTenant,
} from './lib.mjs';

const { API, OPS_TOKEN, API_BIN } = dashboardStack();

const RUN = randomBytes(4).toString('hex');
const PASSWORD = 'correct horse battery staple';
const METRICS = ['save_rate', 'saved', 'saved_mrr_cents', 'canceled', 'abandoned', 'validated_saves', 'sessions'];
const WRONG = 'The email or password is wrong.';

let browser;

// ---------------------------------------------------------------------------------------
// Fixtures: tenants over the API, users with the CLI, rows with psql



// A tenant made over POST /v1/tenants with the ops token.
const newTenant = (label) => opsTenant(API, OPS_TOKEN, `Dash & Co ${label} ${RUN}`);

const run = promisify(execFile);

// `retentionos-api user create`; with a password it is given on stdin (--password-stdin),
// without one the CLI prints a one-time set-password link. Returns the CLI's JSON.
async function createUser(tenant, role, { password = PASSWORD, label = role } = {}) {
  const email = `${label}.${randomBytes(4).toString('hex')}@dash-${RUN}.example.com`;
  const args = ['user', 'create', '--tenant', tenant.id, '--email', email, '--role', role];
  if (password !== null) args.push('--password-stdin');
  const child = run(API_BIN, args, { encoding: 'utf8', env: process.env, timeout: 60000 });
  child.child.stdin.end(password === null ? '' : `${password}\n`);
  let out;
  try {
    out = await child;
  } catch (e) {
    throw new Error(`user create failed: ${e.message}\n${e.stdout}\n${e.stderr}`);
  }
  // The JSON object is the last thing on stdout (logs, if any, go before it).
  const json = JSON.parse(out.stdout.slice(out.stdout.indexOf('{\n')));
  assert.equal(json.email, email);
  assert.equal(json.role, role);
  return { ...json, email, password };
}

function modeOf(email) {
  return sql(`SELECT s.mode FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id
              WHERE u.email = ${lit(email)} ORDER BY s.created_at`);
}

// Signs `user` in within `context` (the request shares the context's cookie jar).
async function signIn(context, user) {
  const res = await context.request.post(`${API}/app/login`, {
    form: { email: user.email, password: user.password },
    maxRedirects: 0,
  });
  assert.equal(res.status(), 303, `POST /app/login: ${res.status()} ${await res.text()}`);
  assert.equal(res.headers().location, '/app');
  assert.ok(await sessionCookie(context), 'no rtos_session cookie after signing in');
}

async function sessionCookie(context) {
  return (await context.cookies(`${API}/app`)).find((c) => c.name === 'rtos_session');
}

// A signed-in browser page on /app for `user`.
async function openApp(user, label, contextOptions = {}) {
  const context = await newContext(browser, { viewport: { width: 1280, height: 800 }, ...contextOptions });
  await signIn(context, user);
  const page = await context.newPage();
  const errors = watchPage(page, label);
  const res = await page.goto(`${API}/app`);
  assert.equal(res.status(), 200);
  assert.equal(page.url(), `${API}/app`);
  return { context, page, errors };
}

// Submits the page's form by clicking `button` and returns the response to that POST.
async function submit(page, button, path) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === path),
    button.click(),
  ]);
  return res;
}

const banner = (page) => page.locator('.modebar[role=status]');

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------

test('(1) signed out, /app redirects to the sign-in form; labels and keyboard reach it', async () => {
  const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    const errors = watchPage(page, '1');
    const res = await page.goto(`${API}/app`);
    assert.equal(page.url(), `${API}/app/login`);
    assert.equal(res.status(), 200);
    const hop = res.request().redirectedFrom();
    assert.ok(hop, 'GET /app was not redirected');
    assert.equal(new URL(hop.url()).pathname, '/app');
    assert.equal((await hop.response()).status(), 303);
    assert.equal(await page.title(), 'Sign in · RetentionOS');
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in to RetentionOS');

    const email = page.getByLabel('Email');
    const password = page.getByLabel('Password');
    const button = page.getByRole('button', { name: 'Sign in' });
    assert.equal(await email.getAttribute('type'), 'email');
    assert.equal(await email.getAttribute('autocomplete'), 'username');
    assert.equal(await password.getAttribute('type'), 'password');
    assert.equal(await password.getAttribute('autocomplete'), 'current-password');
    assert.equal(await button.count(), 1);

    // Keyboard: the skip link first (visible once focused), then email, password, button.
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      return {
        tag: el.tagName, id: el.id, text: el.textContent.trim(), focusVisible: el.matches(':focus-visible'),
        outlineStyle: cs.outlineStyle, outlineWidth: parseFloat(cs.outlineWidth), left: el.getBoundingClientRect().left,
      };
    });
    await page.keyboard.press('Tab');
    const skip = await focused();
    assert.equal(skip.text, 'Skip to content');
    assert.ok(skip.left >= 0, `the focused skip link is off-screen (left ${skip.left})`);
    const order = [];
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      order.push(f.id || `${f.tag}:${f.text}`);
      if (f.tag === 'INPUT') {
        assert.ok(f.focusVisible, `${f.id} is focused but not :focus-visible`);
        assert.notEqual(f.outlineStyle, 'none', `no visible focus on ${f.id}`);
        assert.ok(f.outlineWidth > 0, `zero-width focus outline on ${f.id}`);
      }
    }
    assert.deepEqual(order, ['email', 'password', 'BUTTON:Sign in']);
    const buttonFocus = await focused();
    assert.notEqual(buttonFocus.outlineStyle, 'none', 'no visible focus on the Sign in button');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(2) a wrong password shows an alert and opens no session; the right one lands on the overview', async () => {
  const tenant = await newTenant('2');
  const owner = await createUser(tenant, 'owner');
  const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    const errors = watchPage(page, '2');
    await page.goto(`${API}/app/login`);
    await page.getByLabel('Email').fill(owner.email);
    await page.getByLabel('Password').fill('not the password');
    const bad = await submit(page, page.getByRole('button', { name: 'Sign in' }), '/app/login');
    assert.equal(bad.status(), 401);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.equal((await alert.textContent()).trim(), WRONG);
    assert.equal(await sessionCookie(context), undefined, 'a failed sign-in set a session cookie');
    assert.equal(sql(`SELECT count(*) FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id WHERE u.email = ${lit(owner.email)}`), '0');
    // The email is kept; the password is not.
    assert.equal(await page.getByLabel('Email').inputValue(), owner.email);
    assert.equal(await page.getByLabel('Password').inputValue(), '');

    // The right password, submitted with Enter from the password field.
    await page.getByLabel('Password').fill(owner.password);
    const [ok] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/app/login'),
      page.getByLabel('Password').press('Enter'),
    ]);
    assert.equal(ok.status(), 303);
    await page.waitForURL(`${API}/app`);
    const cookie = await sessionCookie(context);
    assert.ok(cookie, 'no rtos_session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.path, '/app');
    const header = page.locator('header.top');
    await header.getByText(tenant.name, { exact: true }).waitFor(); // "&" shown as such
    await header.getByText(`${owner.email} (owner)`, { exact: true }).waitFor();
    assert.match(await banner(page).textContent(), /^Test mode:/);
    assert.equal(await page.getByRole('button', { name: 'Test' }).getAttribute('aria-pressed'), 'true');
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Overview');
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).getAttribute('aria-current'), 'page');
    // The seven tiles, each with a figure (a fresh tenant: nothing yet).
    const tiles = await page.locator('[data-metric]').evaluateAll((els) => els.map((e) => [e.dataset.metric, e.textContent.trim()]));
    assert.deepEqual(tiles.map((t) => t[0]), METRICS);
    assert.deepEqual(Object.fromEntries(tiles), {
      save_rate: '–', saved: '0', saved_mrr_cents: '$0.00', canceled: '0', abandoned: '0', validated_saves: '0', sessions: '0',
    });
    // Signed in, the sign-in page sends you to the overview.
    await page.goto(`${API}/app/login`);
    assert.equal(page.url(), `${API}/app`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(3) the test/live switch: Live, then Test; a reload keeps the mode; the range is kept', async () => {
  const tenant = await newTenant('3');
  const owner = await createUser(tenant, 'owner');
  const { context, page, errors } = await openApp(owner, '3');
  try {
    const live = page.getByRole('button', { name: 'Live' });
    const testBtn = page.getByRole('button', { name: 'Test' });
    assert.match(await banner(page).textContent(), /^Test mode:/);
    assert.equal(modeOf(owner.email), 'test');

    // A range preset first: the switch brings you back to the same page and range.
    await page.getByRole('link', { name: 'Last 7 days' }).click();
    await page.waitForURL(`${API}/app?range=7d`);
    assert.equal(await page.getByRole('link', { name: 'Last 7 days' }).getAttribute('aria-current'), 'true');

    assert.equal((await submit(page, live, '/app/mode')).status(), 303);
    await page.waitForURL(`${API}/app?range=7d`);
    await banner(page).filter({ hasText: /^Live mode:/ }).waitFor();
    assert.equal(await live.getAttribute('aria-pressed'), 'true');
    assert.equal(await testBtn.getAttribute('aria-pressed'), 'false');
    assert.equal(await page.getByRole('link', { name: 'Last 7 days' }).getAttribute('aria-current'), 'true');
    assert.equal(modeOf(owner.email), 'live');
    await page.reload();
    assert.match(await banner(page).textContent(), /^Live mode:/);
    assert.equal(await live.getAttribute('aria-pressed'), 'true');

    assert.equal((await submit(page, testBtn, '/app/mode')).status(), 303);
    await banner(page).filter({ hasText: /^Test mode:/ }).waitFor();
    assert.equal(await testBtn.getAttribute('aria-pressed'), 'true');
    assert.equal(modeOf(owner.email), 'test');
    await page.reload();
    assert.match(await banner(page).textContent(), /^Test mode:/);

    // The mode is the session's: a second session of the same user starts in test mode
    // and switching it leaves the first alone.
    assert.equal((await submit(page, live, '/app/mode')).status(), 303);
    await banner(page).filter({ hasText: /^Live mode:/ }).waitFor();
    const other = await openApp(owner, '3b');
    try {
      assert.match(await banner(other.page).textContent(), /^Test mode:/);
      assert.equal(modeOf(owner.email), 'live\ntest');
    } finally {
      await other.context.close();
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(4) an analyst (a second account of the tenant) sees "(analyst)" in the header', async () => {
  const tenant = await newTenant('4');
  const owner = await createUser(tenant, 'owner');
  const analyst = await createUser(tenant, 'analyst');
  for (const [user, role] of [[analyst, 'analyst'], [owner, 'owner']]) {
    const { context, page, errors } = await openApp(user, `4-${role}`);
    try {
      const who = page.locator('header.top .who');
      await who.getByText(`${user.email} (${role})`, { exact: true }).waitFor();
      assert.doesNotMatch(await who.textContent(), role === 'analyst' ? /\(owner\)/ : /\(analyst\)/);
      await page.locator('header.top').getByText(tenant.name, { exact: true }).waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  }
});

test('(5) forged cross-origin POSTs to /app/mode are refused (403) and change nothing', async () => {
  const tenant = await newTenant('5');
  const owner = await createUser(tenant, 'owner');
  const { context, page, errors } = await openApp(owner, '5');
  // Another origin on loopback (same site, other port: the SameSite=Lax cookie IS sent, so
  // only the Origin check and the CSRF token stand in the way).
  const csrf = await page.locator('form[action="/app/mode"] input[name=csrf]').inputValue();
  assert.match(csrf, /^[A-Za-z0-9]{16,}$/);
  const forged = (token) => `<!doctype html><html><body>
    <form method="post" action="${API}/app/mode">
      <input type="hidden" name="mode" value="live">
      ${token ? `<input type="hidden" name="csrf" value="${token}">` : ''}
      <button type="submit">Win a prize</button>
    </form></body></html>`;
  const evil = http.createServer((req, res) => {
    const withToken = req.url.startsWith('/with-token');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(forged(withToken ? csrf : null));
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const EVIL = `http://127.0.0.1:${evil.address().port}`;
  try {
    for (const path of ['/', '/with-token']) {
      await page.goto(EVIL + path);
      const res = await submit(page, page.getByRole('button', { name: 'Win a prize' }), '/app/mode');
      assert.equal(res.status(), 403, `forged form (${path}): ${res.status()}`);
      const sent = await res.request().allHeaders();
      assert.equal(sent.origin, EVIL);
      assert.match(sent.cookie || '', /rtos_session=/, 'the cookie was not sent: the test would prove nothing');
      assert.equal(modeOf(owner.email), 'test', `forged form (${path}) changed the mode`);
    }

    // fetch() from the other origin, with credentials (no-cors: the attacker cannot read
    // the answer, but the browser sends it; we watch the real response).
    await page.goto(EVIL + '/');
    const [fres] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/app/mode'),
      page.evaluate(([url, token]) => fetch(url, {
        method: 'POST', mode: 'no-cors', credentials: 'include',
        body: new URLSearchParams({ mode: 'live', csrf: token }),
      }).catch(() => null), [`${API}/app/mode`, csrf]),
    ]);
    assert.equal(fres.status(), 403);
    assert.equal(modeOf(owner.email), 'test', 'a cross-origin fetch changed the mode');

    // A page with an opaque origin (data: URL; cross-site, so the Lax cookie stays home):
    // the api sees no session and sends the form to the sign-in page.
    await page.goto(`data:text/html,${encodeURIComponent(forged(csrf))}`);
    const dres = await submit(page, page.getByRole('button', { name: 'Win a prize' }), '/app/mode');
    assert.ok([303, 403].includes(dres.status()), `POST from a data: URL: ${dres.status()}`);
    const dsent = await dres.request().allHeaders();
    console.log(`POST from a data: URL: ${dres.status()} ${dres.headers().location || ''} ` +
      `(Origin ${dsent.origin}, session cookie ${/rtos_session=/.test(dsent.cookie || '') ? 'sent' : 'not sent'})`);
    assert.equal(modeOf(owner.email), 'test', 'a POST from a data: URL changed the mode');

    // With the cookie but without (or with a wrong) csrf field: 403.
    const post = (form, headers = {}) => context.request.post(`${API}/app/mode`, { form, headers, maxRedirects: 0 });
    assert.equal((await post({ mode: 'live' })).status(), 403);
    assert.equal((await post({ mode: 'live', csrf: 'x'.repeat(csrf.length) })).status(), 403);
    assert.equal((await post({ mode: 'live', csrf }, { Origin: EVIL })).status(), 403);
    assert.equal((await post({ mode: 'live', csrf }, { 'Sec-Fetch-Site': 'cross-site' })).status(), 403);
    assert.equal(modeOf(owner.email), 'test');
    // The control: the same request with the token, from our own origin, does switch.
    const good = await post({ mode: 'live', csrf }, { Origin: API });
    assert.equal(good.status(), 303);
    assert.equal(modeOf(owner.email), 'live');
    await page.goto(`${API}/app`);
    assert.match(await banner(page).textContent(), /^Live mode:/);
    assert.deepEqual(errors, []);
  } finally {
    await new Promise((r) => evil.close(r));
    await context.close();
  }
});

test('(6) five wrong passwords lock the account; the right password is then refused too', async () => {
  const tenant = await newTenant('6');
  const owner = await createUser(tenant, 'owner');
  const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    const errors = watchPage(page, '6');
    await page.goto(`${API}/app/login`);
    const attempt = async (password) => {
      await page.getByLabel('Email').fill(owner.email);
      await page.getByLabel('Password').fill(password);
      const res = await submit(page, page.getByRole('button', { name: 'Sign in' }), '/app/login');
      await page.getByRole('alert').waitFor();
      return { status: res.status(), alert: (await page.getByRole('alert').textContent()).trim() };
    };
    for (let i = 1; i <= 4; i++) {
      assert.deepEqual(await attempt(`wrong password ${i}`), { status: 401, alert: WRONG }, `attempt ${i}`);
    }
    const fifth = await attempt('wrong password 5');
    assert.equal(fifth.status, 401);
    assert.match(fifth.alert, /account is locked until \d\d:\d\d UTC/);
    const right = await attempt(owner.password);
    assert.equal(right.status, 401, 'a locked account signed in');
    assert.match(right.alert, /account is locked/);
    assert.equal(await sessionCookie(context), undefined);
    assert.equal(page.url(), `${API}/app/login`);
    assert.equal(sql(`SELECT locked_until > now() + interval '10 minutes' FROM dashboard_users WHERE email = ${lit(owner.email)}`), 't');
    assert.equal(sql(`SELECT count(*) FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id WHERE u.email = ${lit(owner.email)}`), '0');
    await screenshot(page, 'dashboard-login-locked-1280', { fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(7) a set-password link: a short password is refused on its field, a good one signs in', async () => {
  const tenant = await newTenant('7');
  const user = await createUser(tenant, 'admin', { password: null });
  assert.equal(typeof user.set_password_link, 'string', JSON.stringify(user));
  const link = new URL(user.set_password_link);
  assert.equal(link.pathname, '/app/set-password');
  assert.match(link.searchParams.get('token') || '', /^[A-Za-z0-9_-]{20,}$/);
  console.log(`CLI set-password link origin: ${link.origin} (the api serves ${API})`);
  // The CLI builds it from PUBLIC_BASE_URL (unset here) or API_ADDR (port 0 here): open it on
  // the api's real address.
  const url = `${API}${link.pathname}${link.search}`;

  const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    const errors = watchPage(page, '7');
    // No password yet: sign-in is refused.
    const before = await context.request.post(`${API}/app/login`, { form: { email: user.email, password: PASSWORD }, maxRedirects: 0 });
    assert.equal(before.status(), 401);

    const res = await page.goto(url);
    assert.equal(res.status(), 200);
    await page.getByText(user.email, { exact: true }).waitFor();
    const field = page.getByLabel('New password');
    const button = page.getByRole('button', { name: 'Set password' });

    // The browser's own check (minlength=10) stops a short password before any request.
    let posted = 0;
    page.on('request', (r) => { if (r.method() === 'POST') posted++; });
    await field.fill('short');
    await button.click();
    assert.equal(await field.evaluate((el) => el.validity.tooShort), true);
    assert.equal(posted, 0, 'the browser sent a password shorter than minlength');
    assert.equal(page.url(), url);

    // The server's check, for a client that skips the browser's (novalidate): a 400 with the
    // error on the field, and the link still works.
    await page.locator('form[action="/app/set-password"]').evaluate((f) => { f.noValidate = true; });
    const short = await submit(page, button, '/app/set-password');
    assert.equal(short.status(), 400);
    const fieldError = page.locator('#password-error');
    await fieldError.waitFor();
    assert.match(await fieldError.textContent(), /password must be 10 to 256 characters/);
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(await field.getAttribute('aria-describedby'), 'password-error');
    assert.match(await page.getByRole('alert').textContent(), /password must be 10/);

    await field.fill(PASSWORD);
    const good = await submit(page, button, '/app/set-password');
    assert.equal(good.status(), 303);
    await page.waitForURL(`${API}/app/login`);

    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await submit(page, page.getByRole('button', { name: 'Sign in' }), '/app/login');
    await page.waitForURL(`${API}/app`);
    await page.locator('header.top').getByText(`${user.email} (admin)`, { exact: true }).waitFor();

    // Used once: the link is dead.
    const again = await page.goto(url);
    assert.equal(again.status(), 404);
    await page.getByText('This link is invalid, already used or expired.').waitFor();
    assert.equal(await page.getByLabel('New password').count(), 0);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('(8) screenshots of every dashboard page at 1280 and 375 px; no horizontal scroll', async () => {
  const tenant = await newTenant('8');
  const owner = await createUser(tenant, 'owner');
  const invited = await createUser(tenant, 'analyst', { password: null, label: 'invited' });
  const link = new URL(invited.set_password_link);
  const setPasswordUrl = `${API}${link.pathname}${link.search}`;
  const shots = [];
  for (const width of [1280, 375]) {
    const context = await newContext(browser, { viewport: { width, height: width === 375 ? 812 : 800 } });
    try {
      const page = await context.newPage();
      const errors = watchPage(page, `8-${width}`);
      const capture = async (name) => {
        // Styles applied (the stylesheet loaded) before the picture and the measure.
        await page.waitForFunction(() => getComputedStyle(document.body).margin === '0px');
        const { scrollWidth, clientWidth } = await page.evaluate(() => ({
          scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
        }));
        shots.push(await screenshot(page, `dashboard-${name}-${width}`, { fullPage: true }));
        assert.ok(scrollWidth <= width, `${name} at ${width} px scrolls sideways: scrollWidth ${scrollWidth} (client ${clientWidth})`);
      };

      await page.goto(`${API}/app/login`);
      await capture('login');

      await page.getByLabel('Email').fill(owner.email);
      await page.getByLabel('Password').fill('not the password');
      await submit(page, page.getByRole('button', { name: 'Sign in' }), '/app/login');
      await page.getByRole('alert').waitFor();
      await capture('login-error');

      await page.getByLabel('Password').fill(owner.password);
      await submit(page, page.getByRole('button', { name: 'Sign in' }), '/app/login');
      await page.waitForURL(`${API}/app`);
      await banner(page).filter({ hasText: /^Test mode:/ }).waitFor();
      await capture('overview-test');

      await submit(page, page.getByRole('button', { name: 'Live' }), '/app/mode');
      await banner(page).filter({ hasText: /^Live mode:/ }).waitFor();
      await capture('overview-live');

      await page.goto(setPasswordUrl);
      await page.getByLabel('New password').waitFor();
      await capture('set-password');

      await page.locator('form[action="/app/set-password"]').evaluate((f) => { f.noValidate = true; });
      await page.getByLabel('New password').fill('short');
      await submit(page, page.getByRole('button', { name: 'Set password' }), '/app/set-password');
      await page.locator('#password-error').waitFor();
      await capture('set-password-error');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  }
  console.log(`screenshots:\n  ${shots.join('\n  ')}`);
});

// One cold load: a fresh context (the stylesheet not in its cache), signed in, GET /app.
async function measureFcp(user, label) {
  const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  try {
    await signIn(context, user);
    const page = await context.newPage();
    const errors = watchPage(page, label);
    const res = await page.goto(`${API}/app`);
    assert.equal(res.status(), 200);
    assert.equal(page.url(), `${API}/app`);
    const fcp = await poll(() => page.evaluate(() => {
      const e = performance.getEntriesByName('first-contentful-paint')[0];
      return e ? e.startTime : null;
    }));
    assert.ok(typeof fcp === 'number', 'Chromium reported no first-contentful-paint entry');
    const ttfb = await page.evaluate(() => performance.getEntriesByType('navigation')[0].responseStart);
    assert.deepEqual(errors, []);
    return { fcp, ttfb };
  } finally {
    await context.close();
  }
}

// Three cold loads; the budget holds for their median, so one load stalled by a busy machine
// (the server's answer late, not the page's rendering) does not decide it. All are printed.
test('(9) first contentful paint of /app (signed in) is under 1000 ms on loopback', async () => {
  const tenant = await newTenant('9');
  const owner = await createUser(tenant, 'owner');
  const samples = [];
  for (let i = 0; i < 3; i++) samples.push(await measureFcp(owner, `9-${i + 1}`));
  const median = [...samples].sort((a, b) => a.fcp - b.fcp)[1];
  console.log(`FCP /app (signed in, cold cache, loopback): median ${median.fcp.toFixed(1)} ms; loads: ` +
    samples.map((m) => `${m.fcp.toFixed(1)} ms (TTFB ${m.ttfb.toFixed(1)} ms)`).join(', '));
  assert.ok(median.fcp < 1000, `median first contentful paint ${median.fcp.toFixed(1)} ms`);
});
