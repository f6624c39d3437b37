import { z } from 'zod';
import { SystemName } from './alert.js';
import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './sha256.js';

/**
 * An identity or object in a system of record, by its immutable id. `name` is the system's own handle
 * when calls need one that is not the id (an AWS user name, an LDAP DN); connectors check that it still
 * names the object with this id. `display` is for people only.
 */
export const Target = z.strictObject({
  system: SystemName,
  id: z.string().min(1).max(512),
  name: z.string().min(1).max(512).optional(),
  /** For accounts: a person's account, an IAM role, a service account (calls differ by kind). */
  kind: z.enum(['user', 'role', 'service']).optional(),
  display: z.string().max(256),
});
export type Target = z.infer<typeof Target>;

/** A group as observed in a directory (`name`: the system's handle, when not the id). */
export const GroupRef = z.strictObject({
  id: z.string().min(1).max(512),
  name: z.string().min(1).max(512).optional(),
  displayName: z.string().max(256),
});
export type GroupRef = z.infer<typeof GroupRef>;

/** An account as observed in a directory. */
export const AccountState = z.strictObject({
  id: z.string().min(1).max(512),
  userName: z.string().max(256),
  /** The system's handle for the account when it is not the id (AWS user or role name, LDAP DN). */
  name: z.string().min(1).max(512).optional(),
  displayName: z.string().max(256).optional(),
  /** A person's account, or a non-human identity: an IAM role, a service account. */
  kind: z.enum(['user', 'role', 'service']).optional(),
  active: z.boolean(),
  version: z.string().max(128).optional(),
});
export type AccountState = z.infer<typeof AccountState>;

/** A credential of an account (an access key), with its last use where the system records it. */
export const CredentialState = z.strictObject({
  id: z.string().min(1).max(256),
  active: z.boolean(),
  createdAt: z.iso.datetime({ offset: true }).nullable(),
  lastUsedAt: z.iso.datetime({ offset: true }).nullable(),
  lastUsedService: z.string().max(128).nullable(),
  lastUsedRegion: z.string().max(64).nullable(),
});
export type CredentialState = z.infer<typeof CredentialState>;

/** A permission policy attached to an account (an IAM managed policy), by its id (ARN). */
export const PolicyRef = z.strictObject({
  id: z.string().min(1).max(2048),
  displayName: z.string().max(256),
});
export type PolicyRef = z.infer<typeof PolicyRef>;

/**
 * An entitlement observe found unused, where the system records use (IAM Access Advisor): a group
 * membership or an attached policy, with the latest use of any service it grants.
 */
export const StaleEntitlement = z.strictObject({
  kind: z.enum(['group', 'policy']),
  id: z.string().min(1).max(2048),
  displayName: z.string().max(256),
  /** The latest use of any service it grants; null: none within the system's tracking period. */
  lastUsedAt: z.iso.datetime({ offset: true }).nullable(),
  /** How many services it grants (all of them unused). */
  services: z.int().min(1).max(1000),
});
export type StaleEntitlement = z.infer<typeof StaleEntitlement>;

/** What observe read: an account and the groups it belongs to, at one moment. */
export const AccountSnapshot = z.strictObject({
  system: SystemName,
  observedAt: z.iso.datetime(),
  account: AccountState,
  groups: z.array(GroupRef).max(1000),
  /** Credentials, where the system has them (AWS access keys). */
  credentials: z.array(CredentialState).max(100).optional(),
  /** Attached permission policies, where the system has them (IAM managed policies). */
  policies: z.array(PolicyRef).max(200).optional(),
  /** Cordon's deny-all quarantine policy in this system, when the playbook may attach it. */
  quarantinePolicy: PolicyRef.optional(),
  /** The entitlements not used for `unusedForDays` days; read only when the playbook looks for them. */
  stale: z.strictObject({ unusedForDays: z.int().min(1).max(400), entitlements: z.array(StaleEntitlement).max(300) }).optional(),
  /** How many accounts the system holds; read only when a percentage cap needs it. */
  population: z.int().min(0).optional(),
  /** What the run is found by in Temporal's search attributes: the account's id and name, blinded when identities must not be stored in clear. */
  searchTargets: z.array(z.string().max(256)).max(4).optional(),
});
export type AccountSnapshot = z.infer<typeof AccountSnapshot>;

/** Action ids are stable for the same change on the same target: `act_` + 16 hex. */
export const ActionId = z.string().regex(/^act_[0-9a-f]{16}$/, 'must be act_ followed by 16 hex digits');
export type ActionId = z.infer<typeof ActionId>;

