// The non-human identity playbooks on a real Temporal dev server and a real AWS IAM endpoint (moto):
// revoke-credential, quarantine-agent and entitlement-cleanup, each on the auto path and the approval
// path, with a failure at every action undone, a change that does not hold escalated, and a repeated
// action that changes nothing the second time; observing (and a dry run) writes nothing to IAM, and
// entitlement-cleanup finds stale entitlements itself. moto does not implement Access Advisor: every
// IAM call goes through a recorder in front of moto that answers only those three calls from what the
// test records (test/support/aws-access-advisor.ts) and forwards everything else to moto unchanged.
import { randomBytes } from 'node:crypto';
import {
  CreatePolicyCommand,
  GetAccessKeyLastUsedCommand,
  ListAccessKeysCommand,
  ListAttachedRolePoliciesCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupsForUserCommand,
  ListPoliciesCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIamConnector, type IamConnector } from '../../activities/connectors/aws/iam-connector.js';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { wrapConnector } from '../../activities/connectors/wrap.js';
import { createRemediationActivities } from '../../activities/remediation.js';
import type { Action, Alert, Identity, RunStatus } from '../../domain/index.js';
import { attachQuarantine, deactivateCredential, detachPolicy, removeMembership } from '../../playbooks/actions.js';
import { DEFAULT_UNUSED_FOR_DAYS } from '../../playbooks/entitlement-cleanup.js';
import { accountTarget } from '../../playbooks/types.js';
import type { Guardrails } from '../../policies/guardrails.js';
import { requestRollbackUpdate } from '../../workflows/messages.js';
import { signRollbackForTest } from '../support/approval-keys.js';
import { startAccessAdvisor, type AccessAdvisorRecorder } from '../support/aws-access-advisor.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { withFaults, type Direction, type FaultPlan } from '../support/faults.js';
import { startMoto, TestAws, type TestMoto } from '../support/moto.js';
import { guardrailsFrom } from '../support/policy-files.js';
import { approveAll, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

const DAY = 86_400_000;
// moto dates every identity today; the connector's clock runs 200 days ahead, so identities are old
// enough to hold stale entitlements, and "N days ago" is counted from that clock.
const later = new Date(Date.now() + 200 * DAY);
const ago = (days: number) => new Date(later.getTime() - days * DAY);
const ENDED: RunStatus[] = ['completed', 'compensated', 'needs_human', 'failed', 'denied', 'rejected', 'expired', 'cancelled', 'dry_run_completed'];
const QUARANTINE_POLICY = 'CordonQuarantineDenyAll';

let env: RemediationEnv;
let moto: TestMoto;
let aws: TestAws;
let advisor: AccessAdvisorRecorder;
let advisedClient: IAMClient;
let iam: IamConnector;
let worker: RunningWorker;
const extraWorkers: RunningWorker[] = [];
const extraClients: IAMClient[] = [];
const soc: Identity = { name: 'soc', roles: ['soc'] };

beforeAll(async () => {
  env = await startRemediationEnv();
  moto = await startMoto();
  aws = new TestAws(moto.client, moto.url);
  advisor = await startAccessAdvisor(moto.url);
  advisedClient = moto.iamClient({ endpoint: advisor.url });
  iam = createIamConnector('aws', { client: advisedClient, now: () => later });
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector, aws: iam }, ledger: env.ledger, policy: env.policy });
});

afterAll(async () => {
  for (const w of [worker, ...extraWorkers]) await w?.stop();
  for (const c of [advisedClient, ...extraClients]) c?.destroy();
  await advisor?.stop();
  await moto?.stop();
  await env?.close();
});

let alerts = 0;
function alert(kind: string, patch: Partial<Alert>): Alert {
  return { source: 'test-nhi', id: `nhi-${++alerts}-${randomBytes(3).toString('hex')}`, kind, severity: 'critical', subject: { system: 'aws' }, ...patch };
}

