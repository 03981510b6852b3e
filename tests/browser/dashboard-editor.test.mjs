// The flow editor (/app/flows/{id}) in Chromium against the real stack: build a flow with a
// survey and two offers in the editor, watch the live preview (the real widget.js in an
// iframe) follow the edits without stealing the focus, see a validation error on its field,
// switch the preview to the mobile width, save, publish, diff two versions; screenshots of
// the editor at 1280 and 375 px (no horizontal scroll) and of the diff page.
// run.sh starts the stack and passes API_URL, DATABASE_URL, OPS_TOKEN and RTOS_API_BIN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  launchBrowser, screenshot, watchPage, poll, newContext, opsTenant, cliUser, dashboardSignIn, sql, noSideScroll, dashboardStack,
} from './lib.mjs';

const { API, OPS_TOKEN, API_BIN } = dashboardStack();
const RUN = randomBytes(4).toString('hex');
const PASSWORD = 'correct horse battery staple';


let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});


test('(1) build a flow with a survey and two offers, preview it live, save, publish, diff', async () => {
  const tenant = await opsTenant(API, OPS_TOKEN, `Editor Co ${RUN}`);
  const owner = await cliUser(API_BIN, tenant.id, 'owner', `owner.${RUN}@editor.example.com`, PASSWORD);
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(context, API, owner);
    const page = await context.newPage();
    const errors = watchPage(page, 'editor');
    await page.goto(`${API}/app/flows`);
    await page.getByLabel('New flow').fill('Browser-built flow');
    await Promise.all([page.waitForURL(/\/app\/flows\/[0-9a-f-]+\?notice=created$/), page.getByRole('button', { name: 'Create', exact: true }).click()]);
    const flowId = new URL(page.url()).pathname.split('/').pop();
    await page.getByText('Flow created.').waitFor();

    // The starter has a survey and one offer: add the second offer (a server round trip).
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Add an offer', exact: true }).click()]);
    await page.getByText('You have unsaved changes.').waitFor();
    const frame = page.frameLocator('#preview');
    // The preview frame runs the real widget (its dialog is in a shadow root).
    await frame.locator('.rtos-title').waitFor();

    // Edits reach the preview as you type, and the focus stays in the editor.
    const title = page.locator('#f-steps-0-title');
    await title.fill('Before you go: why are you leaving?');
    await poll(async () => (await frame.locator('.rtos-title').textContent()) === 'Before you go: why are you leaving?');
    assert.equal(await frame.locator('.rtos-title').textContent(), 'Before you go: why are you leaving?');
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'f-steps-0-title');

    // The second offer becomes a pause: only its parameters are shown.
    await page.locator('#f-steps-1-offers-1-type').selectOption('pause');
    const pauseGroup = page.locator('#sec-steps\\[1\\]\\.offers\\[1\\] [data-offer-params=pause]');
    await pauseGroup.waitFor({ state: 'visible' });
    assert.equal(await page.locator('#sec-steps\\[1\\]\\.offers\\[1\\] [data-offer-params=discount]').isVisible(), false);
    await page.locator('#f-steps-1-offers-1-title').fill('Pause for two months');
    await page.locator('#f-steps-1-offers-1-pause-months').fill('2');

    // A bad value: the preview keeps the last valid version and says which field is wrong.
    await page.locator('#f-steps-1-offers-0-discount-percent_off').fill('lots');
    await poll(async () => (await page.locator('#preview-status').getAttribute('data-state')) === 'invalid');
    assert.match(await page.locator('#preview-status').textContent(), /steps\[1\]\.offers\[0\]\.discount\.percent_off/);
    assert.equal(await page.locator('#f-steps-1-offers-0-discount-percent_off').getAttribute('data-live-invalid'), '');
    await page.locator('#f-steps-1-offers-0-discount-percent_off').fill('30');
    await poll(async () => (await page.locator('#preview-status').getAttribute('data-state')) === 'ok');

    // Walk the preview: choose a reason, continue: both offers are there.
    await frame.getByRole('radio', { name: 'It is too expensive' }).check();
    await frame.getByRole('button', { name: 'Continue' }).click();
    await frame.getByRole('heading', { name: 'Pause for two months' }).waitFor();
    await frame.getByRole('heading', { name: '25 % off for 3 months' }).waitFor();
    // Accepting in the preview records nothing.
    await frame.getByRole('button', { name: 'Accept offer' }).first().click();
    await poll(async () => (await frame.locator('body').getAttribute('data-outcome')) === 'saved');
    assert.equal(sql(`SELECT count(*) FROM cancel_sessions WHERE tenant_id = '${tenant.id}'`), '0');

    // Mobile width.
    await page.getByRole('button', { name: 'Mobile' }).click();
    const width = await page.locator('#preview').evaluate((el) => el.getBoundingClientRect().width);
    assert.ok(width <= 376, `mobile preview width ${width}`);
    await screenshot(page, 'dashboard-editor-1280', { fullPage: true });

    // Save, then publish.
    await Promise.all([page.waitForURL(/notice=saved$/), page.locator('#save-draft').click()]);
    const draft = JSON.parse(sql(`SELECT draft FROM flows WHERE id = '${flowId}'`));
    assert.equal(draft.steps[0].title, 'Before you go: why are you leaving?');
    assert.deepEqual(draft.steps[1].offers.map((o) => [o.type, o.title]), [['discount', '25 % off for 3 months'], ['pause', 'Pause for two months']]);
    assert.equal(draft.steps[1].offers[0].discount.percent_off, 30);
    assert.deepEqual(draft.steps[1].offers[1].pause, { months: 2, behavior: 'void' });
    await Promise.all([page.waitForURL(/notice=published_1$/), page.locator('#publish').click()]);
    assert.equal(sql(`SELECT published_version FROM flows WHERE id = '${flowId}'`), '1');

    // A second version, then the diff of the two.
    await page.locator('#f-steps-1-offers-1-pause-months').fill('3');
    await Promise.all([page.waitForURL(/notice=saved$/), page.locator('#save-draft').click()]);
    await Promise.all([page.waitForURL(/notice=published_2$/), page.locator('#publish').click()]);
    await page.locator('#diff-a').selectOption('1');
    await page.locator('#diff-b').selectOption('2');
    await Promise.all([page.waitForURL(/\/diff\?a=1&b=2$/), page.getByRole('button', { name: 'Show the diff' }).first().click()]);
    assert.equal(await page.locator('tr.d-del').count(), 1);
    assert.match(await page.locator('tr.d-add').textContent(), /"months": 3/);
    await screenshot(page, 'dashboard-diff-1280', { fullPage: true });
    assert.deepEqual(errors, []);

    // 375 px: the editor is usable without sideways scrolling.
    const mobile = await newContext(browser, { viewport: { width: 375, height: 800 } });
    try {
      await dashboardSignIn(mobile, API, owner);
      const m = await mobile.newPage();
      await m.goto(`${API}/app/flows/${flowId}`);
      await m.frameLocator('#preview').locator('.rtos-title').waitFor();
      await noSideScroll(m, 375, 'editor');
      await screenshot(m, 'dashboard-editor-375', { fullPage: true });
      await m.goto(`${API}/app/flows/${flowId}/diff?a=1&b=2`);
      await noSideScroll(m, 375, 'diff');
      await screenshot(m, 'dashboard-diff-375', { fullPage: true });
    } finally {
      await mobile.close();
    }
  } finally {
    await context.close();
  }
});

