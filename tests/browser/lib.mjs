// Shared helpers of the browser suites: launching Debian's Chromium through playwright-core
// (no browser download), the screenshot folder, polling.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const WIDGET_DIR = path.join(ROOT, 'widget');
export const SCREENSHOTS = path.join(HERE, 'screenshots');

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// Playwright's launch() always runs the browser with a fresh temporary --user-data-dir of its
// own (and refuses one in args); every scenario then gets a fresh browser context.
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// `fullPage: true` captures the whole scrollable page, not just the viewport.
export async function screenshot(page, name, { fullPage = false } = {}) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The deadline of every wait on a real condition (a locator, a callback, a row, a request).
// Generous on purpose: a wait returns as soon as its condition holds, so this costs nothing
// when the suite is green, and a loaded 2-core CI machine never trips it.
export const DEADLINE_MS = 60000;

// A fresh browser context whose Playwright actions and navigations wait up to DEADLINE_MS
// (Playwright's own default is 30 s).
export async function newContext(browser, options = {}) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(DEADLINE_MS);
  context.setDefaultNavigationTimeout(DEADLINE_MS);
  return context;
}

// Calls fn until it returns a truthy value or the time is up; returns the last value.
export async function poll(fn, { timeoutMs = DEADLINE_MS, intervalMs = 100 } = {}) {
  const end = Date.now() + timeoutMs;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() >= end) return v;
    await sleep(intervalMs);
  }
}

// Forwards the page's console errors and uncaught exceptions to the test output, and keeps
// them so a test can assert that the widget never threw to the host page.
export function watchPage(page, label) {
  const errors = [];
  page.on('pageerror', (e) => {
    errors.push(String(e));
    console.log(`[${label}] pageerror: ${e}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`[${label}] console.error: ${m.text()}`);
  });
  return errors;
}

// ---------------------------------------------------------------------------------------
// Dashboard fixtures for the suites run against the real stack (run.sh exports API_URL,
// OPS_TOKEN and RTOS_API_BIN).

// What run.sh passes to the dashboard suites: the api's URL, the stack's database, the ops
// token and the api binary (for `user create`); throws when a suite runs outside run.sh.
export function dashboardStack() {
  const env = {
    API: process.env.API_URL,
    DATABASE_URL: process.env.DATABASE_URL,
    OPS_TOKEN: process.env.OPS_TOKEN || 'browser-ops-token',
    API_BIN: process.env.RTOS_API_BIN,
  };
  if (!env.API || !env.DATABASE_URL || !env.API_BIN) {
    throw new Error('API_URL, DATABASE_URL and RTOS_API_BIN must be set (run tests/browser/run.sh)');
  }
  return env;
}

// A tenant made through POST /v1/tenants with the ops token.
export async function opsTenant(api, opsToken, name) {
  const res = await fetch(`${api}/v1/tenants`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${opsToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /v1/tenants: ${res.status} ${text}`);
  const json = JSON.parse(text);
  return { id: json.tenant.id, name, keys: json.keys };
}

// A dashboard user made with `retentionos-api user create --password-stdin`.
export async function cliUser(apiBin, tenantId, role, email, password) {
  const { execFile } = await import('node:child_process');
  const out = await new Promise((resolve, reject) => {
    const child = execFile(
      apiBin,
      ['user', 'create', '--tenant', tenantId, '--email', email, '--role', role, '--password-stdin'],
      { encoding: 'utf8', env: process.env, timeout: 60000 },
      (e, stdout, stderr) => (e ? reject(new Error(`user create: ${e.message}\n${stdout}\n${stderr}`)) : resolve(stdout)),
    );
    child.stdin.end(`${password}\n`);
  });
  const json = JSON.parse(out.slice(out.indexOf('{\n')));
  return { ...json, email, password };
}

// Signs `user` in within `context` (the request shares the context's cookie jar).
export async function dashboardSignIn(context, api, user) {
  const res = await context.request.post(`${api}/app/login`, {
    form: { email: user.email, password: user.password },
    maxRedirects: 0,
  });
  if (res.status() !== 303) throw new Error(`POST /app/login: ${res.status()} ${await res.text()}`);
}

// The first message the stack's SMTP sink (run.sh: tests/src/smtp_sink.py, SMTP_SINK_DIR)
// received for `to`, waiting for it up to DEADLINE_MS: {mail_from, rcpt_tos, from, to,
// subject, message_id, text}.
export async function mailTo(to) {
  const dir = process.env.SMTP_SINK_DIR;
  if (!dir) throw new Error('SMTP_SINK_DIR is not set (run tests/browser/run.sh)');
  const found = await poll(() => {
    for (const name of fs.readdirSync(dir).filter((n) => /^msg-\d+\.json$/.test(n)).sort()) {
      const m = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
      if (m.rcpt_tos.includes(to)) return m;
    }
    return null;
  });
  if (!found) throw new Error(`no mail for ${to} in ${dir} within ${DEADLINE_MS} ms`);
  return found;
}

// One psql query against the stack's database (run.sh exports DATABASE_URL); its text output.
export function sql(query) {
  return execFileSync('psql', ['-X', '-w', process.env.DATABASE_URL, '-Atc', query], { encoding: 'utf8' }).trim();
}

// A SQL string literal. Only values the suites generate (hex, fixed words) reach a query;
// quoted anyway.
export const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;

// The page never scrolls sideways at `width` (its tables scroll inside their cards).
export async function noSideScroll(page, width, name) {
  const sw = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(sw <= width, `${name} at ${width} px scrolls sideways: scrollWidth ${sw}`);
}
