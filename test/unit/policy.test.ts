import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it, expect } from 'vitest';
import { planDigest, type AccountSnapshot, type Alert, type Identity, type Plan, type PolicyRef, type Role, type Severity } from '../../domain/index.js';
import { deprovisionAccount } from '../../playbooks/deprovision-account.js';
import { entitlementCleanup } from '../../playbooks/entitlement-cleanup.js';
import { quarantineAgent } from '../../playbooks/quarantine-agent.js';
import { revokeCredential } from '../../playbooks/revoke-credential.js';
import type { Playbook } from '../../playbooks/types.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine, PolicyLoadError, type PolicyEngine, type PolicyRequest } from '../../policies/engine.js';
import { decideRun, noGuardrails } from '../../policies/guardrails.js';
import { rejectionOf } from '../support/errors.js';

/** Decides with no guardrail file: policy alone. */
const decideWith = (engine: PolicyEngine, request: PolicyRequest) => decideRun(engine, noGuardrails(), request, { mode: 'live', budgets: [], killSwitches: [] });

const DAY_MS = 24 * 60 * 60 * 1000;
const tempDirs: string[] = [];

afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A policy directory holding the default schema and the given policy files. */
async function policyDir(files: Record<string, string>, options: { schema?: boolean } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-policy-'));
  tempDirs.push(dir);
  if (options.schema ?? true) await copyFile(join(DEFAULT_POLICY_DIR, 'schema.cedarschema'), join(dir, 'schema.cedarschema'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** Loads a directory that must fail, and returns the PolicyLoadError. */
async function loadError(dir: string): Promise<PolicyLoadError> {
  const loadErr = await rejectionOf(loadPolicyEngine(dir), PolicyLoadError);
  expect(loadErr.message.startsWith(`${loadErr.file}:${loadErr.line}:${loadErr.column}: `)).toBe(true);
  return loadErr;
}

function request(options: { severity: Severity; groups: string[]; active?: boolean }): PolicyRequest {
  const alert: Alert = {
    source: 'demo-siem',
    id: 'orphan-1',
    kind: 'account.orphaned',
    severity: options.severity,
    subject: { system: 'scim', userName: 'dana.reyes' },
  };
  const snapshot: AccountSnapshot = {
    system: 'scim',
    observedAt: '2026-11-28T09:00:00.000Z',
    account: { id: 'u-1', userName: 'dana.reyes', displayName: 'Dana Reyes', active: options.active ?? true },
    groups: options.groups.map((name, i) => ({ id: `g-${i}`, displayName: name })),
  };
  const actions = deprovisionAccount.plan(alert, snapshot);
  const plan: Plan = {
    playbook: deprovisionAccount.name,
    targets: actions.length > 0 ? [actions[0]!.target] : [],
    actions,
    digest: planDigest(actions),
    observedAt: snapshot.observedAt,
  };
  return { alert, plan, snapshot, requestedBy: { name: 'siem-bot', roles: ['soc'] } };
}

const defaultText = await readFile(join(DEFAULT_POLICY_DIR, 'default.cedar'), 'utf8');

const engine = await loadPolicyEngine(DEFAULT_POLICY_DIR);

/** A plan of `playbook` for `alert` on `snapshot`, as a run would build it, requested by the SIEM unless said otherwise. */
function planned(playbook: Playbook, alert: Alert, snapshot: AccountSnapshot, requestedBy: Identity = { name: 'siem-bot', roles: ['soc'] }): PolicyRequest {
  const actions = playbook.plan(alert, snapshot, { privilegedGroups: ['admins'] });
  const plan: Plan = { playbook: playbook.name, targets: actions.length > 0 ? [actions[0]!.target] : [], actions, digest: planDigest(actions), observedAt: snapshot.observedAt };
  return { alert, plan, snapshot, requestedBy };
}

const QUARANTINE: PolicyRef = { id: 'arn:aws:iam::123456789012:policy/CordonQuarantine', displayName: 'CordonQuarantine' };
const KEY = 'AKIAEXAMPLE0000LEAK';

/** An IAM role of an agent, with its keys (active) and groups. */
function agentSnapshot(options: { groups?: string[]; keys?: string[]; policies?: string[] }): AccountSnapshot {
  return {
    system: 'aws',
    observedAt: '2026-11-28T09:00:00.000Z',
    account: { id: 'AROAAGENT', userName: 'agent-7', name: 'agent-7', kind: 'role', active: true },
    groups: (options.groups ?? []).map((name, i) => ({ id: `g-${i}`, displayName: name })),
    credentials: (options.keys ?? []).map((id) => ({ id, active: true, createdAt: null, lastUsedAt: null, lastUsedService: null, lastUsedRegion: null })),
    policies: (options.policies ?? []).map((name) => ({ id: `arn:aws:iam::aws:policy/${name}`, displayName: name })),
    quarantinePolicy: QUARANTINE,
  };
}

/** quarantine-agent on an agent with these keys and groups. */
const quarantine = (severity: Severity, options: { groups?: string[]; keys?: string[] } = {}) =>
  planned(quarantineAgent, { source: 'agent-watch', id: 'a-1', kind: 'agent.anomalous', severity, subject: { system: 'aws', id: 'AROAAGENT' } }, agentSnapshot(options));

/** revoke-credential of a leaked active key (used by someone else or not), owned by an account in `groups`. */
const revoke = (severity: Severity, options: { usedByOthers?: boolean; groups?: string[] } = {}) =>
  planned(
    revokeCredential,
    { source: 'key-scanner', id: 'k-1', kind: 'credential.leaked', severity, subject: { system: 'aws' }, credential: { id: KEY, usedByOthers: options.usedByOthers ?? false } },
    agentSnapshot({ keys: [KEY], ...(options.groups ? { groups: options.groups } : {}) }),
  );

/** entitlement-cleanup of the named policies (and groups) the identity holds. */
const entitlement = (severity: Severity, options: { policies?: string[]; groups?: string[] }) =>
  planned(
    entitlementCleanup,
    {
      source: 'ciem',
      id: 'e-1',
      kind: 'entitlement.excessive',
      severity,
      subject: { system: 'aws', id: 'AROAAGENT' },
      entitlements: [...(options.policies ?? []).map((name) => ({ kind: 'policy' as const, name })), ...(options.groups ?? []).map((name) => ({ kind: 'group' as const, name }))],
    },
    agentSnapshot({ ...(options.policies ? { policies: options.policies } : {}), ...(options.groups ? { groups: options.groups } : {}) }),
  );

/** An operator's rollback of a completed deprovisioning, each undo privileged or not. */
function rollback(options: { groups: string[]; roles: Role[]; privileged: boolean }): PolicyRequest {
  const forward = request({ severity: 'high', groups: options.groups });
  return {
    ...forward,
    requestedBy: { name: 'oscar', roles: options.roles },
    rollback: { privileged: options.privileged ? forward.plan.actions.map((a) => a.id) : [] },
  };
}

interface PolicyCase {
  name: string;
  request: PolicyRequest;
  outcome: 'auto' | 'approve' | 'deny';
  approvers: number;
  roles: Role[];
  /** The deciding policies: every policy that decided one of the plan's actions. */
  policies: string[];
  /** For a deny: a reason it must give. */
  reason?: RegExp;
}

// Every default policy decides at least one row, and every outcome appears: auto, approve (one and
// two approvers), deny by a forbid, and deny because nothing permits it.
const ordinary = ['engineering'];
const admin = ['admins', 'engineering'];
const breakGlass = ['break-glass'];
const both = ['admins', 'break-glass'];
const approver: Role[] = ['approver'];
const table: PolicyCase[] = [
  // deprovision-account: severity × kind of account.
  { name: 'deprovisioning an ordinary account on a low alert', request: request({ severity: 'low', groups: ordinary }), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-deprovision-on-lower-severity'] },
  { name: 'deprovisioning an ordinary account on a medium alert', request: request({ severity: 'medium', groups: ordinary }), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-deprovision-on-lower-severity'] },
  { name: 'deprovisioning an ordinary account on a high alert', request: request({ severity: 'high', groups: ordinary }), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deprovision-on-high-severity'] },
  { name: 'deprovisioning an ordinary account on a critical alert', request: request({ severity: 'critical', groups: ordinary }), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deprovision-on-high-severity'] },
  { name: 'deprovisioning an administrator on a low alert', request: request({ severity: 'low', groups: admin }), outcome: 'approve', approvers: 2, roles: approver, policies: ['approve-deprovision-on-lower-severity', 'privileged-needs-two-approvers'] },
  { name: 'deprovisioning an administrator on a medium alert', request: request({ severity: 'medium', groups: admin }), outcome: 'approve', approvers: 2, roles: approver, policies: ['approve-deprovision-on-lower-severity', 'privileged-needs-two-approvers'] },
  { name: 'deprovisioning an administrator on a high alert', request: request({ severity: 'high', groups: admin }), outcome: 'approve', approvers: 2, roles: approver, policies: ['privileged-needs-two-approvers'] },
  { name: 'deprovisioning an administrator on a critical alert', request: request({ severity: 'critical', groups: admin }), outcome: 'approve', approvers: 2, roles: approver, policies: ['privileged-needs-two-approvers'] },
  { name: 'deprovisioning a break-glass account on a low alert', request: request({ severity: 'low', groups: breakGlass }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'], reason: /forbidden by deny-break-glass/ },
  { name: 'deprovisioning a break-glass account on a medium alert', request: request({ severity: 'medium', groups: breakGlass }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  { name: 'deprovisioning a break-glass account on a high alert', request: request({ severity: 'high', groups: breakGlass }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  { name: 'deprovisioning a break-glass account on a critical alert', request: request({ severity: 'critical', groups: breakGlass }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  { name: 'deprovisioning a break-glass administrator on a low alert', request: request({ severity: 'low', groups: both }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  { name: 'deprovisioning a break-glass administrator on a critical alert', request: request({ severity: 'critical', groups: both }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  // quarantine-agent: the deny-all policy by severity, keys at once, privileged groups by two approvers.
  { name: 'quarantining an agent on a high alert', request: quarantine('high'), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-quarantine-on-high-severity'] },
  { name: 'quarantining an agent on a critical alert', request: quarantine('critical'), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-quarantine-on-high-severity'] },
  { name: 'quarantining an agent on a medium alert', request: quarantine('medium'), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-quarantine-on-lower-severity'] },
  { name: 'quarantining an agent on a low alert', request: quarantine('low'), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-quarantine-on-lower-severity'] },
  { name: 'quarantining an agent with an active key on a high alert', request: quarantine('high', { keys: ['AKIAAGENTKEY'] }), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deactivate-credential', 'auto-quarantine-on-high-severity'] },
  { name: 'quarantining an agent in admins, with a key, on a high alert', request: quarantine('high', { keys: ['AKIAAGENTKEY'], groups: ['admins'] }), outcome: 'approve', approvers: 2, roles: approver, policies: ['privileged-needs-two-approvers'] },
  { name: 'quarantining a break-glass agent on a critical alert', request: quarantine('critical', { groups: ['break-glass'] }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  // revoke-credential: the key at once whatever the severity; quarantining its owner by severity.
  { name: 'revoking a leaked key on a low alert', request: revoke('low'), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deactivate-credential'] },
  { name: 'revoking a leaked key on a critical alert', request: revoke('critical'), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deactivate-credential'] },
  { name: 'revoking a key someone else used, quarantining its owner, on a medium alert', request: revoke('medium', { usedByOthers: true }), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-quarantine-on-lower-severity', 'auto-deactivate-credential'] },
  { name: 'revoking a key someone else used, quarantining its owner, on a high alert', request: revoke('high', { usedByOthers: true }), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deactivate-credential', 'auto-quarantine-on-high-severity'] },
  { name: 'revoking a key of an administrator on a high alert', request: revoke('high', { groups: ['admins'] }), outcome: 'approve', approvers: 2, roles: approver, policies: ['privileged-needs-two-approvers'] },
  { name: 'revoking a key of a break-glass account on a low alert', request: revoke('low', { groups: ['break-glass'] }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  // entitlement-cleanup: detaching by severity; a privileged policy by an approver whatever the severity.
  { name: 'detaching an ordinary policy on a high alert', request: entitlement('high', { policies: ['ReadOnlyAccess'] }), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-detach-policy-on-high-severity'] },
  { name: 'detaching an ordinary policy on a low alert', request: entitlement('low', { policies: ['ReadOnlyAccess'] }), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-detach-policy-on-lower-severity'] },
  { name: 'detaching AdministratorAccess on a critical alert', request: entitlement('critical', { policies: ['AdministratorAccess'] }), outcome: 'approve', approvers: 1, roles: approver, policies: ['privileged-entitlement-needs-approval'] },
  { name: 'detaching a full-access policy on a high alert', request: entitlement('high', { policies: ['AmazonS3FullAccess'] }), outcome: 'approve', approvers: 1, roles: approver, policies: ['privileged-entitlement-needs-approval'] },
  { name: 'detaching AdministratorAccess on a medium alert', request: entitlement('medium', { policies: ['AdministratorAccess'] }), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-detach-policy-on-lower-severity', 'privileged-entitlement-needs-approval'] },
  { name: 'removing an excessive group on a high alert', request: entitlement('high', { groups: ['jira-admins'] }), outcome: 'auto', approvers: 0, roles: [], policies: ['auto-deprovision-on-high-severity'] },
  { name: 'removing an excessive group on a low alert', request: entitlement('low', { groups: ['jira-admins'] }), outcome: 'approve', approvers: 1, roles: approver, policies: ['approve-deprovision-on-lower-severity'] },
  // Rollback: operators and admins undo ordinary changes; privileged ones need approval; others may not.
  { name: 'an operator rolling back an ordinary deprovisioning', request: rollback({ groups: ordinary, roles: ['operator'], privileged: false }), outcome: 'auto', approvers: 0, roles: [], policies: ['operator-rolls-back'] },
  { name: 'an admin rolling back an ordinary deprovisioning', request: rollback({ groups: ordinary, roles: ['admin'], privileged: false }), outcome: 'auto', approvers: 0, roles: [], policies: ['operator-rolls-back'] },
  { name: 'an operator rolling back a change that restores privileged access', request: rollback({ groups: ordinary, roles: ['operator'], privileged: true }), outcome: 'approve', approvers: 1, roles: approver, policies: ['privileged-rollback-needs-approval'] },
  { name: "an operator rolling back an administrator's deprovisioning", request: rollback({ groups: admin, roles: ['operator'], privileged: true }), outcome: 'approve', approvers: 2, roles: approver, policies: ['privileged-needs-two-approvers', 'privileged-rollback-needs-approval'] },
  { name: 'an operator rolling back a change to a break-glass account', request: rollback({ groups: breakGlass, roles: ['operator'], privileged: false }), outcome: 'deny', approvers: 0, roles: [], policies: ['deny-break-glass'] },
  // Nothing matches: a rollback asked by someone who is neither operator nor admin.
  { name: 'a SOC analyst rolling back a deprovisioning', request: rollback({ groups: ordinary, roles: ['soc'], privileged: false }), outcome: 'deny', approvers: 0, roles: [], policies: [], reason: /no policy permits it/ },
  { name: 'an approver rolling back a privileged change', request: rollback({ groups: ordinary, roles: ['approver'], privileged: true }), outcome: 'deny', approvers: 0, roles: [], policies: [], reason: /no policy permits it/ },
];

describe('default policy set', () => {
  const title = (row: PolicyCase) =>
    `${row.name}: ${row.outcome === 'approve' ? `approve, ${row.approvers} of role ${row.roles.join('|')}` : row.outcome}, decided by ${row.policies.join(' + ') || 'no policy'}`;
  it.each(table.map((row) => [title(row), row] as const))('%s', (_title, { request: req, outcome, approvers, roles, policies, reason }) => {
    const decision = decideWith(engine, req);
    expect(decision.outcome).toBe(outcome);
    expect(decision.requiredApprovals).toBe(approvers);
    expect(decision.approverRoles).toEqual(roles);
    expect(decision.policies).toEqual(policies);
    expect(decision.policySetHash).toBe(engine.policySetHash);
    expect(decision.perAction).toHaveLength(req.plan.actions.length);
    if (outcome === 'approve') expect(decision.approvalTimeoutMs).toBe(DAY_MS);
    if (reason) expect(decision.reasons.some((r) => reason.test(r))).toBe(true);
  });

  it('has a row of its table decided by each default policy, and rows for every outcome', () => {
    const deciding = new Set(table.flatMap((row) => row.policies));
    expect([...engine.policyIds].filter((id) => !deciding.has(id))).toEqual([]);
    expect(new Set(table.map((row) => row.outcome))).toEqual(new Set(['auto', 'approve', 'deny']));
    expect(new Set(table.filter((row) => row.outcome === 'approve').map((row) => row.approvers))).toEqual(new Set([1, 2]));
    expect(table.some((row) => row.outcome === 'deny' && row.policies.length === 0)).toBe(true);
    expect(table.some((row) => row.outcome === 'deny' && row.policies.length > 0)).toBe(true);
  });

  it('escalates approvals about administrators to admins after 12 hours, and lets one rejection win', () => {
    const decision = decideWith(engine, request({ severity: 'critical', groups: ['admins'] }));
    expect(decision.escalation).toEqual({ afterMs: 12 * 60 * 60 * 1000, roles: ['admin'] });
    expect(decision.rejectionRule).toBe('reject-wins');
    expect(decideWith(engine, request({ severity: 'high', groups: ['engineering'] })).escalation).toBeNull();
  });

  it('lists its policy ids and a 64-hex policy set hash', () => {
    expect(engine.policySetHash).toMatch(/^[0-9a-f]{64}$/);
    expect(engine.policyIds).toEqual([
      'deny-break-glass',
      'privileged-needs-two-approvers',
      'operator-rolls-back',
      'privileged-rollback-needs-approval',
      'auto-deprovision-on-high-severity',
      'approve-deprovision-on-lower-severity',
      'auto-deactivate-credential',
      'auto-quarantine-on-high-severity',
      'approve-quarantine-on-lower-severity',
      'auto-detach-policy-on-high-severity',
      'approve-detach-policy-on-lower-severity',
      'privileged-entitlement-needs-approval',
    ]);
  });

  it.each(['high', 'critical'] as const)('deprovisions an ordinary account on a %s alert automatically', (severity) => {
    const decision = decideWith(engine, request({ severity, groups: ['engineering', 'vpn-users'] }));
    expect(decision.outcome).toBe('auto');
    expect(decision.policies).toEqual(['auto-deprovision-on-high-severity']);
    expect(decision.perAction).toHaveLength(3);
    expect(decision.perAction.every((d) => d.outcome === 'auto')).toBe(true);
    expect(decision.requiredApprovals).toBe(0);
    expect(decision.approverRoles).toEqual([]);
    expect(decision.policySetHash).toBe(engine.policySetHash);
  });

  it.each(['high', 'critical'] as const)('asks two approvers before touching an administrator on a %s alert', (severity) => {
    const decision = decideWith(engine, request({ severity, groups: ['engineering', 'admins'] }));
    expect(decision.outcome).toBe('approve');
    expect(decision.requiredApprovals).toBe(2);
    expect(decision.approverRoles).toEqual(['approver']);
    expect(decision.approvalTimeoutMs).toBe(DAY_MS);
    expect(decision.policies).toEqual(['privileged-needs-two-approvers']);
  });

  it.each(['low', 'medium'] as const)('asks two approvers before touching an administrator on a %s alert', (severity) => {
    const decision = decideWith(engine, request({ severity, groups: ['admins'] }));
    expect(decision.outcome).toBe('approve');
    expect(decision.requiredApprovals).toBe(2);
    expect(decision.approverRoles).toEqual(['approver']);
    expect(decision.approvalTimeoutMs).toBe(DAY_MS);
    // On a lower severity the ordinary approval policy also matches; the stricter quorum wins.
    expect(decision.policies).toContain('privileged-needs-two-approvers');
  });

  it.each(['low', 'critical'] as const)('never touches a break-glass account, on a %s alert', (severity) => {
    const decision = decideWith(engine, request({ severity, groups: ['break-glass'] }));
    expect(decision.outcome).toBe('deny');
    expect(decision.policies).toEqual(['deny-break-glass']);
    expect(decision.requiredApprovals).toBe(0);
    expect(decision.reasons.some((r) => r.includes('forbidden by deny-break-glass'))).toBe(true);
  });

  it('denies a break-glass account even when it is also an administrator', () => {
    const decision = decideWith(engine, request({ severity: 'high', groups: ['admins', 'break-glass'] }));
    expect(decision.outcome).toBe('deny');
    expect(decision.policies).toContain('deny-break-glass');
    expect(decision.perAction.every((d) => d.outcome === 'deny')).toBe(true);
  });

  it.each(['low', 'medium'] as const)('asks one approver for an ordinary account on a %s alert', (severity) => {
    const decision = decideWith(engine, request({ severity, groups: ['engineering'] }));
    expect(decision.outcome).toBe('approve');
    expect(decision.requiredApprovals).toBe(1);
    expect(decision.approverRoles).toEqual(['approver']);
    expect(decision.approvalTimeoutMs).toBe(DAY_MS);
    expect(decision.policies).toEqual(['approve-deprovision-on-lower-severity']);
  });

  it('denies a plan with no actions', () => {
    const decision = decideWith(engine, request({ severity: 'high', groups: [], active: false }));
    expect(decision.outcome).toBe('deny');
    expect(decision.reasons).toContain('the plan has no actions');
  });

  it('gives the same policy set hash for the same files and a new one when a policy file changes', async () => {
    const same = await loadPolicyEngine(await policyDir({ 'default.cedar': defaultText }));
    expect(same.policySetHash).toBe(engine.policySetHash);
    const changed = await loadPolicyEngine(await policyDir({ 'default.cedar': `${defaultText}\n// reviewed\n` }));
    expect(changed.policySetHash).toMatch(/^[0-9a-f]{64}$/);
    expect(changed.policySetHash).not.toBe(engine.policySetHash);
  });
});

describe('policy annotations', () => {
  it('turns @expires("2s") into a two-second approval window', async () => {
    const engine = await loadPolicyEngine(
      await policyDir({ 'p.cedar': '@id("quick")\n@decision("approve")\n@expires("2s")\npermit (principal, action, resource);\n' }),
    );
    const decision = decideWith(engine, request({ severity: 'high', groups: ['engineering'] }));
    expect(decision.outcome).toBe('approve');
    expect(decision.approvalTimeoutMs).toBe(2000);
    expect(decision.requiredApprovals).toBe(1);
    expect(decision.approverRoles).toEqual(['approver']);
  });

  it('denies when no policy permits an action', async () => {
    const engine = await loadPolicyEngine(
      await policyDir({ 'p.cedar': '@id("only-disable")\npermit (principal, action == Cordon::Action::"DisableAccount", resource);\n' }),
    );
    const decision = decideWith(engine, request({ severity: 'high', groups: ['engineering'] }));
    expect(decision.outcome).toBe('deny');
    expect(decision.perAction.map((d) => d.outcome)).toEqual(['auto', 'deny']);
    expect(decision.reasons.some((r) => r.includes('no policy permits it'))).toBe(true);
  });

  it('fails closed: a forbid that errors while evaluating still denies, though a permit matches', async () => {
    const engine = await loadPolicyEngine(
      await policyDir({
        'p.cedar': [
          '@id("allow-all")',
          'permit (principal, action, resource);',
          '@id("overflowing-forbid")',
          'forbid (principal, action, resource) when { context.severityRank * 9223372036854775807 > 0 };',
          '',
        ].join('\n'),
      }),
    );
    const decision = decideWith(engine, request({ severity: 'high', groups: [] }));
    expect(decision.outcome).toBe('deny');
    expect(decision.perAction[0]).toMatchObject({ outcome: 'deny', policies: ['overflowing-forbid'] });
    expect(decision.reasons[0]).toMatch(/overflowing-forbid errored/);
  });
});

describe('loading policies', () => {
  it('reports a syntax error with its file, line and column', async () => {
    const text = [
      '// line 1',
      '@id("fine")',
      'permit (principal, action, resource);',
      '',
      '@id("broken")',
      'permit (principal, action, resource)',
      'when { context.severityRank >= };',
      '',
    ].join('\n');
    const error = await loadError(await policyDir({ 'broken.cedar': text }));
    expect(error.file.endsWith('broken.cedar')).toBe(true);
    expect(error.message).toMatch(/^\S*broken\.cedar:7:\d+: /);
    expect(error.line).toBe(7);
  });

  it('counts columns in characters when multi-byte text precedes a syntax error', async () => {
    const text = ['// 日本語 😀 é', '@id("x") permit (principal, action, resource) when { é };', ''].join('\n');
    const error = await loadError(await policyDir({ 'utf8.cedar': text }));
    expect(error.line).toBe(2);
    // Cedar reports byte offsets; the column must still point at the é, the 54th character.
    expect(error.column).toBe('@id("x") permit (principal, action, resource) when { '.length + 1);
  });

  it('keeps file order and the right line in a long file, whatever order the parser returns policies in', async () => {
    const shipped = await readFile(join(DEFAULT_POLICY_DIR, 'default.cedar'), 'utf8');
    const typo = '\n@id("late-typo")\npermit (principal, action, resource)\nwhen { resource.departmnt == "sales" };\n';
    const error = await loadError(await policyDir({ 'default.cedar': shipped + typo }));
    expect(error.line).toBe(shipped.split('\n').length + 3);
    expect(error.reason).toMatch(/late-typo/);
    const engine = await loadPolicyEngine(await policyDir({ 'default.cedar': shipped }));
    const inFileOrder = [...shipped.matchAll(/^@id\("([^"]+)"\)/gm)].map((m) => m[1]);
    expect(engine.policyIds).toEqual(inFileOrder);
  });

  it('refuses an attribute the schema does not know, with the file and line of the policy', async () => {
    const text = [
      '@id("fine")',
      'permit (principal, action, resource);',
      '',
      '@id("typo")',
      'permit (principal, action, resource)',
      'when { resource.departmnt == "sales" };',
      '',
    ].join('\n');
    const error = await loadError(await policyDir({ 'typo.cedar': text }));
    expect(error.file.endsWith('typo.cedar')).toBe(true);
    expect(error.line).toBe(6);
    expect(error.column).toBe('when { '.length + 1);
    expect(error.reason).toMatch(/for policy `typo`, attribute `departmnt`/);
  });

  it.each([
    ['@decision("maybe")', '@id("p")\n@decision("maybe")\npermit (principal, action, resource);\n', /@decision\("maybe"\)/],
    ['@approvers("0")', '@id("p")\n@decision("approve")\n@approvers("0")\npermit (principal, action, resource);\n', /@approvers\("0"\)/],
    ['@approvers("11")', '@id("p")\n@decision("approve")\n@approvers("11")\npermit (principal, action, resource);\n', /@approvers\("11"\)/],
    ['@roles("root")', '@id("p")\n@decision("approve")\n@roles("root")\npermit (principal, action, resource);\n', /@roles .*"root"/],
    ['@expires("forever")', '@id("p")\n@decision("approve")\n@expires("forever")\npermit (principal, action, resource);\n', /@expires\("forever"\)/],
    ['@expires("8d")', '@id("p")\n@decision("approve")\n@expires("8d")\npermit (principal, action, resource);\n', /@expires\("8d"\)/],
    ['@approvers without @decision("approve")', '@id("p")\n@approvers("2")\npermit (principal, action, resource);\n', /@approvers only applies/],
    ['@rejection("maybe")', '@id("p")\n@decision("approve")\n@rejection("maybe")\npermit (principal, action, resource);\n', /@rejection\("maybe"\)/],
    ['@escalateAfter without @escalateRoles', '@id("p")\n@decision("approve")\n@escalateAfter("1h")\npermit (principal, action, resource);\n', /go together/],
    ['@escalateAfter after the window', '@id("p")\n@decision("approve")\n@expires("1h")\n@escalateAfter("2h")\n@escalateRoles("admin")\npermit (principal, action, resource);\n', /before the approval window ends/],
    ['@escalateRoles naming an unknown role', '@id("p")\n@decision("approve")\n@escalateAfter("1h")\n@escalateRoles("ciso")\npermit (principal, action, resource);\n', /@escalateRoles names an unknown role "ciso"/],
    ['@decision("approve") on a forbid', '@id("p")\n@decision("approve")\nforbid (principal, action, resource);\n', /only applies to a permit/],
  ])('refuses %s, naming the annotation', async (_name, text, reason) => {
    const error = await loadError(await policyDir({ 'p.cedar': `// header\n\n${text}` }));
    expect(error.reason).toMatch(reason);
    expect(error.file.endsWith('p.cedar')).toBe(true);
    expect(error.line).toBe(3);
  });

  it('refuses a duplicate @id, even across files', async () => {
    const error = await loadError(
      await policyDir({
        'a.cedar': '@id("same")\npermit (principal, action, resource);\n',
        'b.cedar': '\n@id("same")\nforbid (principal, action, resource);\n',
      }),
    );
    expect(error.file.endsWith('b.cedar')).toBe(true);
    expect(error.line).toBe(2);
    expect(error.reason).toMatch(/"same" is already used in \S*a\.cedar/);
  });

  it('refuses a directory without a schema', async () => {
    const error = await loadError(await policyDir({ 'p.cedar': 'permit (principal, action, resource);\n' }, { schema: false }));
    expect(error.file.endsWith('schema.cedarschema')).toBe(true);
    expect(error.reason).toMatch(/no Cedar schema/);
  });

  it('refuses a directory without .cedar files', async () => {
    const error = await loadError(await policyDir({ 'README.md': 'no policies here\n' }));
    expect(error.reason).toMatch(/no \.cedar policy files/);
  });
});