/** What IAM says of a user: each key's status, attached policy names, groups. */
async function userState(userName: string, client: IAMClient = moto.client) {
  const keys = (await client.send(new ListAccessKeysCommand({ UserName: userName }))).AccessKeyMetadata ?? [];
  const policies = (await client.send(new ListAttachedUserPoliciesCommand({ UserName: userName }))).AttachedPolicies ?? [];
  const groups = (await client.send(new ListGroupsForUserCommand({ UserName: userName }))).Groups ?? [];
  return {
    keys: Object.fromEntries(keys.map((k) => [k.AccessKeyId!, k.Status!])),
    policies: policies.map((p) => p.PolicyName!).sort(),
    groups: groups.map((g) => g.GroupName!).sort(),
  };
}

async function rolePolicies(roleName: string, client: IAMClient = moto.client) {
  return ((await client.send(new ListAttachedRolePoliciesCommand({ RoleName: roleName }))).AttachedPolicies ?? []).map((p) => p.PolicyName!).sort();
}

/** A worker of its own on a new task queue, whose AWS connector is `connector`. */
async function queueWith(connector: DirectoryConnector, guardrails?: Guardrails): Promise<string> {
  const taskQueue = `${env.taskQueue}-${randomBytes(4).toString('hex')}`;
  extraWorkers.push(await startWorker({ taskQueue, connectors: { scim: env.connector, aws: connector }, ledger: env.ledger, policy: env.policy, ...(guardrails ? { guardrails } : {}) }));
  return taskQueue;
}

/** A worker of its own whose AWS connector carries `faults`. */
const faultyQueue = (faults: FaultPlan, guardrails?: Guardrails) => queueWith(withFaults(iam, faults), guardrails);

/** In a cleanup, detaching a policy or leaving a group is the change, attaching it or joining again the undo. */
const cleanupDirection = (operation: string): Direction | undefined =>
  ['removeGroupMember', 'detachPolicy'].includes(operation) ? 'apply' : ['addGroupMember', 'attachPolicy'].includes(operation) ? 'undo' : undefined;

/** Guardrails under which quarantine-agent treats `group` as the privileged group (test groups carry a suffix). */
function privilegedGroupIs(group: string) {
  return guardrailsFrom(`version: 1\nplaybooks:\n  quarantine-agent:\n    privilegedGroups: ['${group}']\n`);
}

/** `connector` with every mutation's `changed` recorded, by operation. */
function recording(connector: DirectoryConnector) {
  const changes: Record<string, boolean[]> = {};
  const wrapped = wrapConnector(connector, async (operation, _args, call) => {
    const result = await call();
    if (result && typeof result === 'object' && 'changed' in result) (changes[operation] ??= []).push((result as { changed: boolean }).changed);
    return result;
  });
  return { connector: wrapped, changes };
}

/** Applies `action` twice as one run would on a retry, through a recording connector. */
async function applyTwice(playbook: string, action: Action) {
  const { connector, changes } = recording(iam);
  const activities = createRemediationActivities({ connectors: { aws: connector }, ledger: env.ledger, policy: env.policy });
  const input = { runId: `run_${randomBytes(16).toString('hex')}`, playbook, action, planDigest: randomBytes(32).toString('hex') };
  const results = [await activities.applyAction(input), await activities.applyAction(input)];
  const applied = (await env.ledger.entries({ runId: input.runId })).filter((e) => e.kind === 'action.applied');
  return { changes, results, applied, undo: () => activities.undoAction({ ...input, reason: 'test' }) };
}

