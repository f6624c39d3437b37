import { AndFilter, Attribute, Change, EqualityFilter, OrFilter, type Client, type Entry, type Filter } from 'ldapts';
import { CordonError, type AccountSnapshot, type GroupRef } from '../../../domain/index.js';
import type { AccountHandle, AccountRef, ChangeResult, DirectoryConnector, ObjectHandle } from '../types.js';
import { LdapClient, ResultCode, resultCodeOf, valuesOf, type LdapClientOptions } from './ldap-client.js';
import { isAttributeType } from './ldap-dn.js';

/** How an account is disabled: an OpenLDAP password-policy lock, or Active Directory's flag. */
export const LDAP_DISABLE_MODES = ['ppolicy', 'ad-user-account-control'] as const;
export type LdapDisableMode = (typeof LDAP_DISABLE_MODES)[number];

export interface LdapConnectorOptions extends LdapClientOptions {
  /** The naming context, e.g. dc=example,dc=com. */
  baseDN: string;
  /** Where accounts live (searched with subtree scope); baseDN when absent. */
  usersDN?: string;
  /** Where groups live (searched with subtree scope); baseDN when absent. */
  groupsDN?: string;
  /** The attribute holding the user name (default `uid`). */
  userIdAttribute?: string;
  /** The object class of accounts (default `inetOrgPerson`). */
  userObjectClass?: string;
  /**
   * `ppolicy` (default): slapo-ppolicy's `pwdAccountLockedTime: 000001010000Z`, a permanent lock.
   * `ad-user-account-control`: bit 0x2 (ACCOUNTDISABLE) of `userAccountControl`.
   */
  disableMode?: LdapDisableMode;
  /**
   * A DN put in a group whose last member is being removed: groupOfNames and groupOfUniqueNames must
   * keep one member (RFC 4519). Without it such a removal is refused (ConnectorRejected).
   */
  placeholderMember?: string;
}

/** What the LDAP connector offers: accounts and group memberships. */
export type LdapConnector = DirectoryConnector &
  Required<Pick<DirectoryConnector, 'countAccounts' | 'setAccountActive' | 'isGroupMember' | 'removeGroupMember' | 'addGroupMember'>>;

// slapo-ppolicy(5): a pwdAccountLockedTime of 000001010000Z locks the account until an administrator
// removes it. Any other value is a lockout after failed binds, which ends by itself.
const PERMANENT_LOCK = '000001010000Z';
const isPermanentLock = (value: string) => /^00000101/.test(value);
// MS-ADTS 2.2.16: userAccountControl flag ADS_UF_ACCOUNTDISABLE.
const ACCOUNTDISABLE = 0x2;

const ENTRY_UUID = 'entryUUID';

interface AccountEntry {
  id: string;
  dn: string;
  userNames: string[];
  displayName: string | undefined;
  version: string | undefined;
  active: boolean;
  /** ppolicy mode: the pwdAccountLockedTime read, if any. */
  lockedTime: string | undefined;
  /** AD mode: the userAccountControl read, if any. */
  userAccountControl: number | undefined;
}

interface GroupEntry {
  id: string;
  dn: string;
  /** The attribute holding members: `member` (groupOfNames) or `uniqueMember` (groupOfUniqueNames). */
  memberAttribute: 'member' | 'uniqueMember';
}

const eq = (attribute: string, value: string): Filter => new EqualityFilter({ attribute, value });

/** A filter for groups that list `dn` as a direct member. */
function memberOf(dn: string): Filter {
  return new OrFilter({
    filters: [
      new AndFilter({ filters: [eq('objectClass', 'groupOfNames'), eq('member', dn)] }),
      new AndFilter({ filters: [eq('objectClass', 'groupOfUniqueNames'), eq('uniqueMember', dn)] }),
    ],
  });
}

const isGroup: Filter = new OrFilter({ filters: [eq('objectClass', 'groupOfNames'), eq('objectClass', 'groupOfUniqueNames')] });

/**
 * Runs a write on an entry the same call resolved from its immutable id. The entry changing between
 * the two (renamed or deleted: noSuchObject; the value already gone or already there: noSuchAttribute,
 * typeOrValueExists) is ConcurrentModification, so a retry re-resolves and re-checks.
 */
