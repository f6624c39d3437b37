// The non-human identity playbooks on a real Temporal dev server and a real AWS IAM endpoint (moto):
// revoke-credential, quarantine-agent and entitlement-cleanup, each on the auto path and the approval
// path, with a failure at every action undone, a change that does not hold escalated, and a repeated
// action that changes nothing the second time.
import { randomBytes } from 'node:crypto';
import { CreatePolicyCommand, GetAccessKeyLastUsedCommand, ListAccessKeysCommand, ListAttachedRolePoliciesCommand, ListAttachedUserPoliciesCommand, ListGroupsForUserCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIamConnector, type IamConnector } from '../../activities/connectors/aws/iam-connector.js';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { wrapConnector } from '../../activities/connectors/wrap.js';
import { createRemediationActivities } from '../../activities/remediation.js';
import type { Alert, Identity, RunView } from '../../domain/index.js';
import { decideApprovalUpdate, requestRollbackUpdate } from '../../workflows/messages.js';
import { signForTest, signRollbackForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { withFaults, type FaultPlan } from '../support/faults.js';
import { startMoto, TestAws, type TestMoto } from '../support/moto.js';
import { guardrailsFrom } from '../support/policy-files.js';
import { expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

let env: RemediationEnv;
let moto: TestMoto;
let aws: TestAws;
let iam: IamConnector;
let worker: RunningWorker;
const extraWorkers: RunningWorker[] = [];
const soc: Identity = { name: 'soc', roles: ['soc'] };

beforeAll(async () => {
  env = await startRemediationEnv();
  moto = await startMoto();
  aws = new TestAws(moto.client, moto.url);
  iam = createIamConnector('aws', { client: moto.client });
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector, aws: iam }, ledger: env.ledger, policy: env.policy });
});

afterAll(async () => {
  for (const w of [worker, ...extraWorkers]) await w?.stop();
  await moto?.stop();
  await env?.close();
});

let alerts = 0;
function alert(kind: string, patch: Partial<Alert>): Alert {
  return { source: 'test-nhi', id: `nhi-${++alerts}-${randomBytes(3).toString('hex')}`, kind, severity: 'critical', subject: { system: 'aws' }, ...patch };
}

/** What IAM says of a user: each key's status, attached policy names, groups. */
async function userState(userName: string) {
  const keys = (await moto.client.send(new ListAccessKeysCommand({ UserName: userName }))).AccessKeyMetadata ?? [];
  const policies = (await moto.client.send(new ListAttachedUserPoliciesCommand({ UserName: userName }))).AttachedPolicies ?? [];
  const groups = (await moto.client.send(new ListGroupsForUserCommand({ UserName: userName }))).Groups ?? [];
  return {
    keys: Object.fromEntries(keys.map((k) => [k.AccessKeyId!, k.Status!])),
    policies: policies.map((p) => p.PolicyName!).sort(),
    groups: groups.map((g) => g.GroupName!).sort(),
  };
}

async function rolePolicies(roleName: string) {
  return ((await moto.client.send(new ListAttachedRolePoliciesCommand({ RoleName: roleName }))).AttachedPolicies ?? []).map((p) => p.PolicyName!).sort();
}

/** A worker of its own whose AWS connector carries `faults`. */
async function faultyQueue(faults: FaultPlan): Promise<string> {
  const taskQueue = `${env.taskQueue}-${randomBytes(4).toString('hex')}`;
  extraWorkers.push(await startWorker({ taskQueue, connectors: { scim: env.connector, aws: withFaults(iam, faults) }, ledger: env.ledger, policy: env.policy }));
  return taskQueue;
}

/** Guardrails under which quarantine-agent treats `group` as the privileged group (test groups carry a suffix). */
function privilegedGroupIs(group: string) {
  return guardrailsFrom(`version: 1\nplaybooks:\n  quarantine-agent:\n    privilegedGroups: ['${group}']\n`);
}

