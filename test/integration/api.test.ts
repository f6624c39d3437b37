// The HTTP API (fastify.inject) over a real Temporal dev server, a real worker and a real
// scim2-server: intake with bearer tokens and HMAC, bad input refused with nothing started,
// duplicates attached to their run, approvals with the workflow's verdicts as HTTP statuses.
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../cli/main.js';
import { runIdFor, type RunView } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { signAlert } from '../../server/hmac.js';
import { identityStore } from '../../server/identities.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';
import { testSigningKey } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import type { TestOrg } from '../support/scim.js';
import { alertFor, startWorker, type RunningWorker } from '../support/temporal.js';

const token = (name: string) => `tok_${name}_${randomBytes(16).toString('hex')}`;
const tokens = { soc: token('soc'), alice: token('alice'), bob: token('bob'), carol: token('carol'), oscar: token('oscar') };
const identities = identityStore({
  soc: { token: tokens.soc, roles: ['soc'] },
  alice: { token: tokens.alice, roles: ['soc', 'approver'] },
  bob: { token: tokens.bob, roles: ['approver'] },
  carol: { token: tokens.carol, roles: ['approver'] },
  oscar: { token: tokens.oscar, roles: ['operator'] },
});
const hmacSecret = Buffer.from(randomBytes(32).toString('hex'));

let env: RemediationEnv;
let org: TestOrg;
let ledger: Ledger;
let worker: RunningWorker;
let app: CordonServer;
let now = Math.floor(Date.now() / 1000);
const logLines: string[] = [];

beforeAll(async () => {
  env = await startRemediationEnv();
  ({ org, ledger } = env);
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector }, ledger, policy: env.policy });
  const capture = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  app = await buildServer({
    temporal: env.client,
    taskQueue: env.taskQueue,
    ledger,
    guardrailState: env.guardrailState,
    identities,
    approvalSigner: testSigningKey,
    alertHmacSecret: hmacSecret,
    log: pino({ level: 'info' }, capture),
    nowSeconds: () => now,
  });
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await env?.close();
});

const bearer = (name: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[name]}` });

function postAlert(body: unknown, headers: Record<string, string> = bearer('soc')) {
  return app.inject({ method: 'POST', url: '/v1/alerts', headers: { 'content-type': 'application/json', ...headers }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
}

async function waitForRun(runId: string, statuses: string[]): Promise<RunView> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: bearer('oscar') });
    if (response.statusCode === 200 && statuses.includes(response.json<RunView>().status)) return response.json<RunView>();
    if (Date.now() > deadline) throw new Error(`run ${runId} never reached ${statuses.join('|')}: ${response.body}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function postOcsf(event: unknown, headers: Record<string, string> = bearer('soc')) {
  return app.inject({ method: 'POST', url: '/v1/alerts/ocsf', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(event) });
}

/** An OCSF 1.x Detection Finding about a directory account; `patch` replaces top-level fields. */
const ocsfFinding = (patch: Record<string, unknown> = {}) => ({
  class_uid: 2004,
  severity_id: 4,
  metadata: { product: { name: 'itdr' } },
  finding_info: { uid: 'f-http', types: ['account.orphaned'] },
  evidences: [{ user: { name: 'nobody.refused', domain: 'scim' } }],
  ...patch,
});

/** How many runs exist on this test's task queue (Temporal visibility). */
async function runCount(): Promise<number> {
  return (await env.client.workflow.count(`TaskQueue = '${env.taskQueue}'`)).count;
}

