import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AddUserToGroupCommand,
  AttachRolePolicyCommand,
  AttachUserPolicyCommand,
  CreateLoginProfileCommand,
  CreatePolicyCommand,
  DeleteLoginProfileCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  GenerateServiceLastAccessedDetailsCommand,
  GetAccessKeyLastUsedCommand,
  GetGroupCommand,
  GetLoginProfileCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRoleCommand,
  GetServiceLastAccessedDetailsCommand,
  GetUserCommand,
  ListPoliciesGrantingServiceAccessCommand,
  paginateListAccessKeys,
  paginateListAttachedRolePolicies,
  paginateListAttachedUserPolicies,
  paginateListGroups,
  paginateListGroupsForUser,
  paginateListRoles,
  paginateListUsers,
  RemoveUserFromGroupCommand,
  UpdateAccessKeyCommand,
  type AccessKeyLastUsed,
  type AccessKeyMetadata,
  type Group,
  type IAMClient,
  type Policy,
  type PolicyGrantingServiceAccess,
} from '@aws-sdk/client-iam';
import { CordonError, type AccountSnapshot, type CredentialState, type GroupRef, type PolicyRef, type StaleEntitlement } from '../../../domain/index.js';
import type { AccountHandle, AccountRef, ChangeResult, DirectoryConnector, ObjectHandle } from '../types.js';
import { awsErrorCode, iamFailure } from './iam-errors.js';
import { isDenyAllDocument, QUARANTINE_POLICY_DOCUMENT, QUARANTINE_POLICY_NAME, QUARANTINE_POLICY_PATH } from './quarantine-policy.js';

/** What the IAM connector offers: console access, access keys, managed policies and group memberships. */
export type IamConnector = DirectoryConnector &
  Required<
    Pick<
      DirectoryConnector,
      | 'countAccounts'
      | 'setAccountActive'
      | 'isGroupMember'
      | 'removeGroupMember'
      | 'addGroupMember'
      | 'findCredential'
      | 'setCredentialActive'
      | 'attachPolicy'
      | 'detachPolicy'
      | 'quarantinePolicy'
      | 'staleEntitlements'
    >
  >;

export interface IamConnectorOptions {
  /** Built by `createIamClient` (one attempt per call; Temporal retries). */
  client: IAMClient;
  /** How long `staleEntitlements` waits for an Access Advisor report (default 20 s, inside observe's 30 s). */
  accessAdvisorWaitMs?: number;
  /** The clock disuse is measured against; the system clock when absent. */
  now?: () => Date;
}

type IamKind = 'user' | 'role';

/**
 * An IAM user or role: its immutable id (UserId AIDA…, RoleId AROA…), the name every call takes, its
 * ARN (which names its account) and when it was created.
 */
interface Identity {
  kind: IamKind;
  id: string;
  name: string;
  arn: string;
  createdAt: Date | undefined;
}

// ListUsers and friends return at most 1000 items a page. AWS's quotas (5000 users, 5000 roles,
// 300 groups per account by default; 2 keys, 10 groups and 20 managed policies per identity) stay
// well inside this bound; an account beyond it gets a clear refusal instead of an endless scan.
const PAGE_SIZE = 1000;
const MAX_PAGES = 100;

// A managed policy ARN: AWS answers InvalidInput for anything else (moto answers NoSuchEntity), so
// the connector checks the form itself and both refuse it the same way.
const POLICY_ARN = /^arn:aws(?:-[a-z]+)*:iam::(?:aws|\d{12}):policy\/[\u0021-\u007e]{1,2000}$/;

// Cordon's quarantine policy in any account: attaching it creates it there first when it is absent.
const QUARANTINE_ARN = new RegExp(`^arn:aws(?:-[a-z]+)*:iam::\\d{12}:policy${QUARANTINE_POLICY_PATH}${QUARANTINE_POLICY_NAME}$`);

// ListPoliciesGrantingServiceAccess takes a bounded list of namespaces a call; a user's report
// rarely names more than a few dozen services, so batches of this size mean one or two calls.
const NAMESPACES_PER_CALL = 100;
const DAY_MS = 86_400_000;

