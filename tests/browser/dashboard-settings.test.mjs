// Settings pages in Chromium against the real stack: the Stripe connection page (key entry in
// a password field, only the last four shown afterwards, a webhook secret roll: add the new
// one, remove the old one; the webhook URL; read-only for analysts) and team administration
// (an owner changes a teammate's role in the browser; an owner invites a teammate, who accepts
// from the link in the mail the stack's SMTP server received). Screenshots at 1280 and 375 px with no
// horizontal scroll: dashboard-stripe-*.png and dashboard-team-admin-*.png (after the change).
// run.sh starts the stack and passes API_URL, DATABASE_URL, OPS_TOKEN and RTOS_API_BIN. The
// stack has no Stripe of its own unless STRIPE_API_BASE is exported: only then is "Test
// connection" clicked (the Rust tests cover its success and failure against the fake Stripe).
// No sign-in here fails (the api's per-address throttle is shared by every suite).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  launchBrowser, screenshot, watchPage, newContext, opsTenant, cliUser, dashboardSignIn, mailTo, sql, lit, noSideScroll, dashboardStack,
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


// Clicks `button` (which submits a form) and waits for the page the POST leads to.
async function submit(page, button) {
  await Promise.all([page.waitForEvent('load'), button.click()]);
}

async function shots(context, path, name) {
  const out = [];
  for (const width of [1280, 375]) {
    const page = await context.newPage();
    await page.setViewportSize({ width, height: width === 375 ? 812 : 800 });
    const errors = watchPage(page, `${name}-${width}`);
    const res = await page.goto(`${API}${path}`);
    assert.equal(res.status(), 200);
    await noSideScroll(page, width, name);
    out.push(await screenshot(page, `dashboard-${name}-${width}`, { fullPage: true }));
    assert.deepEqual(errors, [], `${name} at ${width}: page errors`);
    await page.close();
  }
  return out;
}

