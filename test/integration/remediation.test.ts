// The remediation workflow end to end on a real Temporal dev server and a real scim2-server:
// the auto path, approvals (quorum, separation of duties, stale digest, roles), rejection, expiry,
// denial, failures before any change, and cancellation.
import { WorkflowFailedError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import type { ApprovalRequest, Identity, SignedApproval } from '../../domain/index.js';
import { loadPolicyEngine, type PolicyEngine } from '../../policies/engine.js';
import type { Ledger } from '../../store/ledger.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import { signForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { copyDefaultPolicies } from '../support/policy-files.js';
import type { TestOrg, TestScim } from '../support/scim.js';
import { alertFor, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

const alice: Identity = { name: 'alice', roles: ['soc', 'approver'] };

let env: RemediationEnv;
let scim: TestScim;
let org: TestOrg;
let connector: DirectoryConnector;
let ledger: Ledger;
let policy: PolicyEngine;
let client: Client;
let worker: RunningWorker;

beforeAll(async () => {
  env = await startRemediationEnv();
  ({ scim, org, connector, ledger, policy, client } = env);
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: connector }, ledger, policy });
});

afterAll(async () => {
  await worker?.stop();
  await env?.close();
});

async function state(userId: string) {
  const snapshot = await connector.readAccount({ id: userId });
  return { active: snapshot.account.active, groups: snapshot.groups.map((g) => g.displayName).sort() };
}

function approval(handle: WorkflowHandle, request: ApprovalRequest) {
  return handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, request)] });
}

async function refusal(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) return error.cause.type ?? undefined;
    throw error;
  }
  throw new Error('the update was accepted');
}