/** Disable an account (undo: enable it). */
export const DisableAccountAction = z.strictObject({
  id: ActionId,
  type: z.literal('DisableAccount'),
  target: Target,
  reversible: z.literal(true),
  preState: z.strictObject({ active: z.literal(true) }),
  postState: z.strictObject({ active: z.literal(false) }),
});

/** Remove an account from one group (undo: add it back). */
export const RemoveGroupMembershipAction = z.strictObject({
  id: ActionId,
  type: z.literal('RemoveGroupMembership'),
  target: Target,
  group: Target,
  reversible: z.literal(true),
  preState: z.strictObject({ member: z.literal(true) }),
  postState: z.strictObject({ member: z.literal(false) }),
});

/** Deactivate exactly one credential (access key) of an account, never delete it (undo: reactivate). */
export const DeactivateCredentialAction = z.strictObject({
  id: ActionId,
  type: z.literal('DeactivateCredential'),
  target: Target,
  credential: z.strictObject({ id: z.string().min(1).max(256) }),
  reversible: z.literal(true),
  preState: z.strictObject({ active: z.literal(true) }),
  postState: z.strictObject({ active: z.literal(false) }),
});

/** Attach Cordon's deny-all quarantine policy to an account or role (undo: detach it). */
export const AttachQuarantinePolicyAction = z.strictObject({
  id: ActionId,
  type: z.literal('AttachQuarantinePolicy'),
  target: Target,
  policy: Target,
  reversible: z.literal(true),
  preState: z.strictObject({ attached: z.literal(false) }),
  postState: z.strictObject({ attached: z.literal(true) }),
});

/** Detach one permission policy from an account (undo: attach it again). */
export const DetachPolicyAction = z.strictObject({
  id: ActionId,
  type: z.literal('DetachPolicy'),
  target: Target,
  policy: Target,
  reversible: z.literal(true),
  preState: z.strictObject({ attached: z.literal(true) }),
  postState: z.strictObject({ attached: z.literal(false) }),
});

/** One concrete change a plan makes, with the state it expects before and leaves after. */
export const Action = z.discriminatedUnion('type', [
  DisableAccountAction,
  RemoveGroupMembershipAction,
  DeactivateCredentialAction,
  AttachQuarantinePolicyAction,
  DetachPolicyAction,
]);
export type Action = z.infer<typeof Action>;

/** What an action changes, as "what: before → after" for people (CLI, UI, chat). */
export function actionChange(action: Action): { what: string; before: boolean; after: boolean } {
  switch (action.type) {
    case 'DisableAccount':
      return { what: 'active', before: action.preState.active, after: action.postState.active };
    case 'RemoveGroupMembership':
      return { what: `member of ${action.group.display}`, before: action.preState.member, after: action.postState.member };
    case 'DeactivateCredential':
      return { what: `credential ${action.credential.id} active`, before: action.preState.active, after: action.postState.active };
    case 'AttachQuarantinePolicy':
    case 'DetachPolicy':
      return { what: `${action.policy.display} attached`, before: action.preState.attached, after: action.postState.attached };
  }
}

/** {@link actionChange} as one line: `member of admins: true → false`. */
export function describeActionChange(action: Action): string {
  const change = actionChange(action);
  return `${change.what}: ${change.before} → ${change.after}`;
}
export type ActionType = Action['type'];

/** SHA-256 hex of the canonical JSON of a plan's actions (with their pre- and post-states). */
export const PlanDigest = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits');
export type PlanDigest = z.infer<typeof PlanDigest>;

/** The exact changes a run proposes. Approvals are bound to `digest`. */
export const Plan = z.strictObject({
  playbook: z.string().min(1).max(64),
  targets: z.array(Target).max(100),
  actions: z.array(Action).max(500),
  digest: PlanDigest,
  observedAt: z.iso.datetime(),
});
export type Plan = z.infer<typeof Plan>;

/** Computes the digest that binds approvals to exactly these actions and pre-states. */
export function planDigest(actions: readonly Action[]): PlanDigest {
  return sha256Hex(canonicalJson(actions));
}

/** Derives the stable id of an action from what it changes. */
export function actionIdFor(type: ActionType, target: Target, object?: Target): ActionId {
  const key = canonicalJson({ type, system: target.system, target: target.id, object: object?.id });
  return `act_${sha256Hex(key).slice(0, 16)}`;
}
