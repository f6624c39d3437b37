import type { AccountSnapshot, CredentialState, StaleEntitlement } from '../../domain/index.js';

/** How an alert names an account: by immutable id, or by userName (or, for IAM, a role by name). */
export interface AccountRef {
  id?: string | undefined;
  userName?: string | undefined;
  /** What kind of identity is meant; a person's account when absent. */
  kind?: 'user' | 'role' | 'service' | undefined;
}

/**
 * An object a connector acts on: its immutable id, and the system's own handle when calls need one
 * (AWS user, group or role name; LDAP DN). A connector that uses `name` checks it still names `id`
 * (a renamed or recreated object is refused, never acted on by mistake).
 */
export interface ObjectHandle {
  id: string;
  name?: string | undefined;
}

/** An account handle, with its kind (IAM users and roles take different calls). */
export interface AccountHandle extends ObjectHandle {
  kind?: 'user' | 'role' | 'service' | undefined;
}

/**
 * The operations the identity playbooks need, and nothing more (least privilege). A connector
 * implements the ones its system supports (SCIM and LDAP: accounts and groups; AWS IAM: access keys,
 * policies and groups); a playbook that needs one a connector lacks is refused before any change.
 * Implementations check the current state before acting, so a retry never acts twice, and throw
 * CordonError with catalogue types (TargetNotFound, TargetAmbiguous, ConnectorRejected (4xx, not
 * retryable), ConnectorUnavailable, ConcurrentModification).
 */
export interface DirectoryConnector {
  readonly system: string;
  /** Reads an account and what hangs off it: groups, and where the system has them credentials and policies. */
  readAccount(ref: AccountRef): Promise<AccountSnapshot>;
  /** How many accounts the system holds (for percentage blast-radius caps). */
  countAccounts?(): Promise<number>;
  /** Sets whether the account can sign in, unless it already is so. */
  setAccountActive?(account: AccountHandle, active: boolean): Promise<ChangeResult>;
  /** Whether the account is currently a direct member of the group. */
  isGroupMember?(group: ObjectHandle, account: AccountHandle): Promise<boolean>;
  /** Removes a direct membership unless it is already gone. */
  removeGroupMember?(group: ObjectHandle, account: AccountHandle): Promise<ChangeResult>;
  /** Adds a direct membership unless it is already there. */
  addGroupMember?(group: ObjectHandle, account: AccountHandle): Promise<ChangeResult>;
  /** Who owns a credential (access key) and its state; TargetNotFound when no one does. */
  findCredential?(credentialId: string): Promise<{ owner: AccountRef; credential: CredentialState }>;
  /** Activates or deactivates one credential of an account (never deletes it), unless it already is so. */
  setCredentialActive?(account: AccountHandle, credentialId: string, active: boolean): Promise<ChangeResult>;
  /** Attaches a permission policy to an account (user or role) unless it already is. */
  attachPolicy?(account: AccountHandle, policy: ObjectHandle): Promise<ChangeResult>;
  /** Detaches a permission policy unless it already is detached. */
  detachPolicy?(account: AccountHandle, policy: ObjectHandle): Promise<ChangeResult>;
  /**
   * Cordon's deny-all quarantine policy where `account` lives, read only: the policy may not exist yet
   * (attaching it creates it), so observing, and a dry run, change nothing.
   */
  quarantinePolicy?(account: AccountHandle): Promise<ObjectHandle & { displayName: string }>;
  /**
   * The account's entitlements (group memberships, attached policies) that none of its uses in the
   * last `unusedForDays` days needed, where the system records use. Read only.
   */
  staleEntitlements?(account: AccountHandle, unusedForDays: number): Promise<StaleEntitlement[]>;
}

/**
 * Whether a call changed the system of record (false: it was already in the asked-for state), and
 * the state its check read found just before, e.g. `{ active: true }` or `{ member: true }`.
 */
export interface ChangeResult {
  changed: boolean;
  before: Record<string, boolean>;
}