describe('remediation workflow', () => {
  it('deprovisions an ordinary account automatically on a high-severity alert, with evidence and a ledger trail', async () => {
    const user = await org.user('dana', ['engineering', 'vpn-users', 'jira-users']);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }));

    const run = await waitForStatus(handle, ['completed', 'failed', 'needs_human']);
    expect(run.status).toBe('completed');
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['DisableAccount', 'RemoveGroupMembership', 'RemoveGroupMembership', 'RemoveGroupMembership']);
    expect(run.plan?.actions.every((a) => a.target.id === user.id)).toBe(true);
    expect(run.decision).toMatchObject({ outcome: 'auto', policies: ['auto-deprovision-on-high-severity'], requiredApprovals: 0 });
    expect(run.decision?.policySetHash).toBe(policy.policySetHash);
    expect(run.journal).toHaveLength(4);
    for (const entry of run.journal) {
      expect(entry.status).toBe('verified');
      expect(entry.changed).toBe(true);
      expect(entry.evidence.map((e) => e.kind)).toEqual(['before', 'verification']);
    }
    expect(run.timeline.map((t) => t.status)).toEqual(['observing', 'planning', 'deciding', 'executing', 'verifying', 'completed']);
    expect(await state(user.id)).toEqual({ active: false, groups: [] });

    const entries = await ledger.entries({ runId: handle.workflowId });
    const kinds = entries.map((e) => e.kind);
    for (const kind of ['run.received', 'run.observed', 'run.planned', 'policy.decided']) expect(kinds).toContain(kind);
    expect(kinds.filter((k) => k === 'action.applied')).toHaveLength(4);
    expect(kinds.filter((k) => k === 'action.verified')).toHaveLength(4);
    expect(entries.filter((e) => e.kind === 'run.status').at(-1)?.data).toMatchObject({ to: 'completed' });
    expect(entries.at(-1)?.kind).toBe('rollback.window_opened');
    expect(entries.filter((e) => e.kind.startsWith('action.')).every((e) => e.planDigest === run.plan?.digest)).toBe(true);
    expect((await ledger.verify()).ok).toBe(true);
    // The run stays open for its rollback window: 30 days by default.
    expect(Date.parse(run.rollbackUntil!) - Date.parse(run.updatedAt)).toBeGreaterThan(29 * 24 * 3_600_000);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    await expectReplays(handle);
  });

  it('waits for two distinct approvers for a member of admins, then executes', async () => {
    const user = await org.user('erin', ['admins', 'vpn-users']);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }, { severity: 'critical' }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    expect(waiting.decision).toMatchObject({ outcome: 'approve', requiredApprovals: 2, approverRoles: ['approver'], policies: ['privileged-needs-two-approvers'] });
    expect(waiting.decision?.approvalExpiresAt).not.toBeNull();
    expect(await state(user.id)).toEqual({ active: true, groups: ['admins', 'vpn-users'] });
    const digest = waiting.plan!.digest;

    const first = await approval(handle, { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest: digest, channel: 'cli' });
    expect(first).toEqual({ status: 'awaiting_approval', approvals: 1, required: 2 });
    expect((await handle.query(getRunQuery)).status).toBe('awaiting_approval');
    const second = await approval(handle, { approver: 'carol', roles: ['approver'], decision: 'approve', planDigest: digest, channel: 'api', comment: 'confirmed' });
    expect(second).toEqual({ status: 'executing', approvals: 2, required: 2 });

    const run = await waitForStatus(handle, ['completed', 'failed', 'needs_human']);
    expect(run.status).toBe('completed');
    expect(run.approvals.map((a) => [a.approver, a.decision, a.channel])).toEqual([
      ['bob', 'approve', 'cli'],
      ['carol', 'approve', 'api'],
    ]);
    expect(await state(user.id)).toEqual({ active: false, groups: [] });
    const approvals = (await ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'approval.recorded');
    expect(approvals.map((e) => e.actor)).toEqual(['bob', 'carol']);
    await expectReplays(handle);
  });

  it('refuses self-approval, stale digests, missing roles, double votes and malformed approvals without recording them', async () => {
    const user = await org.user('frank', ['admins']);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    const digest = waiting.plan!.digest;
    const base = { decision: 'approve' as const, planDigest: digest, channel: 'api' as const };

    expect(await refusal(approval(handle, { ...base, approver: 'alice', roles: ['soc', 'approver'] }))).toBe('SeparationOfDuties');
    expect(await refusal(approval(handle, { ...base, approver: 'bob', roles: ['approver'], planDigest: 'f'.repeat(64) }))).toBe('StalePlanDigest');
    expect(await refusal(approval(handle, { ...base, approver: 'oscar', roles: ['operator'] }))).toBe('MissingApproverRole');
    expect(await refusal(approval(handle, { ...base, approver: 'bob', roles: ['approver'], planDigest: 'not-a-digest' }))).toBe('InvalidApproval');
    await approval(handle, { ...base, approver: 'bob', roles: ['approver'] });
    expect(await refusal(approval(handle, { ...base, approver: 'bob', roles: ['approver'] }))).toBe('DuplicateApproval');
    expect(await refusal(approval(handle, { ...base, approver: 'bob', roles: ['approver'], decision: 'reject' }))).toBe('DuplicateApproval');

    const run = await handle.query(getRunQuery);
    expect(run.status).toBe('awaiting_approval');
    expect(run.approvals.map((a) => a.approver)).toEqual(['bob']);
    // Refused updates leave no trace in the history: only bob's was accepted.
    const history = await handle.fetchHistory();
    expect(history.events?.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length).toBe(1);

    await approval(handle, { ...base, approver: 'carol', roles: ['approver'], decision: 'reject', comment: 'wrong person' });
    const done = await waitForStatus(handle, ['rejected']);
    expect(done.error).toMatchObject({ type: 'ApprovalRejected' });
    // The run is over: a late approval cannot land anywhere.
    await expect(approval(handle, { ...base, approver: 'dave', roles: ['approver'] })).rejects.toThrow();
    await expectReplays(handle);
  });

  it('refuses approvals that do not come signed from the API: unsigned, foreign key, altered, replayed, expired, for another run', async () => {
    const user = await org.user('forge', ['admins']);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    const request: ApprovalRequest = { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest: waiting.plan!.digest, channel: 'api' };
    const send = (approval: unknown) => refusal(handle.executeUpdate(decideApprovalUpdate, { args: [approval as SignedApproval] }));

    expect(await send(request)).toBe('ForgedApproval');
    expect(await send(signForTest(handle.workflowId, request, Date.now(), { kid: 'test', privateKey: 'ab'.repeat(32) }))).toBe('ForgedApproval');
    expect(await send(signForTest(handle.workflowId, request, Date.now(), { kid: 'elsewhere', privateKey: 'ab'.repeat(32) }))).toBe('ForgedApproval');
    expect(await send({ ...signForTest(handle.workflowId, request), approver: 'carol' })).toBe('ForgedApproval');
    expect(await send({ ...signForTest(handle.workflowId, request), roles: ['approver', 'admin'] })).toBe('ForgedApproval');
    expect(await send(signForTest(handle.workflowId, request, Date.now() - 10 * 60_000))).toBe('ForgedApproval');
    expect(await send(signForTest(`run_${'0'.repeat(32)}`, request))).toBe('ForgedApproval');
    const genuine = signForTest(handle.workflowId, request);
    await handle.executeUpdate(decideApprovalUpdate, { args: [genuine] });
    expect(await send(genuine)).toBe('ForgedApproval');

    const run = await handle.query(getRunQuery);
    expect(run.approvals.map((a) => a.approver)).toEqual(['bob']);
    await handle.cancel();
  });

  it('ends rejected and changes nothing when one approver rejects', async () => {
    const user = await org.user('gina', ['admins', 'engineering']);
    const before = await state(user.id);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    await approval(handle, { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest: waiting.plan!.digest, channel: 'api' });
    const answer = await approval(handle, { approver: 'carol', roles: ['approver'], decision: 'reject', planDigest: waiting.plan!.digest, channel: 'api', comment: 'still employed' });
    expect(answer.status).toBe('rejected');

    const run = await waitForStatus(handle, ['rejected']);
    expect(run.error).toEqual({ type: 'ApprovalRejected', message: 'rejected by carol: still employed' });
    expect(run.journal.every((j) => j.status === 'pending')).toBe(true);
    expect(await state(user.id)).toEqual(before);
    const kinds = (await ledger.entries({ runId: handle.workflowId })).map((e) => e.kind);
    expect(kinds).not.toContain('action.started');
    expect(kinds.filter((k) => k === 'approval.recorded')).toHaveLength(2);
    await expectReplays(handle);
  });

  it('denies a member of break-glass without touching it', async () => {
    const user = await org.user('breakglass', ['break-glass', 'admins']);
    const before = await state(user.id);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }, { severity: 'critical' }));
    const run = await waitForStatus(handle, ['denied']);
    expect(run.decision?.outcome).toBe('deny');
    expect(run.decision?.policies).toEqual(['deny-break-glass']);
    expect(run.error?.type).toBe('PolicyDenied');
    expect(run.error?.message).toContain('deny-break-glass');
    expect(await state(user.id)).toEqual(before);
    await expectReplays(handle);
  });

  it('asks one approver on a medium-severity alert for an ordinary account', async () => {
    const user = await org.user('hal', ['sales']);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }, { severity: 'medium' }));
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    expect(waiting.decision).toMatchObject({ requiredApprovals: 1, policies: ['approve-deprovision-on-lower-severity'] });
    await approval(handle, { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest: waiting.plan!.digest, channel: 'api' });
    expect((await waitForStatus(handle, ['completed', 'needs_human', 'failed'])).status).toBe('completed');
  });

  it('fails without acting when the subject does not exist in the directory', async () => {
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: 'nobody.at.all' }));
    const run = await waitForStatus(handle, ['failed']);
    expect(run.error?.type).toBe('TargetNotFound');
    expect(run.plan).toBeNull();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    await expectReplays(handle);
  });

  it('completes with nothing to do when the account is already deprovisioned', async () => {
    const user = await org.user('ivy', []);
    await scim.client.patch('Users', user.id, [{ op: 'replace', path: 'active', value: false }]);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['completed']);
    expect(run.plan?.actions).toEqual([]);
    expect(run.journal).toEqual([]);
  });

  it('ends cancelled with nothing changed when cancelled while awaiting approval', async () => {
    const user = await org.user('jack', ['admins']);
    const before = await state(user.id);
    const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }), alice);
    await waitForStatus(handle, ['awaiting_approval']);
    await handle.cancel();
    const run = await waitForStatus(handle, ['cancelled']);
    expect(run.error?.type).toBe('Cancelled');
    expect(await state(user.id)).toEqual(before);
    await expectReplays(handle);
  });
});