async function approveAll(handle: Awaited<ReturnType<typeof startRun>>, run: RunView, approvers: string[]) {
  for (const approver of approvers) {
    await handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, { approver, roles: ['approver'], decision: 'approve', planDigest: run.plan!.digest, channel: 'api' })] });
  }
}

describe('revoke-credential', () => {
  it('deactivates exactly the leaked key, keeps the owner\'s other key active, and keeps its last use as evidence', async () => {
    const user = await aws.user('leaky', { keys: 2 });
    const [leaked, other] = user.keys;
    await aws.useKey(leaked!);
    const lastUsed = (await moto.client.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: leaked!.accessKeyId }))).AccessKeyLastUsed;
    const handle = await startRun(env.client, env.taskQueue, alert('credential.leaked', { severity: 'low', credential: { id: leaked!.accessKeyId } }), soc);
    const run = await waitForStatus(handle, ['completed', 'failed', 'needs_human', 'awaiting_approval']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['DeactivateCredential']);
    expect(run.plan?.actions[0]?.target).toMatchObject({ id: user.id, name: user.userName, kind: 'user' });
    expect(run.decision?.policies).toEqual(['auto-deactivate-credential']);
    expect((await userState(user.userName)).keys).toEqual({ [leaked!.accessKeyId]: 'Inactive', [other!.accessKeyId]: 'Active' });
    const verification = run.journal[0]?.evidence.find((e) => e.kind === 'verification');
    expect(verification?.observed).toMatchObject({ credential: leaked!.accessKeyId, active: false, lastUsedService: lastUsed?.ServiceName ?? null });
    expect(verification?.observed.lastUsedAt).not.toBeNull();
    await expectReplays(handle);
  });

  it('also quarantines the owner when someone else used the key, and needs an approver on a medium alert', async () => {
    const user = await aws.user('stolen', { keys: 1 });
    const handle = await startRun(env.client, env.taskQueue, alert('credential.leaked', { severity: 'medium', credential: { id: user.keys[0]!.accessKeyId, usedByOthers: true } }), soc);
    const waiting = await waitForStatus(handle, ['awaiting_approval', 'completed']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.plan?.actions.map((a) => [a.type, a.decision])).toEqual([
      ['DeactivateCredential', 'auto'],
      ['AttachQuarantinePolicy', 'approve'],
    ]);
    await approveAll(handle, waiting, ['bob']);
    expect((await waitForStatus(handle, ['completed', 'failed', 'needs_human'])).status).toBe('completed');
    const state = await userState(user.userName);
    expect(Object.values(state.keys)).toEqual(['Inactive']);
    expect(state.policies).toEqual(['CordonQuarantineDenyAll']);
  });

  it('is refused at intake without the credential it is about', async () => {
    const { revokeCredential } = await import('../../playbooks/revoke-credential.js');
    expect(revokeCredential.missing?.(alert('credential.leaked', { subject: { system: 'aws', userName: 'x' } }))).toMatch(/credential\.id/);
  });
});

