// The web UI in a real browser (Playwright driving Debian's Chromium) against a real OIDC provider
// (oidc-provider, in this process), a real Temporal dev server, worker and scim2-server: people sign
// in at the provider, find a privileged run in their inbox, approve it to quorum and watch it execute;
// the requester gets no form, and forged or hand-made POSTs are refused with 403 (and written to the
// ledger when a signed-in person sent them). The UI is configured as in production, from the
// environment and its files (config/config.ts, server/ui/load.ts).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { freePort } from '../../dev/processes.js';
import type { RunView } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import type { UiConfig } from '../../server/ui/config.js';
import { loadUiConfig } from '../../server/ui/load.js';
import { UI_CSP } from '../../server/ui/routes.js';
import { testSigningKey } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { startOidcProvider, subjectOf, TEST_ROLE_MAP, TEST_SCOPES, type TestOidcProvider } from '../support/oidc.js';
import { alertFor, quietLog, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

/** Debian's Chromium (apt-get install chromium); Playwright's own browsers are never downloaded. */
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Every wait in this file is bounded by this (ms). */
const WAIT_MS = 20_000;

// API tokens, for sending alerts (alice sends the alert she must not approve herself) and for bob,
// who decides from the API as well as on the web: the same person on both channels.
const tokens = { alice: `tok_alice_${randomBytes(16).toString('hex')}`, oscar: `tok_oscar_${randomBytes(16).toString('hex')}`, bob: `tok_bob_${randomBytes(16).toString('hex')}` };
const identities = identityStore({
  alice: { token: tokens.alice, roles: ['soc', 'approver'] },
  bob: { token: tokens.bob, roles: ['approver'] },
  oscar: { token: tokens.oscar, roles: ['operator'] },
});

let env: RemediationEnv;
let worker: RunningWorker;
let oidc: TestOidcProvider;
let app: CordonServer;
let baseUrl: string;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** The OIDC role map file the API reads (and reads again when it changes). */
let roleMapFile: string;
/** The API's log lines (warnings and above). */
const logLines: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is not installed: apt-get install -y chromium (the web UI tests drive it)`);
  env = await startRemediationEnv();
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector }, ledger: env.ledger, policy: env.policy });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  oidc = await startOidcProvider({ redirectUris: [`${baseUrl}/ui/auth/callback`] });
  const dir = await mkdtemp(join(tmpdir(), 'cordon-ui-'));
  roleMapFile = join(dir, 'oidc-role-map.json');
  await writeFile(join(dir, 'ui-session.key'), randomBytes(32).toString('hex'));
  await writeFile(join(dir, 'oidc-client.secret'), oidc.clientSecret);
  await writeFile(roleMapFile, JSON.stringify(TEST_ROLE_MAP));
  // The provider names people by an opaque sub; Cordon names them by their login, as the API does.
  const config = loadConfig(
    {
      CORDON_DATA_DIR: dir,
      CORDON_PUBLIC_URL: baseUrl,
      CORDON_OIDC_ISSUER: oidc.issuer,
      CORDON_OIDC_CLIENT_ID: oidc.clientId,
      CORDON_OIDC_CLIENT_SECRET_FILE: join(dir, 'oidc-client.secret'),
      CORDON_OIDC_ROLE_MAP_FILE: roleMapFile,
      CORDON_OIDC_SCOPES: TEST_SCOPES.join(' '),
      CORDON_OIDC_NAME_CLAIM: 'preferred_username',
      CORDON_UI_SESSION_TTL: '1h',
    },
    dir,
  );
  const ui = await loadUiConfig(config);
  expect(ui).toMatchObject({ sessionTtlSeconds: 3600, oidc: { scopes: [...TEST_SCOPES], nameClaim: 'preferred_username', roleMapFile, allowInsecureIssuer: true } });
  const capture = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  app = await buildServer({
    temporal: env.client,
    taskQueue: env.taskQueue,
    ledger: env.ledger,
    guardrailState: env.guardrailState,
    identities,
    approvalSigner: testSigningKey,
    ui,
    log: pino({ level: 'warn' }, capture),
  });
  await app.listen({ host: '127.0.0.1', port });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await app?.close();
  await oidc?.close();
  await worker?.stop();
  await env?.close();
});

async function newPage(url = baseUrl): Promise<Page> {
  const context = await browser.newContext({ baseURL: url });
  context.setDefaultTimeout(WAIT_MS);
  contexts.push(context);
  return context.newPage();
}

/** Signs in through the provider's own login page, as a person would; lands on the inbox. */
async function signIn(login: string): Promise<Page> {
  const page = await newPage();
  await page.goto('/ui/');
  expect(new URL(page.url()).pathname).toBe('/ui/login');
  await page.click('#oidc-login');
  await page.waitForURL((url) => url.origin === oidc.issuer);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password will do');
  await page.click('button[type=submit]');
  await page.waitForURL(`${baseUrl}/ui/`);
  expect(await page.textContent('[data-testid=user]')).toBe(login);
  return page;
}

/** Reloads until `check` holds (bounded). */
async function reloadUntil(page: Page, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${WAIT_MS} ms (page ${page.url()})`);
    await new Promise((r) => setTimeout(r, 250));
    await page.reload();
  }
}

