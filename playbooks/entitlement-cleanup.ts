import type { Action } from '../domain/index.js';
import { detachPolicy, removeMembership, verifyAction } from './actions.js';
import { accountTarget, type Playbook } from './types.js';

/**
 * Remove exactly the excessive entitlements an alert names (groups, or permission policies) from an
 * identity: nothing else is touched, and an entitlement the identity no longer holds is skipped.
 * Removing a privileged entitlement needs approval under the default policy.
 */
export const entitlementCleanup: Playbook = {
  name: 'entitlement-cleanup',
  description: 'Remove the named excessive group memberships or permission policies from an identity.',
  kinds: ['entitlement.excessive'],

  missing: (alert) =>
    alert.entitlements && alert.entitlements.length > 0 ? undefined : 'an entitlement.excessive alert needs entitlements: [{ kind: "group" | "policy", name }]',

  plan(alert, snapshot) {
    const target = accountTarget(snapshot);
    const actions: Action[] = [];
    for (const entitlement of alert.entitlements ?? []) {
      if (entitlement.kind === 'group') {
        const group = snapshot.groups.find((g) => g.displayName === entitlement.name || g.name === entitlement.name || g.id === entitlement.name);
        if (group) actions.push(removeMembership(target, group));
      } else {
        const policy = (snapshot.policies ?? []).find((p) => p.displayName === entitlement.name || p.id === entitlement.name);
        if (policy) actions.push(detachPolicy(target, policy));
      }
    }
    // Stable order whatever the alert's: the digest must not depend on how the entitlements were listed.
    return actions.sort((a, b) => a.id.localeCompare(b.id));
  },

  verify: verifyAction,
};