describe('quarantine-agent', () => {
  it('attaches the deny-all policy to an agent role on a critical alert, and detaches it on rollback', async () => {
    const policy = await aws.managedPolicy('agent-tools');
    const role = await aws.role('llm-agent', { policies: [policy.arn] });
    const handle = await startRun(env.client, env.taskQueue, alert('agent.anomalous', { subject: { system: 'aws', userName: role.roleName, kind: 'role' } }), soc);
    const run = await waitForStatus(handle, ['completed', 'failed', 'needs_human', 'awaiting_approval']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['AttachQuarantinePolicy']);
    expect(await rolePolicies(role.roleName)).toEqual([policy.name, 'CordonQuarantineDenyAll'].sort());

    // The anomaly was a planned batch job: an operator lifts the quarantine by rolling the run back.
    const request = signRollbackForTest(handle.workflowId, { requester: 'oscar', roles: ['operator'], reason: 'planned batch job, not an anomaly' });
    await handle.executeUpdate(requestRollbackUpdate, { args: [request] });
    const rolledBack = await waitForStatus(handle, ['rolled_back', 'partially_rolled_back']);
    expect(rolledBack.status).toBe('rolled_back');
    expect(rolledBack.rollbacks[0]?.decision?.policies).toEqual(['operator-rolls-back']);
    expect(await rolePolicies(role.roleName)).toEqual([policy.name]);
  });

  it("deactivates an agent user's keys, denies it all, and removes it from its privileged groups", async () => {
    const admins = await aws.group('admins');
    const readers = await aws.group('readers');
    // Privileged groups are named by the guardrails (default: admins); this test's group has a suffix.
    const agent = await aws.user('svc-agent', { keys: 2, groups: [admins, readers] });
    const queue = `${env.taskQueue}-privileged`;
    extraWorkers.push(await startWorker({ taskQueue: queue, connectors: { aws: iam }, ledger: env.ledger, policy: env.policy, guardrails: await privilegedGroupIs(admins.name) }));

    const handle = await startRun(env.client, queue, alert('agent.anomalous', { severity: 'high', subject: { system: 'aws', userName: agent.userName, kind: 'user' } }), soc);
    const run = await waitForStatus(handle, ['completed', 'awaiting_approval', 'failed']);
    // Not an administrator by name (its group is admins-<suffix>), so policy runs it at machine speed.
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['AttachQuarantinePolicy', 'DeactivateCredential', 'DeactivateCredential', 'RemoveGroupMembership']);
    const state = await userState(agent.userName);
    expect(Object.values(state.keys)).toEqual(['Inactive', 'Inactive']);
    expect(state.policies).toEqual(['CordonQuarantineDenyAll']);
    expect(state.groups).toEqual([readers.name]);
  });

  for (const k of [1, 2, 3, 4]) {
    it(`restores the agent exactly when action ${k} of 4 fails`, async () => {
      const admins = await aws.group('admins');
      const agent = await aws.user('svc-fail', { keys: 2, groups: [admins] });
      const before = await userState(agent.userName);
      const taskQueue = `${env.taskQueue}-k${k}-${randomBytes(3).toString('hex')}`;
      extraWorkers.push(await startWorker({ taskQueue, connectors: { aws: withFaults(iam, { failApplyAfter: k }) }, ledger: env.ledger, policy: env.policy, guardrails: await privilegedGroupIs(admins.name) }));
      const handle = await startRun(env.client, taskQueue, alert('agent.anomalous', { subject: { system: 'aws', userName: agent.userName, kind: 'user' } }), soc);
      const run = await waitForStatus(handle, ['compensated', 'needs_human', 'completed', 'failed']);
      expect({ status: run.status, error: run.error }).toMatchObject({ status: 'compensated' });
      expect(await userState(agent.userName)).toEqual(before);
    });
  }

  it('compensates and escalates when the quarantine does not hold on verification', async () => {
    const role = await aws.role('liar');
    const queue = await faultyQueue({ lieOnApply: 1 });
    const handle = await startRun(env.client, queue, alert('agent.anomalous', { subject: { system: 'aws', userName: role.roleName, kind: 'role' } }), soc);
    const run = await waitForStatus(handle, ['needs_human', 'completed', 'compensated', 'failed']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'needs_human' });
    expect(run.error?.type).toBe('VerificationFailed');
    expect(await rolePolicies(role.roleName)).toEqual([]);
  });
});

