import { actionIdFor, type AccountSnapshot, type Action, type GroupRef, type PolicyRef, type Target } from '../domain/index.js';
import type { VerificationResult } from './types.js';

/** Disable the account (undo: enable it). */
export function disableAccount(target: Target): Action {
  return { id: actionIdFor('DisableAccount', target), type: 'DisableAccount', target, reversible: true, preState: { active: true }, postState: { active: false } };
}

/** Remove the account from one group (undo: add it back). */
export function removeMembership(target: Target, group: GroupRef): Action {
  const groupTarget: Target = { system: target.system, id: group.id, ...(group.name !== undefined ? { name: group.name } : {}), display: group.displayName };
  return {
    id: actionIdFor('RemoveGroupMembership', target, groupTarget),
    type: 'RemoveGroupMembership',
    target,
    group: groupTarget,
    reversible: true,
    preState: { member: true },
    postState: { member: false },
  };
}

/** Deactivate exactly one credential of the account (undo: reactivate it). */
export function deactivateCredential(target: Target, credentialId: string): Action {
  const credential: Target = { system: target.system, id: credentialId, display: credentialId };
  return {
    id: actionIdFor('DeactivateCredential', target, credential),
    type: 'DeactivateCredential',
    target,
    credential: { id: credentialId },
    reversible: true,
    preState: { active: true },
    postState: { active: false },
  };
}

function policyTarget(system: string, policy: PolicyRef): Target {
  return { system, id: policy.id, name: policy.id, display: policy.displayName };
}

/** Attach the deny-all quarantine policy (undo: detach it). */
export function attachQuarantine(target: Target, policy: PolicyRef): Action {
  const policyRef = policyTarget(target.system, policy);
  return {
    id: actionIdFor('AttachQuarantinePolicy', target, policyRef),
    type: 'AttachQuarantinePolicy',
    target,
    policy: policyRef,
    reversible: true,
    preState: { attached: false },
    postState: { attached: true },
  };
}

/** Detach one permission policy (undo: attach it again). */
export function detachPolicy(target: Target, policy: PolicyRef): Action {
  const policyRef = policyTarget(target.system, policy);
  return {
    id: actionIdFor('DetachPolicy', target, policyRef),
    type: 'DetachPolicy',
    target,
    policy: policyRef,
    reversible: true,
    preState: { attached: true },
    postState: { attached: false },
  };
}

/** The ids an action is about, for evidence and the ledger. */
export function objectOf(action: Action): Record<string, string> {
  switch (action.type) {
    case 'DisableAccount':
      return { account: action.target.id };
    case 'RemoveGroupMembership':
      return { account: action.target.id, group: action.group.id };
    case 'DeactivateCredential':
      return { account: action.target.id, credential: action.credential.id };
    case 'AttachQuarantinePolicy':
    case 'DetachPolicy':
      return { account: action.target.id, policy: action.policy.id };
  }
}

/** What a snapshot shows of the state an action changes. */
export function observedState(action: Action, snapshot: AccountSnapshot): Record<string, string | boolean | null> {
  switch (action.type) {
    case 'DisableAccount':
      return { ...objectOf(action), active: snapshot.account.active };
    case 'RemoveGroupMembership':
      return { ...objectOf(action), member: snapshot.groups.some((g) => g.id === action.group.id) };
    case 'DeactivateCredential': {
      const credential = snapshot.credentials?.find((c) => c.id === action.credential.id);
      return {
        ...objectOf(action),
        active: credential ? credential.active : null,
        lastUsedAt: credential?.lastUsedAt ?? null,
        lastUsedService: credential?.lastUsedService ?? null,
      };
    }
    case 'AttachQuarantinePolicy':
    case 'DetachPolicy':
      return { ...objectOf(action), attached: (snapshot.policies ?? []).some((p) => p.id === action.policy.id) };
  }
}

/** Whether an action's post-state holds in a fresh snapshot. */
export function verifyAction(action: Action, snapshot: AccountSnapshot): VerificationResult {
  const observed = observedState(action, snapshot);
  const want = action.postState as Record<string, boolean>;
  const ok = Object.entries(want).every(([key, value]) => observed[key] === value);
  return { ok, observed };
}
