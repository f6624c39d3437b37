// Failure paths of the remediation workflow on a real Temporal dev server and a real scim2-server:
// a failure at every action k undoes actions 1..k-1 and leaves the directory as observed; an undo
// that fails, or a change that does not hold, ends `needs_human`; cancellation mid-execution undoes.
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import type { PolicyEngine } from '../../policies/engine.js';
import type { Ledger } from '../../store/ledger.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { withFaults, type FaultPlan } from '../support/faults.js';
import type { TestOrg } from '../support/scim.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus } from '../support/temporal.js';

let env: RemediationEnv;
let org: TestOrg;
let connector: DirectoryConnector;
let ledger: Ledger;
let policy: PolicyEngine;
let client: Client;

beforeAll(async () => {
  env = await startRemediationEnv();
  ({ org, connector, ledger, policy, client } = env);
});

afterAll(async () => {
  await env?.close();
});

const GROUPS = ['engineering', 'vpn-users', 'jira-users'];

/** The directory state of an account: what a remediation changes and an undo must restore. */
async function state(userId: string) {
  const snapshot = await connector.readAccount({ id: userId });
  return { active: snapshot.account.active, groups: snapshot.groups.map((g) => g.id).sort() };
}

/** Runs one deprovisioning with `faults` injected into the connector, on a worker of its own. */
async function runWithFaults(faults: FaultPlan | ((userId: string, groupIds: string[]) => FaultPlan)) {
  const user = await org.user('faulty', GROUPS);
  const groupIds = await Promise.all(GROUPS.map((g) => org.groupId(g)));
  const before = await state(user.id);
  const plan = typeof faults === 'function' ? faults(user.id, groupIds) : faults;
  const taskQueue = `${env.taskQueue}-${randomBytes(4).toString('hex')}`;
  const faulty = withFaults(connector, plan);
  const worker = await startWorker({ taskQueue, connectors: { scim: faulty }, ledger, policy });
  try {
    const handle = await startRun(client, taskQueue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['completed', 'compensated', 'needs_human', 'failed']);
    await expectReplays(handle);
    return { user, before, run, handle, after: await state(user.id), ledgerEntries: await ledger.entries({ runId: handle.workflowId }) };
  } finally {
    await worker.stop();
  }
}

describe('compensation', () => {
  // The plan is: 1 DisableAccount, then 2..4 RemoveGroupMembership (groups sorted by name).
  for (const k of [1, 2, 3, 4]) {
    const name = k === 1 ? 'changes nothing when the first action fails' : `undoes actions 1..${k - 1} in reverse when action ${k} fails, leaving the directory as it was observed`;
    it(name, async () => {
      const { run, before, after, ledgerEntries } = await runWithFaults({ failApplyBefore: k });
      expect(run.status).toBe('compensated');
      expect(run.error?.type).toBe('ActionFailed');
      expect(after).toEqual(before);
      const actions = run.plan!.actions;
      expect(actions).toHaveLength(4);
      actions.forEach((action, index) => {
        const entry = run.journal.find((j) => j.actionId === action.id)!;
        if (index < k - 1) expect(entry.status).toBe('compensated');
        else if (index === k - 1) {
          expect(entry.status).toBe('failed');
          expect(entry.error?.type).toBe('InjectedFault');
        } else expect(entry.status).toBe('pending');
      });
      const compensated = ledgerEntries.filter((e) => e.kind === 'action.compensated').map((e) => e.data.actionId);
      // Undone in reverse order of application.
      expect(compensated).toEqual(actions.slice(0, k).map((a) => a.id).reverse());
      expect(run.timeline.map((t) => t.status)).toContain('compensating');
    });
  }

  it('undoes the failing action too when it took effect before its call failed', async () => {
    const { run, before, after } = await runWithFaults({ failApplyAfter: 2 });
    expect(run.status).toBe('compensated');
    expect(after).toEqual(before);
    const second = run.journal.find((j) => j.actionId === run.plan!.actions[1]!.id)!;
    expect(second.status).toBe('compensated');
  });

  it('ends needs_human when an undo fails, and says which', async () => {
    const { run, before, after, user } = await runWithFaults((userId) => ({ failApplyBefore: 3, failUndoOf: [userId] }));
    expect(run.status).toBe('needs_human');
    expect(run.error?.type).toBe('CompensationFailed');
    const [disable, firstGroup] = run.plan!.actions;
    expect(run.journal.find((j) => j.actionId === disable!.id)).toMatchObject({ status: 'compensation_failed', error: { type: 'InjectedFault' } });
    expect(run.journal.find((j) => j.actionId === firstGroup!.id)?.status).toBe('compensated');
    // The membership came back; the account could not be re-enabled, which is what a person must finish.
    expect(after.groups).toEqual(before.groups);
    expect(after.active).toBe(false);
    expect(user.id).toBe(disable!.target.id);
  });

  it('compensates and escalates when a change does not hold on verification', async () => {
    const { run, before, after, ledgerEntries } = await runWithFaults({ lieOnApply: 2 });
    expect(run.status).toBe('needs_human');
    expect(run.error?.type).toBe('VerificationFailed');
    const second = run.plan!.actions[1]!;
    expect(run.error?.message).toContain(second.id);
    expect(ledgerEntries.some((e) => e.kind === 'action.verification_failed' && e.data.actionId === second.id)).toBe(true);
    expect(after).toEqual(before);
  });

  it('undoes what was applied when the run is cancelled mid-execution', async () => {
    const user = await org.user('cancel', GROUPS);
    const before = await state(user.id);
    const taskQueue = `${env.taskQueue}-cancel`;
    const worker = await startWorker({ taskQueue, connectors: { scim: withFaults(connector, { delayAfterApply: { n: 2, ms: 2000 } }) }, ledger, policy });
    try {
      const handle = await startRun(client, taskQueue, alertFor({ userName: user.userName }));
      // Wait until the second action reached the directory, then cancel while its call is in flight.
      const deadline = Date.now() + 30_000;
      while ((await state(user.id)).groups.length === 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await handle.cancel();
      const run = await waitForStatus(handle, ['compensated', 'needs_human', 'cancelled']);
      expect(run.status).toBe('compensated');
      expect(run.error?.type).toBe('Cancelled');
      expect(await state(user.id)).toEqual(before);
      await expectReplays(handle);
    } finally {
      await worker.stop();
    }
  });
});
