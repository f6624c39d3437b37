import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { CordonError } from '../../domain/index.js';

/** Which way a mutation goes: applying a remediation, or undoing one. */
export type Direction = 'apply' | 'undo';

export interface FaultPlan {
  /** Fail the n-th apply (1-based) before it reaches the directory. */
  failApplyBefore?: number;
  /** Fail the n-th apply after the directory accepted it (the effect is real, the call "fails"). */
  failApplyAfter?: number;
  /** Fail every undo of these target/group ids. */
  failUndoOf?: string[];
  /** Make the n-th apply report success without calling the directory (verification must catch it). */
  lieOnApply?: number;
  /** Wait this long after the n-th apply reached the directory, before returning. */
  delayAfterApply?: { n: number; ms: number };
}

/**
 * Wraps a real connector with injected faults. Only the mutation calls are touched; reads pass
 * through, so the workflow sees the directory as it really is.
 */
export function withFaults(inner: DirectoryConnector, plan: FaultPlan): DirectoryConnector & { applies: () => number } {
  let applies = 0;
  const mutate = async <T>(direction: Direction, objectId: string, call: () => Promise<T>, fake: T): Promise<T> => {
    if (direction === 'undo') {
      if (plan.failUndoOf?.includes(objectId)) throw new CordonError('InjectedFault', `injected failure undoing a change to ${objectId}`);
      return call();
    }
    const n = ++applies;
    if (plan.failApplyBefore === n) throw new CordonError('InjectedFault', `injected failure before apply #${n}`);
    if (plan.lieOnApply === n) return fake;
    const result = await call();
    if (plan.delayAfterApply?.n === n) await new Promise((r) => setTimeout(r, plan.delayAfterApply!.ms));
    if (plan.failApplyAfter === n) throw new CordonError('InjectedFault', `injected failure after apply #${n}`);
    return result;
  };
  return {
    system: inner.system,
    applies: () => applies,
    readAccount: (ref) => inner.readAccount(ref),
    countAccounts: () => inner.countAccounts(),
    isGroupMember: (groupId, accountId) => inner.isGroupMember(groupId, accountId),
    setAccountActive: (accountId, active) =>
      mutate(active ? 'undo' : 'apply', accountId, () => inner.setAccountActive(accountId, active), { changed: true, before: {} }),
    removeGroupMember: (groupId, accountId) => mutate('apply', groupId, () => inner.removeGroupMember(groupId, accountId), { changed: true, before: {} }),
    addGroupMember: (groupId, accountId) => mutate('undo', groupId, () => inner.addGroupMember(groupId, accountId), { changed: true, before: {} }),
  };
}