describe('GET /healthz', () => {
  it('answers ok when Temporal and the ledger answer', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it.each([
    { down: ['temporal'], temporalUp: false, ledgerUp: true },
    { down: ['ledger'], temporalUp: true, ledgerUp: false },
    { down: ['ledger', 'temporal'], temporalUp: false, ledgerUp: false },
  ])('answers 503 naming only what is down: $down', async ({ down: expected, temporalUp, ledgerUp }) => {
    const deadLedger = openSqliteLedger({ path: join(await mkdtemp(join(tmpdir(), 'cordon-ledger-')), 'dead.sqlite') });
    await deadLedger.close();
    // No retry interceptor: its timers would outlive the connection closed below.
    const connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [] });
    const down = await buildServer({
      temporal: temporalUp ? env.client : new Client({ connection }),
      taskQueue: 'none',
      ledger: ledgerUp ? env.ledger : deadLedger,
      guardrailState: env.guardrailState,
      identities,
      log: pino({ level: 'silent' }),
    });
    try {
      const response = await down.inject({ method: 'GET', url: '/healthz' });
      expect(response.statusCode).toBe(503);
      const body = response.json<{ status: string; down: Record<string, string> }>();
      expect(body.status).toBe('unavailable');
      expect(Object.keys(body.down).sort()).toEqual(expected);
      for (const part of expected) expect(body.down[part]).toBeTruthy();
    } finally {
      await down.close();
      await connection.close();
    }
  });
});

