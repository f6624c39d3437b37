// The kill switch and the policy simulator through the HTTP API, on a real Temporal dev server, a
// real worker and a real scim2-server: 20 runs in flight are stopped before their next change, new
// alerts wait, everything resumes on release, however long after the approval window; a rollback
// pauses before its undos and finishes on release; the simulator starts no run and changes nothing.
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
import { loadPolicyEngine } from '../../policies/engine.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { decideApprovalUpdate, getRunQuery, requestRollbackUpdate } from '../../workflows/messages.js';
import { signForTest, signRollbackForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { defaultDirection } from '../support/faults.js';
import { copyDefaultPolicies, guardrailsFrom } from '../support/policy-files.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

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

describe('kill switch pauses without a deadline, and rollbacks pause too', () => {
  let short: RunningWorker;
  const taskQueue = `kill-switch-short-${randomBytes(4).toString('hex')}`;
  const bob = (runId: string, planDigest: string) => signForTest(runId, { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest, channel: 'api' });

  beforeAll(async () => {
    // Approval windows of 15 seconds, so that a pause can outlast one.
    const policyDir = await copyDefaultPolicies((cedar) => cedar.replaceAll('@expires("24h")', '@expires("15s")').replace('@escalateAfter("12h")\n', '').replace('@escalateRoles("admin")\n', ''));
    short = await startWorker({
      taskQueue,
      connectors: { scim: env.connector },
      ledger: env.ledger,
      policy: await loadPolicyEngine(policyDir),
      guardrails: await guardrailsFrom('version: 1\n'),
      guardrailState: env.guardrailState,
    });
  });

  afterAll(async () => {
    await short?.stop();
  });

  it('holds a run paused by the kill switch past the end of its approval window, and resumes it on release', async () => {
    const scope = { kind: 'playbook', name: 'deprovision-account' } as const;
    const user = await env.org.user('kshold', ['ks-wiki']);
    await env.guardrailState.setKillSwitch(scope, true, 'admin', 'hold past the window');
    try {
      const handle = await startRun(env.client, taskQueue, alertFor({ userName: user.userName }, { severity: 'medium' }));
      const waiting = await waitForStatus(handle, ['awaiting_approval', 'failed', 'denied']);
      expect(waiting.status).toBe('awaiting_approval');
      await handle.executeUpdate(decideApprovalUpdate, { args: [bob(handle.workflowId, waiting.plan!.digest)] });
      const paused = await waitForStatus(handle, ['paused', 'completed', 'expired', 'compensated', 'failed']);
      expect(paused).toMatchObject({ status: 'paused', pausedReason: 'kill-switch' });

      // The window ends (15 s after the approval round opened), and the run looks at the switch again
      // every 3 s: it is still paused, having changed nothing.
      const windowEnd = Date.parse(paused.decision!.approvalExpiresAt!);
      await until('the approval window is over', async () => Date.now() > windowEnd + 4000, 30_000);
      const held = await handle.query(getRunQuery);
      expect(held).toMatchObject({ status: 'paused', pausedReason: 'kill-switch', error: null });
      expect(held.journal.every((j) => j.status === 'pending')).toBe(true);
      expect((await env.connector.readAccount({ id: user.id })).account.active).toBe(true);

      await env.guardrailState.setKillSwitch(scope, false, 'admin', 'released');
      const done = await waitForStatus(handle, ['completed', 'expired', 'compensated', 'failed']);
      expect(done.status).toBe('completed');
      expect(done.pausedReason).toBeNull();
      expect(done.timeline.map((t) => t.status)).toEqual(expect.arrayContaining(['paused', 'executing', 'verifying', 'completed']));
      const after = await env.connector.readAccount({ id: user.id });
      expect({ active: after.account.active, groups: after.groups }).toEqual({ active: false, groups: [] });
      await expectReplays(handle);
    } finally {
      await env.guardrailState.setKillSwitch(scope, false, 'admin', 'test over');
    }
  });

  it('re-observes a run held before its first change once released, and acts only on what still needs doing', async () => {
    const scope = { kind: 'playbook', name: 'deprovision-account' } as const;
    const user = await env.org.user('ksdrift', ['ks-left', 'ks-gone']);
    await env.guardrailState.setKillSwitch(scope, true, 'admin', 'hold, then the target changes');
    try {
      const handle = await startRun(env.client, taskQueue, alertFor({ userName: user.userName }));
      const paused = await waitForStatus(handle, ['paused', 'completed', 'failed', 'denied']);
      expect(paused).toMatchObject({ status: 'paused', pausedReason: 'kill-switch' });
      expect(paused.plan?.actions).toHaveLength(3);

      // Someone takes the account out of one group by hand while the run is held.
      const gone = await env.org.groupId('ks-gone');
      await env.connector.removeGroupMember!({ id: gone }, { id: user.id });
      await env.guardrailState.setKillSwitch(scope, false, 'admin', 'released');

      const done = await waitForStatus(handle, ['completed', 'expired', 'compensated', 'failed']);
      expect(done.status).toBe('completed');
      expect(done.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type))).toEqual(['DisableAccount', 'ks-left']);
      expect(done.plan?.digest).not.toBe(paused.plan?.digest);
      expect(done.timeline.map((t) => t.status)).toEqual(expect.arrayContaining(['paused', 'observing', 'executing', 'completed']));
      const drifted = (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'plan.drifted');
      expect(drifted.map((e) => [e.data.from, e.data.to])).toEqual([[paused.plan!.digest, done.plan!.digest]]);
      const after = await env.connector.readAccount({ id: user.id });
      expect({ active: after.account.active, groups: after.groups }).toEqual({ active: false, groups: [] });
      await expectReplays(handle);
    } finally {
      await env.guardrailState.setKillSwitch(scope, false, 'admin', 'test over');
    }
  });

  it('pauses a rollback before its undos while a kill switch is engaged, and finishes it on release', async () => {
    const scope = { kind: 'connector', name: 'scim' } as const;
    const user = await env.org.user('ksrb', ['ksrb-a', 'ksrb-b']);
    const handle = await startRun(env.client, taskQueue, alertFor({ userName: user.userName }));
    const completed = await waitForStatus(handle, ['completed', 'failed', 'needs_human']);
    expect(completed.status).toBe('completed');
    expect((await env.connector.readAccount({ id: user.id })).account.active).toBe(false);

    await env.guardrailState.setKillSwitch(scope, true, 'admin', 'directory maintenance');
    try {
      await handle.executeUpdate(requestRollbackUpdate, { args: [signRollbackForTest(handle.workflowId, { requester: 'oscar', roles: ['operator'], reason: 'false positive' })] });
      const paused = await waitForStatus(handle, ['paused', 'rolled_back', 'completed']);
      expect(paused).toMatchObject({ status: 'paused', pausedReason: 'kill-switch' });
      expect(paused.rollbacks[0]).toMatchObject({ id: 'rb_1', status: 'rolling_back', results: [], error: null });
      // Decided as ever (the operator may roll back), with the engaged switch in the decision record.
      expect(paused.rollbacks[0]!.decision).toMatchObject({ outcome: 'auto', policies: ['operator-rolls-back'] });
      expect(paused.rollbacks[0]!.decision!.guardrails.killSwitches.map((k) => k.scope)).toEqual([scope]);
      const entries = await env.ledger.entries({ runId: handle.workflowId });
      const decided = entries.find((e) => e.kind === 'rollback.decided');
      expect(decided?.data).toMatchObject({ outcome: 'auto', guardrails: { mode: 'live', killSwitches: [{ scope, engaged: true, reason: 'directory maintenance' }] } });
      expect((decided?.data.guardrails as { guardrailsHash: string }).guardrailsHash).toMatch(/^[0-9a-f]{64}$/);
      expect(entries.some((e) => e.kind === 'action.rolled_back')).toBe(false);
      const held = await env.connector.readAccount({ id: user.id });
      expect({ active: held.account.active, groups: held.groups }).toEqual({ active: false, groups: [] });
    } finally {
      await env.guardrailState.setKillSwitch(scope, false, 'admin', 'maintenance over');
    }

    const done = await waitForStatus(handle, ['rolled_back', 'partially_rolled_back', 'completed']);
    expect(done.status).toBe('rolled_back');
    expect(done.pausedReason).toBeNull();
    expect(done.rollbacks[0]).toMatchObject({ status: 'rolled_back', error: null });
    expect(done.rollbacks[0]!.results.map((r) => r.outcome)).toEqual(['rolled_back', 'rolled_back', 'rolled_back']);
    const statuses = done.timeline.map((t) => t.status);
    expect(statuses.slice(statuses.indexOf('rolling_back'))).toEqual(['rolling_back', 'paused', 'rolling_back', 'rolled_back']);
    const restored = await env.connector.readAccount({ id: user.id });
    expect({ active: restored.account.active, groups: restored.groups.map((g) => g.displayName).sort() }).toEqual({ active: true, groups: ['ksrb-a', 'ksrb-b'] });
    await expectReplays(handle);
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
    // The simulation's record names the guardrail values it was decided under, not only their hash.
    const simulated = (await env.ledger.entries()).find((e) => e.kind === 'policy.simulated' && e.actor === 'soc');
    expect(simulated?.data).toMatchObject({
      outcome: 'approve',
      policies: ['privileged-needs-two-approvers'],
      guardrails: { mode: 'live', targets: 3, budgets: [], killSwitches: [], guardrailsHash: body.decision?.guardrails.guardrailsHash },
    });
    expect(simulated?.data.perAction).toHaveLength(3);

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
