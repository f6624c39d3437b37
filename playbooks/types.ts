import type { AccountSnapshot, Action, Alert, Target } from '../domain/index.js';

/** Whether an action's intended post-state holds in a snapshot, with what was seen. */
export interface VerificationResult {
  ok: boolean;
  observed: Record<string, string | boolean | null>;
}

/**
 * A remediation kind: which alerts it handles, how it turns an observed snapshot into concrete
 * actions, and how it proves each action holds. Pure functions: activities do the I/O.
 */
export interface Playbook {
  readonly name: string;
  readonly description: string;
  readonly kinds: readonly string[];
  /** The exact actions that take the target from what was observed to the remediated state. */
  plan(alert: Alert, snapshot: AccountSnapshot): Action[];
  /** Checks one action's post-state against a fresh snapshot. */
  verify(action: Action, snapshot: AccountSnapshot): VerificationResult;
}

/** The target an account snapshot describes. */
export function accountTarget(snapshot: AccountSnapshot): Target {
  const { account } = snapshot;
  return { system: snapshot.system, id: account.id, display: account.displayName ?? account.userName };
}
