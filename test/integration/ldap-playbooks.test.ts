// The identity playbooks on a real Temporal dev server and a real OpenLDAP slapd, through the LDAP
// connector: deprovision-account and entitlement-cleanup on the auto path and the approval path
// (one approver, two for an administrator), a break-glass account left alone, a completed run rolled
// back, a failure at every action of either playbook undone, a change that does not hold escalated,
// and a repeated action that changes the directory only once. Every outcome is checked in slapd
// itself, read as the root DN.
import { randomBytes } from 'node:crypto';
import { Attribute, Change, type Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLdapConnector, type LdapConnector } from '../../activities/connectors/ldap/ldap-connector.js';
import { childDn } from '../../activities/connectors/ldap/ldap-dn.js';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { wrapConnector } from '../../activities/connectors/wrap.js';
import { createRemediationActivities } from '../../activities/remediation.js';
import type { Alert, Identity, RunView } from '../../domain/index.js';
import { disableAccount, removeMembership } from '../../playbooks/actions.js';
import { accountTarget } from '../../playbooks/types.js';
import { requestRollbackUpdate } from '../../workflows/messages.js';
import { signRollbackForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { withFaults, type FaultPlan } from '../support/faults.js';
import { startTestSlapd, type TestSlapd } from '../support/slapd.js';
import { approveAll, expectReplays, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

const PERMANENT_LOCK = '000001010000Z';
const ENDED = ['completed', 'compensated', 'needs_human', 'failed', 'denied', 'rejected', 'expired', 'cancelled'] as const;
const soc: Identity = { name: 'soc', roles: ['soc'] };

let env: RemediationEnv;
let slapd: TestSlapd;
let admin: Client;
let connector: LdapConnector;
let worker: RunningWorker;
const extraWorkers: RunningWorker[] = [];

beforeAll(async () => {
  [env, slapd] = await Promise.all([startRemediationEnv(), startTestSlapd()]);
  admin = await slapd.admin();
  connector = createLdapConnector('ldap', {
    url: slapd.url,
    bindDN: slapd.bindDN,
    password: slapd.password,
    baseDN: slapd.baseDN,
    usersDN: slapd.usersDN,
    groupsDN: slapd.groupsDN,
    placeholderMember: slapd.placeholderMember,
  });
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector, ldap: connector }, ledger: env.ledger, policy: env.policy });
});

afterAll(async () => {
  for (const w of [worker, ...extraWorkers]) await w?.stop();
  await slapd?.stop();
  await env?.close();
});

let counter = 0;
function alert(kind: string, userName: string, patch: Partial<Alert> = {}): Alert {
  return { source: 'test-ldap', id: `ldap-${++counter}-${randomBytes(3).toString('hex')}`, kind, severity: 'high', subject: { system: 'ldap', userName }, ...patch };
}

const userDn = (uid: string) => childDn(slapd.usersDN, 'uid', uid);
const groupDn = (cn: string) => childDn(slapd.groupsDN, 'cn', cn);
const memberChange = (operation: 'add' | 'delete', dn: string) => new Change({ operation, modification: new Attribute({ type: 'member', values: [dn] }) });

/** Every group's members (lowercased, sorted), as slapd holds them. */
async function groupMembers(): Promise<Record<string, string[]>> {
  const { searchEntries } = await admin.search(slapd.groupsDN, { filter: new EqualityFilter({ attribute: 'objectClass', value: 'groupOfNames' }), attributes: ['cn', 'member'] });
  return Object.fromEntries(searchEntries.map((g) => [String(g.cn), ([] as unknown[]).concat(g.member ?? []).map((m) => String(m).toLowerCase()).sort()]));
}

/** A user entry's attributes: user attributes, its ppolicy lock, and with `version` its entryCSN. */
async function userEntry(uid: string, version = false): Promise<Record<string, unknown>> {
  const [entry] = (await admin.search(userDn(uid), { scope: 'base', attributes: ['*', 'pwdAccountLockedTime', ...(version ? ['entryCSN'] : [])] })).searchEntries;
  if (!entry) throw new Error(`no entry for ${uid}`);
  return entry;
}

/** What a deprovisioning changes of a user, read in slapd: its lock and the groups listing it. */
async function userState(uid: string): Promise<{ lock: string[]; groups: string[] }> {
  const entry = await userEntry(uid);
  const dn = userDn(uid).toLowerCase();
  const members = await groupMembers();
  return {
    lock: ([] as unknown[]).concat(entry.pwdAccountLockedTime ?? []).map(String),
    groups: Object.keys(members)
      .filter((cn) => members[cn]!.includes(dn))
      .sort(),
  };
}