describe('approval expiry', () => {
  let shortWorker: RunningWorker;
  let shortQueue: string;

  beforeAll(async () => {
    // The default policies with a 2-second approval window.
    const dir = await copyDefaultPolicies((text) =>
      text.replaceAll('@expires("24h")', '@expires("2s")').replace('@escalateAfter("12h")\n', '').replace('@escalateRoles("admin")\n', ''),
    );
    const shortPolicy = await loadPolicyEngine(dir);
    shortQueue = `${env.taskQueue}-expiry`;
    shortWorker = await startWorker({ taskQueue: shortQueue, connectors: { scim: connector }, ledger, policy: shortPolicy });
  });

  afterAll(async () => {
    await shortWorker?.stop();
  });

  it('ends expired with nothing executed when the approval window passes without a quorum', async () => {
    const user = await org.user('kim', ['admins', 'finance']);
    const before = await state(user.id);
    const handle = await startRun(client, shortQueue, alertFor({ userName: user.userName }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    await approval(handle, { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest: waiting.plan!.digest, channel: 'api' });

    const run = await waitForStatus(handle, ['expired'], 30_000);
    expect(run.error).toMatchObject({ type: 'ApprovalExpired' });
    expect(run.error?.message).toContain('1 of 2 approvals');
    expect(await state(user.id)).toEqual(before);
    const kinds = (await ledger.entries({ runId: handle.workflowId })).map((e) => e.kind);
    expect(kinds).toContain('approval.recorded');
    expect(kinds).not.toContain('action.started');
    await expectReplays(handle);
  });
});
