import { CordonError, type AccountSnapshot } from '../../../domain/index.js';
import type { AccountRef, ChangeResult, DirectoryConnector } from '../types.js';
import { eqFilter, ScimClient, type ScimClientOptions, type ScimGroup, type ScimUser } from './scim-client.js';

function isMember(group: ScimGroup, accountId: string): boolean {
  return (group.members ?? []).some((m) => m.value === accountId);
}

/** What the SCIM connector offers: accounts and group memberships. */
export type ScimConnector = DirectoryConnector & Required<Pick<DirectoryConnector, 'countAccounts' | 'setAccountActive' | 'isGroupMember' | 'removeGroupMember' | 'addGroupMember'>>;

/** A directory connector over a SCIM 2.0 service provider. */
export function createScimConnector(system: string, options: ScimClientOptions | ScimClient): ScimConnector {
  const client = options instanceof ScimClient ? options : new ScimClient(options);

  const findAccount = async (ref: AccountRef): Promise<ScimUser> => {
    if (ref.id !== undefined) {
      const user = await client.getUser(ref.id);
      if (ref.userName !== undefined && user.userName !== ref.userName) {
        throw new CordonError('TargetAmbiguous', `SCIM user ${ref.id} has userName ${user.userName}, not ${ref.userName}`);
      }
      return user;
    }
    if (ref.userName === undefined) throw new CordonError('InvalidRequest', 'an account reference needs an id or a userName');
    const users = await client.findUsers(eqFilter('userName', ref.userName));
    // SCIM compares userName case-insensitively (RFC 7643 §4.1.1); keep only exact matches.
    const exact = users.filter((u) => u.userName === ref.userName);
    const [user, ...others] = exact.length > 0 ? exact : users;
    if (!user) throw new CordonError('TargetNotFound', `no SCIM user with userName ${JSON.stringify(ref.userName)}`);
    if (others.length > 0) throw new CordonError('TargetAmbiguous', `${users.length} SCIM users match userName ${JSON.stringify(ref.userName)}`);
    return user;
  };

  return {
    system,

    async readAccount(ref): Promise<AccountSnapshot> {
      const user = await findAccount(ref);
      const groups = await client.findGroups(eqFilter('members.value', user.id));
      const displayName = user.displayName ?? user.name?.formatted;
      return {
        system,
        observedAt: new Date().toISOString(),
        account: {
          id: user.id,
          userName: user.userName,
          ...(displayName !== undefined ? { displayName } : {}),
          // RFC 7643 leaves `active` optional; an account without it is usable, so treat it as active.
          active: user.active ?? true,
          ...(user.meta?.version ? { version: user.meta.version } : {}),
        },
        groups: groups
          .filter((g) => isMember(g, user.id))
          .map((g) => ({ id: g.id, displayName: g.displayName }))
          .sort((a, b) => a.id.localeCompare(b.id)),
      };
    },

    countAccounts: () => client.countUsers(),

    async setAccountActive(account, active): Promise<ChangeResult> {
      const accountId = account.id;
      const user = await client.getUser(accountId);
      const before = { active: user.active ?? true };
      if (before.active === active) return { changed: false, before };
      await client.patch('Users', accountId, [{ op: 'replace', path: 'active', value: active }], user.meta?.version);
      return { changed: true, before };
    },

    async isGroupMember(group, account) {
      return isMember(await client.getGroup(group.id), account.id);
    },

    async removeGroupMember(groupHandle, account): Promise<ChangeResult> {
      const [groupId, accountId] = [groupHandle.id, account.id];
      const group = await client.getGroup(groupId);
      if (!isMember(group, accountId)) return { changed: false, before: { member: false } };
      const path = `members[value eq ${JSON.stringify(accountId)}]`;
      await client.patch('Groups', groupId, [{ op: 'remove', path }], group.meta?.version);
      return { changed: true, before: { member: true } };
    },

    async addGroupMember(groupHandle, account): Promise<ChangeResult> {
      const [groupId, accountId] = [groupHandle.id, account.id];
      const group = await client.getGroup(groupId);
      if (isMember(group, accountId)) return { changed: false, before: { member: true } };
      await client.patch('Groups', groupId, [{ op: 'add', path: 'members', value: [{ value: accountId }] }], group.meta?.version);
      return { changed: true, before: { member: false } };
    },
  };
}
