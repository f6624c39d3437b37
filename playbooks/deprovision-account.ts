import { actionIdFor, type Action, type Target } from '../domain/index.js';
import { accountTarget, type Playbook } from './types.js';

/**
 * Deprovision an account: disable it first (access stops at once), then remove it from each of its
 * groups, so that re-enabling it by mistake does not restore its entitlements.
 */
export const deprovisionAccount: Playbook = {
  name: 'deprovision-account',
  description: 'Disable an account and remove it from every group it belongs to.',
  kinds: ['account.orphaned', 'account.leaver'],

  plan(_alert, snapshot) {
    const target = accountTarget(snapshot);
    const actions: Action[] = [];
    if (snapshot.account.active) {
      actions.push({
        id: actionIdFor('DisableAccount', target),
        type: 'DisableAccount',
        target,
        reversible: true,
        preState: { active: true },
        postState: { active: false },
      });
    }
    const groups = [...snapshot.groups].sort((a, b) => (a.displayName < b.displayName ? -1 : a.displayName > b.displayName ? 1 : 0));
    for (const group of groups) {
      const groupTarget: Target = { system: snapshot.system, id: group.id, display: group.displayName };
      actions.push({
        id: actionIdFor('RemoveGroupMembership', target, groupTarget),
        type: 'RemoveGroupMembership',
        target,
        group: groupTarget,
        reversible: true,
        preState: { member: true },
        postState: { member: false },
      });
    }
    return actions;
  },

  verify(action, snapshot) {
    switch (action.type) {
      case 'DisableAccount':
        return { ok: snapshot.account.active === false, observed: { active: snapshot.account.active } };
      case 'RemoveGroupMembership': {
        const member = snapshot.groups.some((g) => g.id === action.group.id);
        return { ok: !member, observed: { member, group: action.group.id } };
      }
    }
  },
};