test('(1) the Stripe connection page: key entry, secret roll, webhook URL, read-only analysts', async () => {
  const tenant = await opsTenant(API, OPS_TOKEN, `Stripe Co ${RUN}`);
  const owner = await cliUser(API_BIN, tenant.id, 'owner', `owner.${RUN}@stripe.example.com`, PASSWORD);
  const analyst = await cliUser(API_BIN, tenant.id, 'analyst', `analyst.${RUN}@stripe.example.com`, PASSWORD);
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(context, API, owner);
    const page = await context.newPage();
    const errors = watchPage(page, 'stripe');
    await page.goto(`${API}/app/settings`);
    // Reached from the header's nav.
    await Promise.all([page.waitForURL(`${API}/app/settings/stripe`), page.getByRole('link', { name: 'Stripe', exact: true }).click()]);
    await page.getByText('No Stripe key is stored for test mode yet.').waitFor();
    const url = await page.locator('#webhook_url').inputValue();
    assert.ok(url.endsWith(`/v1/webhooks/stripe/${tenant.id}`), url);
    assert.equal(await page.locator('#webhook_url').getAttribute('readonly'), '');
    assert.ok(await page.getByText('customer.subscription.updated', { exact: true }).isVisible());

    // The key goes into a password field and is never shown again, only its last four.
    const key = `rk_test_${RUN}wxyz`;
    assert.equal(await page.locator('#api_key').getAttribute('type'), 'password');
    await page.locator('#api_key').fill(key);
    await page.locator('#webhook_secret').fill(`whsec_${RUN}old1`);
    await submit(page, page.getByRole('button', { name: 'Save test key' }));
    await page.getByText('Saved: the new key is used from now on.').waitFor();
    assert.equal(await page.locator('[data-key-last4]').textContent(), '…wxyz');
    const html = await page.content();
    assert.ok(!html.includes(key) && !html.includes(`whsec_${RUN}old1`), 'the key and secret never reach the page');

    // A malformed secret: the API's error on the field, nothing saved.
    await page.locator('#webhook_secret').fill('not-a-secret');
    await submit(page, page.getByRole('button', { name: 'Add test secret' }));
    await page.locator('#webhook_secret-error').waitFor();
    assert.equal(await page.locator('#webhook_secret').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('tr[data-secret]').count(), 1);

    // Roll: add the new secret (both listed, both active), then remove the old one.
    await page.locator('#webhook_secret').fill(`whsec_${RUN}new2`);
    await submit(page, page.getByRole('button', { name: 'Add test secret' }));
    await page.getByText('Secret added').waitFor();
    assert.equal(await page.locator('tr[data-secret]').count(), 2);
    assert.equal(sql(`SELECT jsonb_array_length(webhook_secrets_enc) FROM stripe_settings WHERE tenant_id = ${lit(tenant.id)} AND mode = 'test'`), '2');
    const oldHint = 'whsec_…old1';
    assert.equal(await page.locator('tr[data-secret]').first().locator('code').textContent(), oldHint);
    await submit(page, page.getByRole('button', { name: `Remove secret ${oldHint}` }));
    await page.getByText('Secret removed').waitFor();
    assert.equal(await page.locator('tr[data-secret]').count(), 1);
    assert.equal(await page.locator('tr[data-secret] code').textContent(), 'whsec_…new2');
    assert.equal(sql(`SELECT count(*) FROM audit_events WHERE tenant_id = ${lit(tenant.id)} AND action = 'stripe_settings.update' AND actor_type = 'dashboard_user'`), '3');

    if (process.env.STRIPE_API_BASE) {
      await submit(page, page.getByRole('button', { name: 'Test connection' }));
      await page.locator('[data-test-result]').waitFor();
    }
    assert.deepEqual(errors, [], 'page errors');
    console.log(`screenshots:\n  ${(await shots(context, '/app/settings/stripe', 'stripe')).join('\n  ')}`);
  } finally {
    await context.close();
  }

  // An analyst sees it read-only: no key or secret forms.
  const ac = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(ac, API, analyst);
    const page = await ac.newPage();
    await page.goto(`${API}/app/settings/stripe`);
    await page.getByText('Read only: your role cannot change the Stripe connection.').waitFor();
    assert.equal(await page.locator('#api_key').count(), 0);
    assert.equal(await page.locator('form[action="/app/settings/stripe/secrets"]').count(), 0);
    assert.equal(await page.locator('[data-key-last4]').textContent(), '…wxyz');
  } finally {
    await ac.close();
  }
});

test('(2) team administration: an owner changes a teammate\'s role in the browser', async () => {
  const tenant = await opsTenant(API, OPS_TOKEN, `Team Co ${RUN}`);
  const owner = await cliUser(API_BIN, tenant.id, 'owner', `owner.${RUN}@team.example.com`, PASSWORD);
  const mate = await cliUser(API_BIN, tenant.id, 'analyst', `mate.${RUN}@team.example.com`, PASSWORD);
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  try {
    await dashboardSignIn(context, API, owner);
    const page = await context.newPage();
    const errors = watchPage(page, 'team');
    await page.goto(`${API}/app/team`);
    const row = page.locator(`tr[data-user="${mate.email}"]`);
    assert.equal(await row.locator('[data-role]').textContent(), 'analyst');
    // Nothing to change on your own row.
    assert.equal(await page.locator(`tr[data-user="${owner.email}"] form`).count(), 0);
    await row.getByLabel(`New role for ${mate.email}`).selectOption('admin');
    await submit(page, row.getByRole('button', { name: 'Change role' }));
    await page.getByText(`${mate.email} is now admin.`).waitFor();
    assert.equal(await page.locator(`tr[data-user="${mate.email}"] [data-role]`).textContent(), 'admin');
    assert.equal(sql(`SELECT role FROM dashboard_users WHERE email = ${lit(mate.email)}`), 'admin');
    assert.equal(sql(`SELECT count(*) FROM audit_events WHERE tenant_id = ${lit(tenant.id)} AND action = 'user.role_change'`), '1');
    assert.deepEqual(errors, [], 'page errors');
    console.log(`screenshots:\n  ${(await shots(context, '/app/team', 'team-admin')).join('\n  ')}`);
  } finally {
    await context.close();
  }
});