const run = (runId: string): Promise<RunView> => app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: { authorization: `Bearer ${tokens.oscar}` } }).then((r) => r.json<RunView>());

describe('without a session', () => {
  it('sends a visitor to the sign-in page, and answers every page with a strict CSP and no-sniff, no-referrer headers', async () => {
    const inbox = await fetch(`${baseUrl}/ui/`, { redirect: 'manual' });
    expect(inbox.status).toBe(303);
    expect(inbox.headers.get('location')).toBe('/ui/login?next=%2Fui%2F');
    expect((await fetch(`${baseUrl}/ui`, { redirect: 'manual' })).headers.get('location')).toBe('/ui/login?next=%2Fui');
    for (const path of ['/ui/', '/ui/login', '/ui/runs', '/ui/no-such-page', '/ui/static/cordon.css']) {
      const response = await fetch(`${baseUrl}${path}`, { redirect: 'manual' });
      expect(response.headers.get('content-security-policy'), path).toBe(UI_CSP);
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(response.headers.get('referrer-policy'), path).toBe('no-referrer');
    }
    expect(UI_CSP).not.toMatch(/unsafe|script-src/);
    const css = await fetch(`${baseUrl}/ui/static/cordon.css`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(await css.text()).toContain('.badge');
    const missing = await fetch(`${baseUrl}/ui/no-such-page`);
    expect([missing.status, missing.headers.get('content-type')]).toEqual([404, 'text/html; charset=utf-8']);
  });

  it('refuses a decision POST with 403, and has no development sign-in (404) unless it is turned on', async () => {
    const post = await fetch(`${baseUrl}/ui/runs/run_${'0'.repeat(32)}/decision`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ decision: 'approve', planDigest: '0'.repeat(64), _csrf: 'made-up' }),
    });
    expect(post.status).toBe(403);
    expect((await fetch(`${baseUrl}/ui/dev-login`)).status).toBe(404);
    const devPost = await fetch(`${baseUrl}/ui/dev-login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=bob' });
    expect(devPost.status).toBe(404);
    expect(await (await fetch(`${baseUrl}/ui/login`)).text()).not.toContain('dev-login');
  });

  it('leaves the UI out of the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/ui'))).toEqual([]);
  });
});

describe('a privileged run, approved to quorum in the browser', () => {
  let runId: string;
  let planDigest: string;
  let account: { id: string; userName: string };

  beforeAll(async () => {
    account = await env.org.user('webui', ['admins', 'vpn-users']);
    const sent = await app.inject({
      method: 'POST',
      url: '/v1/alerts',
      headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
      payload: JSON.stringify(alertFor({ userName: account.userName }, { severity: 'critical', summary: 'contractor left; still in admins' })),
    });
    expect(sent.statusCode).toBe(202);
    runId = sent.json<{ runId: string }>().runId;
    const waiting = await waitForStatus(env.client.workflow.getHandle(runId), ['awaiting_approval'], WAIT_MS);
    planDigest = waiting.plan!.digest;
  });

  it('bob signs in at the provider, finds the run in his inbox and sees the alert, targets, changes, policy and timeline', async () => {
    const page = await signIn('bob');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'cordon_ui');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/ui' });
    await reloadUntil(page, 'the run in bob\'s inbox', async () => (await page.locator(`tr[data-run="${runId}"]`).count()) === 1);
    expect(await page.textContent(`tr[data-run="${runId}"]`)).toContain('0 of 2');

    await page.click(`tr[data-run="${runId}"] a`);
    await page.waitForURL(`${baseUrl}/ui/runs/${runId}`);
    expect(await page.getAttribute('[data-status]', 'data-status')).toBe('awaiting_approval');
    expect(await page.textContent('#alert')).toContain('contractor left; still in admins');
    const ids = await page.locator('#targets [data-testid=target-id]').allTextContents();
    expect(ids).toContain(account.id);
    expect(ids).toContain(await env.org.groupId('admins'));
    const changes = (await page.locator('#plan [data-testid=change]').allTextContents()).map((t) => t.replace(/\s+/g, ' '));
    expect(changes).toEqual(['active: true→false', 'member of admins: true→false', 'member of vpn-users: true→false']);
    expect(await page.textContent('#plan [data-testid=plan-digest]')).toBe(planDigest);
    expect(await page.locator('#decision [data-testid=policy]').allTextContents()).toContain('privileged-needs-two-approvers');
    expect(await page.textContent('#decision')).toMatch(/policy set hash\s*[0-9a-f]{64}/);
    expect(await page.locator('#timeline tr[data-step]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-step')))).toEqual(
      expect.arrayContaining(['observing', 'planning', 'deciding', 'awaiting_approval']),
    );
    expect(await page.locator('#timeline [data-testid=duration]').first().textContent()).toMatch(/\d+(\.\d)? (ms|s)$/);
    expect(await page.locator('#decide button[value=approve]').count()).toBe(1);
    expect(await page.locator('#decide button[value=reject]').count()).toBe(1);

    await page.fill('#decide textarea[name=comment]', 'checked with HR');
    await page.click('#decide button[value=approve]');
    await page.waitForURL(`${baseUrl}/ui/runs/${runId}`);
    expect(await page.textContent('[data-testid=flash]')).toBe('Approved: 1 of 2 approvals; the run is awaiting approval.');
    expect(await page.textContent('#approvals tr[data-approver=bob]')).toMatch(/bob\s*approve.*web\s*checked with HR/);
    expect(await page.textContent('[data-testid=approval-count]')).toBe('(1 of 2)');
    expect(await page.locator('#decide button').count()).toBe(0);
    await page.goto('/ui/');
    expect(await page.locator(`tr[data-run="${runId}"]`).count()).toBe(0);
  });

  it('shows the requester no approve or reject button, and refuses her forged and hand-made POSTs with 403 (400 for a bad form), each in the ledger', async () => {
    const page = await signIn('alice');
    expect(await page.locator(`tr[data-run="${runId}"]`).count()).toBe(0);
    await page.goto(`/ui/runs/${runId}`);
    expect(await page.locator('button[value=approve], button[value=reject]').count()).toBe(0);
    expect(await page.textContent('[data-testid=no-decision]')).toContain('separation of duties');

    const url = `/ui/runs/${runId}/decision`;
    const form = { decision: 'approve', planDigest };
    const token = await page.getAttribute('form[action="/ui/logout"] input[name=_csrf]', 'value');
    expect(token).toBeTruthy();
    // Forged: no token, a made-up token, a foreign origin, and no session at all.
    expect((await page.request.post(url, { form })).status()).toBe(403);
    expect((await page.request.post(url, { form: { ...form, _csrf: 'made-up' } })).status()).toBe(403);
    const foreign = await page.request.post(url, { form: { ...form, _csrf: token! }, headers: { origin: 'http://evil.example' } });
    expect([foreign.status(), await foreign.text()]).toEqual([403, expect.stringContaining('not sent from a Cordon page')]);
    const stranger = await newPage();
    const warningsBefore = logLines.length;
    expect((await stranger.request.post(`${baseUrl}${url}`, { form: { ...form, _csrf: token! } })).status()).toBe(403);
    // A form that does not parse, with her valid token.
    const invalid = await page.request.post(url, { form: { decision: 'maybe', planDigest, _csrf: token! } });
    expect([invalid.status(), await invalid.text()]).toEqual([400, expect.stringContaining('decision')]);
    // Hand-made with her own valid token: the approval service refuses it (separation of duties).
    const own = await page.request.post(url, { form: { ...form, _csrf: token!, comment: 'my own run' } });
    expect(own.status()).toBe(403);
    expect(await own.text()).toContain('SeparationOfDuties');

    const after = await run(runId);
    expect(after.status).toBe('awaiting_approval');
    expect(after.approvals.map((a) => [a.approver, a.decision, a.channel])).toEqual([['bob', 'approve', 'web']]);
    // Every POST from her session is a refusal in the ledger, with the check that failed; the stranger's, sent with no session, is not.
    const refused = (await env.ledger.entries({ runId })).filter((e) => e.kind === 'approval.refused');
    expect(refused.map((e) => [e.actor, e.data.channel, e.data.decision, e.data.reason, e.data.check ?? null])).toEqual([
      ['alice', 'web', 'approve', 'Forbidden', 'csrf'],
      ['alice', 'web', 'approve', 'Forbidden', 'csrf'],
      ['alice', 'web', 'approve', 'Forbidden', 'origin'],
      ['alice', 'web', null, 'InvalidRequest', 'form'],
      ['alice', 'web', 'approve', 'SeparationOfDuties', null],
    ]);
    expect(refused.every((e) => e.runId === runId)).toBe(true);
    expect(refused[2]?.data.message).toContain('http://evil.example');
    // The stranger's POST (no session, so no CSRF secret either) is a security warning in the log, without the token or the cookie.
    const warnings = logLines.slice(warningsBefore).map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.security === true);
    expect(warnings.find((l) => l.user === null)).toMatchObject({ level: 40, channel: 'web', check: 'csrf', reason: 'Forbidden', path: url });
    expect(logLines.join('')).not.toContain(token!);
  });

  it('carol approves second, and the run page shows it executed: completed, every action verified with evidence', async () => {
    const page = await signIn('carol');
    await reloadUntil(page, 'the run in carol\'s inbox', async () => (await page.locator(`tr[data-run="${runId}"]`).count()) === 1);
    expect(await page.textContent(`tr[data-run="${runId}"]`)).toContain('1 of 2');
    await page.goto(`/ui/runs/${runId}`);
    await page.click('#decide button[value=approve]');
    await page.waitForURL(`${baseUrl}/ui/runs/${runId}`);
    expect(await page.textContent('[data-testid=flash]')).toMatch(/^Approved: 2 of 2 approvals; the run is (executing|verifying|completed)\.$/);

    await reloadUntil(page, 'the run completed', async () => (await page.getAttribute('h1 [data-status]', 'data-status')) === 'completed');
    expect(await page.locator('#journal [data-journal-status]').evaluateAll((els) => els.map((e) => e.getAttribute('data-journal-status')))).toEqual(['verified', 'verified', 'verified']);
    expect(await page.textContent('#journal')).toMatch(/before.*verification/s);
    expect(await page.locator('#timeline tr[data-step]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-step')))).toEqual(
      expect.arrayContaining(['awaiting_approval', 'executing', 'verifying', 'completed']),
    );
    expect(await page.textContent('#timeline')).toMatch(/Total: /);
    expect((await page.locator('#approvals tr[data-approver]').allTextContents()).length).toBe(2);
    expect(await page.locator('#decide button').count()).toBe(0);
    const done = await run(runId);
    expect(done.approvals.map((a) => [a.approver, a.channel, a.comment ?? null])).toEqual([
      ['bob', 'web', 'checked with HR'],
      ['carol', 'web', null],
    ]);
  });

  it('lists runs filtered by status and by target (userName or immutable id), and refuses an unsafe target filter', async () => {
    // oscar's role comes from the role map (by email): the provider sends him no roles claim.
    const page = await signIn('oscar');
    expect(await page.textContent('header .who')).toContain('operator');
    await page.goto('/ui/runs');
    await page.selectOption('select[name=status]', 'completed');
    await page.fill('input[name=target]', account.userName);
    await page.click('form.filters button[type=submit]');
    await page.waitForURL((url) => url.pathname === '/ui/runs' && url.searchParams.get('status') === 'completed');
    await reloadUntil(page, 'the completed run listed', async () => (await page.locator('tr[data-run]').count()) === 1);
    expect(await page.getAttribute('tr[data-run]', 'data-run')).toBe(runId);
    expect(await page.textContent(`tr[data-run="${runId}"]`)).toContain(account.id);

    // By playbook: the form keeps the choice; another playbook lists nothing for this target.
    await page.selectOption('select[name=playbook]', 'deprovision-account');
    await page.click('form.filters button[type=submit]');
    await page.waitForURL((url) => url.searchParams.get('playbook') === 'deprovision-account');
    expect(await page.locator('tr[data-run]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')))).toEqual([runId]);
    expect(await page.locator('select[name=playbook]').inputValue()).toBe('deprovision-account');
    expect(await page.locator('select[name=status]').inputValue()).toBe('completed');
    await page.selectOption('select[name=playbook]', 'entitlement-cleanup');
    await page.click('form.filters button[type=submit]');
    await page.waitForURL((url) => url.searchParams.get('playbook') === 'entitlement-cleanup');
    expect(await page.locator('tr[data-run]').count()).toBe(0);
    expect(await page.locator('[data-testid=runs-empty]').count()).toBe(1);
    await page.goto(`/ui/runs?playbook=deprovision-account`);
    expect(await page.locator('tr[data-run]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')))).toContain(runId);
    expect((await page.goto('/ui/runs?playbook=no-such-playbook'))?.status()).toBe(400);

    await page.goto(`/ui/runs?status=completed&target=${encodeURIComponent(account.id)}`);
    expect(await page.locator('tr[data-run]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')))).toEqual([runId]);
    await page.goto(`/ui/runs?status=awaiting_approval&target=${encodeURIComponent(account.userName)}`);
    expect(await page.locator('tr[data-run]').count()).toBe(0);
    expect(await page.locator('[data-testid=runs-empty]').count()).toBe(1);

    const unsafe = await page.goto(`/ui/runs?target=${encodeURIComponent("x' OR '1'='1")}`);
    expect(unsafe?.status()).toBe(400);
    expect(await page.textContent('[data-testid=error]')).toContain('target');
    expect((await page.goto('/ui/runs?status=bogus'))?.status()).toBe(400);

    // An operator may look, not decide.
    await page.goto(`/ui/runs/${runId}`);
    expect(await page.locator('#decide button').count()).toBe(0);
  });

  it('shows a rollback oscar asked for in bob\'s inbox; bob approves it on the run page, which shows the account restored', async () => {
    const asked = await app.inject({
      method: 'POST',
      url: `/v1/runs/${runId}/rollback`,
      headers: { authorization: `Bearer ${tokens.oscar}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ reason: 'contract extended by a month' }),
    });
    expect(asked.statusCode).toBe(202);
    const waiting = await waitForStatus(env.client.workflow.getHandle(runId), ['awaiting_approval'], WAIT_MS);
    expect(waiting.openApproval?.subject).toBe('rollback');

    const page = await signIn('bob');
    await reloadUntil(page, 'the rollback in bob\'s inbox', async () => (await page.locator(`tr[data-run="${runId}"]`).count()) === 1);
    await page.goto(`/ui/runs/${runId}`);
    expect(await page.textContent('#rollbacks tr[data-rollback=rb_1]')).toContain('oscar: contract extended by a month');
    expect(await page.textContent('#decide')).toContain('You decide on rollback rb_1');
    expect(await page.getAttribute('#decide input[name=planDigest]', 'value')).toBe(waiting.openApproval!.digest);
    await page.click('#decide button[value=approve]');
    await page.waitForURL(`${baseUrl}/ui/runs/${runId}`);
    expect(await page.textContent('[data-testid=flash]')).toMatch(/^Approved: 1 of 1 approvals; the run is (rolling back|rolled back)\.$/);

    await reloadUntil(page, 'the run rolled back', async () => (await page.getAttribute('h1 [data-status]', 'data-status')) === 'rolled_back');
    expect(await page.textContent('#rollbacks [data-testid=rollback-status]')).toBe('rolled back');
    expect(await page.locator('#journal [data-journal-status]').evaluateAll((els) => els.map((e) => e.getAttribute('data-journal-status')))).toEqual(['rolled_back', 'rolled_back', 'rolled_back']);
    const snapshot = await env.connector.readAccount({ id: account.id });
    expect([snapshot.account.active, snapshot.groups.map((g) => g.displayName).sort()]).toEqual([true, ['admins', 'vpn-users']]);
  });

  it('lets a person with no Cordon role sign in, and shows them nothing to act on', async () => {
    const page = await signIn('nemo');
    expect(await page.textContent('[data-testid=no-role]')).toContain('no Cordon role');
    expect((await page.goto(`/ui/runs/${runId}`))?.status()).toBe(403);
    expect((await page.goto('/ui/runs'))?.status()).toBe(403);
  });

  it('signs out: the session is gone and pages send you to sign in again', async () => {
    const page = await signIn('bob');
    await page.click('header form[action="/ui/logout"] button');
    await page.waitForURL(`${baseUrl}/ui/login`);
    expect((await page.context().cookies()).find((c) => c.name === 'cordon_ui')).toBeUndefined();
    await page.goto(`/ui/runs/${runId}`);
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    expect(new URL(page.url()).searchParams.get('next')).toBe(`/ui/runs/${runId}`);
  });
});

