// The AWS IAM connector against moto's server: reads of users and roles, one access key switched
// without touching the other, the quarantine policy (named at observe, created by its first attach),
// stale entitlements from Access Advisor (which moto lacks: a recorder in front of moto answers those
// three calls, see test/support/aws-access-advisor.ts), group memberships, console access, recreated
// identities refused, and typed failures (including a scripted endpoint for throttling and 5xx).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreatePolicyCommand, DeleteUserCommand, GetLoginProfileCommand, GetPolicyVersionCommand, ListAccessKeysCommand, ListPoliciesCommand, type IAMClient } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createIamClient } from '../../activities/connectors/aws/iam-client.js';
import { createIamConnector, type IamConnector } from '../../activities/connectors/aws/iam-connector.js';
import { AccountSnapshot } from '../../domain/index.js';
import { freePort } from '../../dev/processes.js';
import { startAccessAdvisor, type AccessAdvisorRecorder } from '../support/aws-access-advisor.js';
import { cordonErrorOf } from '../support/errors.js';
import { startMoto, TestAws, type TestMoto } from '../support/moto.js';

let moto: TestMoto;
let aws: TestAws;
let connector: IamConnector;

beforeAll(async () => {
  moto = await startMoto();
  aws = new TestAws(moto.client, moto.url);
  connector = createIamConnector('aws', { client: moto.client });
});

beforeEach(async () => {
  await moto.reset();
});

afterAll(async () => {
  moto?.client.destroy();
  await moto?.stop();
});