/** The whole directory state a run may touch for `uid`: its entry and every group's members. */
async function directory(uid: string, version = false) {
  return { user: await userEntry(uid, version), groups: await groupMembers() };
}

/** `members` with `uid` taken out of each group in `from`. */
function without(members: Record<string, string[]>, uid: string, from: string[]): Record<string, string[]> {
  const dn = userDn(uid).toLowerCase();
  return Object.fromEntries(Object.entries(members).map(([cn, list]) => [cn, from.includes(cn) ? list.filter((m) => m !== dn) : list]));
}

/** A fresh account (no lock) in `groups`, so cases that change it are independent of each other. */
async function freshUser(prefix: string, groups: string[]): Promise<string> {
  const uid = `${prefix}.${++counter}.${randomBytes(3).toString('hex')}`;
  await admin.add(userDn(uid), { objectClass: ['inetOrgPerson', 'cordonAdAccount'], uid, cn: `Test ${uid}`, sn: 'Test', userAccountControl: '512' });
  for (const cn of groups) await admin.modify(groupDn(cn), memberChange('add', userDn(uid)));
  return uid;
}

/** A worker of its own whose LDAP connector is `ldap` (faulty, or recording). */
async function queueWith(ldap: DirectoryConnector): Promise<string> {
  const taskQueue = `${env.taskQueue}-${randomBytes(4).toString('hex')}`;
  extraWorkers.push(await startWorker({ taskQueue, connectors: { scim: env.connector, ldap }, ledger: env.ledger, policy: env.policy }));
  return taskQueue;
}

const faultyQueue = (faults: FaultPlan) => queueWith(withFaults(connector, faults));

/** The real connector, recording whether each mutation it passed on changed slapd. */
function recordingConnector(): { ldap: DirectoryConnector; changes: Record<string, boolean[]> } {
  const changes: Record<string, boolean[]> = {};
  const ldap = wrapConnector(connector, async (operation, _args, call) => {
    const result = await call();
    if (result && typeof result === 'object' && 'changed' in result) (changes[operation] ??= []).push((result as { changed: boolean }).changed);
    return result;
  });
  return { ldap, changes };
}

/** An entry's version as slapd keeps it: any write to the entry changes it. */
const versionOf = async (dn: string) => (await admin.search(dn, { scope: 'base', attributes: ['entryCSN', 'modifyTimestamp'] })).searchEntries[0];

/**
 * Checks a run that failed at action k (1-based): actions 1..k were undone in reverse order, each
 * undo a real change except that of an action that failed before reaching slapd (it stays `failed`),
 * and the actions after k never ran.
 */
async function expectUndoneThrough(runId: string, run: RunView, k: number, failed: 'before' | 'after'): Promise<void> {
  const actions = run.plan!.actions;
  actions.forEach((action, index) => {
    const entry = run.journal.find((j) => j.actionId === action.id)!;
    const status = index < k - 1 ? 'compensated' : index > k - 1 ? 'pending' : failed === 'after' ? 'compensated' : 'failed';
    expect({ index, status: entry.status }).toEqual({ index, status });
    if (index === k - 1) expect(entry.error?.type).toBe('InjectedFault');
  });
  const compensated = (await env.ledger.entries({ runId })).filter((e) => e.kind === 'action.compensated');
  expect(compensated.map((e) => [e.data.actionId, e.data.changed])).toEqual(
    actions
      .slice(0, k)
      .map((a, index) => [a.id, index < k - 1 || failed === 'after'])
      .reverse(),
  );
}

const ledgerKinds = async (runId: string) => (await env.ledger.entries({ runId })).map((e) => e.kind);