describe('POST /v1/alerts', () => {
  it('starts a run that completes, and the run view carries plan, decision, journal and evidence', async () => {
    const user = await org.user('api', ['engineering', 'vpn-users', 'jira-users']);
    const alert = alertFor({ userName: user.userName });
    const response = await postAlert(alert);
    expect(response.statusCode).toBe(202);
    const { runId, status, duplicate } = response.json<{ runId: string; status: string; duplicate: boolean }>();
    expect(runId).toBe(runIdFor(alert.source, alert.id));
    expect(status).toBe('observing');
    expect(duplicate).toBe(false);

    const run = await waitForRun(runId, ['completed', 'failed', 'needs_human']);
    expect(run).toMatchObject({ runId, playbook: 'deprovision-account', status: 'completed', requestedBy: 'soc', alert, approvals: [] });
    expect(run.decision).toMatchObject({ outcome: 'auto', policies: ['auto-deprovision-on-high-severity'] });
    expect(run.plan?.actions).toHaveLength(4);
    for (const action of run.plan!.actions) {
      expect(action).toMatchObject({ reversible: true, decision: 'auto', target: { system: 'scim', id: user.id } });
      expect(action.target.display).toBeTruthy();
    }
    expect(run.journal.map((j) => j.status)).toEqual(['verified', 'verified', 'verified', 'verified']);
    expect(run.journal.every((j) => j.evidence.length === 2)).toBe(true);

    const list = await app.inject({ method: 'GET', url: '/v1/runs?status=completed&playbook=deprovision-account', headers: bearer('bob') });
    expect(list.statusCode).toBe(200);
    const listed = list.json<{ runs: { runId: string; status: string; targets: string[] }[] }>().runs.find((r) => r.runId === runId);
    expect(listed).toMatchObject({ status: 'completed' });
    expect(listed?.targets).toContain(user.id);
  });

  it('answers a repeated alert with the same run and starts no second one', async () => {
    const user = await org.user('dup', ['sales']);
    const alert = alertFor({ userName: user.userName });
    const first = await postAlert(alert);
    expect(first.statusCode).toBe(202);
    const second = await postAlert({ ...alert, summary: 'sent again by a retrying SIEM' });
    expect(second.statusCode).toBe(200);
    expect(second.json()).toMatchObject({ runId: first.json().runId, duplicate: true });
    await waitForRun(first.json().runId, ['completed']);
    const third = await postAlert(alert);
    expect(third.statusCode).toBe(200);
    expect(third.json()).toMatchObject({ runId: first.json().runId, status: 'completed', duplicate: true });
    const executions = await env.client.workflow.count(`WorkflowId = '${first.json().runId}'`);
    expect(executions.count).toBe(1);
  });

  it('accepts an alert signed with the shared secret within the window, as the webhook identity', async () => {
    const user = await org.user('hmac', ['finance']);
    const body = JSON.stringify(alertFor({ userName: user.userName }));
    const response = await postAlert(body, { 'x-cordon-signature': signAlert(hmacSecret, body, now - 60) });
    expect(response.statusCode).toBe(202);
    const run = await waitForRun(response.json().runId, ['completed']);
    expect(run.requestedBy).toBe('webhook');
  });

  describe('refuses, with nothing started', () => {
    let before: number;
    const user = { userName: 'nobody.refused' };
    beforeAll(async () => {
      before = await runCount();
    });

    const cases: [string, () => Promise<{ statusCode: number; json: () => { error: { type: string; message: string; issues?: { path: string }[] } } }>, number, string][] = [
      ['no credentials', () => postAlert(alertFor(user), {}), 401, 'Unauthenticated'],
      ['an unknown bearer token', () => postAlert(alertFor(user), { authorization: 'Bearer not-a-token-of-ours' }), 401, 'Unauthenticated'],
      ['a token without the soc role', () => postAlert(alertFor(user), bearer('bob')), 403, 'Forbidden'],
      ['a signature made with the wrong secret', () => { const b = JSON.stringify(alertFor(user)); return postAlert(b, { 'x-cordon-signature': signAlert('wrong-secret', b, now) }); }, 401, 'Unauthenticated'],
      ['a signature six minutes old', () => { const b = JSON.stringify(alertFor(user)); return postAlert(b, { 'x-cordon-signature': signAlert(hmacSecret, b, now - 360) }); }, 401, 'Unauthenticated'],
      ['a signature over a different body', () => { const b = JSON.stringify(alertFor(user)); return postAlert(b.replace('high', 'low'), { 'x-cordon-signature': signAlert(hmacSecret, b, now) }); }, 401, 'Unauthenticated'],
      ['a malformed signature header', () => postAlert(alertFor(user), { 'x-cordon-signature': 'v1=zz' }), 401, 'Unauthenticated'],
      ['malformed JSON from an unauthenticated caller (401 before 400)', () => postAlert('{"source":', {}), 401, 'Unauthenticated'],
      ['malformed JSON', () => postAlert('{"source": "x", '), 400, 'InvalidRequest'],
      ['a __proto__ key', () => postAlert(`{"__proto__": {"isAdmin": true}, ${JSON.stringify(alertFor(user)).slice(1)}`), 400, 'InvalidRequest'],
      ['a constructor.prototype key', () => postAlert(`{"constructor": {"prototype": {"x": 1}}, ${JSON.stringify(alertFor(user)).slice(1)}`), 400, 'InvalidRequest'],
      ['a body over 256 KiB', () => postAlert({ ...alertFor(user), summary: 'x'.repeat(300 * 1024) }), 413, 'PayloadTooLarge'],
      ['an unknown top-level field', () => postAlert({ ...alertFor(user), serverity: 'high' }), 400, 'InvalidRequest'],
      ['an unknown subject field', () => postAlert({ ...alertFor(user), subject: { system: 'scim', userName: 'x', isAdmin: true } }), 400, 'InvalidRequest'],
      ['a missing severity', () => { const { severity: _s, ...rest } = alertFor(user); return postAlert(rest); }, 400, 'InvalidRequest'],
      ['a subject with neither id nor userName', () => postAlert({ ...alertFor(user), subject: { system: 'scim' } }), 400, 'InvalidRequest'],
      ['a kind no playbook handles', () => postAlert({ ...alertFor(user), kind: 'printer.jammed' }), 422, 'UnknownAlertKind'],
      ['an OCSF finding that names no user', () => postOcsf(ocsfFinding({ evidences: [] })), 422, 'AlertIncomplete'],
      ['an OCSF event of another class', () => postOcsf({ ...ocsfFinding(), class_uid: 1001 }), 422, 'AlertIncomplete'],
      ['a non-JSON content type', () => app.inject({ method: 'POST', url: '/v1/alerts', headers: { 'content-type': 'text/plain', ...bearer('soc') }, payload: 'hello' }) as never, 415, 'UnsupportedMediaType'],
    ];
    for (const [what, send, status, type] of cases) {
      it(`${what}: ${status} ${type}`, async () => {
        const response = await send();
        expect(response.statusCode).toBe(status);
        expect(response.json().error.type).toBe(type);
        expect(response.json().error.message).toBeTruthy();
        // Every 400 says which part of the request was wrong, not only that something was.
        if (status === 400) expect(response.json().error.issues?.map((i) => i.path).length).toBeGreaterThan(0);
      });
    }

    it('names every OCSF field it could not map', async () => {
      const response = await postOcsf(ocsfFinding({ severity_id: 0, evidences: [], finding_info: { uid: 'f-422', types: ['Recon'] } }));
      expect(response.statusCode).toBe(422);
      const body = response.json<{ error: { type: string; message: string; issues: { path: string }[] } }>();
      expect(body.error.type).toBe('AlertIncomplete');
      expect(body.error.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['severity_id', 'finding_info.types', 'evidences[].user']));
      for (const field of ['severity_id', 'finding_info.types', 'evidences[].user']) expect(body.error.message).toContain(field);
    });

    it('names the offending field in the issues of a schema error', async () => {
      const response = await postAlert({ ...alertFor(user), severity: 'urgent' });
      expect(response.statusCode).toBe(400);
      expect(response.json<{ error: { issues: { path: string }[] } }>().error.issues.map((i) => i.path)).toContain('body.severity');
    });

    it('started no run for any of them', async () => {
      expect(await runCount()).toBe(before);
    });
  });
});

