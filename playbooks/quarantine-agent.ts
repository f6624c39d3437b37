import type { Action } from '../domain/index.js';
import { attachQuarantine, deactivateCredential, disableAccount, removeMembership, verifyAction } from './actions.js';
import { accountTarget, type Playbook } from './types.js';

/**
 * Quarantine a non-human identity acting out of scope (an AI agent's service account or role):
 * deactivate its active keys, attach the deny-all policy, and remove it from privileged groups. In a
 * directory (LDAP, SCIM), which has neither keys nor policies, the account itself is disabled, which
 * stops every bind and sign-in of the service account at once. Every step is reversible, so
 * "un-quarantine" is the rollback of the run.
 */
export const quarantineAgent: Playbook = {
  name: 'quarantine-agent',
  description: "Deactivate an agent identity's keys, attach the deny-all policy, remove it from privileged groups.",
  kinds: ['agent.anomalous'],
  needsQuarantinePolicy: true,

  plan(_alert, snapshot, context) {
    const target = accountTarget(snapshot);
    const actions: Action[] = [];
    // The deny policy first: it stops every credential at once, including ones not yet seen.
    const quarantine = snapshot.quarantinePolicy;
    if (quarantine && !(snapshot.policies ?? []).some((p) => p.id === quarantine.id)) actions.push(attachQuarantine(target, quarantine));
    if (!quarantine && snapshot.credentials === undefined && snapshot.account.active) actions.push(disableAccount(target));
    for (const key of [...(snapshot.credentials ?? [])].sort((a, b) => a.id.localeCompare(b.id))) {
      if (key.active) actions.push(deactivateCredential(target, key.id));
    }
    const privileged = new Set(context?.privilegedGroups ?? ['admins']);
    for (const group of [...snapshot.groups].sort((a, b) => a.displayName.localeCompare(b.displayName))) {
      if (privileged.has(group.displayName)) actions.push(removeMembership(target, group));
    }
    return actions;
  },

  verify: verifyAction,
};
