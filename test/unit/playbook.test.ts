import { describe, it, expect } from 'vitest';
import { actionIdFor, Alert as AlertSchema, type AccountSnapshot, type Action, type Alert, type GroupRef } from '../../domain/index.js';
import { DEFAULT_UNUSED_FOR_DAYS, entitlementCleanup } from '../../playbooks/entitlement-cleanup.js';
import { quarantineAgent } from '../../playbooks/quarantine-agent.js';
import { revokeCredential } from '../../playbooks/revoke-credential.js';
import { deprovisionAccount } from '../../playbooks/deprovision-account.js';
import { handledKinds, playbookForKind, playbookNamed, playbooks } from '../../playbooks/registry.js';

const alert: Alert = {
  source: 'demo-siem',
  id: 'orphan-1',
  kind: 'account.orphaned',
  severity: 'high',
  subject: { system: 'scim', userName: 'dana.reyes' },
};

const groups: GroupRef[] = [
  { id: 'g-vpn', displayName: 'vpn-users' },
  { id: 'g-eng', displayName: 'engineering' },
  { id: 'g-fin', displayName: 'finance' },
];

function snapshot(patch: { active?: boolean; groups?: GroupRef[] } = {}): AccountSnapshot {
  return {
    system: 'scim',
    observedAt: '2026-11-28T09:00:00.000Z',
    account: { id: 'u-immutable-1', userName: 'dana.reyes', displayName: 'Dana Reyes', active: patch.active ?? true },
    groups: patch.groups ?? groups,
  };
}

describe('deprovision-account plan', () => {
  it('disables an active account first, then removes it from each group sorted by display name', () => {
    const actions = deprovisionAccount.plan(alert, snapshot());
    expect(actions.map((a) => a.type)).toEqual(['DisableAccount', 'RemoveGroupMembership', 'RemoveGroupMembership', 'RemoveGroupMembership']);
    const removals = actions.filter((a): a is Extract<Action, { type: 'RemoveGroupMembership' }> => a.type === 'RemoveGroupMembership');
    expect(removals.map((a) => a.group.display)).toEqual(['engineering', 'finance', 'vpn-users']);
    expect(removals.map((a) => a.group.id)).toEqual(['g-eng', 'g-fin', 'g-vpn']);
  });

  it('targets the account by its immutable id, not its user name', () => {
    const actions = deprovisionAccount.plan(alert, snapshot());
    for (const action of actions) {
      expect(action.target).toEqual({ system: 'scim', id: 'u-immutable-1', display: 'Dana Reyes' });
    }
  });

  it('records the expected pre- and post-states and stable action ids', () => {
    const [disable, firstRemoval] = deprovisionAccount.plan(alert, snapshot());
    expect(disable).toMatchObject({ preState: { active: true }, postState: { active: false }, reversible: true });
    expect(disable?.id).toBe(actionIdFor('DisableAccount', disable!.target));
    expect(firstRemoval).toMatchObject({ preState: { member: true }, postState: { member: false }, reversible: true });
    expect(deprovisionAccount.plan(alert, snapshot()).map((a) => a.id)).toEqual(deprovisionAccount.plan(alert, snapshot()).map((a) => a.id));
  });

  it('does not reorder the snapshot it was given', () => {
    const input = snapshot();
    deprovisionAccount.plan(alert, input);
    expect(input.groups.map((g) => g.id)).toEqual(['g-vpn', 'g-eng', 'g-fin']);
  });

  it('only removes memberships when the account is already inactive', () => {
    const actions = deprovisionAccount.plan(alert, snapshot({ active: false }));
    expect(actions).toHaveLength(3);
    expect(actions.every((a) => a.type === 'RemoveGroupMembership')).toBe(true);
  });

  it('plans nothing for an inactive account with no groups', () => {
    expect(deprovisionAccount.plan(alert, snapshot({ active: false, groups: [] }))).toEqual([]);
  });

  it('falls back to the user name for display when the account has no display name', () => {
    const input = snapshot();
    const { displayName: _displayName, ...account } = input.account;
    const [disable] = deprovisionAccount.plan(alert, { ...input, account });
    expect(disable?.target.display).toBe('dana.reyes');
  });
});

describe('deprovision-account verify', () => {
  const [disable, removal] = deprovisionAccount.plan(alert, snapshot());

  it('accepts DisableAccount when the account is inactive', () => {
    expect(deprovisionAccount.verify(disable!, snapshot({ active: false }))).toEqual({ ok: true, observed: { account: 'u-immutable-1', active: false } });
  });

  it('refuses DisableAccount when the account is still active', () => {
    expect(deprovisionAccount.verify(disable!, snapshot({ active: true }))).toEqual({ ok: false, observed: { account: 'u-immutable-1', active: true } });
  });

  it('accepts RemoveGroupMembership when the account is no longer a member', () => {
    const after = snapshot({ groups: groups.filter((g) => g.id !== 'g-eng') });
    expect(removal?.type).toBe('RemoveGroupMembership');
    expect(deprovisionAccount.verify(removal!, after)).toEqual({ ok: true, observed: { account: 'u-immutable-1', member: false, group: 'g-eng' } });
  });

  it('refuses RemoveGroupMembership when the account is still a member', () => {
    expect(deprovisionAccount.verify(removal!, snapshot())).toEqual({ ok: false, observed: { account: 'u-immutable-1', member: true, group: 'g-eng' } });
  });
});

