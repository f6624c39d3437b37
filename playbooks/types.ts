import type { AccountSnapshot, Action, Alert, Target } from '../domain/index.js';

/** Whether an action's intended post-state holds in a snapshot, with what was seen. */
export interface VerificationResult {
  ok: boolean;
  observed: Record<string, string | boolean | null>;
}

/** What observe must read for a playbook: the alert's subject, or the owner of a credential. */
export type ObserveRequest = { kind: 'subject' } | { kind: 'credential-owner'; credentialId: string };

/** What a plan may use beyond the alert and the snapshot: settings of the deployment. */
export interface PlanContext {
  /** Groups whose membership is privileged (quarantine removes an agent from them). */
  privilegedGroups: readonly string[];
}

/**
 * A remediation kind: which alerts it handles, how it turns an observed snapshot into concrete
 * actions, and how it proves each action holds. Pure functions: activities do the I/O.
 */
export interface Playbook {
  readonly name: string;
  readonly description: string;
  readonly kinds: readonly string[];
  /** What the alert must carry beyond the common fields; a message naming what is missing, or undefined. */
  missing?(alert: Alert): string | undefined;
  /** What observe must read; the alert's subject when absent. */
  observe?(alert: Alert): ObserveRequest;
  /** Whether observe must also fetch the system's quarantine policy, where the system has one. */
  readonly needsQuarantinePolicy?: boolean;
  /**
   * For this alert, the days of disuse after which observe reports an entitlement as stale (where the
   * system records use); undefined, or absent: observe looks for none.
   */
  staleAfterDays?(alert: Alert): number | undefined;
  /** The exact actions that take the target from what was observed to the remediated state. */
  plan(alert: Alert, snapshot: AccountSnapshot, context?: PlanContext): Action[];
  /** Checks one action's post-state against a fresh snapshot. */
  verify(action: Action, snapshot: AccountSnapshot): VerificationResult;
}

/** The target an account snapshot describes (with the system's name and the kind when it has them). */
export function accountTarget(snapshot: AccountSnapshot): Target {
  const { account } = snapshot;
  return {
    system: snapshot.system,
    id: account.id,
    ...(account.name !== undefined ? { name: account.name } : {}),
    ...(account.kind !== undefined ? { kind: account.kind } : {}),
    display: account.displayName ?? account.userName,
  };
}
