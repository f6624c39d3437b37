// Guardrails on a real Temporal dev server and a real scim2-server: the blast-radius cap, dry runs
// (asked for, and forced by autonomy), budgets shared by concurrent runs, and drift between approval
// and execution.
import { randomBytes } from 'node:crypto';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runIdFor, type RunView } from '../../domain/index.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import { signForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { guardrailsFrom } from '../support/policy-files.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

let env: RemediationEnv;
const workers: RunningWorker[] = [];

beforeAll(async () => {
  env = await startRemediationEnv();
});

afterAll(async () => {
  for (const worker of workers) await worker.stop();
  await env?.close();
});

/** A worker of its own (own task queue) under these guardrails. */
async function workerWith(yaml: string): Promise<string> {
  const taskQueue = `${env.taskQueue}-${randomBytes(4).toString('hex')}`;
  workers.push(
    await startWorker({
      taskQueue,
      connectors: { scim: env.connector },
      ledger: env.ledger,
      policy: env.policy,
      guardrails: await guardrailsFrom(yaml),
      guardrailState: env.guardrailState,
    }),
  );
  return taskQueue;
}

async function state(userId: string) {
  const snapshot = await env.connector.readAccount({ id: userId });
  return { active: snapshot.account.active, groups: snapshot.groups.map((g) => g.displayName).sort() };
}

describe('blast-radius cap', () => {
  it('denies a plan over maxTargetsPerRun before any action, with the reason in the run and the ledger', async () => {
    const queue = await workerWith('version: 1\nplaybooks:\n  deprovision-account:\n    maxTargetsPerRun:\n      count: 3\n');
    const user = await env.org.user('wide', ['engineering', 'vpn-users', 'jira-users']);
    const before = await state(user.id);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['denied', 'completed']);
    expect(run.status).toBe('denied');
    expect(run.decision?.policies).toContain('guardrail:maxTargetsPerRun');
    expect(run.decision?.guardrails).toMatchObject({ maxTargetsPerRun: { count: 3 }, targets: 4, mode: 'live' });
    expect(run.error?.message).toMatch(/changes 4 directory objects; maxTargetsPerRun for deprovision-account is 3/);
    expect(await state(user.id)).toEqual(before);
    const entries = await env.ledger.entries({ runId: handle.workflowId });
    const decided = entries.find((e) => e.kind === 'policy.decided');
    expect(decided?.data).toMatchObject({ outcome: 'deny', guardrails: { targets: 4, maxTargetsPerRun: { count: 3 } } });
    expect(entries.some((e) => e.kind.startsWith('action.'))).toBe(false);
  });

  it('denies a plan over a percentage of the observed population', async () => {
    const queue = await workerWith('version: 1\nplaybooks:\n  deprovision-account:\n    maxTargetsPerRun:\n      count: 50\n      percentOfPopulation: 1\n');
    const user = await env.org.user('share', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['denied', 'completed']);
    expect(run.status).toBe('denied');
    // The test directory holds far fewer than 100 accounts, so one account is more than 1% of it.
    expect(run.decision?.guardrails.population).toBeGreaterThan(0);
    expect(run.decision?.guardrails.population).toBeLessThan(100);
    expect(run.error?.message).toMatch(/allows 1%/);
  });
});

describe('dry run', () => {
  it('observes, plans, decides and records everything, ends dry_run_completed, and changes nothing', async () => {
    const queue = await workerWith('version: 1\n');
    const user = await env.org.user('dry', ['engineering', 'finance']);
    const before = await state(user.id);
    const alert = alertFor({ userName: user.userName }, { mode: 'dry-run' });
    const handle = await startRun(env.client, queue, alert);
    expect(handle.workflowId).toBe(runIdFor(alert.source, alert.id, 'dry-run'));
    expect(handle.workflowId).not.toBe(runIdFor(alert.source, alert.id));
    const run = await waitForStatus(handle, ['dry_run_completed', 'completed', 'failed']);
    expect(run.status).toBe('dry_run_completed');
    expect(run.plan?.actions).toHaveLength(3);
    expect(run.decision).toMatchObject({ outcome: 'auto', guardrails: { mode: 'dry-run', autonomy: 'live' } });
    expect(await state(user.id)).toEqual(before);
    const kinds = (await env.ledger.entries({ runId: handle.workflowId })).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['run.received', 'run.observed', 'run.planned', 'policy.decided']));
    expect(kinds.some((k) => k.startsWith('action.'))).toBe(false);
    await expectReplays(handle);
  });

  it('is forced for every run of a playbook whose autonomy is dry-run', async () => {
    const queue = await workerWith('version: 1\nplaybooks:\n  deprovision-account:\n    autonomy: dry-run\n');
    const user = await env.org.user('newplaybook', ['sales']);
    const before = await state(user.id);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['dry_run_completed', 'completed']);
    expect(run.status).toBe('dry_run_completed');
    expect(run.decision?.guardrails).toMatchObject({ mode: 'dry-run', autonomy: 'dry-run' });
    expect(await state(user.id)).toEqual(before);
  });
});

