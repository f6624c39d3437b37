import { wrapConnector } from '../../activities/connectors/wrap.js';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { CordonError } from '../../domain/index.js';

/** Which way a mutation goes: applying a remediation, or undoing one. */
export type Direction = 'apply' | 'undo';

export interface FaultPlan {
  /** Fail the n-th apply (1-based) before it reaches the directory. */
  failApplyBefore?: number;
  /** Fail the n-th apply after the directory accepted it (the effect is real, the call "fails"). */
  failApplyAfter?: number;
  /** Fail every undo that touches one of these ids (account, group, credential or policy). */
  failUndoOf?: string[];
  /** Make the n-th apply report success without calling the directory (verification must catch it). */
  lieOnApply?: number;
  /** Wait this long after the n-th apply reached the directory, before returning. */
  delayAfterApply?: { n: number; ms: number };
  /** Which way a call goes; the default knows the deprovisioning and quarantine operations. */
  direction?: (operation: string, args: readonly unknown[]) => Direction | undefined;
}

/** Disabling, removing and attaching (a quarantine policy) apply; their opposites undo. Reads are neither. */
export function defaultDirection(operation: string, args: readonly unknown[]): Direction | undefined {
  switch (operation) {
    case 'setAccountActive':
      return args[1] === false ? 'apply' : 'undo';
    case 'setCredentialActive':
      return args[2] === false ? 'apply' : 'undo';
    case 'removeGroupMember':
    case 'attachPolicy':
      return 'apply';
    case 'addGroupMember':
    case 'detachPolicy':
      return 'undo';
    default:
      return undefined;
  }
}

/** The id of the object a call changes (the account, the group, the credential or the policy), for failUndoOf. */
function objectOf(operation: string, args: readonly unknown[]): string | undefined {
  const arg = operation === 'setCredentialActive' || operation === 'attachPolicy' || operation === 'detachPolicy' ? args[1] : args[0];
  if (typeof arg === 'string') return arg;
  return arg && typeof arg === 'object' && 'id' in arg ? String((arg as { id: unknown }).id) : undefined;
}

/**
 * Wraps a real connector with injected faults. Only mutations are touched; reads pass through, so
 * the workflow sees the system as it really is.
 */
export function withFaults(inner: DirectoryConnector, plan: FaultPlan): DirectoryConnector & { applies: () => number } {
  let applies = 0;
  const direction = plan.direction ?? defaultDirection;
  const wrapped = wrapConnector(inner, async (operation, args, call) => {
    const way = direction(operation, args);
    if (way === undefined) return call();
    if (way === 'undo') {
      const object = objectOf(operation, args);
      if (object !== undefined && plan.failUndoOf?.includes(object)) throw new CordonError('InjectedFault', `injected failure undoing ${operation} on ${object}`);
      return call();
    }
    const n = ++applies;
    if (plan.failApplyBefore === n) throw new CordonError('InjectedFault', `injected failure before apply #${n}`);
    if (plan.lieOnApply === n) return { changed: true, before: {} };
    const result = await call();
    if (plan.delayAfterApply?.n === n) await new Promise((r) => setTimeout(r, plan.delayAfterApply!.ms));
    if (plan.failApplyAfter === n) throw new CordonError('InjectedFault', `injected failure after apply #${n}`);
    return result;
  });
  return Object.assign(wrapped, { applies: () => applies });
}
