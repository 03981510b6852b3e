// The overview (/app) in Chromium against the real stack: with rollups seeded for a fresh
// tenant, the four time-series charts (uPlot from npm, drawn by overview.js from the page's
// JSON) really render: a canvas each, with the series' own colour in its pixels; no script
// error and no CSP violation; the JavaScript of the page stays under 150 KB gzip (measured on
// the wire and recompressed here); no sideways scroll at 375 px; with JavaScript off the same
// series are a table. Screenshots dashboard-overview-{1280,375}.png.
// run.sh starts the stack and passes API_URL, DATABASE_URL, OPS_TOKEN and RTOS_API_BIN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import {
  launchBrowser, screenshot, watchPage, poll, newContext, opsTenant, cliUser, dashboardSignIn, sql, dashboardStack,
} from './lib.mjs';

const { API, OPS_TOKEN, API_BIN } = dashboardStack();
const RUN = randomBytes(4).toString('hex');
const PASSWORD = 'correct horse battery staple';
const JS_BUDGET = 150 * 1024;


let browser;
let tenant;
let analyst;
before(async () => {
  browser = await launchBrowser();
  tenant = await opsTenant(API, OPS_TOKEN, `Overview Co ${RUN}`);
  analyst = await cliUser(API_BIN, tenant.id, 'analyst', `analyst.${RUN}@overview.example.com`, PASSWORD);
  // What the analytics rollup writes from events: sessions on three days of the last 30
  // (10:00 UTC, the tenant's default zone), a holdout, offers and reasons.
  const day = (n) => `date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '${n} days' + interval '10 hours'`;
  const t = `'${tenant.id}'`;
  sql(`INSERT INTO rollup_sessions_hourly (tenant_id, mode, hour, variant, outcome, saved_offer_type, sessions, saved_mrr_cents, validated) VALUES
    (${t}, 'test', ${day(12)}, 'control', 'saved', 'discount', 12, 24000, 4),
    (${t}, 'test', ${day(12)}, 'control', 'canceled', '', 6, 0, 0),
    (${t}, 'test', ${day(6)}, 'control', 'saved', 'pause', 20, 41000, 9),
    (${t}, 'test', ${day(6)}, 'control', 'canceled', '', 5, 0, 0),
    (${t}, 'test', ${day(6)}, 'holdout', 'saved', '', 8, 0, 0),
    (${t}, 'test', ${day(6)}, 'holdout', 'canceled', '', 12, 0, 0),
    (${t}, 'test', ${day(2)}, 'control', 'saved', 'discount', 9, 15000, 2),
    (${t}, 'test', ${day(2)}, 'control', 'abandoned', '', 4, 0, 0)`);
  sql(`INSERT INTO rollup_offers_hourly (tenant_id, mode, hour, variant, offer_id, offer_type, shown, accepted, saved_mrr_cents) VALUES
    (${t}, 'test', ${day(12)}, 'control', 'disc30', 'discount', 18, 12, 24000),
    (${t}, 'test', ${day(6)}, 'control', 'pause2', 'pause', 25, 20, 41000),
    (${t}, 'test', ${day(2)}, 'control', 'disc30', 'discount', 13, 9, 15000)`);
  sql(`INSERT INTO rollup_reasons_hourly (tenant_id, mode, hour, reason_code, count) VALUES
    (${t}, 'test', ${day(12)}, 'too_expensive', 9), (${t}, 'test', ${day(6)}, 'missing_feature', 4),
    (${t}, 'test', ${day(2)}, 'too_expensive', 3), (${t}, 'test', ${day(40)}, 'too_expensive', 2)`);
});
after(async () => {
  await browser?.close();
});

// The page's charts once overview.js has drawn them: one canvas per chart, each with its
// size and how many of its pixels are the series' own colour (the line, not the axes).
async function chartPixels(page) {
  await page.locator('.chart.drawn canvas').nth(3).waitFor();
  return page.evaluate(() => {
    const colours = { sessions: [0x43, 0x38, 0xca], saves: [0x0b, 0x6e, 0x4f], save_rate: [0x8a, 0x4b, 0x00], saved_mrr: [0xa4, 0x16, 0x1a] };
    return [...document.querySelectorAll('.chart')].map((box) => {
      const key = box.getAttribute('data-chart');
      const canvas = box.querySelector('canvas');
      if (!canvas) return { key, canvas: false };
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      const [r, g, b] = colours[key];
      let series = 0;
      let painted = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] === 0) continue;
        painted += 1;
        if (data[i + 3] > 200 && Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8) series += 1;
      }
      return { key, canvas: true, width: canvas.getBoundingClientRect().width, height: canvas.height, painted, series };
    });
  });
}

