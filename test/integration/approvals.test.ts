// The approval window on a real Temporal dev server: reminders at 50% and 80%, escalation to a second
// group of approvers, expiry (never approval), and the majority rule, with every stage told to the
// notification channels, shown in the inboxes (the API's and the web UI's) and written to the ledger;
// and the attempts the API refuses before they reach a run.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type { LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalNotice, ApprovalNotifier } from '../../activities/notify/types.js';
import type { ApprovalRequest, Identity, Role } from '../../domain/index.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine } from '../../policies/engine.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import type { InboxItem } from '../../server/routes/runs.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import { signForTest, testSigningKey } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';
import { rejectionOf } from '../support/errors.js';

let env: RemediationEnv;
const workers: RunningWorker[] = [];
const servers: CordonServer[] = [];
const alice: Identity = { name: 'alice', roles: ['soc', 'approver'] };
const tokens = { bob: `tok_bob_${randomBytes(16).toString('hex')}`, root: `tok_root_${randomBytes(16).toString('hex')}` };
const identities = identityStore({ bob: { token: tokens.bob, roles: ['approver'] }, root: { token: tokens.root, roles: ['admin'] } });
/** The API servers' log lines (warnings and above). */
const logLines: string[] = [];

/** A notification channel that keeps every notice, per run. */
function recordingNotifier(): ApprovalNotifier & { notices: ApprovalNotice[] } {
  const notices: ApprovalNotice[] = [];
  let n = 0;
  return {
    channel: 'test',
    notices,
    async notify(notice) {
      notices.push(notice);
      return { messageRef: notice.messageRef ?? `msg-${++n}` };
    },
  };
}

beforeAll(async () => {
  env = await startRemediationEnv();
});

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const worker of workers) await worker.stop();
  await env?.close();
});

/** An API over the runs of `taskQueue`, with the web UI's development sign-in (bob the approver, root the admin). */
async function serverFor(taskQueue: string): Promise<CordonServer> {
  const capture = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  const app = await buildServer({
    temporal: env.client,
    taskQueue,
    ledger: env.ledger,
    guardrailState: env.guardrailState,
    identities,
    approvalSigner: testSigningKey,
    ui: { publicUrl: 'http://127.0.0.1:8080', sessionSecret: randomBytes(32), devSignIn: true, devIdentities: { bob: ['approver'], root: ['admin'] } },
    log: pino({ level: 'warn' }, capture),
  });
  servers.push(app);
  return app;
}

function sessionCookie(response: LightMyRequestResponse): string {
  const header = response.headers['set-cookie'];
  const cookie = (Array.isArray(header) ? header : header ? [header] : []).map((c) => c.split(';')[0]!).find((c) => c.startsWith('cordon_ui='));
  if (!cookie) throw new Error(`no session cookie in the answer to ${response.raw.req.url}`);
  return cookie;
}

/** Signs `name` in to the web UI (the development sign-in); answers the session cookie. */
async function webSignIn(app: CordonServer, name: string): Promise<string> {
  const form = await app.inject({ method: 'GET', url: '/ui/dev-login' });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
  expect(csrf).toBeTruthy();
  const signedIn = await app.inject({
    method: 'POST',
    url: '/ui/dev-login',
    headers: { cookie: sessionCookie(form), 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: csrf!, name }).toString(),
  });
  expect(signedIn.statusCode).toBe(303);
  return sessionCookie(signedIn);
}

