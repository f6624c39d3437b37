import { randomInt } from 'node:crypto';
import {
  AddUserToGroupCommand,
  AttachRolePolicyCommand,
  AttachUserPolicyCommand,
  CreateLoginProfileCommand,
  CreatePolicyCommand,
  DeleteLoginProfileCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  GetAccessKeyLastUsedCommand,
  GetGroupCommand,
  GetLoginProfileCommand,
  GetPolicyVersionCommand,
  GetRoleCommand,
  GetUserCommand,
  paginateListAccessKeys,
  paginateListAttachedRolePolicies,
  paginateListAttachedUserPolicies,
  paginateListGroups,
  paginateListGroupsForUser,
  paginateListPolicies,
  paginateListRoles,
  paginateListUsers,
  RemoveUserFromGroupCommand,
  UpdateAccessKeyCommand,
  type AccessKeyLastUsed,
  type AccessKeyMetadata,
  type IAMClient,
  type Policy,
} from '@aws-sdk/client-iam';
import { CordonError, type AccountSnapshot, type CredentialState, type GroupRef, type PolicyRef } from '../../../domain/index.js';
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
    >
  >;

export interface IamConnectorOptions {
  /** Built by `createIamClient` (one attempt per call; Temporal retries). */
  client: IAMClient;
}

type IamKind = 'user' | 'role';

/** An IAM user or role: its immutable id (UserId AIDA…, RoleId AROA…) and the name every call takes. */
interface Identity {
  kind: IamKind;
  id: string;
  name: string;
}

// ListUsers and friends return at most 1000 items a page. AWS's quotas (5000 users, 5000 roles,
// 300 groups per account by default; 2 keys, 10 groups and 20 managed policies per identity) stay
// well inside this bound; an account beyond it gets a clear refusal instead of an endless scan.
const PAGE_SIZE = 1000;
const MAX_PAGES = 100;

// A managed policy ARN: AWS answers InvalidInput for anything else (moto answers NoSuchEntity), so
// the connector checks the form itself and both refuse it the same way.
const POLICY_ARN = /^arn:aws(?:-[a-z]+)*:iam::(?:aws|\d{12}):policy\/[\u0021-\u007e]{1,2000}$/;

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
      if (!User?.UserId || !User.UserName) throw new CordonError('ConnectorUnavailable', `IAM GetUser answered without the user ${name}`);
      return { kind, id: User.UserId, name: User.UserName };
    }
    const { Role } = await call('GetRole', () => client.send(new GetRoleCommand({ RoleName: name })));
    if (!Role?.RoleId || !Role.RoleName) throw new CordonError('ConnectorUnavailable', `IAM GetRole answered without the role ${name}`);
    return { kind, id: Role.RoleId, name: Role.RoleName };
  };

  // IAM has no lookup by UserId or RoleId: list and match (bounded, see MAX_PAGES).
  const findById = async (kind: IamKind, id: string): Promise<Identity> => {
    const name =
      kind === 'user'
        ? (await findFirst('ListUsers', paginateListUsers({ client, pageSize: PAGE_SIZE }, {}), (p) => p.Users, (u) => u.UserId === id))?.UserName
        : (await findFirst('ListRoles', paginateListRoles({ client, pageSize: PAGE_SIZE }, {}), (p) => p.Roles, (r) => r.RoleId === id))?.RoleName;
    if (!name) throw new CordonError('TargetNotFound', `no IAM ${kind} with id ${id}`, { id, kind });
    return { kind, id, name };
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

  const groupsOf = async (user: Identity): Promise<GroupRef[]> => {
    const groups = await collect('ListGroupsForUser', paginateListGroupsForUser({ client, pageSize: PAGE_SIZE }, { UserName: user.name }), (p) => p.Groups);
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

  const findQuarantinePolicy = async (): Promise<Policy | undefined> => {
    return findFirst(
      'ListPolicies',
      paginateListPolicies({ client, pageSize: PAGE_SIZE }, { Scope: 'Local', PathPrefix: QUARANTINE_POLICY_PATH }),
      (p) => p.Policies,
      (p) => p.PolicyName === QUARANTINE_POLICY_NAME && p.Path === QUARANTINE_POLICY_PATH,
    );
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

    async attachPolicy(account, policy): Promise<ChangeResult> {
      const arn = policyArn(policy);
      const identity = await resolve(account);
      const before = { attached: (await policiesOf(identity)).some((p) => p.id === arn) };
      if (before.attached) return { changed: false, before };
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
     * Cordon's deny-all policy at /cordon/CordonQuarantineDenyAll: looked up, created when absent
     * (a concurrent create is tolerated), and refused (ConnectorRejected) when a policy found there
     * is not deny-all.
     */
    async quarantinePolicy() {
      let policy = await findQuarantinePolicy();
      let createdHere = false;
      if (!policy) {
        policy = await createQuarantinePolicy();
        createdHere = policy !== undefined;
        policy ??= await findQuarantinePolicy();
      }
      if (!policy?.Arn) throw new CordonError('ConnectorUnavailable', `IAM did not return the policy ${QUARANTINE_POLICY_PATH}${QUARANTINE_POLICY_NAME}`);
      const arn = policy.Arn;
      if (!createdHere) await assertDenyAll({ ...policy, Arn: arn });
      return { id: arn, name: arn, displayName: QUARANTINE_POLICY_NAME };
    },
  };
}