describe('deprovision-account on LDAP', () => {
  it('locks an ordinary leaver and removes it from each of its groups on a high alert, at machine speed', async () => {
    const uid = 'ana.garcia';
    await admin.modify(userDn(uid), new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: ['s3cret-ana'] }) }));
    expect(await slapd.canBind(userDn(uid), 's3cret-ana')).toBe(true);
    const before = await directory(uid);
    expect(await userState(uid)).toEqual({ lock: [], groups: ['engineering', 'jira-users', 'vpn-users'] });

    const handle = await startRun(env.client, env.taskQueue, alert('account.leaver', uid), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed', error: null });
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['DisableAccount', 'RemoveGroupMembership', 'RemoveGroupMembership', 'RemoveGroupMembership']);
    expect(run.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.name : a.target.name))).toEqual([userDn(uid), groupDn('engineering'), groupDn('jira-users'), groupDn('vpn-users')]);
    expect(run.plan?.actions[0]?.target.system).toBe('ldap');
    expect(run.decision).toMatchObject({ outcome: 'auto', policies: ['auto-deprovision-on-high-severity'], requiredApprovals: 0 });
    expect(run.journal).toHaveLength(4);
    for (const entry of run.journal) expect(entry).toMatchObject({ status: 'verified', changed: true });

    expect(await userState(uid)).toEqual({ lock: [PERMANENT_LOCK], groups: [] });
    expect(await slapd.canBind(userDn(uid), 's3cret-ana')).toBe(false);
    // Nothing else moved: the other members of those groups, and every other group, are as they were.
    expect(await groupMembers()).toEqual(without(before.groups, uid, ['engineering', 'jira-users', 'vpn-users']));
    await expectReplays(handle);
  });

  it('asks one approver on a medium alert, changes nothing until approved, then deprovisions', async () => {
    const uid = 'ben.cohen';
    const before = await directory(uid, true);
    const handle = await startRun(env.client, env.taskQueue, alert('account.leaver', uid, { severity: 'medium' }), soc);
    const waiting = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision).toMatchObject({ outcome: 'approve', policies: ['approve-deprovision-on-lower-severity'], requiredApprovals: 1 });
    expect(waiting.plan?.actions.map((a) => [a.type, a.decision])).toEqual([
      ['DisableAccount', 'approve'],
      ['RemoveGroupMembership', 'approve'],
      ['RemoveGroupMembership', 'approve'],
    ]);
    expect(await directory(uid, true)).toEqual(before);
    expect(await ledgerKinds(handle.workflowId)).not.toContain('action.started');

    await approveAll(handle, waiting, ['bob']);
    const run = await waitForStatus(handle, [...ENDED]);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.approvals.map((a) => a.approver)).toEqual(['bob']);
    expect(await userState(uid)).toEqual({ lock: [PERMANENT_LOCK], groups: [] });
    expect(await groupMembers()).toEqual(without(before.groups, uid, ['engineering', 'jira-users']));
    await expectReplays(handle);
  });

  it('needs two distinct approvers to deprovision an administrator, and one is not enough', async () => {
    const uid = 'erin.wolfe';
    const before = await directory(uid, true);
    expect((await userState(uid)).groups).toEqual(['admins', 'contractors', 'vpn-users']);
    const handle = await startRun(env.client, env.taskQueue, alert('account.leaver', uid), soc);
    const waiting = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision?.requiredApprovals).toBe(2);
    expect(waiting.decision?.policies).toContain('privileged-needs-two-approvers');

    const [first] = await approveAll(handle, waiting, ['bob']);
    expect(first).toMatchObject({ status: 'awaiting_approval', approvals: 1, required: 2 });
    expect((await waitForStatus(handle, [...ENDED, 'awaiting_approval'])).status).toBe('awaiting_approval');
    expect(await directory(uid, true)).toEqual(before);

    const [second] = await approveAll(handle, waiting, ['carol']);
    expect(second).toMatchObject({ status: 'executing', approvals: 2, required: 2 });
    const run = await waitForStatus(handle, [...ENDED]);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(await userState(uid)).toEqual({ lock: [PERMANENT_LOCK], groups: [] });
    expect(await groupMembers()).toEqual(without(before.groups, uid, ['admins', 'contractors', 'vpn-users']));
  });

  it('denies a break-glass account and changes nothing', async () => {
    const uid = 'breakglass-01';
    const before = await directory(uid, true);
    const handle = await startRun(env.client, env.taskQueue, alert('account.leaver', uid, { severity: 'critical' }), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'denied', error: 'PolicyDenied' });
    expect(run.decision?.policies).toContain('deny-break-glass');
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['DisableAccount', 'RemoveGroupMembership', 'RemoveGroupMembership']);
    expect(await directory(uid, true)).toEqual(before);
    expect(await userState(uid)).toEqual({ lock: [], groups: ['admins', 'break-glass'] });
    expect(await ledgerKinds(handle.workflowId)).not.toContain('action.started');
  });
});