async function modifyResolved(client: Client, dn: string, changes: Change[], what: string): Promise<void> {
  try {
    await client.modify(dn, changes);
  } catch (error) {
    const code = resultCodeOf(error);
    if (code === ResultCode.noSuchObject || code === ResultCode.noSuchAttribute || code === ResultCode.typeOrValueExists) {
      throw new CordonError('ConcurrentModification', `LDAP ${what}: ${dn} changed while Cordon was acting (${(error as Error).message})`, { ldapResultCode: code });
    }
    throw error;
  }
}

/**
 * A directory connector over LDAP (OpenLDAP, or Active Directory with `ad-user-account-control`).
 * Accounts and groups are known by their `entryUUID` (RFC 4530), which survives renames and moves;
 * every call resolves the current DN from it, so a handle's `name` (the DN at observe time) is only
 * informative. Throws on malformed options.
 */
export function createLdapConnector(system: string, options: LdapConnectorOptions): LdapConnector {
  const client = new LdapClient(options);
  const usersDN = options.usersDN ?? options.baseDN;
  const groupsDN = options.groupsDN ?? options.baseDN;
  const userIdAttribute = options.userIdAttribute ?? 'uid';
  const userObjectClass = options.userObjectClass ?? 'inetOrgPerson';
  const disableMode = options.disableMode ?? 'ppolicy';
  for (const [name, value] of Object.entries({ userIdAttribute, userObjectClass })) {
    if (!isAttributeType(value)) throw new Error(`LDAP ${name}: ${JSON.stringify(value)} is not an attribute type or object class name`);
  }
  if (!LDAP_DISABLE_MODES.includes(disableMode)) throw new Error(`LDAP disableMode: must be one of ${LDAP_DISABLE_MODES.join(', ')}`);
  for (const [name, value] of Object.entries({ baseDN: options.baseDN, usersDN, groupsDN })) {
    if (value.trim() === '') throw new Error(`LDAP ${name}: must not be empty`);
  }

  const stateAttribute = disableMode === 'ppolicy' ? 'pwdAccountLockedTime' : 'userAccountControl';
  // Operational attributes (entryUUID, entryCSN, pwdAccountLockedTime) are only returned when named.
  const accountAttributes = [ENTRY_UUID, 'entryCSN', userIdAttribute, 'cn', stateAttribute];

  const toAccount = (entry: Entry): AccountEntry => {
    const [id] = valuesOf(entry, ENTRY_UUID);
    if (!id) throw new CordonError('ConnectorRejected', `LDAP entry ${entry.dn} has no entryUUID (RFC 4530); Cordon cannot track it`);
    const lockedTime = valuesOf(entry, 'pwdAccountLockedTime')[0];
    const uacText = valuesOf(entry, 'userAccountControl')[0];
    const userAccountControl = uacText === undefined ? undefined : Number.parseInt(uacText, 10);
    if (userAccountControl !== undefined && !Number.isSafeInteger(userAccountControl)) {
      throw new CordonError('ConnectorRejected', `LDAP entry ${entry.dn} has a userAccountControl that is not an integer: ${JSON.stringify(uacText)}`);
    }
    const active =
      disableMode === 'ppolicy'
        ? !(lockedTime !== undefined && isPermanentLock(lockedTime))
        : ((userAccountControl ?? 0) & ACCOUNTDISABLE) === 0;
    return {
      id,
      dn: entry.dn,
      userNames: valuesOf(entry, userIdAttribute),
      displayName: valuesOf(entry, 'cn')[0],
      version: valuesOf(entry, 'entryCSN')[0],
      active,
      lockedTime,
      userAccountControl,
    };
  };

  // LDAP compares user names with the attribute's matching rule (caseIgnoreMatch for uid), which
  // also ignores leading, trailing and repeated spaces. Keep only values equal but for case: " bob"
  // does not name bob.
  const namesUser = (entry: AccountEntry, userName: string): string | undefined =>
    entry.userNames.find((n) => n === userName) ?? entry.userNames.find((n) => n.toLowerCase() === userName.toLowerCase());

  const findAccount = async (ldap: Client, ref: AccountRef): Promise<{ entry: AccountEntry; userName: string }> => {
    const isAccount = eq('objectClass', userObjectClass);
    if (ref.id !== undefined) {
      const entries = (await ldap.search(usersDN, { filter: new AndFilter({ filters: [isAccount, eq(ENTRY_UUID, ref.id)] }), attributes: accountAttributes })).searchEntries;
      const [found, ...others] = entries.map(toAccount);
      if (!found) throw new CordonError('TargetNotFound', `no LDAP account with entryUUID ${JSON.stringify(ref.id)} under ${usersDN}`);
      if (others.length > 0) throw new CordonError('TargetAmbiguous', `${entries.length} LDAP accounts have entryUUID ${JSON.stringify(ref.id)}`);
      if (ref.userName === undefined) return { entry: found, userName: found.userNames[0] ?? '' };
      const userName = namesUser(found, ref.userName);
      if (userName === undefined) {
        throw new CordonError('TargetAmbiguous', `LDAP account ${ref.id} (${found.dn}) has ${userIdAttribute} ${JSON.stringify(found.userNames)}, not ${JSON.stringify(ref.userName)}`);
      }
      return { entry: found, userName };
    }
    if (ref.userName === undefined) throw new CordonError('InvalidRequest', 'an account reference needs an id or a userName');
    const userName = ref.userName;
    let entries: Entry[];
    try {
      // A name that matches more than a few accounts is ambiguous whatever the rest are.
      entries = (await ldap.search(usersDN, { filter: new AndFilter({ filters: [isAccount, eq(userIdAttribute, userName)] }), attributes: accountAttributes, sizeLimit: 10 })).searchEntries;
    } catch (error) {
      if (resultCodeOf(error) === ResultCode.sizeLimitExceeded) throw new CordonError('TargetAmbiguous', `more than 10 LDAP accounts have ${userIdAttribute} ${JSON.stringify(userName)}`);
      throw error;
    }
    const accounts = entries.map(toAccount);
    const exact = accounts.filter((a) => a.userNames.includes(userName));
    const matching = exact.length > 0 ? exact : accounts.filter((a) => namesUser(a, userName) !== undefined);
    const [found, ...others] = matching;
    if (!found) throw new CordonError('TargetNotFound', `no LDAP account with ${userIdAttribute} ${JSON.stringify(userName)} under ${usersDN}`);
    if (others.length > 0) throw new CordonError('TargetAmbiguous', `${matching.length} LDAP accounts have ${userIdAttribute} ${JSON.stringify(userName)}: ${matching.map((a) => a.dn).join('; ')}`);
    return { entry: found, userName: namesUser(found, userName) ?? userName };
  };

  const findGroup = async (ldap: Client, group: ObjectHandle): Promise<GroupEntry> => {
    const entries = (await ldap.search(groupsDN, { filter: new AndFilter({ filters: [isGroup, eq(ENTRY_UUID, group.id)] }), attributes: [ENTRY_UUID, 'objectClass'] })).searchEntries;
    const [found, ...others] = entries;
    if (!found) throw new CordonError('TargetNotFound', `no LDAP group with entryUUID ${JSON.stringify(group.id)} under ${groupsDN}`);
    if (others.length > 0) throw new CordonError('TargetAmbiguous', `${entries.length} LDAP groups have entryUUID ${JSON.stringify(group.id)}`);
    const classes = valuesOf(found, 'objectClass').map((c) => c.toLowerCase());
    return { id: valuesOf(found, ENTRY_UUID)[0] ?? group.id, dn: found.dn, memberAttribute: classes.includes('groupofnames') ? 'member' : 'uniqueMember' };
  };

  // The server compares the DN with distinguishedNameMatch, so spelling differences (case, spaces,
  // escaping) between the stored value and the entry's DN do not matter.
  const hasMember = async (ldap: Client, group: GroupEntry, accountDn: string): Promise<boolean> =>
    (await ldap.search(group.dn, { scope: 'base', filter: eq(group.memberAttribute, accountDn), attributes: ['1.1'] })).searchEntries.length > 0;

  const memberChange = (operation: 'add' | 'delete', group: GroupEntry, dn: string) =>
    new Change({ operation, modification: new Attribute({ type: group.memberAttribute, values: [dn] }) });

  const resolveMembership = async (ldap: Client, groupHandle: ObjectHandle, account: AccountHandle) => {
    const { entry } = await findAccount(ldap, { id: account.id });
    const group = await findGroup(ldap, groupHandle);
    return { account: entry, group, member: await hasMember(ldap, group, entry.dn) };
  };

  return {
    system,

    readAccount(ref): Promise<AccountSnapshot> {
      return client.run('readAccount', async (ldap) => {
        const { entry, userName } = await findAccount(ldap, ref);
        const groups = await ldap.search(groupsDN, { filter: memberOf(entry.dn), attributes: [ENTRY_UUID, 'cn'], paged: { pageSize: 500 } });
        return {
          system,
          observedAt: new Date().toISOString(),
          account: {
            id: entry.id,
            userName,
            name: entry.dn,
            ...(entry.displayName !== undefined ? { displayName: entry.displayName } : {}),
            active: entry.active,
            ...(entry.version !== undefined ? { version: entry.version } : {}),
          },
          groups: groups.searchEntries
            .map((g): GroupRef => ({ id: valuesOf(g, ENTRY_UUID)[0] ?? g.dn, name: g.dn, displayName: valuesOf(g, 'cn')[0] ?? g.dn }))
            .sort((a, b) => a.id.localeCompare(b.id)),
        };
      });
    },

    countAccounts() {
      return client.run('countAccounts', async (ldap) => {
        const result = await ldap.search(usersDN, { filter: eq('objectClass', userObjectClass), attributes: ['1.1'], paged: { pageSize: 500 } });
        return result.searchEntries.length;
      });
    },

    setAccountActive(account, active): Promise<ChangeResult> {
      return client.run('setAccountActive', async (ldap) => {
        const { entry } = await findAccount(ldap, { id: account.id });
        const before = { active: entry.active };
        if (entry.active === active) return { changed: false, before };
        const what = `${active ? 'enable' : 'disable'} ${entry.dn}`;
        if (disableMode === 'ppolicy') {
          // Enabling deletes exactly the lock value read, so a lock set meanwhile by someone else stays.
          const change = active
            ? new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [entry.lockedTime ?? PERMANENT_LOCK] }) })
            : new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [PERMANENT_LOCK] }) });
          await modifyResolved(ldap, entry.dn, [change], what);
        } else {
          const current = entry.userAccountControl;
          if (current === undefined) throw new CordonError('ConnectorRejected', `LDAP ${what}: the entry has no userAccountControl to flip`);
          const next = active ? current & ~ACCOUNTDISABLE : current | ACCOUNTDISABLE;
          // Delete the value read and add the new one in one modify: a compare-and-swap, so flags
          // changed by someone else in between are not overwritten (the delete fails instead).
          await modifyResolved(
            ldap,
            entry.dn,
            [
              new Change({ operation: 'delete', modification: new Attribute({ type: 'userAccountControl', values: [String(current)] }) }),
              new Change({ operation: 'add', modification: new Attribute({ type: 'userAccountControl', values: [String(next)] }) }),
            ],
            what,
          );
        }
        return { changed: true, before };
      });
    },

    isGroupMember(group, account) {
      return client.run('isGroupMember', async (ldap) => (await resolveMembership(ldap, group, account)).member);
    },

    removeGroupMember(groupHandle, accountHandle): Promise<ChangeResult> {
      return client.run('removeGroupMember', async (ldap) => {
        const { account, group, member } = await resolveMembership(ldap, groupHandle, accountHandle);
        if (!member) return { changed: false, before: { member: false } };
        const what = `remove ${account.dn} from ${group.dn}`;
        try {
          await modifyResolved(ldap, group.dn, [memberChange('delete', group, account.dn)], what);
        } catch (error) {
          if (resultCodeOf(error) !== ResultCode.objectClassViolation) throw error;
          // The account was the last member, and the group's class requires one.
          if (options.placeholderMember === undefined) {
            throw new CordonError('ConnectorRejected', `LDAP ${what}: it is the group's last member, and ${group.memberAttribute} is required; set a placeholder member`, { ldapResultCode: ResultCode.objectClassViolation });
          }
          await modifyResolved(ldap, group.dn, [memberChange('delete', group, account.dn), memberChange('add', group, options.placeholderMember)], what);
        }
        return { changed: true, before: { member: true } };
      });
    },

    addGroupMember(groupHandle, accountHandle): Promise<ChangeResult> {
      return client.run('addGroupMember', async (ldap) => {
        const { account, group, member } = await resolveMembership(ldap, groupHandle, accountHandle);
        if (member) return { changed: false, before: { member: true } };
        // A placeholder added when the group emptied stays: it is no account, and removing it would
        // be a change no run asked for.
        await modifyResolved(ldap, group.dn, [memberChange('add', group, account.dn)], `add ${account.dn} to ${group.dn}`);
        return { changed: true, before: { member: false } };
      });
    },
  };
}
