// The kill switch and the policy simulator through the HTTP API, on a real Temporal dev server, a
// real worker and a real scim2-server: 20 runs in flight are stopped before their next change, new
// alerts wait, everything resumes on release; the simulator starts no run and changes nothing.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { wrapConnector } from '../../activities/connectors/wrap.js';
import { runCli } from '../../cli/main.js';
import type { RunView } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { defaultDirection } from '../support/faults.js';
import { guardrailsFrom } from '../support/policy-files.js';
import { alertFor, startWorker, type RunningWorker } from '../support/temporal.js';

const token = () => `tok_${randomBytes(16).toString('hex')}`;
const tokens = { soc: token(), bob: token(), admin: token(), oscar: token() };
const identities = identityStore({
  soc: { token: tokens.soc, roles: ['soc'] },
  bob: { token: tokens.bob, roles: ['approver'] },
  admin: { token: tokens.admin, roles: ['admin'] },
  oscar: { token: tokens.oscar, roles: ['operator'] },
});

let env: RemediationEnv;
let worker: RunningWorker;
let app: CordonServer;
let apiUrl: string;
/** When each mutating call towards the directory started (ms since the epoch). */
const mutationStarts: number[] = [];

/** The real connector, recording when each mutation starts and holding it 300 ms so that runs overlap. */
function recording(inner: DirectoryConnector): DirectoryConnector {
  return wrapConnector(inner, async (operation, args, call) => {
    if (defaultDirection(operation, args) === undefined) return call();
    mutationStarts.push(Date.now());
    const result = await call();
    await new Promise((r) => setTimeout(r, 300));
    return result;
  });
}

beforeAll(async () => {
  env = await startRemediationEnv();
  worker = await startWorker({
    taskQueue: env.taskQueue,
    connectors: { scim: recording(env.connector) },
    ledger: env.ledger,
    policy: env.policy,
    guardrails: await guardrailsFrom('version: 1\n'),
    guardrailState: env.guardrailState,
  });
  app = await buildServer({ temporal: env.client, taskQueue: env.taskQueue, ledger: env.ledger, guardrailState: env.guardrailState, identities, log: pino({ level: 'silent' }) });
  apiUrl = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await env?.close();
});

