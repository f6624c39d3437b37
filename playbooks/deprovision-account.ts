import type { Action } from '../domain/index.js';
import { disableAccount, removeMembership, verifyAction } from './actions.js';
import { accountTarget, type Playbook } from './types.js';

/**
 * Deprovision an account: disable it first (access stops at once), then remove it from each of its
 * groups, so that re-enabling it by mistake does not restore its entitlements. Works on any
 * directory connector with accounts and groups (SCIM, LDAP).
 */
export const deprovisionAccount: Playbook = {
  name: 'deprovision-account',
  description: 'Disable an account and remove it from every group it belongs to.',
  kinds: ['account.orphaned', 'account.leaver'],

  plan(_alert, snapshot) {
    const target = accountTarget(snapshot);
    const actions: Action[] = [];
    if (snapshot.account.active) actions.push(disableAccount(target));
    const groups = [...snapshot.groups].sort((a, b) => (a.displayName < b.displayName ? -1 : a.displayName > b.displayName ? 1 : 0));
    for (const group of groups) actions.push(removeMembership(target, group));
    return actions;
  },

  verify: verifyAction,
};