/** The web inbox's rows: each run with its stage (the `data-stage` of its badge) and the row's text. */
async function webInbox(app: CordonServer, cookie: string): Promise<Map<string, { stage: string | null; text: string }>> {
  const page = await app.inject({ method: 'GET', url: '/ui/', headers: { cookie } });
  expect(page.statusCode).toBe(200);
  const rows = new Map<string, { stage: string | null; text: string }>();
  for (const [, runId, row] of page.body.matchAll(/<tr data-run="(run_[0-9a-f]{32})">([\s\S]*?)<\/tr>/g)) {
    rows.set(runId!, { stage: /data-stage="([a-z0-9_]+)"/.exec(row!)?.[1] ?? null, text: row!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ') });
  }
  return rows;
}

/** `GET /v1/inbox` as `name`: each run with its stage. */
async function apiInbox(app: CordonServer, name: keyof typeof tokens): Promise<Map<string, string | null>> {
  const answer = await app.inject({ method: 'GET', url: '/v1/inbox', headers: { authorization: `Bearer ${tokens[name]}` } });
  expect(answer.statusCode).toBe(200);
  return new Map(answer.json<{ runs: InboxItem[] }>().runs.map((r) => [r.runId, r.stage]));
}

/** Polls until `check` answers a value (bounded). */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A worker of its own whose only approval policy carries `annotations`. */
async function workerWithPolicy(annotations: string, notifier: ApprovalNotifier): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-policies-'));
  await copyFile(join(DEFAULT_POLICY_DIR, 'schema.cedarschema'), join(dir, 'schema.cedarschema'));
  await writeFile(join(dir, 'approve.cedar'), `@id("test-approval")\n@decision("approve")\n${annotations}\npermit (principal, action, resource);\n`);
  const taskQueue = `${env.taskQueue}-${workers.length}`;
  workers.push(await startWorker({ taskQueue, connectors: { scim: env.connector }, ledger: env.ledger, policy: await loadPolicyEngine(dir), notifiers: [notifier] }));
  return taskQueue;
}

function decide(handle: WorkflowHandle, approver: string, roles: Role[], decision: ApprovalRequest['decision'], planDigest: string) {
  return handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, { approver, roles, decision, planDigest, channel: 'api' })] });
}

async function refusalType(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await rejectionOf(promise, WorkflowUpdateFailedError);
  return (error.cause as ApplicationFailure).type ?? undefined;
}

describe('the approval window', () => {
  it('reminds approvers at 50% and 80% of the window, showing each stage in the inboxes, then expires with nothing executed', async () => {
    const notifier = recordingNotifier();
    const queue = await workerWithPolicy('@approvers("2")\n@roles("approver")\n@expires("12s")', notifier);
    const server = await serverFor(queue);
    const bob = await webSignIn(server, 'bob');
    const user = await env.org.user('reminded', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);

    // Bob's inboxes, on the web and from the API, while the run waits: each stage in turn, until it leaves them.
    const seen = { web: [] as (string | null)[], api: [] as (string | null)[] };
    let expiringRow = '';
    const deadline = Date.now() + 40_000;
    for (let listed = false; ; ) {
      if (Date.now() > deadline) throw new Error(`the run never left bob's inboxes (seen ${JSON.stringify(seen)})`);
      const [web, api] = await Promise.all([webInbox(server, bob), apiInbox(server, 'bob')]);
      const row = web.get(handle.workflowId);
      if (row && row.stage !== seen.web.at(-1)) seen.web.push(row.stage);
      if (row?.stage === 'reminded_80') expiringRow = row.text;
      if (api.has(handle.workflowId) && api.get(handle.workflowId) !== seen.api.at(-1)) seen.api.push(api.get(handle.workflowId)!);
      if (row || api.has(handle.workflowId)) listed = true;
      else if (listed) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.web).toEqual(['waiting', 'reminded_50', 'reminded_80']);
    expect(seen.api).toEqual(['waiting', 'reminded_50', 'reminded_80']);
    expect(expiringRow).toContain('expiring');
    expect(expiringRow).toContain('0 of 2');

    const run = await waitForStatus(handle, ['expired', 'completed'], 30_000);
    expect(run.status).toBe('expired');
    expect(run.decision?.approvalStage).toBe('reminded_80');
    expect((await env.connector.readAccount({ id: user.id })).account.active).toBe(true);

    const entries = await env.ledger.entries({ runId: handle.workflowId });
    expect(entries.filter((e) => e.kind === 'approval.reminder').map((e) => e.data.elapsedPercent)).toEqual([50, 80]);
    const events = notifier.notices.filter((n) => n.runId === handle.workflowId).map((n) => [n.event, n.elapsedPercent ?? null, n.status]);
    expect(events).toEqual([
      ['requested', null, 'awaiting_approval'],
      ['reminder', 50, 'awaiting_approval'],
      ['reminder', 80, 'awaiting_approval'],
      ['finished', null, 'expired'],
    ]);
    // Later notices carry the message the first one created, so a channel can update it.
    expect(new Set(notifier.notices.filter((n) => n.runId === handle.workflowId && n.event !== 'requested').map((n) => n.messageRef))).toEqual(new Set(['msg-1']));
    await expectReplays(handle);
  });

  it('lets a second group decide once the approval escalates, and not before', async () => {
    const notifier = recordingNotifier();
    const queue = await workerWithPolicy('@approvers("1")\n@roles("approver")\n@expires("30s")\n@escalateAfter("2s")\n@escalateRoles("admin")', notifier);
    const server = await serverFor(queue);
    const root = await webSignIn(server, 'root');
    const bob = await webSignIn(server, 'bob');
    const user = await env.org.user('escalated', ['finance']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    expect(waiting.decision?.escalation).toEqual({ afterMs: 2000, roles: ['admin'] });
    const digest = waiting.plan!.digest;
    expect(await refusalType(decide(handle, 'root', ['admin'], 'approve', digest))).toBe('MissingApproverRole');

    const deadline = Date.now() + 20_000;
    while ((await handle.query(getRunQuery)).decision?.approvalStage !== 'escalated') {
      if (Date.now() > deadline) throw new Error('never escalated');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await handle.query(getRunQuery)).decision?.approverRoles).toEqual(['admin', 'approver']);
    // Now in root's inboxes too, and escalated in everyone's (the 50% reminder is 13 s away).
    const rootRow = await eventually("the run in root's web inbox", async () => (await webInbox(server, root)).get(handle.workflowId));
    expect(rootRow.stage).toBe('escalated');
    expect(rootRow.text).toContain('escalated');
    expect((await apiInbox(server, 'root')).get(handle.workflowId)).toBe('escalated');
    expect((await webInbox(server, bob)).get(handle.workflowId)?.stage).toBe('escalated');
    expect((await apiInbox(server, 'bob')).get(handle.workflowId)).toBe('escalated');
    await decide(handle, 'root', ['admin'], 'approve', digest);
    const done = await waitForStatus(handle, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.approvals.map((a) => a.approver)).toEqual(['root']);
    const entries = await env.ledger.entries({ runId: handle.workflowId });
    expect(entries.find((e) => e.kind === 'approval.escalated')?.data).toMatchObject({ roles: ['admin', 'approver'], afterMs: 2000 });
    expect(notifier.notices.filter((n) => n.runId === handle.workflowId).map((n) => n.event)).toEqual(['requested', 'escalated', 'decision', 'finished']);
    expect(notifier.notices.at(-1)?.status).toBe('completed');
  });
});