describe('budgets across runs', () => {
  it('lets exactly 10 of 20 concurrent runs disable an account against a budget of 10, pausing the rest', async () => {
    const queue = await workerWith(
      'version: 1\nbudgets:\n  - name: disables\n    action: DisableAccount\n    playbook: deprovision-account\n    limit: 10\n    window: 1h\n',
    );
    const users = await Promise.all(Array.from({ length: 20 }, (_, i) => env.org.user(`budget${i}`, [])));
    const handles = await Promise.all(users.map((u) => startRun(env.client, queue, alertFor({ userName: u.userName }))));
    const settled = await Promise.all(handles.map((h) => waitForStatus(h, ['completed', 'paused', 'failed', 'needs_human'], 90_000)));

    const completed = settled.filter((r) => r.status === 'completed');
    const paused = settled.filter((r) => r.status === 'paused');
    expect(completed).toHaveLength(10);
    expect(paused).toHaveLength(10);
    for (const run of paused) {
      expect(run.pausedReason).toBe('budget');
      expect(run.journal.every((j) => j.status === 'pending')).toBe(true);
    }
    const disabled = (await Promise.all(users.map((u) => state(u.id)))).filter((s) => !s.active);
    expect(disabled).toHaveLength(10);
    const usage = await env.guardrailState.usage([{ name: 'disables', limit: 10, windowMs: 3_600_000 }]);
    expect(usage[0]?.used).toBe(10);

    // A paused run that is cancelled ends cancelled: it changed nothing.
    const pausedHandles = handles.filter((_, i) => settled[i]!.status === 'paused');
    await Promise.all(pausedHandles.map((h) => h.cancel()));
    const cancelled = await Promise.all(pausedHandles.map((h) => waitForStatus(h, ['cancelled', 'compensated'])));
    expect(cancelled.every((r) => r.status === 'cancelled')).toBe(true);
    expect((await Promise.all(users.map((u) => state(u.id)))).filter((s) => !s.active)).toHaveLength(10);
    await expectReplays(pausedHandles[0]!);
  });
});

describe('drift between approval and execution', () => {
  it('rebuilds the plan when the target changed, voids the approvals, and asks again', async () => {
    const queue = await workerWith('version: 1\n');
    const user = await env.org.user('drifter', ['admins', 'vpn-users', 'finance']);
    const alice = { name: 'alice', roles: ['soc', 'approver'] as ('soc' | 'approver')[] };
    const handle: WorkflowHandle = await startRun(env.client, queue, alertFor({ userName: user.userName }, { severity: 'critical' }), alice);
    const first = await waitForStatus(handle, ['awaiting_approval']);
    expect(first.plan?.actions).toHaveLength(4);
    const oldDigest = first.plan!.digest;

    // Someone removes the account from finance by hand while the approvers look at the plan.
    const finance = await env.org.groupId('finance');
    await env.scim.client.patch('Groups', finance, [{ op: 'remove', path: `members[value eq "${user.id}"]` }]);

    const approve = (approver: string, planDigest: string) =>
      handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, { approver, roles: ['approver'], decision: 'approve', planDigest, channel: 'api' })] });
    await approve('bob', oldDigest);
    await approve('carol', oldDigest);

    // Re-observed before executing: a new plan without finance, and the approvals are void.
    const deadline = Date.now() + 30_000;
    let second: RunView;
    for (;;) {
      second = await handle.query(getRunQuery);
      if (second.status === 'awaiting_approval' && second.plan?.digest !== oldDigest) break;
      if (Date.now() > deadline) throw new Error(`no second approval round (status ${second.status})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(second.plan?.actions).toHaveLength(3);
    expect(second.plan?.actions.some((a) => a.type === 'RemoveGroupMembership' && a.group.display === 'finance')).toBe(false);
    expect(second.approvals).toEqual([]);
    expect(second.voidedApprovals.map((a) => [a.approver, a.planDigest])).toEqual([
      ['bob', oldDigest],
      ['carol', oldDigest],
    ]);
    const stale = await approve('dave', oldDigest).catch((e: WorkflowUpdateFailedError) => e);
    expect(stale).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(((stale as WorkflowUpdateFailedError).cause as ApplicationFailure).type).toBe('StalePlanDigest');

    await approve('bob', second.plan!.digest);
    await approve('carol', second.plan!.digest);
    const done = await waitForStatus(handle, ['completed', 'failed', 'needs_human']);
    expect(done.status).toBe('completed');
    expect(done.journal.map((j) => j.actionId).sort()).toEqual(second.plan!.actions.map((a) => a.id).sort());
    expect(await state(user.id)).toEqual({ active: false, groups: [] });
    const drifted = (await env.ledger.entries({ runId: handle.workflowId })).find((e) => e.kind === 'plan.drifted');
    expect(drifted?.data).toMatchObject({ from: oldDigest, to: second.plan!.digest, voidedApprovals: ['bob', 'carol'] });
    await expectReplays(handle);
  });
});