test('(2) an analyst sees the editor read-only and the preview still runs', async () => {
  const tenant = await opsTenant(API, OPS_TOKEN, `Editor Ro ${RUN}`);
  const owner = await cliUser(API_BIN, tenant.id, 'owner', `owner2.${RUN}@editor.example.com`, PASSWORD);
  const analyst = await cliUser(API_BIN, tenant.id, 'analyst', `analyst.${RUN}@editor.example.com`, PASSWORD);
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(context, API, owner);
    const page = await context.newPage();
    await page.goto(`${API}/app/flows`);
    await page.getByLabel('New flow').fill('Read-only flow');
    await Promise.all([page.waitForURL(/notice=created$/), page.getByRole('button', { name: 'Create', exact: true }).click()]);
    const flowId = new URL(page.url()).pathname.split('/').pop();
    const ro = await newContext(browser, { viewport: { width: 1280, height: 900 } });
    try {
      await dashboardSignIn(ro, API, analyst);
      const p = await ro.newPage();
      await p.goto(`${API}/app/flows/${flowId}`);
      await p.getByText('Read only: your role cannot change flows.').waitFor();
      assert.equal(await p.locator('#save-draft').count(), 0);
      assert.equal(await p.locator('#publish').count(), 0);
      assert.equal(await p.locator('#f-name').isDisabled(), true);
      await p.frameLocator('#preview').locator('.rtos-title').waitFor();
    } finally {
      await ro.close();
    }
  } finally {
    await context.close();
  }
});
