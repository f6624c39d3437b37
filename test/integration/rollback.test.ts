// Rollback and rerun of runs, through the HTTP API and the CLI, over a real Temporal dev server, real
// workers and a real scim2-server: whole and partial rollbacks, drifted targets left alone, a
// privileged rollback waiting for an approver, rollbacks after every process restarted, the window,
// forged requests, and reruns that find the work already done.
import { randomBytes } from 'node:crypto';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../cli/main.js';
import { APPROVAL_SIGNATURE_TTL_MS, signRollbackPayload, type RerunAccepted, type RollbackAccepted, type RunView, type SignedRollback } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { requestRollbackUpdate } from '../../workflows/messages.js';
import { signRollbackForTest, testSigningKey } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { guardrailsFrom } from '../support/policy-files.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

const token = (name: string) => `tok_${name}_${randomBytes(16).toString('hex')}`;
const tokens = { soc: token('soc'), bob: token('bob'), carol: token('carol'), oscar: token('oscar'), olga: token('olga') };
const identities = identityStore({
  soc: { token: tokens.soc, roles: ['soc'] },
  bob: { token: tokens.bob, roles: ['approver'] },
  carol: { token: tokens.carol, roles: ['approver'] },
  oscar: { token: tokens.oscar, roles: ['operator'] },
  // An operator who is also an approver: she still may not approve her own rollback.
  olga: { token: tokens.olga, roles: ['operator', 'approver'] },
});
type Who = keyof typeof tokens;

let env: RemediationEnv;
let worker: RunningWorker;
let app: CordonServer;

async function startApi(): Promise<CordonServer> {
  return buildServer({
    temporal: env.client,
    taskQueue: env.taskQueue,
    ledger: env.ledger,
    guardrailState: env.guardrailState,
    identities,
    approvalSigner: testSigningKey,
    log: pino({ level: 'silent' }),
  });
}

beforeAll(async () => {
  env = await startRemediationEnv();
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector }, ledger: env.ledger, policy: env.policy });
  app = await startApi();
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await env?.close();
});

const bearer = (who: Who) => ({ authorization: `Bearer ${tokens[who]}` });

function post(url: string, body: unknown, who: Who) {
  return app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...bearer(who) }, payload: JSON.stringify(body) });
}

async function view(runId: string): Promise<RunView> {
  const response = await app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: bearer('oscar') });
  expect(response.statusCode).toBe(200);
  return response.json<RunView>();
}

/** Polls the API until the run's status is one of `statuses` (and `until` holds, when given). */
async function waitFor(runId: string, statuses: string[], until: (run: RunView) => boolean = () => true): Promise<RunView> {
  const deadline = Date.now() + 60_000;
  let last: RunView | undefined;
  while (Date.now() < deadline) {
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: bearer('oscar') });
    if (response.statusCode === 200) {
      last = response.json<RunView>();
      if (statuses.includes(last.status) && until(last)) return last;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`run ${runId} never reached ${statuses.join('|')} (last: ${last?.status}, rollbacks: ${JSON.stringify(last?.rollbacks)})`);
}

async function state(userId: string) {
  const snapshot = await env.connector.readAccount({ id: userId });
  return { active: snapshot.account.active, groups: snapshot.groups.map((g) => g.displayName).sort() };
}

/** Sends an alert as soc through the API and waits until the run completes. */
async function completedRun(groups: string[], severity: 'high' | 'critical' = 'high'): Promise<{ runId: string; user: { id: string; userName: string }; run: RunView }> {
  const user = await env.org.user('rb', groups);
  const response = await post('/v1/alerts', alertFor({ userName: user.userName }, { severity }), 'soc');
  expect(response.statusCode).toBe(202);
  const { runId } = response.json<{ runId: string }>();
  const run = await waitFor(runId, ['completed', 'awaiting_approval', 'failed', 'denied']);
  return { runId, user, run };
}