describe('playbook registry', () => {
  it('maps account.orphaned and account.leaver to deprovision-account', () => {
    expect(playbookForKind('account.orphaned')?.name).toBe('deprovision-account');
    expect(playbookForKind('account.leaver')?.name).toBe('deprovision-account');
    expect(handledKinds()).toEqual(['account.leaver', 'account.orphaned', 'agent.anomalous', 'credential.leaked', 'entitlement.excessive']);
  });

  it('has no playbook for an unknown kind', () => {
    expect(playbookForKind('account.unknown')).toBeUndefined();
  });

  it('finds a playbook by name and throws for an unknown name', () => {
    expect(playbookNamed('deprovision-account')).toBe(deprovisionAccount);
    expect(() => playbookNamed('x')).toThrow('no playbook named x');
  });

  it('keeps the table of playbooks frozen', () => {
    expect(Object.isFrozen(playbooks)).toBe(true);
    expect(Object.keys(playbooks)).toEqual(['deprovision-account', 'entitlement-cleanup', 'revoke-credential', 'quarantine-agent']);
  });

  it('throws for a name that is only an inherited object property, such as toString', () => {
    expect(() => playbookNamed('toString')).toThrow('no playbook named toString');
    expect(() => playbookNamed('constructor')).toThrow('no playbook named constructor');
  });
});

describe('entitlement-cleanup stale search', () => {
  const excessive = (patch: Partial<Alert> = {}): Alert => ({ ...alert, kind: 'entitlement.excessive', subject: { system: 'aws', userName: 'ci-bot' }, ...patch });

  it('asks observe for stale entitlements only when the alert names none, after the alert’s days or the default', () => {
    expect(entitlementCleanup.staleAfterDays?.(excessive())).toBe(DEFAULT_UNUSED_FOR_DAYS);
    expect(entitlementCleanup.staleAfterDays?.(excessive({ unusedForDays: 30 }))).toBe(30);
    expect(entitlementCleanup.staleAfterDays?.(excessive({ unusedForDays: 30, entitlements: [{ kind: 'policy', name: 'ReadOnlyAccess' }] }))).toBeUndefined();
  });

  it('takes unusedForDays from 1 to 400 whole days, naming the field otherwise', () => {
    expect(AlertSchema.safeParse(excessive({ unusedForDays: 400 })).success).toBe(true);
    for (const bad of [0, 401, 2.5]) {
      const parsed = AlertSchema.safeParse(excessive({ unusedForDays: bad }));
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0]?.path).toEqual(['unusedForDays']);
    }
  });
});

describe('revoke-credential plan', () => {
  const leaked = (usedByOthers: boolean): Alert => ({ ...alert, kind: 'credential.leaked', subject: { system: 'ldap', userName: 'svc' }, credential: { id: 'key-1', usedByOthers } });
  const withKey: AccountSnapshot = { ...snapshot(), system: 'ldap', credentials: [{ id: 'key-1', active: true, createdAt: null, lastUsedAt: null, lastUsedService: null, lastUsedRegion: null }] };

  it('refuses, rather than only deactivate the key, when someone else used it and the system has no quarantine policy', () => {
    expect(() => revokeCredential.plan(leaked(true), withKey)).toThrow(expect.objectContaining({ type: 'UnsupportedOperation' }) as Error);
  });

  it('deactivates the key alone when only its owner used it', () => {
    expect(revokeCredential.plan(leaked(false), withKey).map((a) => a.type)).toEqual(['DeactivateCredential']);
  });
});

describe('quarantine-agent plan', () => {
  it('disables a directory account (no keys, no deny policy) and removes it only from privileged groups', () => {
    const actions = quarantineAgent.plan({ ...alert, kind: 'agent.anomalous' }, snapshot({ groups: [...groups, { id: 'g-adm', displayName: 'admins' }] }), { privilegedGroups: ['admins'] });
    expect(actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type))).toEqual(['DisableAccount', 'admins']);
  });

  it('plans nothing for a disabled directory account outside privileged groups', () => {
    expect(quarantineAgent.plan({ ...alert, kind: 'agent.anomalous' }, snapshot({ active: false }), { privilegedGroups: ['admins'] })).toEqual([]);
  });
});