test('(3) an invitation through the SMTP server: the teammate accepts from the mail\'s link', async () => {
  const tenant = await opsTenant(API, OPS_TOKEN, `Invite Co ${RUN}`);
  const owner = await cliUser(API_BIN, tenant.id, 'owner', `owner.${RUN}@invite.example.com`, PASSWORD);
  const invitee = `new.${RUN}@invite.example.com`;
  const ownerContext = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  const inviteeContext = await newContext(browser, { viewport: { width: 375, height: 812 } });
  try {
    await dashboardSignIn(ownerContext, API, owner);
    const page = await ownerContext.newPage();
    const errors = watchPage(page, 'invite');
    await page.goto(`${API}/app/team`);
    await page.getByLabel('Email', { exact: true }).fill(invitee);
    await page.getByLabel('Role', { exact: true }).selectOption('analyst');
    await submit(page, page.getByRole('button', { name: 'Send invitation' }));
    await page.getByText(`Invitation sent to ${invitee}.`).waitFor();
    assert.equal(await page.locator(`tr[data-user="${invitee}"] [data-role]`).textContent(), 'analyst');

    // The mail, as the SMTP server received it: to the invitee, naming the inviter and the
    // role, with a one-time link on the api's real address (API_ADDR binds port 0 here).
    const mail = await mailTo(invitee);
    assert.equal(mail.subject, 'You are invited to RetentionOS');
    assert.match(mail.text, new RegExp(`${owner.email.replace(/\./g, '\\.')} invited you .* as analyst`));
    const links = mail.text.match(/https?:\/\/\S+\/app\/set-password\?token=[A-Za-z0-9_-]+/g) || [];
    assert.equal(links.length, 1, mail.text);
    const link = new URL(links[0]);
    assert.equal(link.origin, new URL(API).origin, 'the mail\'s link points at the api');
    // No password until the invitation is accepted.
    const early = await inviteeContext.request.post(`${API}/app/login`, { form: { email: invitee, password: PASSWORD }, maxRedirects: 0 });
    assert.equal(early.status(), 401);

    // The invitee opens the link exactly as mailed, on a phone-sized screen.
    const phone = await inviteeContext.newPage();
    const phoneErrors = watchPage(phone, 'invitee');
    const res = await phone.goto(link.href);
    assert.equal(res.status(), 200);
    await phone.getByText(invitee, { exact: true }).waitFor();
    await noSideScroll(phone, 375, 'set-password');
    console.log(`screenshot: ${await screenshot(phone, 'dashboard-invitation-375', { fullPage: true })}`);
    await phone.getByLabel('New password').fill(PASSWORD);
    await submit(phone, phone.getByRole('button', { name: 'Set password' }));
    await phone.waitForURL(`${API}/app/login`);
    await phone.getByLabel('Email').fill(invitee);
    await phone.getByLabel('Password').fill(PASSWORD);
    await submit(phone, phone.getByRole('button', { name: 'Sign in' }));
    await phone.waitForURL(`${API}/app`);
    await phone.locator('header.top').getByText(`${invitee} (analyst)`, { exact: true }).waitFor();

    // Used once: the mailed link is dead now.
    const again = await phone.goto(link.href);
    assert.equal(again.status(), 404);
    assert.equal(sql(`SELECT count(*) FROM audit_events WHERE tenant_id = ${lit(tenant.id)} AND action = 'user.password_set'`), '1');
    assert.deepEqual(errors, [], 'owner page errors');
    assert.deepEqual(phoneErrors, [], 'invitee page errors');
  } finally {
    await ownerContext.close();
    await inviteeContext.close();
  }
});