/** The CLI against this test's API: listens on 127.0.0.1 for the duration of `fn`. */
async function withListeningApi<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const listening = await startApi();
  const url = await listening.listen({ host: '127.0.0.1', port: 0 });
  try {
    return await fn(url);
  } finally {
    await listening.close();
  }
}

async function runCliAt(url: string, args: string[], who: Who) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--api', url, '--token', tokens[who], ...args], { write: (l) => out.push(l), writeError: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('rollback of a completed run', () => {
  it('undoes every change, in reverse, restoring the account as it was observed, with evidence and a ledger trail', async () => {
    const groups = ['rb-engineering', 'rb-vpn', 'rb-wiki'];
    const { runId, user, run } = await completedRun(groups);
    expect(run.status).toBe('completed');
    expect(run.rollbackUntil).not.toBeNull();
    expect(await state(user.id)).toEqual({ active: false, groups: [] });

    const response = await post(`/v1/runs/${runId}/rollback`, { reason: 'false positive: contractor extended' }, 'oscar');
    expect(response.statusCode).toBe(202);
    const accepted = response.json<RollbackAccepted>();
    expect(accepted.rollbackId).toBe('rb_1');
    expect(accepted.actions.sort()).toEqual(run.plan!.actions.map((a) => a.id).sort());

    const done = await waitFor(runId, ['rolled_back']);
    expect(await state(user.id)).toEqual({ active: true, groups: [...groups].sort() });
    expect(done.rollbacks).toHaveLength(1);
    expect(done.rollbacks[0]).toMatchObject({ id: 'rb_1', status: 'rolled_back', requestedBy: 'oscar', reason: 'false positive: contractor extended', error: null });
    expect(done.rollbacks[0]!.decision).toMatchObject({ outcome: 'auto', policies: ['operator-rolls-back'] });
    expect(done.rollbacks[0]!.results.map((r) => r.outcome)).toEqual(['rolled_back', 'rolled_back', 'rolled_back', 'rolled_back']);
    // Undone in reverse: the last group first, the account last.
    expect(done.rollbacks[0]!.results.map((r) => r.actionId)).toEqual(run.plan!.actions.map((a) => a.id).reverse());
    for (const entry of done.journal) {
      expect(entry.status).toBe('rolled_back');
      expect(entry.evidence.map((e) => e.kind)).toEqual(['before', 'verification', 'rollback']);
    }
    expect(done.timeline.map((t) => t.status).slice(-2)).toEqual(['rolling_back', 'rolled_back']);

    const entries = await env.ledger.entries({ runId });
    const undone = entries.filter((e) => e.kind === 'action.rolled_back');
    expect(undone).toHaveLength(4);
    expect(undone.every((e) => e.actor === 'oscar' && e.data.rollbackId === 'rb_1')).toBe(true);
    for (const kind of ['rollback.window_opened', 'rollback.requested', 'rollback.checked', 'rollback.decided', 'rollback.finished']) expect(entries.map((e) => e.kind)).toContain(kind);
    expect((await env.ledger.verify()).ok).toBe(true);

    // Nothing is left to undo: a second rollback is refused, and changes nothing.
    const again = await post(`/v1/runs/${runId}/rollback`, { reason: 'once more' }, 'oscar');
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: { type: 'RollbackNotAllowed' } });
    await expectReplays(env.client.workflow.getHandle(runId));
  });

  it('undoes only the named actions, then the rest, from the CLI', async () => {
    const { runId, user, run } = await completedRun(['rbp-a', 'rbp-b', 'rbp-c']);
    const groupAction = run.plan!.actions.find((a) => a.type === 'RemoveGroupMembership' && a.group.display === 'rbp-b')!;
    await withListeningApi(async (url) => {
      const partial = await runCliAt(url, ['rollback', runId, '--actions', groupAction.id, '--reason', 'rbp-b is still needed'], 'oscar');
      expect(partial.err).toBe('');
      expect(partial.code).toBe(0);
      expect(partial.out).toContain(`rollback rb_1 of ${runId} accepted: 1 action(s) (${groupAction.id})`);
      const first = await waitFor(runId, ['partially_rolled_back']);
      expect(await state(user.id)).toEqual({ active: false, groups: ['rbp-b'] });
      expect(first.journal.find((j) => j.actionId === groupAction.id)?.status).toBe('rolled_back');
      expect(first.journal.filter((j) => j.status === 'verified')).toHaveLength(3);

      // An action already rolled back cannot be named again.
      const twice = await runCliAt(url, ['rollback', runId, '--actions', groupAction.id, '--reason', 'again'], 'oscar');
      expect(twice.code).not.toBe(0);
      expect(twice.err).toContain('UnknownAction');

      const rest = await runCliAt(url, ['rollback', runId, '--reason', 'the whole alert was wrong'], 'oscar');
      expect(rest.code).toBe(0);
      const all = await waitFor(runId, ['rolled_back']);
      expect(all.rollbacks.map((rb) => [rb.id, rb.status, rb.actions.length])).toEqual([
        ['rb_1', 'rolled_back', 1],
        ['rb_2', 'rolled_back', 3],
      ]);
      const shown = await runCliAt(url, ['runs', 'show', runId], 'oscar');
      expect(shown.out).toContain('rb_2  rolled_back  by oscar: the whole alert was wrong');
    });
    expect(await state(user.id)).toEqual({ active: true, groups: ['rbp-a', 'rbp-b', 'rbp-c'] });
  });

  it("leaves a target someone changed since the run alone, marks it drifted and undoes the rest", async () => {
    const { runId, user, run } = await completedRun(['rbd-a', 'rbd-b']);
    // Someone re-enables the account by hand after the run.
    await env.scim.client.patch('Users', user.id, [{ op: 'replace', path: 'active', value: true }]);
    const disable = run.plan!.actions.find((a) => a.type === 'DisableAccount')!;
    const userPatchesBefore = (await env.scim.requests()).filter((line) => line.includes(`PATCH /v2/Users/${user.id}`)).length;

    expect((await post(`/v1/runs/${runId}/rollback`, { reason: 'restore access' }, 'oscar')).statusCode).toBe(202);
    const done = await waitFor(runId, ['partially_rolled_back'], (r) => r.rollbacks[0]?.finishedAt !== null);
    expect(done.rollbacks[0]!.status).toBe('partially_rolled_back');
    const drifted = done.rollbacks[0]!.results.find((r) => r.actionId === disable.id);
    expect(drifted).toMatchObject({ outcome: 'drifted' });
    const entry = done.journal.find((j) => j.actionId === disable.id)!;
    expect(entry.status).toBe('drifted');
    expect(entry.evidence.at(-1)).toMatchObject({ kind: 'drift', observed: { active: true } });
    // The drifted account was not written to; the groups came back.
    const userPatchesAfter = (await env.scim.requests()).filter((line) => line.includes(`PATCH /v2/Users/${user.id}`)).length;
    expect(userPatchesAfter).toBe(userPatchesBefore);
    expect(await state(user.id)).toEqual({ active: true, groups: ['rbd-a', 'rbd-b'] });
    const checked = (await env.ledger.entries({ runId })).find((e) => e.kind === 'rollback.checked');
    expect(checked?.data.drifted).toEqual([{ actionId: disable.id, observed: expect.objectContaining({ active: true }) }]);
  });

  it('asks one approver before restoring privileged access; the operator who asked cannot approve it', async () => {
    const { runId, user, run } = await completedRun(['admins', 'rbx-vpn'], 'critical');
    expect(run.status).toBe('awaiting_approval');
    for (const who of ['bob', 'carol'] as const) {
      expect((await post(`/v1/runs/${runId}/approvals`, { decision: 'approve', planDigest: run.plan!.digest }, who)).statusCode).toBe(200);
    }
    await waitFor(runId, ['completed']);
    expect(await state(user.id)).toEqual({ active: false, groups: [] });

    expect((await post(`/v1/runs/${runId}/rollback`, { reason: 'admin was on leave, not gone' }, 'olga')).statusCode).toBe(202);
    const waiting = await waitFor(runId, ['awaiting_approval']);
    expect(waiting.openApproval).toMatchObject({ subject: 'rollback', requestedBy: 'olga', requiredApprovals: 1, approverRoles: ['approver'], approvals: [] });
    expect(waiting.openApproval!.digest).not.toBe(run.plan!.digest);
    expect(waiting.rollbacks[0]).toMatchObject({ status: 'awaiting_approval', decision: { outcome: 'approve', policies: expect.arrayContaining(['privileged-rollback-needs-approval']) } });
    // The plan's decision and its two approvals are still what the run shows as its own.
    expect(waiting.decision?.policies).toEqual(['privileged-needs-two-approvers']);
    expect(waiting.approvals.map((a) => a.approver)).toEqual(['bob', 'carol']);
    expect(await state(user.id)).toEqual({ active: false, groups: [] });

    const inbox = await app.inject({ method: 'GET', url: '/v1/inbox', headers: bearer('bob') });
    expect(inbox.json<{ runs: { runId: string; subject: string; planDigest: string }[] }>().runs).toContainEqual(expect.objectContaining({ runId, subject: 'rollback', planDigest: waiting.openApproval!.digest }));

    const own = await post(`/v1/runs/${runId}/approvals`, { decision: 'approve', planDigest: waiting.openApproval!.digest }, 'olga');
    expect(own.statusCode).toBe(403);
    expect(own.json()).toMatchObject({ error: { type: 'SeparationOfDuties' } });
    const stale = await post(`/v1/runs/${runId}/approvals`, { decision: 'approve', planDigest: run.plan!.digest }, 'bob');
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toMatchObject({ error: { type: 'StalePlanDigest' } });

    await withListeningApi(async (url) => {
      const approved = await runCliAt(url, ['approve', runId, '--comment', 'confirmed with HR'], 'bob');
      expect(approved.err).toBe('');
      expect(approved.out).toContain(`approved ${runId}: 1 of 1 approval(s)`);
    });
    const done = await waitFor(runId, ['rolled_back']);
    expect(done.rollbacks[0]).toMatchObject({ status: 'rolled_back', approvals: [expect.objectContaining({ approver: 'bob', decision: 'approve', comment: 'confirmed with HR' })] });
    expect(await state(user.id)).toEqual({ active: true, groups: ['admins', 'rbx-vpn'] });
    await expectReplays(env.client.workflow.getHandle(runId));
  });

  it('keeps the run and its rejected rollback as they were when the approver rejects', async () => {
    const { runId, user, run } = await completedRun(['admins'], 'critical');
    for (const who of ['bob', 'carol'] as const) await post(`/v1/runs/${runId}/approvals`, { decision: 'approve', planDigest: run.plan!.digest }, who);
    await waitFor(runId, ['completed']);
    await post(`/v1/runs/${runId}/rollback`, { reason: 'please restore' }, 'oscar');
    const waiting = await waitFor(runId, ['awaiting_approval']);
    const rejected = await post(`/v1/runs/${runId}/approvals`, { decision: 'reject', planDigest: waiting.openApproval!.digest, comment: 'still a leaver' }, 'bob');
    expect(rejected.statusCode).toBe(200);
    const done = await waitFor(runId, ['completed'], (r) => r.rollbacks[0]?.status === 'rejected');
    expect(done.rollbacks[0]!.error).toMatchObject({ type: 'ApprovalRejected' });
    expect(done.openApproval).toBeNull();
    expect(await state(user.id)).toEqual({ active: false, groups: [] });
  });

  it('still rolls back after the worker and the API have restarted', async () => {
    const { runId, user } = await completedRun(['rbr-a', 'rbr-b']);
    await app.close();
    await worker.stop();
    worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector }, ledger: env.ledger, policy: env.policy });
    app = await startApi();
    expect((await post(`/v1/runs/${runId}/rollback`, { reason: 'after the upgrade' }, 'oscar')).statusCode).toBe(202);
    await waitFor(runId, ['rolled_back']);
    expect(await state(user.id)).toEqual({ active: true, groups: ['rbr-a', 'rbr-b'] });
  });

  it('refuses bad requests with the field and the reason, and callers without the role, changing nothing', async () => {
    const { runId, user, run } = await completedRun(['rbq-a']);
    const noRole = await post(`/v1/runs/${runId}/rollback`, { reason: 'i would like to' }, 'bob');
    expect(noRole.statusCode).toBe(403);
    const noReason = await post(`/v1/runs/${runId}/rollback`, {}, 'oscar');
    expect(noReason.statusCode).toBe(400);
    expect(noReason.body).toContain('reason');
    const unknown = await post(`/v1/runs/${runId}/rollback`, { reason: 'a typo', actions: ['act_0000000000000000'] }, 'oscar');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ error: { type: 'UnknownAction' } });
    expect(unknown.json<{ error: { message: string } }>().error.message).toContain('act_0000000000000000 is not an action of this run');
    const noRun = await post(`/v1/runs/run_${'0'.repeat(32)}/rollback`, { reason: 'nothing there' }, 'oscar');
    expect(noRun.statusCode).toBe(404);
    const view = await waitFor(runId, ['completed']);
    expect(view.rollbacks).toEqual([]);
    expect(await state(user.id)).toEqual({ active: false, groups: [] });
    expect((await env.ledger.entries({ runId })).filter((e) => e.kind === 'rollback.refused').map((e) => e.data.refusal)).toEqual(['UnknownAction']);
    expect(run.plan!.actions).toHaveLength(2);
  });

  it('refuses a rollback sent straight to Temporal, unsigned, forged or replayed', async () => {
    const { runId, user } = await completedRun(['rbf-a']);
    const handle = env.client.workflow.getHandle(runId);
    const issuedAt = Date.now();
    const unsigned: Omit<SignedRollback, 'signature'> = {
      requester: 'mallory',
      roles: ['operator'],
      reason: 'let me back in',
      runId,
      issuedAt: new Date(issuedAt).toISOString(),
      expiresAt: new Date(issuedAt + APPROVAL_SIGNATURE_TTL_MS).toISOString(),
      nonce: randomBytes(16).toString('hex'),
      kid: testSigningKey.kid,
    };
    const forged = signRollbackPayload(unsigned, randomBytes(32).toString('hex'));
    const refusal = async (request: unknown) => {
      try {
        await handle.executeUpdate(requestRollbackUpdate, { args: [request as SignedRollback] });
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
        return ((error as WorkflowUpdateFailedError).cause as ApplicationFailure).type;
      }
    };
    expect(await refusal(unsigned)).toBe('ForgedRollback');
    expect(await refusal(forged)).toBe('ForgedRollback');
    expect(await refusal({ ...signRollbackPayload(unsigned, testSigningKey.privateKey), reason: 'altered after signing' })).toBe('ForgedRollback');
    const genuine = signRollbackForTest(runId, { requester: 'oscar', roles: ['operator'], reason: 'let me back in' });
    expect(await refusal({ ...genuine, roles: ['soc'] })).toBe('ForgedRollback');
    expect(await refusal(signRollbackForTest(runId, { requester: 'sam', roles: ['soc'], reason: 'let me back in' }))).toBe('Forbidden');
    expect(await refusal(genuine)).toBe('accepted');
    await waitFor(runId, ['rolled_back']);
    expect(await state(user.id)).toEqual({ active: true, groups: ['rbf-a'] });
  });
});