const bearer = (name: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[name]}`, 'content-type': 'application/json' });

async function post(url: string, who: keyof typeof tokens, body: unknown) {
  return app.inject({ method: 'POST', url, headers: bearer(who), payload: JSON.stringify(body) });
}

async function run(runId: string): Promise<RunView> {
  return (await app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: bearer('oscar') })).json<RunView>();
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('kill switch', () => {
  it('lets only an admin flip it, with a reason, and shows its state', async () => {
    const scope = { kind: 'connector', name: 'scim' };
    expect((await post('/v1/kill-switch', 'bob', { scope, engaged: true, reason: 'test' })).statusCode).toBe(403);
    expect((await post('/v1/kill-switch', 'oscar', { scope, engaged: true, reason: 'test' })).statusCode).toBe(403);
    expect((await post('/v1/kill-switch', 'admin', { scope: { kind: 'planet', name: 'x' }, engaged: true, reason: 'test' })).statusCode).toBe(400);
    expect((await post('/v1/kill-switch', 'admin', { scope: { kind: 'playbook', name: 'no-such-playbook' }, engaged: true, reason: 'test' })).statusCode).toBe(400);
    expect((await post('/v1/kill-switch', 'admin', { scope, engaged: true })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/kill-switch' })).statusCode).toBe(401);
    const state = await app.inject({ method: 'GET', url: '/v1/kill-switch', headers: bearer('bob') });
    expect(state.json()).toEqual({ engaged: false, switches: [] });
  });

  it('stops 20 runs in flight before their next change, holds new alerts, and lets all of them finish on release', async () => {
    const users = await Promise.all(Array.from({ length: 20 }, (_, i) => env.org.user(`ks${i}`, ['engineering', 'vpn-users', 'jira-users'])));
    const runIds: string[] = [];
    for (const user of users) {
      const answer = await post('/v1/alerts', 'soc', alertFor({ userName: user.userName }));
      expect(answer.statusCode).toBe(202);
      runIds.push(answer.json<{ runId: string }>().runId);
    }
    // Engage once changes are under way but far from done (80 changes in all).
    await until('changes under way', async () => mutationStarts.length >= 10);
    const engaged = await post('/v1/kill-switch', 'admin', { scope: { kind: 'global' }, engaged: true, reason: 'incident 4711: suspicious deprovisioning' });
    expect(engaged.statusCode).toBe(200);
    const engagedAt = Date.now();

    await until('every unfinished run paused', async () => {
      const views = await Promise.all(runIds.map(run));
      return views.every((v) => v.status === 'completed' || (v.status === 'paused' && v.pausedReason === 'kill-switch'));
    });
    const views = await Promise.all(runIds.map(run));
    expect(views.filter((v) => v.status === 'paused').length).toBeGreaterThan(0);

    // A new alert is accepted, observed, planned and decided, and waits.
    const late = await env.org.user('late', ['sales']);
    const lateAnswer = await post('/v1/alerts', 'soc', alertFor({ userName: late.userName }));
    expect(lateAnswer.statusCode).toBe(202);
    const lateId = lateAnswer.json<{ runId: string }>().runId;
    await until('the new run paused', async () => (await run(lateId)).status === 'paused');
    const lateRun = await run(lateId);
    expect(lateRun.plan?.actions).toHaveLength(2);
    expect(lateRun.decision?.guardrails.killSwitches.map((k) => k.scope)).toEqual([{ kind: 'global' }]);
    expect((await env.connector.readAccount({ id: late.id })).account.active).toBe(true);

    // Nothing new started towards the directory 5 s after the switch, while it stayed engaged.
    await new Promise((r) => setTimeout(r, 6000));
    expect(mutationStarts.filter((t) => t > engagedAt + 5000)).toEqual([]);
    const heldAt = mutationStarts.length;

    const released = await post('/v1/kill-switch', 'admin', { scope: { kind: 'global' }, engaged: false, reason: 'incident 4711 closed' });
    expect(released.statusCode).toBe(200);
    await until('every run completed', async () => (await Promise.all([...runIds, lateId].map(run))).every((v) => v.status === 'completed'), 90_000);
    expect(mutationStarts.length).toBeGreaterThan(heldAt);
    for (const user of [...users, late]) expect((await env.connector.readAccount({ id: user.id })).account.active).toBe(false);

    const flips = (await env.ledger.entries()).filter((e) => e.kind.startsWith('kill-switch.'));
    expect(flips.map((e) => [e.kind, e.actor, e.data.reason])).toEqual([
      ['kill-switch.engaged', 'admin', 'incident 4711: suspicious deprovisioning'],
      ['kill-switch.released', 'admin', 'incident 4711 closed'],
    ]);
    const pausedEntries = (await env.ledger.entries({ runId: lateId })).filter((e) => e.kind === 'run.status' && e.data.to === 'paused');
    expect(pausedEntries).toHaveLength(1);
    expect(String(pausedEntries[0]?.data.reason)).toContain('kill-switch');
  });

  it('is flipped from the CLI as well', async () => {
    const lines: string[] = [];
    const io = { write: (l: string) => lines.push(l), writeError: (l: string) => lines.push(l), env: {} };
    const base = ['--api', apiUrl, '--token', tokens.admin];
    expect(await runCli([...base, 'kill-switch', 'on', '--playbook', 'deprovision-account', '--reason', 'new policy under review'], io)).toBe(0);
    expect(lines.join('\n')).toContain('kill switch playbook:deprovision-account ENGAGED by admin');
    expect(await runCli([...base, '--json', 'kill-switch', 'status'], io)).toBe(0);
    const status = JSON.parse(lines.at(-1)!) as { engaged: boolean };
    expect(status.engaged).toBe(true);
    expect(await runCli([...base, 'kill-switch', 'off', '--playbook', 'deprovision-account', '--reason', 'reviewed'], io)).toBe(0);
    expect(await runCli(['--api', apiUrl, '--token', tokens.bob, 'kill-switch', 'on', '--reason', 'not mine to flip'], io)).toBe(3);
  });
});

describe('policy simulator', () => {
  it('shows the plan and the decision for each action against the live target, and starts no run', async () => {
    const user = await env.org.user('sim', ['admins', 'finance']);
    const before = await env.connector.readAccount({ id: user.id });
    const runsBefore = (await env.client.workflow.count(`WorkflowType = 'remediationWorkflow' AND TaskQueue = '${env.taskQueue}'`)).count;
    const answer = await post('/v1/policy/evaluate', 'soc', alertFor({ userName: user.userName }, { severity: 'critical' }));
    expect(answer.statusCode).toBe(200);
    const body = answer.json<{ wouldRun: string; actions: { type: string; outcome: string; policies: string[] }[]; decision: RunView['decision'] }>();
    expect(body.wouldRun).toBe('approve');
    expect(body.actions.map((a) => a.type)).toEqual(['DisableAccount', 'RemoveGroupMembership', 'RemoveGroupMembership']);
    for (const action of body.actions) {
      expect(action.outcome).toBe('approve');
      expect(action.policies).toContain('privileged-needs-two-approvers');
    }
    expect(body.decision?.guardrails.guardrailsHash).toMatch(/^[0-9a-f]{64}$/);
    const after = await env.connector.readAccount({ id: user.id });
    expect({ active: after.account.active, groups: after.groups }).toEqual({ active: before.account.active, groups: before.groups });
    expect((await env.client.workflow.count(`WorkflowType = 'remediationWorkflow' AND TaskQueue = '${env.taskQueue}'`)).count).toBe(runsBefore);
    expect((await env.ledger.entries()).some((e) => e.kind === 'policy.simulated' && e.actor === 'soc')).toBe(true);

    const lines: string[] = [];
    const alertFile = join(await mkdtemp(join(tmpdir(), 'cordon-alert-')), 'alert.json');
    await writeFile(alertFile, JSON.stringify(alertFor({ userName: user.userName })));
    const code = await runCli(['--api', apiUrl, '--token', tokens.soc, 'policy', 'test', alertFile], { write: (l) => lines.push(l), writeError: (l) => lines.push(l), env: {} });
    expect(code).toBe(0);
    expect(lines.join('\n')).toContain('would run approve');
  });

  it('answers 404 for a subject the directory does not have, and 403 for a caller without the role', async () => {
    const missing = await post('/v1/policy/evaluate', 'soc', alertFor({ userName: 'nobody.simulated' }));
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.type).toBe('TargetNotFound');
    expect((await post('/v1/policy/evaluate', 'bob', alertFor({ userName: 'x' }))).statusCode).toBe(403);
  });
});