describe('entitlement-cleanup on LDAP', () => {
  it('removes exactly the named group, and leaves the account enabled and in its other groups', async () => {
    const uid = 'grace.kim';
    const before = await directory(uid, true);
    const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', uid, { entitlements: [{ kind: 'group', name: 'jira-users' }] }), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect({ status: run.status, error: run.error }).toMatchObject({ status: 'completed' });
    expect(run.plan?.actions.map((a) => [a.type, a.type === 'RemoveGroupMembership' ? a.group.display : null])).toEqual([['RemoveGroupMembership', 'jira-users']]);
    expect(run.decision?.policies).toEqual(['auto-deprovision-on-high-severity']);
    expect(run.journal.map((j) => j.status)).toEqual(['verified']);
    expect(await userState(uid)).toEqual({ lock: [], groups: ['engineering', 'vpn-users'] });
    // The account entry itself was not written to at all.
    expect(await userEntry(uid, true)).toEqual(before.user);
    expect(await groupMembers()).toEqual(without(before.groups, uid, ['jira-users']));
    await expectReplays(handle);
  });

  it('completes with nothing to do when the account does not hold the named group', async () => {
    const uid = 'dev.patel';
    const before = await directory(uid, true);
    const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', uid, { entitlements: [{ kind: 'group', name: 'finance' }] }), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect(run.status).toBe('completed');
    expect(run.plan?.actions).toEqual([]);
    expect(await directory(uid, true)).toEqual(before);
  });

  it('asks two approvers before taking an administrator out of admins, then removes only that group', async () => {
    const uid = 'omar.aziz';
    const before = await directory(uid, true);
    const handle = await startRun(env.client, env.taskQueue, alert('entitlement.excessive', uid, { entitlements: [{ kind: 'group', name: 'admins' }] }), soc);
    const waiting = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision).toMatchObject({ outcome: 'approve', requiredApprovals: 2 });
    expect(waiting.decision?.policies).toContain('privileged-needs-two-approvers');
    expect(waiting.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type))).toEqual(['admins']);
    expect(await directory(uid, true)).toEqual(before);

    await approveAll(handle, waiting, ['bob', 'carol']);
    expect((await waitForStatus(handle, [...ENDED])).status).toBe('completed');
    expect(await userState(uid)).toEqual({ lock: [], groups: ['engineering', 'vpn-users'] });
    expect(await groupMembers()).toEqual(without(before.groups, uid, ['admins']));
  });
});

describe('quarantine-agent on LDAP', () => {
  it('locks a service account and takes it out of admins only, with two approvers, and un-quarantines it as one unit', async () => {
    const uid = await freshUser('svc-agent', ['admins', 'engineering']);
    const before = await directory(uid);
    const handle = await startRun(env.client, env.taskQueue, alert('agent.anomalous', uid, { severity: 'critical' }), soc);
    const waiting = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect(waiting.status).toBe('awaiting_approval');
    // A directory has no keys and no deny policy: disabling the account stops every bind at once.
    expect(waiting.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type))).toEqual(['DisableAccount', 'admins']);
    expect(waiting.decision).toMatchObject({ outcome: 'approve', requiredApprovals: 2 });
    expect(waiting.decision?.policies).toContain('privileged-needs-two-approvers');
    expect(await directory(uid)).toEqual(before);

    await approveAll(handle, waiting, ['bob', 'carol']);
    expect((await waitForStatus(handle, [...ENDED])).status).toBe('completed');
    expect(await userState(uid)).toEqual({ lock: [PERMANENT_LOCK], groups: ['engineering'] });

    await handle.executeUpdate(requestRollbackUpdate, { args: [signRollbackForTest(handle.workflowId, { requester: 'oscar', roles: ['operator'], reason: 'the agent was cleared' })] });
    const asking = await waitForStatus(handle, ['awaiting_approval', 'rolled_back', 'partially_rolled_back']);
    expect(asking.status).toBe('awaiting_approval');
    expect(asking.rollbacks[0]?.decision?.policies).toContain('privileged-rollback-needs-approval');
    await approveAll(handle, asking, ['bob'], asking.openApproval!.digest);
    const released = await waitForStatus(handle, ['rolled_back', 'partially_rolled_back']);
    expect(released.status).toBe('rolled_back');
    expect(await directory(uid)).toEqual(before);
    await expectReplays(handle);
  });
});