describe('POST /v1/runs/:runId/approvals', () => {
  it('enforces separation of duties, roles, digest, single votes and state, then executes on quorum', async () => {
    const user = await org.user('priv', ['admins', 'vpn-users']);
    const sent = await postAlert(alertFor({ userName: user.userName }, { severity: 'critical' }), bearer('alice'));
    expect(sent.statusCode).toBe(202);
    const runId = sent.json<{ runId: string }>().runId;
    const waiting = await waitForRun(runId, ['awaiting_approval']);
    const digest = waiting.plan!.digest;
    const decide = (who: keyof typeof tokens, body: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: `/v1/runs/${runId}/approvals`, headers: { ...bearer(who), 'content-type': 'application/json' }, payload: JSON.stringify(body) });

    const self = await decide('alice', { decision: 'approve', planDigest: digest });
    expect([self.statusCode, self.json().error.type]).toEqual([403, 'SeparationOfDuties']);
    const operator = await decide('oscar', { decision: 'approve', planDigest: digest });
    expect([operator.statusCode, operator.json().error.type]).toEqual([403, 'MissingApproverRole']);
    const stale = await decide('bob', { decision: 'approve', planDigest: '0'.repeat(64) });
    expect([stale.statusCode, stale.json().error.type]).toEqual([409, 'StalePlanDigest']);
    const invalid = await decide('bob', { decision: 'maybe', planDigest: digest });
    expect(invalid.statusCode).toBe(400);
    const anonymous = await app.inject({ method: 'POST', url: `/v1/runs/${runId}/approvals`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ decision: 'approve', planDigest: digest }) });
    expect(anonymous.statusCode).toBe(401);

    const inbox = async (who: keyof typeof tokens) =>
      (await app.inject({ method: 'GET', url: '/v1/inbox', headers: bearer(who) })).json<{ runs: { runId: string; approvals: number; required: number }[] }>().runs.map((r) => r.runId);
    expect(await inbox('bob')).toContain(runId);
    expect(await inbox('carol')).toContain(runId);
    expect(await inbox('alice')).not.toContain(runId);
    expect(await inbox('oscar')).not.toContain(runId);

    const bob = await decide('bob', { decision: 'approve', planDigest: digest, comment: 'checked with HR' });
    expect(await inbox('bob')).not.toContain(runId);
    expect(await inbox('carol')).toContain(runId);
    expect(bob.statusCode).toBe(200);
    expect(bob.json()).toEqual({ status: 'awaiting_approval', approvals: 1, required: 2 });
    const again = await decide('bob', { decision: 'approve', planDigest: digest });
    expect([again.statusCode, again.json().error.type]).toEqual([409, 'DuplicateApproval']);
    const carol = await decide('carol', { decision: 'approve', planDigest: digest });
    expect(carol.json()).toEqual({ status: 'executing', approvals: 2, required: 2 });

    const run = await waitForRun(runId, ['completed', 'failed', 'needs_human']);
    expect(run.status).toBe('completed');
    expect(run.approvals.map((a) => [a.approver, a.channel, a.comment ?? null])).toEqual([
      ['bob', 'api', 'checked with HR'],
      ['carol', 'api', null],
    ]);
    const late = await decide('carol', { decision: 'reject', planDigest: digest });
    expect([late.statusCode, late.json().error.type]).toEqual([409, 'RunNotAwaitingApproval']);

    // Every refused attempt is in the ledger, with who, the channel and the reason.
    const refused = (await ledger.entries({ runId })).filter((e) => e.kind === 'approval.refused');
    expect(refused.map((e) => [e.actor, e.data.channel, e.data.reason])).toEqual([
      ['alice', 'api', 'SeparationOfDuties'],
      ['oscar', 'api', 'MissingApproverRole'],
      ['bob', 'api', 'StalePlanDigest'],
      ['bob', 'api', 'InvalidRequest'],
      ['bob', 'api', 'DuplicateApproval'],
      ['carol', 'api', 'RunNotAwaitingApproval'],
    ]);
  });

  it('answers 404 for an unknown run and 400 for a malformed run id', async () => {
    const unknown = await app.inject({ method: 'GET', url: `/v1/runs/run_${'0'.repeat(32)}`, headers: bearer('oscar') });
    expect(unknown.statusCode).toBe(404);
    const malformed = await app.inject({ method: 'GET', url: '/v1/runs/../../etc', headers: bearer('oscar') });
    expect([400, 404]).toContain(malformed.statusCode);
    const bad = await app.inject({ method: 'GET', url: '/v1/runs/not-a-run', headers: bearer('oscar') });
    expect(bad.statusCode).toBe(400);
  });
});

