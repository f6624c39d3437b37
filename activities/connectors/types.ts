import type { AccountSnapshot } from '../../domain/index.js';

/** How an alert names an account: by immutable id, or by userName. */
export interface AccountRef {
  id?: string | undefined;
  userName?: string | undefined;
}

/**
 * The operations the directory playbooks need, and nothing more (least privilege): read an account
 * with its groups, switch it on or off, and change one group membership. Implementations throw
 * CordonError with catalogue types (TargetNotFound, ConnectorRejected, ConnectorUnavailable,
 * ConcurrentModification).
 */
export interface DirectoryConnector {
  readonly system: string;
  /** Reads an account and every group it is a member of. */
  readAccount(ref: AccountRef): Promise<AccountSnapshot>;
  /** How many accounts the system holds (for percentage blast-radius caps). */
  countAccounts(): Promise<number>;
  /**
   * Sets `active` unless it already has that value (check before act, guarded by the version read, so
   * a retry never acts twice and a concurrent change is not overwritten).
   */
  setAccountActive(accountId: string, active: boolean): Promise<ChangeResult>;
  /** Whether the account is currently a direct member of the group. */
  isGroupMember(groupId: string, accountId: string): Promise<boolean>;
  /** Removes a direct membership unless it is already gone. */
  removeGroupMember(groupId: string, accountId: string): Promise<ChangeResult>;
  /** Adds a direct membership unless it is already there. */
  addGroupMember(groupId: string, accountId: string): Promise<ChangeResult>;
}

/**
 * Whether a call changed the system of record (false: it was already in the asked-for state), and
 * the state its check read found just before, e.g. `{ active: true }` or `{ member: true }`.
 */
export interface ChangeResult {
  changed: boolean;
  before: Record<string, boolean>;
}
