import { z } from 'zod';
import { SystemName } from './alert.js';
import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './sha256.js';

/** An identity or object in a system of record, by its immutable id. `display` is for people only. */
export const Target = z.strictObject({
  system: SystemName,
  id: z.string().min(1).max(256),
  display: z.string().max(256),
});
export type Target = z.infer<typeof Target>;

/** A group as observed in a directory. */
export const GroupRef = z.strictObject({
  id: z.string().min(1).max(256),
  displayName: z.string().max(256),
});
export type GroupRef = z.infer<typeof GroupRef>;

/** An account as observed in a directory. */
export const AccountState = z.strictObject({
  id: z.string().min(1).max(256),
  userName: z.string().max(256),
  displayName: z.string().max(256).optional(),
  active: z.boolean(),
  version: z.string().max(128).optional(),
});
export type AccountState = z.infer<typeof AccountState>;

/** What observe read: an account and the groups it belongs to, at one moment. */
export const AccountSnapshot = z.strictObject({
  system: SystemName,
  observedAt: z.iso.datetime(),
  account: AccountState,
  groups: z.array(GroupRef).max(1000),
  /** How many accounts the system holds; read only when a percentage cap needs it. */
  population: z.int().min(0).optional(),
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

/** One concrete change a plan makes, with the state it expects before and leaves after. */
export const Action = z.discriminatedUnion('type', [DisableAccountAction, RemoveGroupMembershipAction]);
export type Action = z.infer<typeof Action>;
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