describe('observing writes nothing to IAM', () => {
  it('dry-runs revoke-credential and quarantine-agent in a fresh account: the quarantine policy is planned, not created, and only reads reach IAM', async () => {
    const account = `9${randomBytes(6).readUIntBE(0, 6).toString().padStart(11, '0').slice(-11)}`;
    const seeding = moto.iamClient({ account });
    const observing = moto.iamClient({ account, endpoint: advisor.url });
    extraClients.push(seeding, observing);
    const fresh = new TestAws(seeding, moto.url);
    const admins = await fresh.group('admins');
    const owner = await fresh.user('leaky', { keys: 2 });
    const agent = await fresh.user('svc-agent', { keys: 2, groups: [admins] });
    const before = { owner: await userState(owner.userName, seeding), agent: await userState(agent.userName, seeding) };
    const queue = await queueWith(createIamConnector('aws', { client: observing }), await privilegedGroupIs(admins.name));
    const quarantineArn = `arn:aws:iam::${account}:policy/cordon/${QUARANTINE_POLICY}`;

    const runs = [
      alert('credential.leaked', { mode: 'dry-run', credential: { id: owner.keys[0]!.accessKeyId, usedByOthers: true } }),
      alert('agent.anomalous', { mode: 'dry-run', subject: { system: 'aws', userName: agent.userName, kind: 'user' } }),
    ];
    for (const dryRun of runs) {
      const handle = await startRun(env.client, queue, dryRun, soc);
      const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
      expect({ status: run.status, error: run.error }).toMatchObject({ status: 'dry_run_completed', error: null });
      const attach = run.plan?.actions.find((a) => a.type === 'AttachQuarantinePolicy');
      expect(attach?.type === 'AttachQuarantinePolicy' && attach.policy.id).toBe(quarantineArn);
    }

    const seen = advisor.requests.filter((r) => r.account === account).map((r) => r.action);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((action) => !/^(Get|List)[A-Z]/.test(action))).toEqual([]);
    expect(seen).toContain('GetPolicy');
    const { Policies } = await seeding.send(new ListPoliciesCommand({ Scope: 'Local' }));
    expect(Policies ?? []).toEqual([]);
    expect({ owner: await userState(owner.userName, seeding), agent: await userState(agent.userName, seeding) }).toEqual(before);
  });

  it('creates the quarantine policy on the first attach of a live run in a fresh account', async () => {
    const account = `8${randomBytes(6).readUIntBE(0, 6).toString().padStart(11, '0').slice(-11)}`;
    const seeding = moto.iamClient({ account });
    extraClients.push(seeding);
    const role = await new TestAws(seeding, moto.url).role('llm-agent');
    const queue = await queueWith(createIamConnector('aws', { client: seeding }));

    const handle = await startRun(env.client, queue, alert('agent.anomalous', { subject: { system: 'aws', userName: role.roleName, kind: 'role' } }), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(await rolePolicies(role.roleName, seeding)).toEqual([QUARANTINE_POLICY]);
    const { Policies } = await seeding.send(new ListPoliciesCommand({ Scope: 'Local', PathPrefix: '/cordon/' }));
    expect(Policies?.map((p) => p.Arn)).toEqual([`arn:aws:iam::${account}:policy/cordon/${QUARANTINE_POLICY}`]);
  });
});