describe('rejection rules', () => {
  it('under majority, one rejection does not end the run: approvals reaching the quorum and outnumbering rejections execute it', async () => {
    const queue = await workerWithPolicy('@approvers("2")\n@roles("approver")\n@rejection("majority")', recordingNotifier());
    const user = await env.org.user('majority', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);
    const digest = (await waitForStatus(handle, ['awaiting_approval'])).plan!.digest;
    expect((await decide(handle, 'bob', ['approver'], 'reject', digest)).status).toBe('awaiting_approval');
    expect((await decide(handle, 'carol', ['approver'], 'approve', digest)).status).toBe('awaiting_approval');
    expect((await decide(handle, 'dave', ['approver'], 'approve', digest)).status).toBe('executing');
    const done = await waitForStatus(handle, ['completed', 'rejected', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.decision?.rejectionRule).toBe('majority');
  });

  it('under majority, rejections reaching the quorum reject the run', async () => {
    const queue = await workerWithPolicy('@approvers("2")\n@roles("approver")\n@rejection("majority")', recordingNotifier());
    const user = await env.org.user('majorityno', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);
    const digest = (await waitForStatus(handle, ['awaiting_approval'])).plan!.digest;
    await decide(handle, 'bob', ['approver'], 'reject', digest);
    expect((await decide(handle, 'carol', ['approver'], 'reject', digest)).status).toBe('rejected');
    expect((await waitForStatus(handle, ['rejected'])).error?.type).toBe('ApprovalRejected');
    expect((await env.connector.readAccount({ id: user.id })).account.active).toBe(true);
  });

  it('under reject-wins (the default), one rejection ends the run', async () => {
    const queue = await workerWithPolicy('@approvers("2")\n@roles("approver")', recordingNotifier());
    const user = await env.org.user('rejectwins', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);
    const digest = (await waitForStatus(handle, ['awaiting_approval'])).plan!.digest;
    await decide(handle, 'bob', ['approver'], 'approve', digest);
    expect((await decide(handle, 'carol', ['approver'], 'reject', digest)).status).toBe('rejected');
    expect((await waitForStatus(handle, ['rejected'])).decision?.rejectionRule).toBe('reject-wins');
  });
});

describe('attempts the API refuses before they reach the run', () => {
  let server: CordonServer;
  let runId: string;
  let planDigest: string;

  beforeAll(async () => {
    const queue = await workerWithPolicy('@approvers("2")\n@roles("approver")', recordingNotifier());
    server = await serverFor(queue);
    const user = await env.org.user('refusedapi', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);
    runId = handle.workflowId;
    planDigest = (await waitForStatus(handle, ['awaiting_approval'])).plan!.digest;
  });

  /** POSTs as bob, or with another token, or (null) with none. */
  const post = (url: string, payload: string, token: string | null = tokens.bob) =>
    server.inject({ method: 'POST', url, headers: { ...(token !== null ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' }, payload });

  it('writes a malformed decision from a caller with a valid token to the ledger, with the channel, the reason and the run when it exists', async () => {
    const since = (await env.ledger.head())?.seq ?? 0;
    expect((await post(`/v1/runs/${runId}/approvals`, JSON.stringify({ decision: 'maybe', planDigest }))).statusCode).toBe(400);
    expect((await post(`/v1/runs/${runId}/approvals`, JSON.stringify({ decision: 'approve', planDigest: 'abc', channel: 'cli' }))).statusCode).toBe(400);
    expect((await post(`/v1/runs/${runId}/approvals`, '{"decision": "appr')).statusCode).toBe(400);
    expect((await post('/v1/runs/run_nope/approvals', JSON.stringify({ decision: 'approve', planDigest }))).statusCode).toBe(400);
    const unknownRun = `run_${'e'.repeat(32)}`;
    const unknown = await post(`/v1/runs/${unknownRun}/approvals`, JSON.stringify({ decision: 'reject', planDigest }));
    expect([unknown.statusCode, unknown.json<{ error: { type: string } }>().error.type]).toEqual([404, 'NotFound']);

    const refused = (await env.ledger.entries({ afterSeq: since })).filter((e) => e.kind === 'approval.refused');
    expect(refused.map((e) => [e.actor, e.runId, e.data.channel, e.data.decision, e.data.reason, e.data.requestedRunId ?? null])).toEqual([
      ['bob', runId, 'api', null, 'InvalidRequest', null],
      ['bob', runId, 'cli', 'approve', 'InvalidRequest', null],
      ['bob', runId, 'api', null, 'InvalidRequest', null],
      ['bob', null, 'api', 'approve', 'InvalidRequest', null],
      ['bob', null, 'api', 'reject', 'NotFound', unknownRun],
    ]);
    expect(refused[0]?.planDigest).toBe(planDigest);
    expect(refused[0]?.data.message).toContain('decision');
    expect(refused[2]?.data.message).toContain('not valid JSON');
    expect(refused[3]?.data.message).toContain('runId');
    expect((await server.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: { authorization: `Bearer ${tokens.bob}` } })).json<{ approvals: unknown[] }>().approvals).toEqual([]);
  });

  it('writes nothing for an attempt without a valid token, and logs it as a security warning without the token', async () => {
    const since = (await env.ledger.head())?.seq ?? 0;
    const logged = logLines.length;
    const forged = `tok_${randomBytes(16).toString('hex')}`;
    expect((await post(`/v1/runs/${runId}/approvals`, JSON.stringify({ decision: 'approve', planDigest }), forged)).statusCode).toBe(401);
    expect((await post(`/v1/runs/${runId}/approvals`, JSON.stringify({ decision: 'approve', planDigest }), null)).statusCode).toBe(401);
    expect((await post(`/v1/runs/${runId}/approvals`, '{"decision": "appr', forged)).statusCode).toBe(401);
    expect((await env.ledger.entries({ afterSeq: since })).filter((e) => e.kind === 'approval.refused')).toEqual([]);

    const warnings = logLines.slice(logged).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(warnings.map((w) => [w.level, w.security, w.channel, w.reason, w.token])).toEqual([
      [40, true, 'api', 'Unauthenticated', 'invalid'],
      [40, true, 'api', 'Unauthenticated', 'absent'],
      [40, true, 'api', 'Unauthenticated', 'invalid'],
    ]);
    expect(logLines.join('')).not.toContain(forged);
  });
});