function iamKind(kind: AccountRef['kind']): IamKind {
  if (kind === undefined || kind === 'user') return 'user';
  if (kind === 'role') return 'role';
  throw new CordonError('InvalidRequest', `IAM identities are users or roles, not ${kind}`, { field: 'kind' });
}

/** IAM reports "never used" as the string N/A (and no date); the snapshot says null. */
function known(value: string | undefined): string | null {
  return value === undefined || value === '' || value === 'N/A' ? null : value;
}

function credentialState(key: AccessKeyMetadata & { AccessKeyId: string }, lastUsed: AccessKeyLastUsed | undefined): CredentialState {
  return {
    id: key.AccessKeyId,
    active: key.Status === 'Active',
    createdAt: key.CreateDate?.toISOString() ?? null,
    lastUsedAt: lastUsed?.LastUsedDate?.toISOString() ?? null,
    lastUsedService: known(lastUsed?.ServiceName),
    lastUsedRegion: known(lastUsed?.Region),
  };
}

const PASSWORD_CLASSES = ['ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz', '23456789', '!@#$%^&*()-_=+[]{}'];

/** 40 random characters with every class an account password policy can require. */
function randomPassword(length = 40): string {
  const all = PASSWORD_CLASSES.join('');
  const chars = PASSWORD_CLASSES.map((c) => c.charAt(randomInt(c.length)));
  while (chars.length < length) chars.push(all.charAt(randomInt(all.length)));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j] as string, chars[i] as string];
  }
  return chars.join('');
}

/**
 * A directory connector over AWS IAM. Accounts are IAM users (kind `user`) and roles (kind `role`):
 * `id` is the immutable UserId or RoleId, `name` (and `userName`) the UserName or RoleName that IAM's
 * calls take. Every operation on a handle re-reads the identity by name and refuses it
 * (TargetAmbiguous) when the name now belongs to another id: a user deleted and recreated under the
 * same name is a different principal. `active` means console sign-in (a login profile); access keys
 * are reported, and switched, one by one as `credentials`; roles are always `active`. Failures are
 * catalogue errors (see `iamFailure`).
 */