describe('revoke-credential', () => {
  it("deactivates exactly the leaked key, keeps the owner's other key active, and keeps its last use as evidence", async () => {
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
    expect(state.policies).toEqual([QUARANTINE_POLICY]);
  });

  it('deactivates the key once when the same action is applied twice', async () => {
    const user = await aws.user('twice', { keys: 1 });
    const snapshot = await iam.readAccount({ userName: user.userName });
    const { changes, results, applied } = await applyTwice('revoke-credential', deactivateCredential(accountTarget(snapshot), user.keys[0]!.accessKeyId));
    expect(changes).toEqual({ setCredentialActive: [true, false] });
    // The retry recognises the change as this run's own (its earlier attempt started it).
    expect(results.map((r) => r.changed)).toEqual([true, true]);
    expect(applied).toHaveLength(1);
    expect(Object.values((await userState(user.userName)).keys)).toEqual(['Inactive']);
  });

  it('is refused at intake without the credential it is about', async () => {
    const { revokeCredential } = await import('../../playbooks/revoke-credential.js');
    expect(revokeCredential.missing?.(alert('credential.leaked', { subject: { system: 'aws', userName: 'x' } }))).toMatch(/credential\.id/);
  });

  // The plan is: 1 DeactivateCredential, 2 AttachQuarantinePolicy (the key was used by someone else).
  for (const [k, faults] of [
    [1, { failApplyBefore: 1 }],
    [1, { failApplyAfter: 1 }],
    [2, { failApplyBefore: 2 }],
    [2, { failApplyAfter: 2 }],
  ] as const) {
    const how = 'failApplyBefore' in faults ? 'fails before reaching IAM' : 'takes effect and its call fails';
    it(`restores the owner's keys and policies exactly when action ${k} of 2 ${how}`, async () => {
      const user = await aws.user('revoke-fail', { keys: 2 });
      const before = await userState(user.userName);
      const handle = await startRun(env.client, await faultyQueue(faults), alert('credential.leaked', { credential: { id: user.keys[0]!.accessKeyId, usedByOthers: true } }), soc);
      const run = await waitForStatus(handle, ENDED);
      expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'compensated', error: 'ActionFailed' });
      expect(run.plan?.actions.map((a) => a.type)).toEqual(['DeactivateCredential', 'AttachQuarantinePolicy']);
      const failed = run.journal.find((j) => j.actionId === run.plan!.actions[k - 1]!.id);
      expect(failed?.error?.type).toBe('InjectedFault');
      expect(await userState(user.userName)).toEqual(before);
    });
  }

  it('compensates and escalates when the deactivation does not hold on verification', async () => {
    const user = await aws.user('revoke-liar', { keys: 2 });
    const before = await userState(user.userName);
    const handle = await startRun(env.client, await faultyQueue({ lieOnApply: 1 }), alert('credential.leaked', { credential: { id: user.keys[0]!.accessKeyId, usedByOthers: true } }), soc);
    const run = await waitForStatus(handle, ENDED);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'needs_human', error: 'VerificationFailed' });
    const deactivate = run.plan!.actions[0]!;
    expect(deactivate.type).toBe('DeactivateCredential');
    expect(run.error?.message).toContain(deactivate.id);
    const verdicts = (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'action.verification_failed');
    expect(verdicts.map((e) => [e.data.actionId, (e.data.observed as { active?: boolean }).active])).toEqual([[deactivate.id, true]]);
    // The quarantine policy that did attach was detached again.
    expect(await userState(user.userName)).toEqual(before);
    await expectReplays(handle);
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
    expect(await rolePolicies(role.roleName)).toEqual([policy.name, QUARANTINE_POLICY].sort());

    // The anomaly was a planned batch job: an operator lifts the quarantine by rolling the run back.
    const request = signRollbackForTest(handle.workflowId, { requester: 'oscar', roles: ['operator'], reason: 'planned batch job, not an anomaly' });
    await handle.executeUpdate(requestRollbackUpdate, { args: [request] });
    const rolledBack = await waitForStatus(handle, ['rolled_back', 'partially_rolled_back']);
    expect(rolledBack.status).toBe('rolled_back');
    expect(rolledBack.rollbacks[0]?.decision?.policies).toEqual(['operator-rolls-back']);
    expect(await rolePolicies(role.roleName)).toEqual([policy.name]);
  });

  it('asks one approver on a medium alert, changes nothing until approved, then quarantines', async () => {
    const policy = await aws.managedPolicy('agent-tools');
    const role = await aws.role('medium-agent', { policies: [policy.arn] });
    const handle = await startRun(env.client, env.taskQueue, alert('agent.anomalous', { severity: 'medium', subject: { system: 'aws', userName: role.roleName, kind: 'role' } }), soc);
    const waiting = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision).toMatchObject({ outcome: 'approve', policies: ['approve-quarantine-on-lower-severity'], requiredApprovals: 1 });
    expect(waiting.plan?.actions.map((a) => [a.type, a.decision])).toEqual([['AttachQuarantinePolicy', 'approve']]);
    expect(await rolePolicies(role.roleName)).toEqual([policy.name]);

    await approveAll(handle, waiting, ['bob']);
    const run = await waitForStatus(handle, ENDED);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.approvals.map((a) => a.approver)).toEqual(['bob']);
    expect(await rolePolicies(role.roleName)).toEqual([policy.name, QUARANTINE_POLICY].sort());
  });

  it("deactivates an agent user's keys, denies it all, removes it from its privileged groups, and restores it exactly on rollback", async () => {
    const admins = await aws.group('admins');
    const readers = await aws.group('readers');
    const tools = await aws.managedPolicy('agent-tools');
    // Privileged groups are named by the guardrails (default: admins); this test's group has a suffix.
    const agent = await aws.user('svc-agent', { keys: 2, groups: [admins, readers], policies: [tools.arn] });
    const before = await userState(agent.userName);
    const queue = await queueWith(iam, await privilegedGroupIs(admins.name));

    const handle = await startRun(env.client, queue, alert('agent.anomalous', { severity: 'high', subject: { system: 'aws', userName: agent.userName, kind: 'user' } }), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    // Not an administrator by name (its group is admins-<suffix>), so policy runs it at machine speed.
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['AttachQuarantinePolicy', 'DeactivateCredential', 'DeactivateCredential', 'RemoveGroupMembership']);
    const state = await userState(agent.userName);
    expect(Object.values(state.keys)).toEqual(['Inactive', 'Inactive']);
    expect(state.policies).toEqual([tools.name, QUARANTINE_POLICY].sort());
    expect(state.groups).toEqual([readers.name]);

    // Un-quarantine is the rollback of the run; it gives back a privileged group, so an approver confirms.
    await handle.executeUpdate(requestRollbackUpdate, { args: [signRollbackForTest(handle.workflowId, { requester: 'oscar', roles: ['operator'], reason: 'false positive' })] });
    const asking = await waitForStatus(handle, ['awaiting_approval', 'rolled_back', 'partially_rolled_back']);
    expect(asking.status).toBe('awaiting_approval');
    expect(asking.rollbacks[0]?.decision?.policies).toContain('privileged-rollback-needs-approval');
    await approveAll(handle, asking, ['bob'], asking.openApproval!.digest);
    const rolledBack = await waitForStatus(handle, ['rolled_back', 'partially_rolled_back']);
    expect(rolledBack.status).toBe('rolled_back');
    expect(rolledBack.journal.map((j) => j.status)).toEqual(['rolled_back', 'rolled_back', 'rolled_back', 'rolled_back']);
    expect(await userState(agent.userName)).toEqual(before);
    await expectReplays(handle);
  });

  for (const k of [1, 2, 3, 4]) {
    it(`restores the agent exactly when action ${k} of 4 takes effect and its call fails`, async () => {
      const admins = await aws.group('admins');
      const agent = await aws.user('svc-fail', { keys: 2, groups: [admins] });
      const before = await userState(agent.userName);
      const queue = await faultyQueue({ failApplyAfter: k }, await privilegedGroupIs(admins.name));
      const handle = await startRun(env.client, queue, alert('agent.anomalous', { subject: { system: 'aws', userName: agent.userName, kind: 'user' } }), soc);
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

  it('attaches the quarantine policy and removes a privileged membership once each when applied twice', async () => {
    const admins = await aws.group('admins');
    const agent = await aws.user('svc-twice', { groups: [admins] });
    const snapshot = await iam.readAccount({ userName: agent.userName });
    const target = accountTarget(snapshot);
    const quarantine = await iam.quarantinePolicy({ id: agent.id, name: agent.userName, kind: 'user' });

    const attach = await applyTwice('quarantine-agent', attachQuarantine(target, quarantine));
    const remove = await applyTwice('quarantine-agent', removeMembership(target, snapshot.groups[0]!));

    expect(attach.changes).toEqual({ attachPolicy: [true, false] });
    expect(remove.changes).toEqual({ removeGroupMember: [true, false] });
    // The retry recognises the change as this run's own (its earlier attempt started it).
    expect([...attach.results, ...remove.results].map((r) => r.changed)).toEqual([true, true, true, true]);
    expect([attach.applied, remove.applied].map((a) => a.length)).toEqual([1, 1]);
    expect(await userState(agent.userName)).toEqual({ keys: {}, policies: [QUARANTINE_POLICY], groups: [] });
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
    const fullAccess = await fullAccessPolicy();
    const user = await aws.user('poweruser', { policies: [fullAccess.arn] });
    const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName }, entitlements: [{ kind: 'policy', name: fullAccess.name }] }), soc);
    const waiting = await waitForStatus(handle, ['awaiting_approval', 'completed']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision?.policies).toContain('privileged-entitlement-needs-approval');
    await approveAll(handle, waiting, ['carol']);
    expect((await waitForStatus(handle, ['completed', 'failed'])).status).toBe('completed');
    expect((await userState(user.userName)).policies).toEqual([]);
  });

  /** Named like AWS's own *FullAccess policies, which the default policy treats as privileged. */
  async function fullAccessPolicy() {
    const name = `Proj${randomBytes(3).toString('hex')}FullAccess`;
    const { Policy } = await moto.client.send(new CreatePolicyCommand({ PolicyName: name, PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] }) }));
    return { arn: Policy!.Arn!, name };
  }

  /** A user in a project group with two excessive policies: the three actions of a cleanup. */
  async function overentitled() {
    const group = await aws.group('project-x');
    const [first, second] = [await aws.managedPolicy('excess-a'), await aws.managedPolicy('excess-b')];
    const kept = await aws.managedPolicy('kept');
    const user = await aws.user('cleanup', { groups: [group], policies: [first.arn, second.arn, kept.arn] });
    const entitlements: Alert['entitlements'] = [
      { kind: 'group', name: group.name },
      { kind: 'policy', name: first.name },
      { kind: 'policy', name: second.name },
    ];
    return { user, entitlements, before: await userState(user.userName) };
  }

  for (const k of [1, 2, 3]) {
    for (const when of ['before', 'after'] as const) {
      const how = when === 'before' ? 'fails before reaching IAM' : 'takes effect and its call fails';
      it(`restores IAM exactly as observed when action ${k} of 3 ${how}`, async () => {
        const { user, entitlements, before } = await overentitled();
        const queue = await faultyQueue({ ...(when === 'before' ? { failApplyBefore: k } : { failApplyAfter: k }), direction: cleanupDirection });
        const handle = await startRun(env.client, queue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName }, entitlements }), soc);
        const run = await waitForStatus(handle, ENDED);
        expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'compensated', error: 'ActionFailed' });
        const actions = run.plan!.actions;
        expect(actions.map((a) => a.type).sort()).toEqual(['DetachPolicy', 'DetachPolicy', 'RemoveGroupMembership']);
        actions.forEach((action, index) => {
          const entry = run.journal.find((j) => j.actionId === action.id)!;
          const expected = index < k - 1 || (index === k - 1 && when === 'after') ? 'compensated' : index === k - 1 ? 'failed' : 'pending';
          expect({ index, status: entry.status }).toEqual({ index, status: expected });
        });
        const compensated = (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'action.compensated');
        // Undone in reverse order of application, the failing action included (its undo is a no-op when it never took effect).
        expect(compensated.map((e) => e.data.actionId)).toEqual(actions.slice(0, k).map((a) => a.id).reverse());
        expect(compensated.find((e) => e.data.actionId === actions[k - 1]!.id)?.data.changed).toBe(when === 'after');
        expect(await userState(user.userName)).toEqual(before);
        if (k === 2 && when === 'after') await expectReplays(handle);
      });
    }
  }

  it('compensates and escalates when a detach reported done did not happen', async () => {
    const { user, entitlements, before } = await overentitled();
    const queue = await faultyQueue({ lieOnApply: 2, direction: cleanupDirection });
    const handle = await startRun(env.client, queue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName }, entitlements }), soc);
    const run = await waitForStatus(handle, ENDED);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'needs_human', error: 'VerificationFailed' });
    const lied = run.plan!.actions[1]!;
    expect(run.error?.message).toContain(lied.id);
    const failed = (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'action.verification_failed');
    expect(failed.map((e) => e.data.actionId)).toEqual([lied.id]);
    expect(await userState(user.userName)).toEqual(before);
    await expectReplays(handle);
  });

  it('detaches a policy once when the same action is applied twice, and attaches it back once when undone twice', async () => {
    const excessive = await aws.managedPolicy('excess-twice');
    const user = await aws.user('twice-cleanup', { policies: [excessive.arn] });
    const snapshot = await iam.readAccount({ userName: user.userName });
    const detach = await applyTwice('entitlement-cleanup', detachPolicy(accountTarget(snapshot), snapshot.policies![0]!));
    expect(detach.changes).toEqual({ detachPolicy: [true, false] });
    expect(detach.applied).toHaveLength(1);
    expect((await userState(user.userName)).policies).toEqual([]);

    expect([(await detach.undo()).changed, (await detach.undo()).changed]).toEqual([true, false]);
    expect(detach.changes).toEqual({ detachPolicy: [true, false], attachPolicy: [true, false] });
    expect((await userState(user.userName)).policies).toEqual([excessive.name]);
  });

  describe('stale entitlements, found by observe', () => {
    /**
     * A user whose Access Advisor record (as `advisor` answers it) shows: policy `unused` granting s3,
     * last used 120 days ago; policy `used` granting ec2, used 3 days ago; group `dormant` granting sqs,
     * never used; group `active` granting lambda, used yesterday; and `extra` more policies.
     */
    async function dormantUser(extra: { arn: string; name: string; service: string; lastUsed: Date | null }[] = []) {
      const [unused, used, sqs, lambda] = [await aws.managedPolicy('unused'), await aws.managedPolicy('used'), await aws.managedPolicy('sqs'), await aws.managedPolicy('lambda')];
      const [dormant, active] = [await aws.group('dormant'), await aws.group('active')];
      await aws.attachToGroup(dormant, sqs.arn);
      await aws.attachToGroup(active, lambda.arn);
      const user = await aws.user('dormant', { groups: [dormant, active], policies: [unused.arn, used.arn, ...extra.map((p) => p.arn)] });
      advisor.record(user.arn, {
        lastAuthenticated: { s3: ago(120), ec2: ago(3), sqs: null, lambda: ago(1), ...Object.fromEntries(extra.map((p) => [p.service, p.lastUsed])) },
        grants: { s3: [unused], ec2: [used], sqs: [sqs], lambda: [lambda], ...Object.fromEntries(extra.map((p) => [p.service, [p]])) },
      });
      advisor.record(dormant.arn, { grants: { sqs: [sqs] } });
      advisor.record(active.arn, { grants: { lambda: [lambda] } });
      return { user, unused, used, dormant, active, before: await userState(user.userName) };
    }

    it(`removes exactly the entitlements unused for ${DEFAULT_UNUSED_FOR_DAYS} days when the alert names none, at machine speed on a high alert`, async () => {
      const { user, unused, used, dormant, active } = await dormantUser();
      const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { severity: 'high', subject: { system: 'aws', userName: user.userName } }), soc);
      const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
      expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed', error: null });
      expect(run.plan?.actions.map((a) => (a.type === 'DetachPolicy' ? a.policy.id : a.type === 'RemoveGroupMembership' ? a.group.id : a.type)).sort()).toEqual([unused.arn, dormant.id].sort());
      expect(run.decision?.policies.sort()).toEqual(['auto-deprovision-on-high-severity', 'auto-detach-policy-on-high-severity']);
      expect(await userState(user.userName)).toEqual({ keys: {}, policies: [used.name], groups: [active.name] });
      await expectReplays(handle);
    });

    it('asks an approver before detaching a stale full-access policy', async () => {
      const fullAccess = await fullAccessPolicy();
      const { user, unused, dormant } = await dormantUser([{ ...fullAccess, service: 'dynamodb', lastUsed: ago(300) }]);
      const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName } }), soc);
      const waiting = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
      expect(waiting.status).toBe('awaiting_approval');
      expect(waiting.decision?.policies).toContain('privileged-entitlement-needs-approval');
      const planned = waiting.plan!.actions.map((a) => [a.type === 'DetachPolicy' ? a.policy.id : a.type === 'RemoveGroupMembership' ? a.group.id : a.type, a.decision]);
      expect(Object.fromEntries(planned)).toEqual({ [unused.arn]: 'auto', [dormant.id]: 'auto', [fullAccess.arn]: 'approve' });

      await approveAll(handle, waiting, ['carol']);
      expect((await waitForStatus(handle, ENDED)).status).toBe('completed');
      expect((await userState(user.userName)).policies).not.toContain(fullAccess.name);
    });

    it('plans nothing and completes when nothing is stale', async () => {
      const used = await aws.managedPolicy('in-use');
      const user = await aws.user('busy', { policies: [used.arn] });
      advisor.record(user.arn, { lastAuthenticated: { s3: ago(2) }, grants: { s3: [used] } });
      const before = await userState(user.userName);
      const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { subject: { system: 'aws', userName: user.userName } }), soc);
      const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
      expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed', error: null });
      expect(run.plan?.actions).toEqual([]);
      expect(await userState(user.userName)).toEqual(before);
    });

    it('refuses, naming entitlements, an alert that names none on a system that records no use (SCIM)', async () => {
      const member = await env.org.user('scim-member', ['engineering']);
      const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', { subject: { system: 'scim', userName: member.userName } }), soc);
      const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
      expect({ status: run.status, type: run.error?.type }).toEqual({ status: 'failed', type: 'AlertIncomplete' });
      expect(run.error?.message).toContain('entitlements');
      expect(run.plan).toBeNull();
      expect((await env.connector.readAccount({ id: member.id })).groups.map((g) => g.displayName)).toEqual(['engineering']);
    });
  });
});