describe('rollback on LDAP', () => {
  it('restores slapd exactly as it was observed when an operator rolls a completed run back', async () => {
    const uid = await freshUser('returner', ['engineering', 'vpn-users']);
    const before = await directory(uid);
    const handle = await startRun(env.client, env.taskQueue, alert('account.leaver', uid), soc);
    const run = await waitForStatus(handle, [...ENDED]);
    expect(run.status).toBe('completed');
    expect(await userState(uid)).toEqual({ lock: [PERMANENT_LOCK], groups: [] });

    const request = signRollbackForTest(handle.workflowId, { requester: 'oscar', roles: ['operator'], reason: 'returning from leave' });
    await expect(handle.executeUpdate(requestRollbackUpdate, { args: [request] })).resolves.toMatchObject({ rollbackId: 'rb_1', actions: run.plan!.actions.map((a) => a.id) });
    const rolledBack = await waitForStatus(handle, ['rolled_back', 'partially_rolled_back']);
    expect(rolledBack.status).toBe('rolled_back');
    expect(rolledBack.journal.every((j) => j.status === 'rolled_back')).toBe(true);
    expect(await directory(uid)).toEqual(before);
    expect((await ledgerKinds(handle.workflowId)).filter((k) => k === 'action.rolled_back')).toHaveLength(3);
    await expectReplays(handle);
  });
});

describe('failures on LDAP', () => {
  // The plan is: 1 DisableAccount, then 2..4 RemoveGroupMembership (engineering, jira-users, vpn-users).
  const GROUPS = ['engineering', 'jira-users', 'vpn-users'];

  for (const k of [1, 2, 3, 4]) {
    it(`restores slapd exactly when action ${k} of 4 takes effect and its call fails`, async () => {
      const uid = await freshUser('leaver', GROUPS);
      const before = await directory(uid);
      const handle = await startRun(env.client, await faultyQueue({ failApplyAfter: k }), alert('account.leaver', uid), soc);
      const run = await waitForStatus(handle, [...ENDED]);
      expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'compensated', error: 'ActionFailed' });
      expect(run.plan!.actions).toHaveLength(4);
      // Undone in reverse order of application, each undo a real change.
      await expectUndoneThrough(handle.workflowId, run, k, 'after');
      expect(await directory(uid)).toEqual(before);
      expect(await userState(uid)).toEqual({ lock: [], groups: GROUPS });
    });
  }

  it('leaves slapd untouched by the failing action when it fails before reaching the directory', async () => {
    const uid = await freshUser('leaver', GROUPS);
    const before = await directory(uid);
    const handle = await startRun(env.client, await faultyQueue({ failApplyBefore: 3 }), alert('account.leaver', uid), soc);
    const run = await waitForStatus(handle, [...ENDED]);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'compensated', error: 'ActionFailed' });
    expect(run.journal.map((j) => j.status)).toEqual(['compensated', 'compensated', 'failed', 'pending']);
    expect(await directory(uid)).toEqual(before);
    await expectReplays(handle);
  });

  it('compensates and escalates when a removal reported done did not happen', async () => {
    const uid = await freshUser('liar', GROUPS);
    const before = await directory(uid);
    const handle = await startRun(env.client, await faultyQueue({ lieOnApply: 3 }), alert('account.leaver', uid), soc);
    const run = await waitForStatus(handle, [...ENDED]);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'needs_human', error: 'VerificationFailed' });
    const lied = run.plan!.actions[2]!;
    expect(lied.type === 'RemoveGroupMembership' && lied.group.display).toBe('jira-users');
    expect(run.error?.message).toContain(lied.id);
    const failed = (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'action.verification_failed');
    expect(failed.map((e) => e.data.actionId)).toEqual([lied.id]);
    expect(failed[0]?.data.observed).toMatchObject({ member: true });
    expect(await directory(uid)).toEqual(before);
  });

  it('compensates and escalates when someone unlocks the account behind Cordon\'s back', async () => {
    const uid = await freshUser('unlocked', GROUPS);
    const before = await directory(uid);
    // Another tool lifts the lock right after Cordon set it: the disable does not hold.
    const meddling = wrapConnector(connector, async (operation, args, call) => {
      const result = await call();
      if (operation === 'setAccountActive' && args[1] === false) {
        await admin.modify(userDn(uid), new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime' }) }));
      }
      return result;
    });
    const handle = await startRun(env.client, await queueWith(meddling), alert('account.leaver', uid), soc);
    const run = await waitForStatus(handle, [...ENDED]);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'needs_human', error: 'VerificationFailed' });
    const [disable, ...removals] = run.plan!.actions;
    expect(run.error?.message).toContain(disable!.id);
    const verdicts = Object.fromEntries(
      (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind.startsWith('action.verif')).map((e) => [e.data.actionId, e.kind]),
    );
    expect(verdicts).toEqual({ [disable!.id]: 'action.verification_failed', ...Object.fromEntries(removals.map((a) => [a.id, 'action.verified'])) });
    // The memberships were put back; the account is unlocked (by the other tool, not by an undo).
    expect(await directory(uid)).toEqual(before);
    expect(await userState(uid)).toEqual({ lock: [], groups: GROUPS });
    await expectReplays(handle);
  });
});