async function keyStatuses(userName: string): Promise<Record<string, string | undefined>> {
  const { AccessKeyMetadata } = await moto.client.send(new ListAccessKeysCommand({ UserName: userName }));
  return Object.fromEntries((AccessKeyMetadata ?? []).map((k) => [k.AccessKeyId, k.Status]));
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

describe('IAM connector: reads', () => {
  it('reads a user with both access keys, groups, managed policies and console access', async () => {
    const [dev, oncall] = [await aws.group('developers'), await aws.group('oncall')];
    const readOnly = await aws.managedPolicy('read-only');
    const user = await aws.user('alice', { keys: 2, groups: [dev, oncall], policies: [readOnly.arn], loginProfile: true });

    const snapshot = await connector.readAccount({ userName: user.userName });

    expect(() => AccountSnapshot.parse(snapshot)).not.toThrow();
    expect(snapshot.system).toBe('aws');
    expect(snapshot.account).toEqual({ id: user.id, userName: user.userName, name: user.userName, displayName: user.userName, kind: 'user', active: true });
    expect(snapshot.groups).toEqual(
      [dev, oncall].map((g) => ({ id: g.id, name: g.name, displayName: g.name })).sort((a, b) => a.id.localeCompare(b.id)),
    );
    expect(snapshot.policies).toEqual([{ id: readOnly.arn, displayName: readOnly.name }]);
    expect(snapshot.credentials?.map((c) => c.id).sort()).toEqual(user.keys.map((k) => k.accessKeyId).sort());
    for (const credential of snapshot.credentials ?? []) {
      expect(credential.active).toBe(true);
      expect(credential.createdAt).toMatch(ISO);
      // Never used: IAM answers N/A and no date; the snapshot says null rather than inventing one.
      expect(credential).toMatchObject({ lastUsedAt: null, lastUsedService: null, lastUsedRegion: null });
    }
  });

  it("reports a key's last use (date, service, region) as IAM records it, and null for the unused key", async () => {
    const user = await aws.user('used', { keys: 2 });
    const [used, unused] = user.keys as [(typeof user.keys)[0], (typeof user.keys)[0]];
    const before = Date.now();
    await aws.useKey(used);

    const { credentials } = await connector.readAccount({ userName: user.userName });

    const usedState = credentials?.find((c) => c.id === used.accessKeyId);
    expect(usedState).toMatchObject({ active: true, lastUsedService: 'iam', lastUsedRegion: 'us-east-1' });
    expect(Date.parse(usedState?.lastUsedAt ?? '')).toBeGreaterThanOrEqual(before - 5_000);
    expect(credentials?.find((c) => c.id === unused.accessKeyId)).toMatchObject({ lastUsedAt: null, lastUsedService: null, lastUsedRegion: null });
  });

  it('reads a user without a login profile as inactive (no console access), keys reported separately', async () => {
    const user = await aws.user('service-user', { keys: 1 });
    const snapshot = await connector.readAccount({ userName: user.userName });
    expect(snapshot.account.active).toBe(false);
    expect(snapshot.credentials).toHaveLength(1);
    expect(snapshot.credentials?.[0]?.active).toBe(true);
  });

  it('reads a role by name with its managed policies; a role is always active and has no groups or keys', async () => {
    const policy = await aws.managedPolicy('role-policy');
    const role = await aws.role('deployer', { policies: [policy.arn] });

    const snapshot = await connector.readAccount({ userName: role.roleName, kind: 'role' });

    expect(() => AccountSnapshot.parse(snapshot)).not.toThrow();
    expect(snapshot.account).toEqual({ id: role.id, userName: role.roleName, name: role.roleName, displayName: role.roleName, kind: 'role', active: true });
    expect(snapshot).toMatchObject({ groups: [], credentials: [], policies: [{ id: policy.arn, displayName: policy.name }] });
  });

  it('reads users and roles by immutable id, and refuses an id and a name that disagree (TargetAmbiguous)', async () => {
    const a = await aws.user('a');
    const b = await aws.user('b');
    const role = await aws.role('ci');

    expect((await connector.readAccount({ id: a.id })).account).toMatchObject({ id: a.id, name: a.userName });
    expect((await connector.readAccount({ id: role.id, kind: 'role' })).account).toMatchObject({ id: role.id, name: role.roleName, kind: 'role' });
    expect((await connector.readAccount({ id: a.id, userName: a.userName })).account.id).toBe(a.id);
    const ambiguous = await cordonErrorOf(connector.readAccount({ id: a.id, userName: b.userName }));
    expect(ambiguous.type).toBe('TargetAmbiguous');
    expect(ambiguous.retryable).toBe(false);
  });

  it('answers TargetNotFound, non-retryable, for an unknown user, role or id', async () => {
    for (const ref of [{ userName: 'nobody-here' }, { userName: 'nobody-here', kind: 'role' as const }, { id: 'AIDANOSUCHUSER000000' }, { id: 'AROANOSUCHROLE000000', kind: 'role' as const }]) {
      const error = await cordonErrorOf(connector.readAccount(ref));
      expect(error.type).toBe('TargetNotFound');
      expect(error.retryable).toBe(false);
    }
  });

  it('counts IAM users, not roles', async () => {
    await aws.user('one');
    await aws.user('two');
    await aws.user('three');
    await aws.role('not-counted');
    expect(await connector.countAccounts()).toBe(3);
  });
});

describe('IAM connector: access keys', () => {
  it('finds the owner of an access key and the state of that key', async () => {
    const user = await aws.user('owner', { keys: 2 });
    const key = user.keys[1]!;

    const found = await connector.findCredential(key.accessKeyId);

    expect(found.owner).toEqual({ id: user.id, userName: user.userName, kind: 'user' });
    expect(found.credential).toMatchObject({ id: key.accessKeyId, active: true, lastUsedAt: null });
    expect(found.credential.createdAt).toMatch(ISO);
    expect((await cordonErrorOf(connector.findCredential('AKIAUNKNOWNKEY000000'))).type).toBe('TargetNotFound');
  });

  it("deactivates exactly one key and leaves the user's other key active (cloud-custodian#5583), idempotently", async () => {
    const user = await aws.user('leaked', { keys: 2 });
    const [leaked, other] = user.keys as [(typeof user.keys)[0], (typeof user.keys)[0]];
    const handle = { id: user.id, name: user.userName, kind: 'user' as const };

    expect(await connector.setCredentialActive(handle, leaked.accessKeyId, false)).toEqual({ changed: true, before: { active: true } });
    expect(await keyStatuses(user.userName)).toEqual({ [leaked.accessKeyId]: 'Inactive', [other.accessKeyId]: 'Active' });
    expect(await connector.setCredentialActive(handle, leaked.accessKeyId, false)).toEqual({ changed: false, before: { active: false } });
    expect(await keyStatuses(user.userName)).toEqual({ [leaked.accessKeyId]: 'Inactive', [other.accessKeyId]: 'Active' });

    const snapshot = await connector.readAccount({ id: user.id, userName: user.userName });
    expect(snapshot.credentials?.find((c) => c.id === leaked.accessKeyId)?.active).toBe(false);
    expect(snapshot.credentials?.find((c) => c.id === other.accessKeyId)?.active).toBe(true);

    expect(await connector.setCredentialActive(handle, leaked.accessKeyId, true)).toEqual({ changed: true, before: { active: false } });
    expect(await connector.setCredentialActive(handle, leaked.accessKeyId, true)).toEqual({ changed: false, before: { active: true } });
    expect(await keyStatuses(user.userName)).toEqual({ [leaked.accessKeyId]: 'Active', [other.accessKeyId]: 'Active' });
  });

  it("refuses to switch a key that is not the named user's, and leaves that key alone", async () => {
    const user = await aws.user('holder', { keys: 1 });
    const stranger = await aws.user('stranger', { keys: 1 });
    const strangersKey = stranger.keys[0]!.accessKeyId;
    const error = await cordonErrorOf(connector.setCredentialActive({ id: user.id, name: user.userName, kind: 'user' }, strangersKey, false));
    expect(error.type).toBe('TargetNotFound');
    expect(await keyStatuses(stranger.userName)).toEqual({ [strangersKey]: 'Active' });
  });
});

describe('IAM connector: quarantine policy', () => {
  const QUARANTINE = /^arn:aws:iam::123456789012:policy\/cordon\/CordonQuarantineDenyAll$/;

  async function cordonPolicies() {
    return (await moto.client.send(new ListPoliciesCommand({ Scope: 'Local', PathPrefix: '/cordon/' }))).Policies ?? [];
  }

  it("names the deny-all policy in the identity's own account without creating it", async () => {
    const user = await aws.user('observed');
    const role = await aws.role('observed-role');

    const forUser = await connector.quarantinePolicy({ id: user.id, name: user.userName, kind: 'user' });
    const forRole = await connector.quarantinePolicy({ id: role.id, name: role.roleName, kind: 'role' });

    expect(forUser).toEqual({ id: forUser.id, name: forUser.id, displayName: 'CordonQuarantineDenyAll' });
    expect(forUser.id).toMatch(QUARANTINE);
    expect(forRole).toEqual(forUser);
    expect(await cordonPolicies()).toEqual([]);
  });

  it('creates the deny-all policy under /cordon/ on its first attach, and reuses it for every later one', async () => {
    const first = await aws.user('first');
    const second = await aws.role('second');
    const quarantine = await connector.quarantinePolicy({ id: first.id, name: first.userName });

    expect(await connector.attachPolicy({ id: first.id, name: first.userName }, quarantine)).toEqual({ changed: true, before: { attached: false } });
    expect(await connector.attachPolicy({ id: second.id, name: second.roleName, kind: 'role' }, quarantine)).toEqual({ changed: true, before: { attached: false } });

    const policies = await cordonPolicies();
    expect(policies.map((p) => p.Arn)).toEqual([quarantine.id]);
    const version = await moto.client.send(new GetPolicyVersionCommand({ PolicyArn: quarantine.id, VersionId: policies[0]?.DefaultVersionId ?? 'v1' }));
    const document = version.PolicyVersion?.Document ?? '';
    const parsed = JSON.parse(document.startsWith('{') ? document : decodeURIComponent(document)) as { Statement: unknown[] };
    expect(parsed.Statement).toEqual([{ Sid: 'CordonQuarantine', Effect: 'Deny', Action: '*', Resource: '*' }]);
  });

  it('attaches and detaches the quarantine policy on a user, idempotently, leaving other policies in place', async () => {
    const existing = await aws.managedPolicy('existing');
    const user = await aws.user('suspect', { policies: [existing.arn] });
    const handle = { id: user.id, name: user.userName, kind: 'user' as const };
    const quarantine = await connector.quarantinePolicy(handle);

    expect(await connector.attachPolicy(handle, quarantine)).toEqual({ changed: true, before: { attached: false } });
    expect(await connector.attachPolicy(handle, quarantine)).toEqual({ changed: false, before: { attached: true } });
    expect((await connector.readAccount({ userName: user.userName })).policies?.map((p) => p.id).sort()).toEqual([existing.arn, quarantine.id].sort());

    expect(await connector.detachPolicy(handle, quarantine)).toEqual({ changed: true, before: { attached: true } });
    expect(await connector.detachPolicy(handle, quarantine)).toEqual({ changed: false, before: { attached: false } });
    expect((await connector.readAccount({ userName: user.userName })).policies).toEqual([{ id: existing.arn, displayName: existing.name }]);
  });

  it('attaches and detaches the quarantine policy on a role, idempotently, with one policy shared by all', async () => {
    const role = await aws.role('compromised');
    const user = await aws.user('also-suspect');
    const handle = { id: role.id, name: role.roleName, kind: 'role' as const };
    const quarantine = await connector.quarantinePolicy(handle);

    expect(await connector.attachPolicy(handle, quarantine)).toEqual({ changed: true, before: { attached: false } });
    expect(await connector.attachPolicy(handle, quarantine)).toEqual({ changed: false, before: { attached: true } });
    const userHandle = { id: user.id, name: user.userName };
    expect(await connector.attachPolicy(userHandle, await connector.quarantinePolicy(userHandle))).toEqual({ changed: true, before: { attached: false } });
    expect((await connector.readAccount({ userName: role.roleName, kind: 'role' })).policies).toEqual([{ id: quarantine.id, displayName: 'CordonQuarantineDenyAll' }]);

    expect(await connector.detachPolicy(handle, quarantine)).toEqual({ changed: true, before: { attached: true } });
    expect(await connector.detachPolicy(handle, quarantine)).toEqual({ changed: false, before: { attached: false } });
    expect((await connector.readAccount({ userName: role.roleName, kind: 'role' })).policies).toEqual([]);
    expect(await cordonPolicies()).toHaveLength(1);
  });

  it('attaches the policy another worker created between its look-up and its own create', async () => {
    const user = await aws.user('raced');
    const handle = { id: user.id, name: user.userName };
    const quarantine = await connector.quarantinePolicy(handle);
    // Right before this connector's CreatePolicy goes out, another worker creates the same policy.
    const client = createIamClient({ region: 'us-east-1', endpoint: moto.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    const creates: string[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'CreatePolicyCommand') {
          creates.push('cordon');
          await moto.client.send(
            new CreatePolicyCommand({ PolicyName: 'CordonQuarantineDenyAll', Path: '/cordon/', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Deny', Action: '*', Resource: '*' }] }) }),
          );
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    try {
      const racing = createIamConnector('aws', { client });
      expect(await racing.attachPolicy(handle, quarantine)).toEqual({ changed: true, before: { attached: false } });
    } finally {
      client.destroy();
    }
    expect(creates).toEqual(['cordon']);
    expect((await cordonPolicies()).map((p) => p.Arn)).toEqual([quarantine.id]);
    expect((await connector.readAccount({ userName: user.userName })).policies?.map((p) => p.id)).toEqual([quarantine.id]);
  });

  it('refuses a policy at the quarantine name and path that is not deny-all, when observing and when attaching (ConnectorRejected)', async () => {
    const user = await aws.user('would-be-granted');
    const handle = { id: user.id, name: user.userName };
    const quarantine = await connector.quarantinePolicy(handle);
    // Someone able to create policies puts an allow-all where Cordon's deny-all belongs.
    await moto.client.send(
      new CreatePolicyCommand({
        PolicyName: 'CordonQuarantineDenyAll',
        Path: '/cordon/',
        PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }),
      }),
    );
    for (const attempt of [() => connector.quarantinePolicy(handle), () => connector.attachPolicy(handle, quarantine)]) {
      const error = await cordonErrorOf(attempt());
      expect(error.type).toBe('ConnectorRejected');
      expect(error.retryable).toBe(false);
    }
    expect((await connector.readAccount({ userName: user.userName })).policies).toEqual([]);
  });

  it("refuses another account's quarantine policy, and creates nothing", async () => {
    const user = await aws.user('cross-account');
    const error = await cordonErrorOf(connector.attachPolicy({ id: user.id, name: user.userName }, { id: 'arn:aws:iam::999999999999:policy/cordon/CordonQuarantineDenyAll' }));
    expect(error.type).toBe('ConnectorRejected');
    expect(error.details).toMatchObject({ field: 'policy.id' });
    expect(await cordonPolicies()).toEqual([]);
    expect((await connector.readAccount({ userName: user.userName })).policies).toEqual([]);
  });
});

describe('IAM connector: stale entitlements (Access Advisor)', () => {
  const DAY = 86_400_000;
  // moto dates every identity today; the connector's clock runs 200 days ahead, so the identities are
  // old enough for the windows below and "N days ago" is counted from that clock.
  const later = new Date(Date.now() + 200 * DAY);
  const ago = (days: number) => new Date(later.getTime() - days * DAY);
  let advisor: AccessAdvisorRecorder;
  let client: IAMClient;
  let advised: IamConnector;

  beforeAll(async () => {
    advisor = await startAccessAdvisor(moto.url);
    client = moto.iamClient({ endpoint: advisor.url });
    advised = createIamConnector('aws', { client, now: () => later });
  });

  beforeEach(() => {
    Object.assign(advisor, { pendingPolls: 0, failJobs: undefined, pageSize: undefined });
    advisor.requests.length = 0;
  });

  afterAll(async () => {
    client?.destroy();
    await advisor?.stop();
  });

  /**
   * A user holding five entitlements besides the quarantine policy: s3-reader (s3, last used 120 days
   * ago), ec2-and-s3 (ec2 used 10 days ago), dynamo (never used), group queues (sqs, 200 days ago) and
   * group lambdas (lambda, 5 days ago), as Access Advisor would report them.
   */
  async function hoarder() {
    const [s3Reader, mixed, dynamo, sqs, lambda] = [
      await aws.managedPolicy('s3-reader'),
      await aws.managedPolicy('ec2-and-s3'),
      await aws.managedPolicy('dynamo'),
      await aws.managedPolicy('sqs'),
      await aws.managedPolicy('lambda'),
    ];
    const [queues, lambdas] = [await aws.group('queues'), await aws.group('lambdas')];
    await aws.attachToGroup(queues, sqs.arn);
    await aws.attachToGroup(lambdas, lambda.arn);
    const user = await aws.user('hoarder', { policies: [s3Reader.arn, mixed.arn, dynamo.arn], groups: [queues, lambdas] });
    const handle = { id: user.id, name: user.userName, kind: 'user' as const };
    await connector.attachPolicy(handle, await connector.quarantinePolicy(handle));
    advisor.record(user.arn, {
      lastAuthenticated: { s3: ago(120), ec2: ago(10), dynamodb: null, sqs: ago(200), lambda: ago(5) },
      grants: { s3: [s3Reader, mixed], ec2: [mixed], dynamodb: [dynamo], sqs: [sqs], lambda: [lambda, { name: 'inline-lambda', entityType: 'USER', entityName: user.userName }] },
    });
    advisor.record(queues.arn, { grants: { sqs: [sqs] } });
    advisor.record(lambdas.arn, { grants: { lambda: [lambda] } });
    const stale = [
      { kind: 'group', id: queues.id, displayName: queues.name, lastUsedAt: ago(200).toISOString(), services: 1 },
      { kind: 'policy', id: dynamo.arn, displayName: dynamo.name, lastUsedAt: null, services: 1 },
      { kind: 'policy', id: s3Reader.arn, displayName: s3Reader.name, lastUsedAt: ago(120).toISOString(), services: 1 },
    ].sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
    return { handle, stale, s3Reader };
  }

  it('finds the policies and groups whose every service went unused for N days, keeps those used since, and only reads', async () => {
    const { handle, stale, s3Reader } = await hoarder();
    advisor.requests.length = 0;

    expect(await advised.staleEntitlements(handle, 90)).toEqual(stale);
    // A longer window spares the policy last used 120 days ago.
    expect(await advised.staleEntitlements(handle, 150)).toEqual(stale.filter((e) => e.id !== s3Reader.arn));

    const actions = advisor.requests.map((r) => r.action);
    expect(actions.filter((a) => !/^(Get|List)/.test(a))).toEqual(['GenerateServiceLastAccessedDetails', 'GenerateServiceLastAccessedDetails']);
    // The user's grants, then each group's own.
    expect(actions.filter((a) => a === 'ListPoliciesGrantingServiceAccess')).toHaveLength(6);
  });

  it('waits for a running Access Advisor job and follows every page of its report and of the grants', async () => {
    const { handle, stale } = await hoarder();
    Object.assign(advisor, { pendingPolls: 2, pageSize: 1 });
    advisor.requests.length = 0;

    expect(await advised.staleEntitlements(handle, 90)).toEqual(stale);
    // Two polls in progress, then the five services of the report one page each.
    expect(advisor.requests.filter((r) => r.action === 'GetServiceLastAccessedDetails')).toHaveLength(7);
  });

  it('finds the stale policies of a role', async () => {
    const [unused, used] = [await aws.managedPolicy('unused-by-agent'), await aws.managedPolicy('used-by-agent')];
    const role = await aws.role('agent', { policies: [unused.arn, used.arn] });
    advisor.record(role.arn, { lastAuthenticated: { kms: ago(91), sts: ago(1) }, grants: { kms: [unused], sts: [used] } });

    expect(await advised.staleEntitlements({ id: role.id, name: role.roleName, kind: 'role' }, 90)).toEqual([
      { kind: 'policy', id: unused.arn, displayName: unused.name, lastUsedAt: ago(91).toISOString(), services: 1 },
    ]);
  });

  it('has nothing stale for an identity younger than the window, and does not ask Access Advisor', async () => {
    const { handle } = await hoarder();
    advisor.requests.length = 0;
    const today = createIamConnector('aws', { client });
    expect(await today.staleEntitlements(handle, 90)).toEqual([]);
    expect(advisor.requests.map((r) => r.action)).not.toContain('GenerateServiceLastAccessedDetails');
  });

  it('answers ConnectorUnavailable (retryable) when the job is still running after the bounded wait, or failed', async () => {
    const { handle } = await hoarder();
    const impatient = createIamConnector('aws', { client, now: () => later, accessAdvisorWaitMs: 600 });

    advisor.pendingPolls = Number.POSITIVE_INFINITY;
    const running = await cordonErrorOf(impatient.staleEntitlements(handle, 90));
    expect({ type: running.type, retryable: running.retryable }).toEqual({ type: 'ConnectorUnavailable', retryable: true });
    expect(running.message).toMatch(/still running after 600 ms/);

    Object.assign(advisor, { pendingPolls: 0, failJobs: 'tracking data unavailable' });
    const failed = await cordonErrorOf(advised.staleEntitlements(handle, 90));
    expect({ type: failed.type, retryable: failed.retryable }).toEqual({ type: 'ConnectorUnavailable', retryable: true });
    expect(failed.message).toContain('tracking data unavailable');
  });

  it('refuses a window outside 1 to 400 days, naming unusedForDays', async () => {
    const user = await aws.user('window');
    for (const days of [0, 401, 1.5]) {
      const error = await cordonErrorOf(advised.staleEntitlements({ id: user.id, name: user.userName }, days));
      expect(error.type).toBe('InvalidRequest');
      expect(error.details).toMatchObject({ field: 'unusedForDays' });
    }
    expect(advisor.requests).toEqual([]);
  });
});

describe('IAM connector: groups and console access', () => {
  it('removes and restores one group membership, leaving other members alone', async () => {
    const admins = await aws.group('admins');
    const user = await aws.user('member', { groups: [admins] });
    const colleague = await aws.user('colleague', { groups: [admins] });
    const handle = { id: user.id, name: user.userName, kind: 'user' as const };
    const group = { id: admins.id, name: admins.name };

    expect(await connector.removeGroupMember(group, handle)).toEqual({ changed: true, before: { member: true } });
    expect(await connector.isGroupMember(group, handle)).toBe(false);
    expect(await connector.isGroupMember(group, { id: colleague.id, name: colleague.userName })).toBe(true);
    expect(await connector.removeGroupMember(group, handle)).toEqual({ changed: false, before: { member: false } });
    expect(await connector.addGroupMember(group, handle)).toEqual({ changed: true, before: { member: false } });
    expect(await connector.addGroupMember(group, handle)).toEqual({ changed: false, before: { member: true } });
    // Handles without names are found by id.
    expect(await connector.isGroupMember({ id: admins.id }, { id: user.id })).toBe(true);
  });

  it('deletes console access and recreates it with a forced password reset, leaving access keys alone', async () => {
    const user = await aws.user('console', { keys: 1, loginProfile: true });
    const handle = { id: user.id, name: user.userName, kind: 'user' as const };
    // moto stores no PasswordResetRequired on CreateLoginProfile (it always answers false), so the
    // request itself is checked, as the SDK sends it.
    const sent: { command: string; input: Record<string, unknown> }[] = [];
    const client = createIamClient({ region: 'us-east-1', endpoint: moto.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    client.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push({ command: String(context.commandName), input: args.input as Record<string, unknown> });
        return next(args);
      },
      { step: 'initialize' },
    );
    const connector = createIamConnector('aws', { client });

    expect(await connector.setAccountActive(handle, false)).toEqual({ changed: true, before: { active: true } });
    expect((await connector.readAccount({ userName: user.userName })).account.active).toBe(false);
    expect(await connector.setAccountActive(handle, false)).toEqual({ changed: false, before: { active: false } });
    expect(await keyStatuses(user.userName)).toEqual({ [user.keys[0]!.accessKeyId]: 'Active' });

    expect(await connector.setAccountActive(handle, true)).toEqual({ changed: true, before: { active: false } });
    expect(await connector.setAccountActive(handle, true)).toEqual({ changed: false, before: { active: true } });
    const { LoginProfile } = await moto.client.send(new GetLoginProfileCommand({ UserName: user.userName }));
    expect(LoginProfile?.UserName).toBe(user.userName);
    const creates = sent.filter((s) => s.command === 'CreateLoginProfileCommand');
    expect(creates).toHaveLength(1);
    expect(creates[0]?.input).toMatchObject({ UserName: user.userName, PasswordResetRequired: true });
    expect(creates[0]?.input['Password']).toMatch(/^(?=.*[A-Z])(?=.*[a-z])(?=.*\d)(?=.*[^A-Za-z\d]).{40}$/);
    expect(sent.map((s) => s.command)).not.toContain('DeleteAccessKeyCommand');
    client.destroy();
  });

  it('refuses console and group changes on a role (UnsupportedOperation), changing nothing', async () => {
    const role = await aws.role('no-console');
    const group = await aws.group('any');
    const handle = { id: role.id, name: role.roleName, kind: 'role' as const };
    expect((await cordonErrorOf(connector.setAccountActive(handle, false))).type).toBe('UnsupportedOperation');
    expect((await cordonErrorOf(connector.addGroupMember(group, handle))).type).toBe('UnsupportedOperation');
    expect((await connector.readAccount({ userName: role.roleName, kind: 'role' })).account.active).toBe(true);
  });
});

describe('IAM connector: identity and failures', () => {
  it('refuses to act on a user deleted and recreated under the same name (TargetAmbiguous, non-retryable)', async () => {
    const original = await aws.user('reused', { keys: 1, loginProfile: false });
    const snapshot = await connector.readAccount({ userName: original.userName });
    const handle = { id: snapshot.account.id, name: snapshot.account.name, kind: 'user' as const };
    const quarantine = await connector.quarantinePolicy(handle);
    const admins = await aws.group('admins');

    await moto.client.send(new DeleteUserCommand({ UserName: original.userName }));
    const recreated = await aws.user('reused', { userName: original.userName, loginProfile: true, groups: [admins] });
    expect(recreated.id).not.toBe(original.id);

    for (const attempt of [
      () => connector.attachPolicy(handle, quarantine),
      () => connector.setAccountActive(handle, false),
      () => connector.removeGroupMember(admins, handle),
      () => connector.setCredentialActive(handle, original.keys[0]!.accessKeyId, false),
    ]) {
      const error = await cordonErrorOf(attempt());
      expect(error.type).toBe('TargetAmbiguous');
      expect(error.retryable).toBe(false);
    }
    const now = await connector.readAccount({ userName: original.userName });
    expect(now.account).toMatchObject({ id: recreated.id, active: true });
    expect(now.policies).toEqual([]);
    expect(now.groups.map((g) => g.id)).toEqual([admins.id]);
  });

  it('answers TargetNotFound for an unknown user or policy, and ConnectorRejected for a malformed policy ARN', async () => {
    const user = await aws.user('target');
    const handle = { id: user.id, name: user.userName, kind: 'user' as const };
    expect((await cordonErrorOf(connector.attachPolicy({ id: 'AIDAGONE', name: 'gone-user' }, { id: 'arn:aws:iam::aws:policy/ReadOnlyAccess' }))).type).toBe('TargetNotFound');
    expect((await cordonErrorOf(connector.attachPolicy(handle, { id: 'arn:aws:iam::123456789012:policy/does-not-exist' }))).type).toBe('TargetNotFound');
    const malformed = await cordonErrorOf(connector.attachPolicy(handle, { id: 'not-an-arn' }));
    expect(malformed.type).toBe('ConnectorRejected');
    expect(malformed.retryable).toBe(false);
    expect((await connector.readAccount({ userName: user.userName })).policies).toEqual([]);
  });

  it('answers ConnectorUnavailable (retryable) when the endpoint is down', async () => {
    const client = createIamClient({ region: 'us-east-1', endpoint: `http://127.0.0.1:${await freePort()}`, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, connectionTimeoutMs: 2000 });
    const down = createIamConnector('aws', { client });
    try {
      const error = await cordonErrorOf(down.readAccount({ userName: 'anyone' }));
      expect(error.type).toBe('ConnectorUnavailable');
      expect(error.retryable).toBe(true);
    } finally {
      client.destroy();
    }
  });

  describe('against a scripted IAM endpoint', () => {
    let server: Server;
    let answer = { status: 500, code: 'ServiceFailure' };
    let requests = 0;

    beforeAll(async () => {
      server = createServer((request, response) => {
        requests++;
        request.resume();
        request.on('end', () => {
          response.writeHead(answer.status, { 'content-type': 'text/xml' });
          response.end(
            `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>${answer.code}</Code><Message>scripted ${answer.code}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`,
          );
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });

    afterAll(async () => {
      await new Promise((resolve) => server?.close(resolve));
    });

    it('treats throttling, 429 and 5xx as retryable, 409 conflicts as ConcurrentModification and other 4xx as rejections, in one attempt each', async () => {
      const client = createIamClient({ region: 'us-east-1', endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
      const scripted = createIamConnector('aws', { client });
      const cases = [
        { status: 400, code: 'Throttling', type: 'ConnectorUnavailable' },
        { status: 429, code: 'TooManyRequestsException', type: 'ConnectorUnavailable' },
        { status: 500, code: 'ServiceFailure', type: 'ConnectorUnavailable' },
        { status: 503, code: 'ServiceUnavailable', type: 'ConnectorUnavailable' },
        { status: 409, code: 'ConcurrentModification', type: 'ConcurrentModification' },
        { status: 403, code: 'AccessDenied', type: 'ConnectorRejected' },
        { status: 400, code: 'InvalidInput', type: 'ConnectorRejected' },
        { status: 409, code: 'LimitExceeded', type: 'ConnectorRejected' },
        { status: 400, code: 'MalformedPolicyDocument', type: 'ConnectorRejected' },
        { status: 404, code: 'NoSuchEntity', type: 'TargetNotFound' },
      ];
      try {
        for (const c of cases) {
          answer = c;
          const before = requests;
          const error = await cordonErrorOf(scripted.readAccount({ userName: 'someone' }));
          expect({ code: c.code, type: error.type }).toEqual({ code: c.code, type: c.type });
          expect(error.details).toMatchObject({ operation: 'GetUser', httpStatus: c.status });
          // One attempt per call: retries are the activity's, visible in the run's history.
          expect(requests - before).toBe(1);
        }
      } finally {
        client.destroy();
      }
    });
  });
});