describe('entitlement-cleanup', () => {
  it('detaches exactly the named policy and leaves the others', async () => {
    const excessive = await aws.managedPolicy('excess');
    const needed = await aws.managedPolicy('needed');
    const user = await aws.user('overprivileged', { policies: [excessive.arn, needed.arn] });
    const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName }, entitlements: [{ kind: 'policy', name: excessive.name }] }), soc);
    const run = await waitForStatus(handle, ['completed', 'failed', 'awaiting_approval']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.decision?.policies).toEqual(['auto-detach-policy-on-high-severity']);
    expect((await userState(user.userName)).policies).toEqual([needed.name]);
  });

  it('asks an approver before detaching a full-access policy', async () => {
    // Named like AWS's own *FullAccess policies, which the default policy treats as privileged.
    const name = `Proj${randomBytes(3).toString('hex')}FullAccess`;
    const { Policy } = await moto.client.send(new CreatePolicyCommand({ PolicyName: name, PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] }) }));
    const fullAccess = { arn: Policy!.Arn!, name };
    const user = await aws.user('poweruser', { policies: [fullAccess.arn] });
    const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName }, entitlements: [{ kind: 'policy', name: fullAccess.name }] }), soc);
    const waiting = await waitForStatus(handle, ['awaiting_approval', 'completed']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision?.policies).toContain('privileged-entitlement-needs-approval');
    await approveAll(handle, waiting, ['carol']);
    expect((await waitForStatus(handle, ['completed', 'failed'])).status).toBe('completed');
    expect((await userState(user.userName)).policies).toEqual([]);
  });

  it('removes a named IAM group membership and undoes both changes when the second fails', async () => {
    const group = await aws.group('project-x');
    const excessive = await aws.managedPolicy('excess2');
    const user = await aws.user('both', { groups: [group], policies: [excessive.arn] });
    const before = await userState(user.userName);
    // In a cleanup, detaching a policy is the change and attaching it back the undo.
    const queue = await faultyQueue({
      failApplyBefore: 2,
      direction: (operation) => (['removeGroupMember', 'detachPolicy'].includes(operation) ? 'apply' : ['addGroupMember', 'attachPolicy'].includes(operation) ? 'undo' : undefined),
    });
    const handle = await startRun(
      env.client,
      queue,
      alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName }, entitlements: [{ kind: 'group', name: group.name }, { kind: 'policy', name: excessive.name }] }),
      soc,
    );
    const run = await waitForStatus(handle, ['compensated', 'completed', 'needs_human', 'failed']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'compensated' });
    expect(run.plan?.actions).toHaveLength(2);
    expect(await userState(user.userName)).toEqual(before);
    await expectReplays(handle);
  });
});

describe('idempotent retries', () => {
  it('applies the same action twice and changes IAM only once', async () => {
    const user = await aws.user('twice', { keys: 1 });
    const changes: boolean[] = [];
    const recording: DirectoryConnector = wrapConnector(iam, async (_operation, _args, call) => {
      const result = await call();
      if (result && typeof result === 'object' && 'changed' in result) changes.push((result as { changed: boolean }).changed);
      return result;
    });
    const activities = createRemediationActivities({ connectors: { aws: recording }, ledger: env.ledger, policy: env.policy });
    const snapshot = await iam.readAccount({ userName: user.userName });
    const { deactivateCredential } = await import('../../playbooks/actions.js');
    const { accountTarget } = await import('../../playbooks/types.js');
    const action = deactivateCredential(accountTarget(snapshot), user.keys[0]!.accessKeyId);
    const input = { runId: `run_${'a'.repeat(32)}`, playbook: 'revoke-credential', action, planDigest: 'b'.repeat(64) };
    const first = await activities.applyAction(input);
    const second = await activities.applyAction(input);
    expect(changes).toEqual([true, false]);
    // The retry recognises the change as this run's own (its earlier attempt started it).
    expect([first.changed, second.changed]).toEqual([true, true]);
    expect(Object.values((await userState(user.userName)).keys)).toEqual(['Inactive']);
    const applied = (await env.ledger.entries({ runId: input.runId })).filter((e) => e.kind === 'action.applied');
    expect(applied).toHaveLength(1);
  });
});