describe('rollback window', () => {
  let short: RunningWorker;
  const taskQueue = `rollback-window-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    short = await startWorker({
      taskQueue,
      connectors: { scim: env.connector },
      ledger: env.ledger,
      policy: env.policy,
      guardrails: await guardrailsFrom('version: 1\nplaybooks:\n  deprovision-account:\n    rollbackWindow: 2s\n'),
    });
  });
  afterAll(async () => short?.stop());

  it('ends the run when its window ends; a rollback after that is refused', async () => {
    const user = await env.org.user('rbw', ['rbw-a']);
    const handle: WorkflowHandle = await startRun(env.client, taskQueue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['completed']);
    expect(Date.parse(run.rollbackUntil!) - Date.parse(run.updatedAt)).toBeLessThanOrEqual(3000);
    await expect(handle.result()).resolves.toMatchObject({ status: 'completed' });
    const late = await post(`/v1/runs/${handle.workflowId}/rollback`, { reason: 'too late now' }, 'oscar');
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ error: { type: 'RollbackWindowClosed' } });
    expect(await state(user.id)).toEqual({ active: false, groups: [] });
    expect((await env.ledger.entries({ runId: handle.workflowId })).map((e) => e.kind)).toContain('rollback.window_closed');
  });
});

describe('rerun', () => {
  it('starts a new run from the same alert, linked both ways, which finds the work done and changes nothing', async () => {
    const { runId, user } = await completedRun(['rrn-a', 'rrn-b']);
    const patchesBefore = (await env.scim.requests()).filter((line) => line.includes('"PATCH ')).length;
    const rerun = await withListeningApi((url) => runCliAt(url, ['--json', 'rerun', runId], 'oscar'));
    expect(rerun.code).toBe(0);
    const accepted = JSON.parse(rerun.out) as RerunAccepted;
    expect(accepted).toMatchObject({ rerunOf: runId, mode: 'live' });
    expect(accepted.runId).not.toBe(runId);

    const second = await waitFor(accepted.runId, ['completed']);
    expect(second.rerunOf).toBe(runId);
    expect(second.alert.id).toBe((await view(runId)).alert.id);
    expect(second.plan?.actions).toEqual([]);
    expect(second.journal).toEqual([]);
    expect(second.requestedBy).toBe('oscar');
    const patchesAfter = (await env.scim.requests()).filter((line) => line.includes('"PATCH ')).length;
    expect(patchesAfter).toBe(patchesBefore);
    expect(await state(user.id)).toEqual({ active: false, groups: [] });

    // The original lists its reruns (from Temporal visibility, which may lag a moment).
    const original = await waitFor(runId, ['completed'], (r) => r.reruns.includes(accepted.runId));
    expect(original.reruns).toEqual([accepted.runId]);
  });

  it('reruns as a dry run: observes, plans and decides the remaining work, and changes nothing', async () => {
    const { runId, user } = await completedRun(['rrd-a']);
    // Someone put the account back in its group by hand: a rerun would find work to do.
    await env.scim.client.patch('Groups', await env.org.groupId('rrd-a'), [{ op: 'add', path: 'members', value: [{ value: user.id }] }]);
    const response = await post(`/v1/runs/${runId}/rerun`, { mode: 'dry-run' }, 'oscar');
    expect(response.statusCode).toBe(202);
    const { runId: rerunId } = response.json<RerunAccepted>();
    const dry = await waitFor(rerunId, ['dry_run_completed']);
    expect(dry.plan?.actions.map((a) => a.type)).toEqual(['RemoveGroupMembership']);
    expect(await state(user.id)).toEqual({ active: false, groups: ['rrd-a'] });
    expect((await post(`/v1/runs/${runId}/rerun`, { mode: 'sideways' }, 'oscar')).statusCode).toBe(400);
    expect((await post(`/v1/runs/${runId}/rerun`, { mode: 'live' }, 'soc')).statusCode).toBe(403);
  });
});