export function createIamConnector(system: string, options: IamConnectorOptions): IamConnector {
  const { client } = options;
  const now = options.now ?? (() => new Date());
  const advisorWaitMs = options.accessAdvisorWaitMs ?? 20_000;

  const call = async <T>(operation: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw iamFailure(error, operation);
    }
  };

  /** Calls `visit` with every item of every page (at most MAX_PAGES pages) until it returns true. */
  const walk = <P, T>(operation: string, pages: AsyncIterable<P>, items: (page: P) => T[] | undefined, visit: (item: T) => boolean): Promise<void> =>
    call(operation, async () => {
      let count = 0;
      for await (const page of pages) {
        if (++count > MAX_PAGES) {
          throw new CordonError('ConnectorRejected', `IAM ${operation}: more than ${MAX_PAGES * PAGE_SIZE} items; name the object by its name instead`, { operation });
        }
        for (const item of items(page) ?? []) if (visit(item)) return;
      }
    });

  const collect = async <P, T>(operation: string, pages: AsyncIterable<P>, items: (page: P) => T[] | undefined): Promise<T[]> => {
    const all: T[] = [];
    await walk(operation, pages, items, (item) => {
      all.push(item);
      return false;
    });
    return all;
  };

  const findFirst = async <P, T>(operation: string, pages: AsyncIterable<P>, items: (page: P) => T[] | undefined, match: (item: T) => boolean): Promise<T | undefined> => {
    let found: T | undefined;
    await walk(operation, pages, items, (item) => {
      if (!match(item)) return false;
      found = item;
      return true;
    });
    return found;
  };

  const getByName = async (kind: IamKind, name: string): Promise<Identity> => {
    if (kind === 'user') {
      const { User } = await call('GetUser', () => client.send(new GetUserCommand({ UserName: name })));
      if (!User?.UserId || !User.UserName || !User.Arn) throw new CordonError('ConnectorUnavailable', `IAM GetUser answered without the user ${name}`);
      return { kind, id: User.UserId, name: User.UserName, arn: User.Arn, createdAt: User.CreateDate };
    }
    const { Role } = await call('GetRole', () => client.send(new GetRoleCommand({ RoleName: name })));
    if (!Role?.RoleId || !Role.RoleName || !Role.Arn) throw new CordonError('ConnectorUnavailable', `IAM GetRole answered without the role ${name}`);
    return { kind, id: Role.RoleId, name: Role.RoleName, arn: Role.Arn, createdAt: Role.CreateDate };
  };

  // IAM has no lookup by UserId or RoleId: list and match (bounded, see MAX_PAGES).
  const findById = async (kind: IamKind, id: string): Promise<Identity> => {
    const found =
      kind === 'user'
        ? await findFirst('ListUsers', paginateListUsers({ client, pageSize: PAGE_SIZE }, {}), (p) => p.Users, (u) => u.UserId === id).then((u) => u && { name: u.UserName, arn: u.Arn, createdAt: u.CreateDate })
        : await findFirst('ListRoles', paginateListRoles({ client, pageSize: PAGE_SIZE }, {}), (p) => p.Roles, (r) => r.RoleId === id).then((r) => r && { name: r.RoleName, arn: r.Arn, createdAt: r.CreateDate });
    if (!found?.name || !found.arn) throw new CordonError('TargetNotFound', `no IAM ${kind} with id ${id}`, { id, kind });
    return { kind, id, name: found.name, arn: found.arn, createdAt: found.createdAt };
  };

  /** The identity a handle names, re-read now; refused if its name has come to mean another id. */
  const resolve = async (handle: AccountHandle): Promise<Identity> => {
    const kind = iamKind(handle.kind);
    if (handle.name === undefined) return findById(kind, handle.id);
    const current = await getByName(kind, handle.name);
    if (current.id !== handle.id) {
      throw new CordonError(
        'TargetAmbiguous',
        `IAM ${kind} ${handle.name} now has id ${current.id}, not ${handle.id}: it was deleted and recreated, and the new one is not the identity Cordon observed`,
        { name: handle.name, expectedId: handle.id, currentId: current.id },
      );
    }
    return current;
  };

  const resolveUser = async (handle: AccountHandle, operation: string): Promise<Identity> => {
    if (iamKind(handle.kind) !== 'user') {
      throw new CordonError('UnsupportedOperation', `${operation} applies to IAM users, not roles (quarantine a role with a policy)`, { operation });
    }
    return resolve(handle);
  };

  const resolveGroup = async (handle: ObjectHandle): Promise<{ id: string; name: string }> => {
    if (handle.name === undefined) {
      const group = await findFirst('ListGroups', paginateListGroups({ client, pageSize: PAGE_SIZE }, {}), (p) => p.Groups, (g) => g.GroupId === handle.id);
      if (!group?.GroupName) throw new CordonError('TargetNotFound', `no IAM group with id ${handle.id}`, { id: handle.id });
      return { id: handle.id, name: group.GroupName };
    }
    const groupName = handle.name;
    // MaxItems 1: only the group itself is wanted, not its member list.
    const { Group } = await call('GetGroup', () => client.send(new GetGroupCommand({ GroupName: groupName, MaxItems: 1 })));
    if (!Group?.GroupId) throw new CordonError('ConnectorUnavailable', `IAM GetGroup answered without the group ${groupName}`);
    if (Group.GroupId !== handle.id) {
      throw new CordonError('TargetAmbiguous', `IAM group ${groupName} now has id ${Group.GroupId}, not ${handle.id}: it was deleted and recreated`, {
        name: groupName,
        expectedId: handle.id,
        currentId: Group.GroupId,
      });
    }
    return { id: Group.GroupId, name: groupName };
  };

  const userGroups = (user: Identity): Promise<Group[]> =>
    collect('ListGroupsForUser', paginateListGroupsForUser({ client, pageSize: PAGE_SIZE }, { UserName: user.name }), (p) => p.Groups);

  const groupsOf = async (user: Identity): Promise<GroupRef[]> => {
    const groups = await userGroups(user);
    return groups
      .flatMap((g) => (g.GroupId && g.GroupName ? [{ id: g.GroupId, name: g.GroupName, displayName: g.GroupName }] : []))
      .sort((a, b) => a.id.localeCompare(b.id));
  };

  const accessKeys = async (user: Identity): Promise<(AccessKeyMetadata & { AccessKeyId: string })[]> => {
    const keys = await collect('ListAccessKeys', paginateListAccessKeys({ client, pageSize: 100 }, { UserName: user.name }), (p) => p.AccessKeyMetadata);
    return keys.filter((k): k is AccessKeyMetadata & { AccessKeyId: string } => typeof k.AccessKeyId === 'string');
  };

  const lastUsed = (accessKeyId: string) => call('GetAccessKeyLastUsed', () => client.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: accessKeyId })));

  const credentialsOf = async (user: Identity): Promise<CredentialState[]> => {
    const keys = await accessKeys(user);
    const states = await Promise.all(keys.map(async (key) => credentialState(key, (await lastUsed(key.AccessKeyId)).AccessKeyLastUsed)));
    return states.sort((a, b) => a.id.localeCompare(b.id));
  };

  // Managed policies only: inline policies have no ARN to act on, and the quarantine policy's
  // explicit Deny overrides whatever they allow.
  const policiesOf = async (identity: Identity): Promise<PolicyRef[]> => {
    const attached =
      identity.kind === 'user'
        ? await collect('ListAttachedUserPolicies', paginateListAttachedUserPolicies({ client, pageSize: PAGE_SIZE }, { UserName: identity.name }), (p) => p.AttachedPolicies)
        : await collect('ListAttachedRolePolicies', paginateListAttachedRolePolicies({ client, pageSize: PAGE_SIZE }, { RoleName: identity.name }), (p) => p.AttachedPolicies);
    return attached
      .flatMap((p) => (p.PolicyArn ? [{ id: p.PolicyArn, displayName: p.PolicyName ?? p.PolicyArn }] : []))
      .sort((a, b) => a.id.localeCompare(b.id));
  };

  const hasLoginProfile = async (user: Identity): Promise<boolean> => {
    try {
      await call('GetLoginProfile', () => client.send(new GetLoginProfileCommand({ UserName: user.name })));
      return true;
    } catch (error) {
      // The user was just resolved, so NoSuchEntity here means "no login profile".
      if (error instanceof CordonError && error.type === 'TargetNotFound') return false;
      throw error;
    }
  };

  const policyArn = (policy: ObjectHandle): string => {
    if (!POLICY_ARN.test(policy.id)) {
      throw new CordonError('ConnectorRejected', `not an IAM managed policy ARN: ${JSON.stringify(policy.id.slice(0, 200))}`, { field: 'policy.id' });
    }
    return policy.id;
  };

  /** The ARN Cordon's quarantine policy has, or will have once attached, in the account and partition of `identity`. */
  const quarantineArnOf = (identity: Identity): string => {
    const [prefix, partition, service, , account] = identity.arn.split(':');
    if (prefix !== 'arn' || !partition || service !== 'iam' || !account || !/^\d{12}$/.test(account)) {
      throw new CordonError('ConnectorUnavailable', `IAM answered an ARN without an account id for ${identity.kind} ${identity.name}: ${identity.arn}`);
    }
    return `arn:${partition}:iam::${account}:policy${QUARANTINE_POLICY_PATH}${QUARANTINE_POLICY_NAME}`;
  };

  /** A managed policy by ARN, or undefined when there is none. */
  const getPolicy = async (arn: string): Promise<(Policy & { Arn: string }) | undefined> => {
    try {
      const { Policy: policy } = await call('GetPolicy', () => client.send(new GetPolicyCommand({ PolicyArn: arn })));
      return policy ? { ...policy, Arn: arn } : undefined;
    } catch (error) {
      if (error instanceof CordonError && error.type === 'TargetNotFound') return undefined;
      throw error;
    }
  };

  const createQuarantinePolicy = async (): Promise<Policy | undefined> => {
    try {
      const { Policy: created } = await client.send(
        new CreatePolicyCommand({
          PolicyName: QUARANTINE_POLICY_NAME,
          Path: QUARANTINE_POLICY_PATH,
          PolicyDocument: JSON.stringify(QUARANTINE_POLICY_DOCUMENT),
          Description: 'Cordon quarantine: denies every action. Attached to identities under remediation; Cordon detaches it on undo.',
          Tags: [{ Key: 'managed-by', Value: 'cordon' }],
        }),
      );
      return created;
    } catch (error) {
      // Another worker created it between our look-up and our create.
      if (awsErrorCode(error) === 'EntityAlreadyExists') return undefined;
      throw iamFailure(error, 'CreatePolicy');
    }
  };

  /**
   * Makes sure Cordon's deny-all policy is at `arn` before an attach: created when absent (a create
   * racing another worker's is tolerated), refused (ConnectorRejected) when what is there is not
   * deny-all, or when `arn` is not the quarantine policy of `identity`'s own account.
   */
  const ensureQuarantinePolicy = async (arn: string, identity: Identity): Promise<void> => {
    const own = quarantineArnOf(identity);
    if (arn !== own) {
      throw new CordonError('ConnectorRejected', `${arn} is not Cordon's quarantine policy in the account of IAM ${identity.kind} ${identity.name} (${own})`, { field: 'policy.id', arn });
    }
    let policy = await getPolicy(arn);
    if (!policy) {
      const created = await createQuarantinePolicy();
      if (created) {
        if (created.Arn !== arn) throw new CordonError('ConnectorRejected', `IAM created the quarantine policy as ${String(created.Arn)}, not ${arn}`, { arn });
        return;
      }
      policy = await getPolicy(arn);
      if (!policy) throw new CordonError('ConnectorUnavailable', `IAM says ${arn} exists but does not return it`, { arn });
    }
    await assertDenyAll(policy);
  };

  /**
   * When `arn` (a user or role) last authenticated to each service its policies allow, null for never
   * (within Access Advisor's tracking period), from an Access Advisor job polled for at most
   * `advisorWaitMs`. A job still running then, or failed, is ConnectorUnavailable (retryable).
   */
  const lastAccessed = async (arn: string): Promise<Map<string, Date | null>> => {
    const { JobId: jobId } = await call('GenerateServiceLastAccessedDetails', () =>
      client.send(new GenerateServiceLastAccessedDetailsCommand({ Arn: arn, Granularity: 'SERVICE_LEVEL' })),
    );
    if (!jobId) throw new CordonError('ConnectorUnavailable', `IAM GenerateServiceLastAccessedDetails answered without a job id for ${arn}`);
    const deadline = Date.now() + advisorWaitMs;
    let delay = 250;
    const used = new Map<string, Date | null>();
    let marker: string | undefined;
    for (let pages = 0; ; ) {
      const from = marker;
      const page = await call('GetServiceLastAccessedDetails', () =>
        client.send(new GetServiceLastAccessedDetailsCommand({ JobId: jobId, MaxItems: PAGE_SIZE, ...(from !== undefined ? { Marker: from } : {}) })),
      );
      const details = { operation: 'GetServiceLastAccessedDetails', jobId, arn };
      switch (page.JobStatus) {
        case 'COMPLETED':
          break;
        case 'FAILED':
          throw new CordonError('ConnectorUnavailable', `IAM Access Advisor job ${jobId} for ${arn} failed: ${page.Error?.Message ?? 'no reason given'}`, details);
        default: {
          const left = deadline - Date.now();
          if (left <= 0) throw new CordonError('ConnectorUnavailable', `IAM Access Advisor job ${jobId} for ${arn} is still running after ${advisorWaitMs} ms`, details);
          await sleep(Math.min(delay, left));
          delay = Math.min(delay * 2, 2_000);
          continue;
        }
      }
      for (const service of page.ServicesLastAccessed ?? []) {
        if (service.ServiceNamespace) used.set(service.ServiceNamespace, service.LastAuthenticated ?? null);
      }
      marker = page.IsTruncated ? page.Marker : undefined;
      if (marker === undefined) return used;
      if (++pages >= MAX_PAGES) throw new CordonError('ConnectorRejected', `IAM Access Advisor job ${jobId} for ${arn}: more than ${MAX_PAGES} pages`, details);
    }
  };

  /** For each of `namespaces`, the policies that let `arn` (a user, role or group) use that service. */
  const grantsTo = async (arn: string, namespaces: readonly string[]): Promise<Map<string, PolicyGrantingServiceAccess[]>> => {
    const grants = new Map<string, PolicyGrantingServiceAccess[]>();
    for (let i = 0; i < namespaces.length; i += NAMESPACES_PER_CALL) {
      const batch = namespaces.slice(i, i + NAMESPACES_PER_CALL);
      let marker: string | undefined;
      let pages = 0;
      do {
        if (++pages > MAX_PAGES) throw new CordonError('ConnectorRejected', `IAM ListPoliciesGrantingServiceAccess for ${arn}: more than ${MAX_PAGES} pages`, { operation: 'ListPoliciesGrantingServiceAccess' });
        const from = marker;
        const page = await call('ListPoliciesGrantingServiceAccess', () =>
          client.send(new ListPoliciesGrantingServiceAccessCommand({ Arn: arn, ServiceNamespaces: batch, ...(from !== undefined ? { Marker: from } : {}) })),
        );
        for (const entry of page.PoliciesGrantingServiceAccess ?? []) {
          if (!entry.ServiceNamespace || !entry.Policies?.length) continue;
          grants.set(entry.ServiceNamespace, [...(grants.get(entry.ServiceNamespace) ?? []), ...entry.Policies]);
        }
        marker = page.IsTruncated ? page.Marker : undefined;
      } while (marker !== undefined);
    }
    return grants;
  };

  const assertDenyAll = async (policy: Policy & { Arn: string }): Promise<void> => {
    const versionId = policy.DefaultVersionId;
    const version = versionId
      ? (await call('GetPolicyVersion', () => client.send(new GetPolicyVersionCommand({ PolicyArn: policy.Arn, VersionId: versionId })))).PolicyVersion
      : undefined;
    if (!version?.Document || !isDenyAllDocument(version.Document)) {
      throw new CordonError('ConnectorRejected', `the IAM policy ${policy.Arn} is not Cordon's deny-all policy (its default version allows or limits something); refusing to use it as quarantine`, {
        arn: policy.Arn,
      });
    }
  };

  return {
    system,

    async readAccount(ref): Promise<AccountSnapshot> {
      const kind = iamKind(ref.kind);
      let identity: Identity;
      if (ref.userName !== undefined) {
        identity = await getByName(kind, ref.userName);
        if (ref.id !== undefined && identity.id !== ref.id) {
          throw new CordonError('TargetAmbiguous', `IAM ${kind} ${ref.userName} has id ${identity.id}, not ${ref.id}`, { userName: ref.userName, id: ref.id });
        }
      } else if (ref.id !== undefined) {
        identity = await findById(kind, ref.id);
      } else {
        throw new CordonError('InvalidRequest', 'an account reference needs an id or a userName');
      }

      const observedAt = new Date().toISOString();
      const account = { id: identity.id, userName: identity.name, name: identity.name, displayName: identity.name, kind: identity.kind };
      if (identity.kind === 'role') {
        // A role has no password and no access keys of its own; it is usable while it exists.
        return { system, observedAt, account: { ...account, active: true }, groups: [], credentials: [], policies: await policiesOf(identity) };
      }
      const [active, groups, credentials, policies] = await Promise.all([hasLoginProfile(identity), groupsOf(identity), credentialsOf(identity), policiesOf(identity)]);
      return { system, observedAt, account: { ...account, active }, groups, credentials, policies };
    },

    async countAccounts() {
      let count = 0;
      await walk('ListUsers', paginateListUsers({ client, pageSize: PAGE_SIZE }, {}), (p) => p.Users, () => {
        count++;
        return false;
      });
      return count;
    },

    /**
     * Console access of an IAM user. `false` deletes the login profile (new console sign-ins fail;
     * keys are separate credentials). `true` creates a login profile with a random password that no
     * one is told, and PasswordResetRequired: the old password cannot be restored, so access comes
     * back through an administrator's password reset. Roles have no console password:
     * UnsupportedOperation.
     */
    async setAccountActive(account, active): Promise<ChangeResult> {
      const user = await resolveUser(account, 'setAccountActive');
      const before = { active: await hasLoginProfile(user) };
      if (before.active === active) return { changed: false, before };
      if (active) {
        await call('CreateLoginProfile', () => client.send(new CreateLoginProfileCommand({ UserName: user.name, Password: randomPassword(), PasswordResetRequired: true })));
      } else {
        await call('DeleteLoginProfile', () => client.send(new DeleteLoginProfileCommand({ UserName: user.name })));
      }
      return { changed: true, before };
    },

    async isGroupMember(groupHandle, account) {
      const user = await resolveUser(account, 'isGroupMember');
      const group = await resolveGroup(groupHandle);
      return (await groupsOf(user)).some((g) => g.id === group.id);
    },

    async removeGroupMember(groupHandle, account): Promise<ChangeResult> {
      const user = await resolveUser(account, 'removeGroupMember');
      const group = await resolveGroup(groupHandle);
      if (!(await groupsOf(user)).some((g) => g.id === group.id)) return { changed: false, before: { member: false } };
      await call('RemoveUserFromGroup', () => client.send(new RemoveUserFromGroupCommand({ GroupName: group.name, UserName: user.name })));
      return { changed: true, before: { member: true } };
    },

    async addGroupMember(groupHandle, account): Promise<ChangeResult> {
      const user = await resolveUser(account, 'addGroupMember');
      const group = await resolveGroup(groupHandle);
      if ((await groupsOf(user)).some((g) => g.id === group.id)) return { changed: false, before: { member: true } };
      await call('AddUserToGroup', () => client.send(new AddUserToGroupCommand({ GroupName: group.name, UserName: user.name })));
      return { changed: true, before: { member: false } };
    },

    async findCredential(accessKeyId) {
      const used = await call('GetAccessKeyLastUsed', () => client.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: accessKeyId })));
      if (!used.UserName) throw new CordonError('TargetNotFound', `no IAM user in this account owns access key ${accessKeyId}`, { credentialId: accessKeyId });
      const owner = await getByName('user', used.UserName);
      const key = (await accessKeys(owner)).find((k) => k.AccessKeyId === accessKeyId);
      if (!key) throw new CordonError('TargetNotFound', `access key ${accessKeyId} is no longer a key of IAM user ${owner.name}`, { credentialId: accessKeyId });
      return { owner: { id: owner.id, userName: owner.name, kind: 'user' }, credential: credentialState(key, used.AccessKeyLastUsed) };
    },

    async setCredentialActive(account, credentialId, active): Promise<ChangeResult> {
      const user = await resolveUser(account, 'setCredentialActive');
      const key = (await accessKeys(user)).find((k) => k.AccessKeyId === credentialId);
      if (!key) throw new CordonError('TargetNotFound', `access key ${credentialId} is not a key of IAM user ${user.name}`, { credentialId });
      const before = { active: key.Status === 'Active' };
      if (before.active === active) return { changed: false, before };
      // UserName is always sent: without it, IAM applies UpdateAccessKey to the caller's own keys.
      await call('UpdateAccessKey', () => client.send(new UpdateAccessKeyCommand({ UserName: user.name, AccessKeyId: credentialId, Status: active ? 'Active' : 'Inactive' })));
      return { changed: true, before };
    },

    /**
     * Attaches a managed policy unless it is attached. Cordon's quarantine policy is created first when
     * absent (the first attach in an account), and refused when what is at its name is not deny-all.
     */
    async attachPolicy(account, policy): Promise<ChangeResult> {
      const arn = policyArn(policy);
      const identity = await resolve(account);
      const before = { attached: (await policiesOf(identity)).some((p) => p.id === arn) };
      if (before.attached) return { changed: false, before };
      if (QUARANTINE_ARN.test(arn)) await ensureQuarantinePolicy(arn, identity);
      await (identity.kind === 'user'
        ? call('AttachUserPolicy', () => client.send(new AttachUserPolicyCommand({ UserName: identity.name, PolicyArn: arn })))
        : call('AttachRolePolicy', () => client.send(new AttachRolePolicyCommand({ RoleName: identity.name, PolicyArn: arn }))));
      return { changed: true, before };
    },

    async detachPolicy(account, policy): Promise<ChangeResult> {
      const arn = policyArn(policy);
      const identity = await resolve(account);
      const before = { attached: (await policiesOf(identity)).some((p) => p.id === arn) };
      if (!before.attached) return { changed: false, before };
      await (identity.kind === 'user'
        ? call('DetachUserPolicy', () => client.send(new DetachUserPolicyCommand({ UserName: identity.name, PolicyArn: arn })))
        : call('DetachRolePolicy', () => client.send(new DetachRolePolicyCommand({ RoleName: identity.name, PolicyArn: arn }))));
      return { changed: true, before };
    },

    /**
     * Cordon's deny-all policy at /cordon/CordonQuarantineDenyAll in the account of `account`: its ARN
     * is derived from the identity's own (account id and partition), so nothing is created here;
     * `attachPolicy` creates it on first use. A policy already there that is not deny-all is refused
     * (ConnectorRejected) now, before any plan is built around it.
     */
    async quarantinePolicy(account) {
      const arn = quarantineArnOf(await resolve(account));
      const existing = await getPolicy(arn);
      if (existing) await assertDenyAll(existing);
      return { id: arn, name: arn, displayName: QUARANTINE_POLICY_NAME };
    },

    /**
     * The managed policies attached to `account`, and (for a user) its groups, that grant only services
     * it has not used for `unusedForDays` days, per IAM Access Advisor: GenerateServiceLastAccessedDetails
     * for when it last used each service, ListPoliciesGrantingServiceAccess for which policy (or group)
     * grants which. One that grants nothing (deny-only, like the quarantine policy) is never stale; an
     * identity younger than the window has nothing stale yet.
     */
    async staleEntitlements(account, unusedForDays): Promise<StaleEntitlement[]> {
      if (!Number.isInteger(unusedForDays) || unusedForDays < 1 || unusedForDays > 400) {
        // Access Advisor tracks the last 400 days: a longer window would call everything unused.
        throw new CordonError('InvalidRequest', `unusedForDays must be a whole number of days from 1 to 400, not ${unusedForDays}`, { field: 'unusedForDays' });
      }
      const identity = await resolve(account);
      const cutoff = now().getTime() - unusedForDays * DAY_MS;
      if (identity.createdAt !== undefined && identity.createdAt.getTime() > cutoff) return [];
      const used = await lastAccessed(identity.arn);
      const namespaces = [...used.keys()].sort();
      if (namespaces.length === 0) return [];

      /** The entitlement, when none of the services it grants was used since the cutoff. */
      const staleOf = (kind: StaleEntitlement['kind'], id: string, displayName: string, services: ReadonlySet<string>): StaleEntitlement | undefined => {
        if (services.size === 0) return undefined;
        let last: number | null = null;
        for (const service of services) {
          const at = used.get(service)?.getTime() ?? null;
          if (at !== null && at >= cutoff) return undefined;
          if (at !== null && (last === null || at > last)) last = at;
        }
        return { kind, id, displayName, lastUsedAt: last === null ? null : new Date(last).toISOString(), services: services.size };
      };

      // Managed policies come back by ARN (inline ones, which Cordon does not detach, without one).
      const byPolicy = new Map<string, Set<string>>();
      for (const [service, policies] of await grantsTo(identity.arn, namespaces)) {
        for (const p of policies) if (p.PolicyArn) byPolicy.set(p.PolicyArn, (byPolicy.get(p.PolicyArn) ?? new Set()).add(service));
      }
      const stale: StaleEntitlement[] = [];
      for (const policy of await policiesOf(identity)) {
        const found = staleOf('policy', policy.id, policy.displayName, byPolicy.get(policy.id) ?? new Set());
        if (found) stale.push(found);
      }
      if (identity.kind === 'user') {
        // What a membership grants: the group's own policies, managed and inline.
        for (const group of await userGroups(identity)) {
          if (!group.Arn || !group.GroupId || !group.GroupName) continue;
          const grants = await grantsTo(group.Arn, namespaces);
          const found = staleOf('group', group.GroupId, group.GroupName, new Set(grants.keys()));
          if (found) stale.push(found);
        }
      }
      return stale.sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
    },
  };
}