describe('entitlement-cleanup failures on LDAP', () => {
  // The account holds four groups; the alert names three, so the plan is three RemoveGroupMembership
  // actions (in the playbook's stable order) and contractors is never touched.
  const HELD = ['contractors', 'engineering', 'jira-users', 'vpn-users'];
  const NAMED = ['engineering', 'jira-users', 'vpn-users'];
  const cleanup = (uid: string) => alert('entitlement.excessive', uid, { entitlements: NAMED.map((name) => ({ kind: 'group' as const, name })) });

  for (const failed of ['before', 'after'] as const) {
    for (const k of [1, 2, 3]) {
      const how = failed === 'before' ? 'fails before reaching slapd' : 'takes effect and its call fails';
      it(`restores slapd exactly when removal ${k} of 3 ${how}`, async () => {
        const uid = await freshUser('cleanup', HELD);
        const before = await directory(uid, true);
        const handle = await startRun(env.client, await faultyQueue(failed === 'before' ? { failApplyBefore: k } : { failApplyAfter: k }), cleanup(uid), soc);
        const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
        expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'compensated', error: 'ActionFailed' });
        expect(run.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type)).sort()).toEqual(NAMED);
        await expectUndoneThrough(handle.workflowId, run, k, failed);
        // Every membership is back, nothing else moved, and the account entry was never written to.
        expect(await groupMembers()).toEqual(before.groups);
        expect(await userEntry(uid, true)).toEqual(before.user);
        expect(await userState(uid)).toEqual({ lock: [], groups: HELD });
      });
    }
  }

  it('compensates and escalates when the removal of a named group reported done did not happen', async () => {
    const uid = await freshUser('cleanup-liar', HELD);
    const before = await directory(uid, true);
    const handle = await startRun(env.client, await faultyQueue({ lieOnApply: 2 }), cleanup(uid), soc);
    const run = await waitForStatus(handle, [...ENDED, 'awaiting_approval']);
    expect({ status: run.status, error: run.error?.type }).toEqual({ status: 'needs_human', error: 'VerificationFailed' });
    const actions = run.plan!.actions;
    const lied = actions[1]!;
    expect(run.error?.message).toContain(lied.id);
    const entries = await env.ledger.entries({ runId: handle.workflowId });
    const verdicts = Object.fromEntries(entries.filter((e) => e.kind.startsWith('action.verif')).map((e) => [e.data.actionId, e.kind]));
    expect(verdicts).toEqual(Object.fromEntries(actions.map((a) => [a.id, a === lied ? 'action.verification_failed' : 'action.verified'])));
    expect(entries.find((e) => e.kind === 'action.verification_failed')?.data.observed).toMatchObject({ member: true });
    // The two real removals were put back; the one that never happened had nothing to restore.
    const compensated = entries.filter((e) => e.kind === 'action.compensated');
    expect(compensated.map((e) => [e.data.actionId, e.data.changed])).toEqual([
      [actions[2]!.id, true],
      [lied.id, false],
      [actions[0]!.id, true],
    ]);
    expect(await groupMembers()).toEqual(before.groups);
    expect(await userEntry(uid, true)).toEqual(before.user);
    expect(await userState(uid)).toEqual({ lock: [], groups: HELD });
    await expectReplays(handle);
  });
});

