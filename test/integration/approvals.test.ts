// The approval window on a real Temporal dev server: reminders at 50% and 80%, escalation to a second
// group of approvers, expiry (never approval), and the majority rule, with every stage told to the
// notification channels and written to the ledger.
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalNotice, ApprovalNotifier } from '../../activities/notify/types.js';
import type { ApprovalRequest, Identity, Role } from '../../domain/index.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine } from '../../policies/engine.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import { signForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';
import { rejectionOf } from '../support/errors.js';

let env: RemediationEnv;
const workers: RunningWorker[] = [];
const alice: Identity = { name: 'alice', roles: ['soc', 'approver'] };

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
  for (const worker of workers) await worker.stop();
  await env?.close();
});

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
  it('reminds approvers at 50% and 80% of the window, then expires with nothing executed', async () => {
    const notifier = recordingNotifier();
    const queue = await workerWithPolicy('@approvers("2")\n@roles("approver")\n@expires("4s")', notifier);
    const user = await env.org.user('reminded', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }), alice);
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