test('(1) the charts render with uPlot, the page JS is under 150 KB gzip, screenshots at 1280 and 375 px', async () => {
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(context, API, analyst);
    const page = await context.newPage();
    const errors = watchPage(page, 'overview');
    const csp = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) csp.push(m.text()); });
    // Every script the page loads, with the bytes that crossed the wire.
    const scripts = [];
    page.on('requestfinished', async (req) => {
      if (req.resourceType() !== 'script') return;
      const res = await req.response();
      const sizes = await req.sizes();
      scripts.push({ url: req.url(), encoding: (await res.allHeaders())['content-encoding'] || 'identity', wire: sizes.responseBodySize, body: await res.body() });
    });
    const res = await page.goto(`${API}/app?range=30d`);
    assert.equal(res.status(), 200);
    await page.waitForLoadState('load');

    const charts = await chartPixels(page);
    assert.deepEqual(charts.map((c) => c.key), ['sessions', 'saves', 'save_rate', 'saved_mrr']);
    for (const c of charts) {
      assert.ok(c.canvas, `${c.key}: no canvas`);
      assert.ok(c.width > 300 && c.height > 100, `${c.key}: canvas ${c.width}x${c.height}`);
      assert.ok(c.series > 50, `${c.key}: ${c.series} pixels of the series' colour (${c.painted} painted)`);
    }
    // The legend follows the data; the table folded away (one click to open).
    assert.equal(await page.locator('details.chart-table').evaluate((d) => d.open), false);
    await page.locator('details.chart-table summary').click();
    assert.equal(await page.locator('#series-table tbody tr').count(), 30);
    await page.locator('details.chart-table summary').click();
    // The other sections from the same rollups.
    assert.match(await page.locator('#reasons-table tr[data-reason="too_expensive"]').textContent(), /12.*75\.0 %/s);
    assert.match(await page.locator('#offers-table tr[data-offer="disc30"]').textContent(), /31.*21.*67\.7 %.*\$390\.00/s);
    assert.match(await page.locator('#experiments-table tr[data-variant="control"]').textContent(), /better than holdout/);

    // JavaScript budget: what crossed the wire, and each script gzipped here (the budget's
    // unit, whatever encoding the server picked).
    await poll(() => scripts.length >= 2);
    assert.deepEqual(scripts.map((s) => new URL(s.url).pathname.split('.')[0]).sort(), ['/app/assets/overview', '/app/assets/uplot']);
    const wire = scripts.reduce((n, s) => n + s.wire, 0);
    const gzip = scripts.reduce((n, s) => n + zlib.gzipSync(s.body, { level: 9 }).length, 0);
    for (const s of scripts) assert.notEqual(s.encoding, 'identity', `${s.url} was sent uncompressed`);
    console.log(`JS of /app: ${scripts.length} files, ${wire} bytes on the wire (${scripts.map((s) => s.encoding).join(', ')}), ${gzip} bytes gzip -9, budget ${JS_BUDGET}`);
    assert.ok(wire < JS_BUDGET, `JS on the wire ${wire} bytes`);
    assert.ok(gzip < JS_BUDGET, `JS gzip ${gzip} bytes`);

    await screenshot(page, 'dashboard-overview-1280', { fullPage: true });
    let sw = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(sw <= 1280, `scrollWidth ${sw} at 1280 px`);
    // The figure tiles fill whole rows: no tile alone on the last one.
    const rows = await page.locator('.grid.metrics .metric').evaluateAll((els) => {
      const tops = {};
      for (const e of els) { const t = Math.round(e.getBoundingClientRect().top); tops[t] = (tops[t] || 0) + 1; }
      return Object.values(tops);
    });
    assert.deepEqual(rows, [3, 4], `tiles per row at 1280 px: ${rows}`);

    // 375 px: the charts follow the width, nothing scrolls sideways.
    await page.setViewportSize({ width: 375, height: 812 });
    await poll(async () => (await chartPixels(page)).every((c) => c.width <= 340));
    const narrow = await chartPixels(page);
    for (const c of narrow) {
      assert.ok(c.width <= 340 && c.series > 20, `${c.key} at 375 px: ${c.width} px wide, ${c.series} series pixels`);
    }
    sw = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(sw <= 375, `scrollWidth ${sw} at 375 px`);
    await screenshot(page, 'dashboard-overview-375', { fullPage: true });

    assert.deepEqual(errors, []);
    assert.deepEqual(csp, []);
  } finally {
    await context.close();
  }
});

test('(2) with JavaScript off the series are a table and every chart has its text', async () => {
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 }, javaScriptEnabled: false });
  try {
    await dashboardSignIn(context, API, analyst);
    const page = await context.newPage();
    await page.goto(`${API}/app?range=30d`);
    assert.equal(await page.locator('.chart canvas').count(), 0);
    const table = page.locator('#series-table');
    assert.ok(await table.isVisible(), 'the data table is shown');
    assert.equal(await table.locator('tbody tr').count(), 30);
    // 12 days ago: 18 sessions, 12 saves, 66.7 %, $240.00.
    const day = sql("SELECT to_char((now() AT TIME ZONE 'UTC')::date - 12, 'YYYY-MM-DD')");
    assert.match(await table.locator('tr', { hasText: day }).textContent(), /18\s*12\s*66\.7 %\s*\$240\.00/);
    assert.match(await page.locator('#chart-sessions-text').textContent(), /^Sessions per day: 76 in total; highest 45 on /);
    assert.equal(await page.locator('[data-chart="sessions"]').getAttribute('role'), 'img');
  } finally {
    await context.close();
  }
});