describe('idempotent retries on LDAP', () => {
  it('applies the same disable and the same removal twice, and changes slapd only once', async () => {
    const uid = await freshUser('twice', ['jira-users', 'vpn-users']);
    const { ldap, changes } = recordingConnector();
    const activities = createRemediationActivities({ connectors: { ldap }, ledger: env.ledger, policy: env.policy });
    const snapshot = await connector.readAccount({ userName: uid });
    const jira = snapshot.groups.find((g) => g.displayName === 'jira-users')!;
    const target = accountTarget(snapshot);
    const runId = `run_${randomBytes(16).toString('hex')}`;
    const planDigest = randomBytes(32).toString('hex');

    const disable = { runId, playbook: 'deprovision-account', action: disableAccount(target), planDigest };
    expect((await activities.applyAction(disable)).changed).toBe(true);
    const lockedAt = await versionOf(userDn(uid));
    // The retry recognises the change as this run's own, and leaves the entry as it is.
    expect((await activities.applyAction(disable)).changed).toBe(true);
    expect(await versionOf(userDn(uid))).toEqual(lockedAt);
    expect((await userEntry(uid)).pwdAccountLockedTime).toBe(PERMANENT_LOCK);

    const remove = { runId, playbook: 'deprovision-account', action: removeMembership(target, jira), planDigest };
    expect((await activities.applyAction(remove)).changed).toBe(true);
    const removedAt = await versionOf(groupDn('jira-users'));
    const membersAfterRemoval = await groupMembers();
    expect((await activities.applyAction(remove)).changed).toBe(true);
    expect(await versionOf(groupDn('jira-users'))).toEqual(removedAt);
    expect(await groupMembers()).toEqual(membersAfterRemoval);
    expect(await userState(uid)).toEqual({ lock: [PERMANENT_LOCK], groups: ['vpn-users'] });

    // Undoing twice puts the member back once: no duplicate value, no typeOrValueExists.
    const reason = 'test';
    expect((await activities.undoAction({ ...remove, reason })).changed).toBe(true);
    expect((await activities.undoAction({ ...remove, reason })).changed).toBe(false);
    const jiraMembers = (await groupMembers())['jira-users']!;
    expect(jiraMembers.filter((m) => m === userDn(uid).toLowerCase())).toHaveLength(1);
    expect(new Set(jiraMembers).size).toBe(jiraMembers.length);

    expect(changes).toEqual({ setAccountActive: [true, false], removeGroupMember: [true, false], addGroupMember: [true, false] });
    const applied = (await env.ledger.entries({ runId })).filter((e) => e.kind === 'action.applied');
    expect(applied.map((e) => e.data.actionId)).toEqual([disable.action.id, remove.action.id]);
  });

  it('applies the same group removal twice under entitlement-cleanup, and changes slapd only once', async () => {
    const uid = await freshUser('twice-cleanup', ['engineering', 'jira-users']);
    const before = await directory(uid, true);
    const { ldap, changes } = recordingConnector();
    const activities = createRemediationActivities({ connectors: { ldap }, ledger: env.ledger, policy: env.policy });
    const snapshot = await connector.readAccount({ userName: uid });
    const engineering = snapshot.groups.find((g) => g.displayName === 'engineering')!;
    const runId = `run_${randomBytes(16).toString('hex')}`;
    const remove = { runId, playbook: 'entitlement-cleanup', action: removeMembership(accountTarget(snapshot), engineering), planDigest: randomBytes(32).toString('hex') };

    expect((await activities.applyAction(remove)).changed).toBe(true);
    const removedAt = await versionOf(groupDn('engineering'));
    const membersAfterRemoval = await groupMembers();
    expect(membersAfterRemoval).toEqual(without(before.groups, uid, ['engineering']));
    // The retry recognises the removal as this run's own and writes nothing.
    expect((await activities.applyAction(remove)).changed).toBe(true);
    expect(await versionOf(groupDn('engineering'))).toEqual(removedAt);
    expect(await groupMembers()).toEqual(membersAfterRemoval);
    expect(await userEntry(uid, true)).toEqual(before.user);
    expect(await userState(uid)).toEqual({ lock: [], groups: ['jira-users'] });

    expect(changes).toEqual({ removeGroupMember: [true, false] });
    const entries = await env.ledger.entries({ runId });
    expect(entries.filter((e) => e.kind === 'action.started').map((e) => e.data.actionId)).toEqual([remove.action.id]);
    expect(entries.filter((e) => e.kind === 'action.applied').map((e) => e.data.actionId)).toEqual([remove.action.id]);
  });
});