describe('a second privileged run: one person on two channels, a role taken away, a rejection', () => {
  let runId: string;
  let planDigest: string;
  let account: { id: string; userName: string };

  beforeAll(async () => {
    account = await env.org.user('webreject', ['admins']);
    const sent = await app.inject({
      method: 'POST',
      url: '/v1/alerts',
      headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
      payload: JSON.stringify(alertFor({ userName: account.userName }, { severity: 'critical', summary: 'left last week; still in admins' })),
    });
    expect(sent.statusCode).toBe(202);
    runId = sent.json<{ runId: string }>().runId;
    planDigest = (await waitForStatus(env.client.workflow.getHandle(runId), ['awaiting_approval'], WAIT_MS)).plan!.digest;
  });

  afterAll(async () => {
    await writeFile(roleMapFile, JSON.stringify(TEST_ROLE_MAP));
  });

  const refusals = async () => (await env.ledger.entries({ runId })).filter((e) => e.kind === 'approval.refused').map((e) => [e.actor, e.data.channel, e.data.reason]);

  it('counts bob once: approved with his API token, he is refused as a duplicate on the web, where he is named by the configured claim and not his opaque sub', async () => {
    const api = await app.inject({
      method: 'POST',
      url: `/v1/runs/${runId}/approvals`,
      headers: { authorization: `Bearer ${tokens.bob}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ decision: 'approve', planDigest }),
    });
    expect(api.json()).toEqual({ status: 'awaiting_approval', approvals: 1, required: 2 });

    const page = await signIn('bob');
    expect(subjectOf('bob')).not.toBe('bob');
    await page.goto(`/ui/runs/${runId}`);
    expect(await page.textContent('[data-testid=no-decision]')).toContain('already decided');
    expect(await page.locator('#decide button').count()).toBe(0);
    const token = await page.getAttribute('form[action="/ui/logout"] input[name=_csrf]', 'value');
    const again = await page.request.post(`/ui/runs/${runId}/decision`, { form: { decision: 'approve', planDigest, _csrf: token! } });
    expect(again.status()).toBe(409);
    expect(await again.text()).toContain('DuplicateApproval');

    // Still one approval of two: the quorum needs a second, distinct person.
    const view = await run(runId);
    expect(view.status).toBe('awaiting_approval');
    expect(view.approvals.map((a) => [a.approver, a.channel])).toEqual([['bob', 'api']]);
    expect(await refusals()).toEqual([['bob', 'web', 'DuplicateApproval']]);
  });

  it('refuses dora, an approver by the role map, once her entry is taken out of it: on her next click, without signing out', async () => {
    const page = await signIn('dora');
    expect(await page.textContent('header .who')).toContain('approver');
    await reloadUntil(page, "the run in dora's inbox", async () => (await page.locator(`tr[data-run="${runId}"]`).count()) === 1);
    await page.goto(`/ui/runs/${runId}`);
    expect(await page.locator('#decide button[value=approve]').count()).toBe(1);

    await writeFile(roleMapFile, JSON.stringify({ 'oscar@example.test': ['operator'] }));
    const [answer] = await Promise.all([page.waitForResponse((r) => r.url().endsWith(`/ui/runs/${runId}/decision`)), page.click('#decide button[value=approve]')]);
    expect(answer.status()).toBe(403);
    expect(await page.textContent('[data-testid=refusal]')).toContain('MissingApproverRole');
    expect(await page.textContent('header .who')).toContain('no role');
    expect(await page.locator('#decide button').count()).toBe(0);
    await page.goto('/ui/');
    expect(await page.textContent('[data-testid=no-role]')).toContain('no Cordon role');

    expect((await run(runId)).approvals.map((a) => a.approver)).toEqual(['bob']);
    expect(await refusals()).toEqual([
      ['bob', 'web', 'DuplicateApproval'],
      ['dora', 'web', 'MissingApproverRole'],
    ]);
  });

  it('lets carol reject with a comment: the run ends rejected, the page says so, and the ledger has her comment on channel web', async () => {
    const page = await signIn('carol');
    await page.goto(`/ui/runs/${runId}`);
    await page.fill('#decide textarea[name=comment]', 'still employed: HR confirmed today');
    await page.click('#decide button[value=reject]');
    await page.waitForURL(`${baseUrl}/ui/runs/${runId}`);
    expect(await page.textContent('[data-testid=flash]')).toBe('Rejected; the run is rejected.');
    await reloadUntil(page, 'the run rejected', async () => (await page.getAttribute('h1 [data-status]', 'data-status')) === 'rejected');
    expect(await page.textContent('[data-testid=run-error]')).toMatch(/ApprovalRejected: rejected by carol: still employed: HR confirmed today/);
    expect(await page.textContent('#approvals tr[data-approver=carol]')).toMatch(/carol\s*reject.*web\s*still employed: HR confirmed today/);
    expect(await page.locator('#decide button').count()).toBe(0);
    const journal = await page.locator('#journal [data-journal-status]').evaluateAll((els) => els.map((e) => e.getAttribute('data-journal-status')));
    // Nothing was applied: every action is still pending.
    expect(journal.filter((status) => status !== 'pending' && status !== 'not_started')).toEqual([]);

    const recorded = (await env.ledger.entries({ runId })).filter((e) => e.kind === 'approval.recorded');
    expect(recorded.map((e) => [e.actor, e.data.decision, e.data.channel, e.data.comment])).toEqual([
      ['bob', 'approve', 'api', null],
      ['carol', 'reject', 'web', 'still employed: HR confirmed today'],
    ]);
    expect((await env.connector.readAccount({ id: account.id })).account.active).toBe(true);
  });
});

describe('the development sign-in', () => {
  let devApp: CordonServer | undefined;

  afterAll(async () => {
    await devApp?.close();
  });

  const devUi = (publicUrl: string): UiConfig => ({
    publicUrl,
    sessionSecret: randomBytes(32),
    devSignIn: true,
    devIdentities: { bob: ['approver'], oscar: ['operator'] },
  });
  const build = (ui: UiConfig) =>
    buildServer({ temporal: env.client, taskQueue: env.taskQueue, ledger: env.ledger, guardrailState: env.guardrailState, identities, approvalSigner: testSigningKey, ui, log: quietLog });

  it('signs in as a picked dev identity when it is on', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    devApp = await build(devUi(url));
    await devApp.listen({ host: '127.0.0.1', port });
    const page = await newPage(url);
    await page.goto('/ui/runs');
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    expect(await page.locator('#oidc-login').count()).toBe(0);
    await page.click('#dev-login');
    expect(await page.locator('form button[name=name]').evaluateAll((b) => b.map((e) => e.getAttribute('value')))).toEqual(['bob', 'oscar']);
    await page.click('button[value=oscar]');
    await page.waitForURL(`${url}/ui/runs`);
    expect(await page.textContent('[data-testid=user]')).toBe('oscar');
    expect(await page.textContent('.dev-banner')).toContain('Development sign-in is on');
    // A name that is not a dev identity is refused.
    const token = await page.getAttribute('form[action="/ui/logout"] input[name=_csrf]', 'value');
    expect((await page.request.post('/ui/dev-login', { form: { _csrf: token!, name: 'admin' } })).status()).toBe(400);
    // After signing in, only a path inside the UI is followed. (Each sign-in starts a new session, with a new CSRF secret.)
    for (const next of ['//evil.example/', 'https://evil.example/ui/', '/ui/../v1/runs', '/ui/\\evil']) {
      await page.goto('/ui/dev-login');
      const fresh = await page.getAttribute('form[action="/ui/dev-login"] input[name=_csrf]', 'value');
      const answer = await page.request.post('/ui/dev-login', { form: { _csrf: fresh!, name: 'bob', next }, maxRedirects: 0 });
      expect([answer.status(), answer.headers().location], next).toEqual([303, '/ui/']);
    }
    // A token from an earlier session is worthless once someone signs in again.
    expect((await page.request.post('/ui/dev-login', { form: { _csrf: token!, name: 'bob' }, maxRedirects: 0 })).status()).toBe(403);
  });

  it('refuses to start for a public URL other people can reach', async () => {
    await expect(build(devUi('https://cordon.example.com'))).rejects.toThrow(/loopback/);
  });
});