describe('GET /v1/runs filters and GET /v1/audit/verify', () => {
  it('refuses an unknown status or playbook filter', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/runs?status=bogus', headers: bearer('oscar') })).statusCode).toBe(400);
    const playbook = await app.inject({ method: 'GET', url: "/v1/runs?playbook=x'%20OR%20'1'='1", headers: bearer('oscar') });
    expect(playbook.statusCode).toBe(400);
  });

  it('verifies the ledger for operators only', async () => {
    const ok = await app.inject({ method: 'GET', url: '/v1/audit/verify', headers: bearer('oscar') });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ ok: true });
    expect(ok.json<{ entries: number }>().entries).toBeGreaterThan(10);
    expect((await app.inject({ method: 'GET', url: '/v1/audit/verify', headers: bearer('bob') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/v1/audit/verify' })).statusCode).toBe(401);
  });

  it('publishes an OpenAPI document of the routes', async () => {
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/alerts', '/v1/runs', '/v1/runs/{runId}', '/v1/runs/{runId}/approvals', '/healthz', '/v1/audit/verify']));
  });

  it('never writes a token or a signature to the logs', () => {
    const text = logLines.join('');
    expect(text.length).toBeGreaterThan(0);
    for (const value of Object.values(tokens)) expect(text).not.toContain(value);
    expect(text).not.toContain(hmacSecret.toString());
    now = Math.floor(Date.now() / 1000);
  });
});

describe('a tampered ledger', () => {
  it('is named, entry and reason, by the API and by `cordon audit verify` (exit code 10)', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'cordon-ledger-')), 'tampered.sqlite');
    const tampered = openSqliteLedger({ path });
    for (let n = 1; n <= 5; n++) await tampered.append({ kind: 'run.status', actor: 'cordon', runId: 'run_x', data: { n } });
    // Someone with access to the file removes the append-only triggers and rewrites entry 3.
    const db = new Database(path);
    db.exec('DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;');
    db.prepare('UPDATE ledger SET data = ? WHERE seq = 3').run(JSON.stringify({ n: 333 }));
    db.close();

    const server = await buildServer({ temporal: env.client, taskQueue: env.taskQueue, ledger: tampered, guardrailState: env.guardrailState, identities, log: pino({ level: 'silent' }) });
    await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const response = await server.inject({ method: 'GET', url: '/v1/audit/verify', headers: bearer('oscar') });
      expect(response.json()).toEqual({ ok: false, entries: 3, firstBad: { seq: 3, reason: 'content does not match its hash (modified)' } });

      const address = server.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const out: string[] = [];
      const code = await runCli(['--api', `http://127.0.0.1:${port}`, '--token', tokens.oscar, 'audit', 'verify'], { write: (l) => out.push(l), writeError: (l) => out.push(l), env: {} });
      expect(code).toBe(10);
      expect(out.join('\n')).toContain('ledger BROKEN at entry 3: content does not match its hash (modified)');
    } finally {
      await server.close();
      await tampered.close();
    }
  });
});
