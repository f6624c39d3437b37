import type { Action } from '../domain/index.js';
import { detachPolicy, removeMembership, verifyAction } from './actions.js';
import { accountTarget, type Playbook } from './types.js';

/** How long an entitlement must have gone unused to be stale, when the alert names none. */
export const DEFAULT_UNUSED_FOR_DAYS = 90;

/**
 * Remove exactly the excessive entitlements (groups, or permission policies) of an identity: those the
 * alert names or, when it names none, those observe found stale (not used for the alert's
 * `unusedForDays`, by default {@link DEFAULT_UNUSED_FOR_DAYS} days, where the system records use: AWS IAM's Access Advisor).
 * Nothing else is touched, and an entitlement the identity no longer holds is skipped. Removing a
 * privileged entitlement needs approval under the default policy.
 */
export const entitlementCleanup: Playbook = {
  name: 'entitlement-cleanup',
  description: 'Remove the named, or else the stale, group memberships or permission policies from an identity.',
  kinds: ['entitlement.excessive'],

  // Named entitlements win; without them observe looks for stale ones, and a system that records no
  // use (SCIM, LDAP) refuses the alert at observe, naming `entitlements`.
  staleAfterDays: (alert) => (alert.entitlements && alert.entitlements.length > 0 ? undefined : (alert.unusedForDays ?? DEFAULT_UNUSED_FOR_DAYS)),

  plan(alert, snapshot) {
    const target = accountTarget(snapshot);
    const actions = new Map<string, Action>();
    const add = (action: Action) => actions.set(action.id, action);
    const named = alert.entitlements ?? [];
    for (const entitlement of named) {
      if (entitlement.kind === 'group') {
        const group = snapshot.groups.find((g) => g.displayName === entitlement.name || g.name === entitlement.name || g.id === entitlement.name);
        if (group) add(removeMembership(target, group));
      } else {
        const policy = (snapshot.policies ?? []).find((p) => p.displayName === entitlement.name || p.id === entitlement.name);
        if (policy) add(detachPolicy(target, policy));
      }
    }
    if (named.length === 0) {
      // Found stale by observe, by immutable id; one no longer held is skipped like a named one.
      for (const stale of snapshot.stale?.entitlements ?? []) {
        if (stale.kind === 'group') {
          const group = snapshot.groups.find((g) => g.id === stale.id);
          if (group) add(removeMembership(target, group));
        } else {
          const policy = (snapshot.policies ?? []).find((p) => p.id === stale.id);
          if (policy) add(detachPolicy(target, policy));
        }
      }
    }
    // Stable order whatever the alert's: the digest must not depend on how the entitlements were listed.
    return [...actions.values()].sort((a, b) => a.id.localeCompare(b.id));
  },

  verify: verifyAction,
};
