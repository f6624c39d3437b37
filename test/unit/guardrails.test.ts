import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planDigest, type AccountSnapshot, type Action, type Alert, type BudgetUsage, type KillSwitchState, type Plan, type Target } from '../../domain/index.js';
import { deprovisionAccount } from '../../playbooks/deprovision-account.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine, PolicyLoadError, type PolicyRequest } from '../../policies/engine.js';
import { decideRun, loadGuardrails, noGuardrails, planConnectors, planTargets, type Guardrails } from '../../policies/guardrails.js';
import { rejectionOf } from '../support/errors.js';

const SHIPPED = join(DEFAULT_POLICY_DIR, 'guardrails.yaml');
const HOUR_MS = 3_600_000;
const tempDirs: string[] = [];

afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Writes `text` to a fresh temporary guardrails file and returns its path. */
async function guardrailsFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-guardrails-'));
  tempDirs.push(dir);
  const path = join(dir, 'guardrails.yaml');
  await writeFile(path, text);
  return path;
}

const guardrailsFrom = async (text: string): Promise<Guardrails> => loadGuardrails(await guardrailsFile(text));

/** Loads a file that must be refused and returns the PolicyLoadError, checking the `file:line:col: ` prefix. */
async function loadError(path: string): Promise<PolicyLoadError> {
  const loadErr = await rejectionOf(loadGuardrails(path), PolicyLoadError);
  expect(loadErr.message.startsWith(`${loadErr.file}:${loadErr.line}:${loadErr.column}: `)).toBe(true);
  return loadErr;
}

const errorFor = async (text: string) => loadError(await guardrailsFile(text));

function request(options: { groups: string[]; population?: number; system?: string }): PolicyRequest {
  const system = options.system ?? 'scim';
  const alert: Alert = {
    source: 'demo-siem',
    id: 'orphan-1',
    kind: 'account.orphaned',
    severity: 'high',
    subject: { system, userName: 'dana.reyes' },
  };
  const snapshot: AccountSnapshot = {
    system,
    observedAt: '2026-11-28T09:00:00.000Z',
    account: { id: 'u-1', userName: 'dana.reyes', displayName: 'Dana Reyes', active: true },
    groups: options.groups.map((name, i) => ({ id: `g-${i}`, displayName: name })),
    ...(options.population !== undefined ? { population: options.population } : {}),
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

const engine = await loadPolicyEngine(DEFAULT_POLICY_DIR);
const live = { mode: 'live' as const, budgets: [], killSwitches: [] };

describe('loading the shipped guardrails file', () => {
  let shipped: Guardrails;
  beforeAll(async () => {
    shipped = await loadGuardrails(SHIPPED);
  });

  it('reads budgets with their windows in milliseconds', () => {
    const guardrails = shipped;
    expect(guardrails.file.budgets).toEqual([
      { name: 'deprovision-disables-per-hour', action: 'DisableAccount', playbook: 'deprovision-account', limit: 100, windowMs: HOUR_MS },
      { name: 'scim-changes-per-hour', connector: 'scim', limit: 1000, windowMs: HOUR_MS },
    ]);
  });

  it('gives deprovision-account live autonomy and a cap of 25 targets per run', () => {
    const rules = shipped.forPlaybook('deprovision-account');
    expect(rules.autonomy).toBe('live');
    expect(rules.maxTargetsPerRun?.count).toBe(25);
    expect(rules.maxTargetsPerRun?.percentOfPopulation).toBeUndefined();
  });

  it('gives scim a rate limit of 50 calls per second and 8 in flight, and no limit to an unknown connector', () => {
    const guardrails = shipped;
    expect(guardrails.rateLimit('scim')).toEqual({ callsPerSecond: 50, concurrency: 8 });
    expect(guardrails.rateLimit('nope')).toBeUndefined();
    expect(guardrails.rateLimit('toString')).toBeUndefined();
  });

  it('names the file by the SHA-256 of its text, and a new hash when the text changes', async () => {
    const guardrails = shipped;
    const text = await readFile(SHIPPED, 'utf8');
    expect(guardrails.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(guardrails.hash).toBe(createHash('sha256').update(text).digest('hex'));
    const same = await guardrailsFrom(text);
    expect(same.hash).toBe(guardrails.hash);
    const changed = await guardrailsFrom(`${text}\n# reviewed\n`);
    expect(changed.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(changed.hash).not.toBe(guardrails.hash);
  });

  it('gives a playbook the file does not mention live autonomy and no cap', async () => {
    const guardrails = await guardrailsFrom('version: 1\n');
    expect(guardrails.forPlaybook('deprovision-account')).toEqual({ autonomy: 'live', privilegedGroups: ['admins'], rollbackWindow: 30 * 24 * 3_600_000 });
    expect(guardrails.forPlaybook('toString')).toEqual({ autonomy: 'live', privilegedGroups: ['admins'], rollbackWindow: 30 * 24 * 3_600_000 });
  });
});

describe('refusing a bad guardrails file', () => {
  it('reports invalid YAML at the line where the parser finds it', async () => {
    const error = await errorFor('version: 1\nplaybooks: [\nbudgets: []\n');
    expect(error.line).toBe(3);
    expect(error.reason).toMatch(/Flow sequence/);
  });

  it('reports a duplicate key at its second occurrence', async () => {
    const error = await errorFor('version: 1\nbudgets: []\nversion: 1\n');
    expect(error.line).toBe(3);
    expect(error.column).toBe(1);
    expect(error.reason).toMatch(/unique/i);
  });

  it('refuses a version other than 1 on the version line', async () => {
    const error = await errorFor('# guardrails\nversion: 2\n');
    expect(error.line).toBe(2);
    expect(error.reason.startsWith('version: ')).toBe(true);
  });

  it('refuses an unknown playbook at its key, naming it and the known playbooks', async () => {
    const error = await errorFor(['version: 1', 'playbooks:', '  deprovision-account:', '    autonomy: live', '  rotate-keys:', '    autonomy: live', ''].join('\n'));
    expect(error.line).toBe(5);
    expect(error.column).toBe(3);
    expect(error.reason).toContain('"rotate-keys"');
    expect(error.reason).toContain('known: deprovision-account');
  });

  it('reports a misspelt budget key on its own line rather than the missing key it stands for', async () => {
    const error = await errorFor(['version: 1', 'budgets:', '  - name: disables', '    window: 1h', '    limt: 3', ''].join('\n'));
    expect(error.line).toBe(5);
    expect(error.column).toBe(5);
    expect(error.reason).toContain('budgets.0.limt');
    expect(error.reason).toContain('"limt"');
  });

  it('refuses a window that is not a duration, on the window line', async () => {
    const error = await errorFor(['version: 1', 'budgets:', '  - name: disables', '    limit: 3', '    window: 1 hour', ''].join('\n'));
    expect(error.line).toBe(5);
    expect(error.reason).toContain('budgets.0.window');
    expect(error.reason).toContain('must be a duration');
  });

  it('refuses a negative limit on the limit line', async () => {
    const error = await errorFor(['version: 1', 'budgets:', '  - name: disables', '    limit: -1', '    window: 1h', ''].join('\n'));
    expect(error.line).toBe(4);
    expect(error.reason).toContain('budgets.0.limit');
  });

  it('refuses an autonomy other than live or dry-run', async () => {
    const error = await errorFor(['version: 1', 'playbooks:', '  deprovision-account:', '    autonomy: maybe', ''].join('\n'));
    expect(error.line).toBe(4);
    expect(error.reason).toContain('playbooks.deprovision-account.autonomy');
  });

  it('refuses a target cap of zero', async () => {
    const error = await errorFor(['version: 1', 'playbooks:', '  deprovision-account:', '    maxTargetsPerRun: { count: 0 }', ''].join('\n'));
    expect(error.line).toBe(4);
    expect(error.reason).toContain('maxTargetsPerRun.count');
  });

  it('refuses a share of the population over 100 percent', async () => {
    const error = await errorFor(
      ['version: 1', 'playbooks:', '  deprovision-account:', '    maxTargetsPerRun:', '      count: 5', '      percentOfPopulation: 150', ''].join('\n'),
    );
    expect(error.line).toBe(6);
    expect(error.reason).toContain('maxTargetsPerRun.percentOfPopulation');
  });

  it('refuses two budgets with the same name at the second one', async () => {
    const error = await errorFor(
      ['version: 1', 'budgets:', '  - name: disables', '    limit: 3', '    window: 1h', '  - name: disables', '    limit: 4', '    window: 1h', ''].join('\n'),
    );
    expect(error.line).toBe(6);
    expect(error.reason).toContain('budgets.1.name');
    expect(error.reason).toContain('"disables" is used twice');
  });

  it('refuses a budget for an unknown playbook on its playbook line', async () => {
    const error = await errorFor(['version: 1', 'budgets:', '  - name: rotations', '    playbook: rotate-keys', '    limit: 3', '    window: 1h', ''].join('\n'));
    expect(error.line).toBe(4);
    expect(error.reason).toContain('budgets.0.playbook');
    expect(error.reason).toContain('known: deprovision-account');
  });

  it('refuses a connector name that is not one, saying what a name looks like', async () => {
    const error = await errorFor(['version: 1', 'connectors:', '  SCIM:', '    rateLimit: { callsPerSecond: 5, concurrency: 1 }', ''].join('\n'));
    expect(error.line).toBe(3);
    expect(error.reason).toContain('"SCIM" is not a connector name');
  });

  it('refuses an empty file, saying what it needs', async () => {
    const error = await errorFor('# only a comment\n');
    expect(error.line).toBe(1);
    expect(error.reason).toContain('the guardrails file is empty');
  });

  it('refuses a file it cannot read, at line 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cordon-guardrails-'));
    tempDirs.push(dir);
    const error = await loadError(join(dir, 'missing.yaml'));
    expect(error.line).toBe(1);
    expect(error.column).toBe(1);
    expect(error.file).toMatch(/missing\.yaml$/);
    expect(error.reason).toContain('cannot read the guardrails file');
  });
});

describe('no guardrails file', () => {
  it('has no budgets, live autonomy for every playbook and no caps or rate limits', () => {
    const guardrails = noGuardrails();
    expect(guardrails.file.budgets).toEqual([]);
    expect(guardrails.forPlaybook('deprovision-account')).toEqual({ autonomy: 'live', privilegedGroups: ['admins'], rollbackWindow: 30 * 24 * 3_600_000 });
    expect(guardrails.forPlaybook('any-other')).toEqual({ autonomy: 'live', privilegedGroups: ['admins'], rollbackWindow: 30 * 24 * 3_600_000 });
    expect(guardrails.rateLimit('scim')).toBeUndefined();
    expect(guardrails.budgetsFor('DisableAccount', 'deprovision-account', 'scim')).toEqual([]);
    expect(guardrails.budgetsForPlan(request({ groups: ['engineering'] }).plan)).toEqual([]);
    expect(guardrails.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('selecting budgets', () => {
  const budgetsFile = [
    'version: 1',
    'budgets:',
    '  - name: every-change',
    '    limit: 1000',
    '    window: 1h',
    '  - name: disables',
    '    action: DisableAccount',
    '    limit: 100',
    '    window: 1h',
    '  - name: deprovision-removals',
    '    action: RemoveGroupMembership',
    '    playbook: deprovision-account',
    '    limit: 50',
    '    window: 1h',
    '  - name: ldap-changes',
    '    connector: ldap',
    '    limit: 10',
    '    window: 15m',
    '',
  ].join('\n');
  let loaded: Guardrails;
  beforeAll(async () => {
    loaded = await guardrailsFrom(budgetsFile);
  });
  const names = (budgets: { name: string }[]) => budgets.map((b) => b.name);

  it('applies a budget without filters to every action, playbook and connector', () => {
    const guardrails = loaded;
    expect(names(guardrails.budgetsFor('DisableAccount', 'some-playbook', 'scim'))).toContain('every-change');
    expect(names(guardrails.budgetsFor('RemoveGroupMembership', 'deprovision-account', 'ldap'))).toContain('every-change');
  });

  it('selects budgets by action type', () => {
    const guardrails = loaded;
    expect(names(guardrails.budgetsFor('DisableAccount', 'deprovision-account', 'scim'))).toEqual(['every-change', 'disables']);
  });

  it('selects budgets by playbook', () => {
    const guardrails = loaded;
    expect(names(guardrails.budgetsFor('RemoveGroupMembership', 'deprovision-account', 'scim'))).toEqual(['every-change', 'deprovision-removals']);
    expect(names(guardrails.budgetsFor('RemoveGroupMembership', 'some-playbook', 'scim'))).toEqual(['every-change']);
  });

  it('selects budgets by connector', () => {
    const guardrails = loaded;
    expect(names(guardrails.budgetsFor('DisableAccount', 'deprovision-account', 'ldap'))).toEqual(['every-change', 'disables', 'ldap-changes']);
    expect(guardrails.budgetsFor('DisableAccount', 'deprovision-account', 'ldap').find((b) => b.name === 'ldap-changes')?.windowMs).toBe(15 * 60_000);
  });

  it('selects for a plan every budget one of its actions draws from', () => {
    const guardrails = loaded;
    expect(names(guardrails.budgetsForPlan(request({ groups: ['engineering'] }).plan))).toEqual(['every-change', 'disables', 'deprovision-removals']);
    expect(names(guardrails.budgetsForPlan(request({ groups: [] }).plan))).toEqual(['every-change', 'disables']);
    expect(names(guardrails.budgetsForPlan(request({ groups: [], system: 'ldap' }).plan))).toEqual(['every-change', 'disables', 'ldap-changes']);
  });
});

describe('counting what a plan touches', () => {
  it('counts the account and each group it leaves as directory objects, and the account once', () => {
    const { plan } = request({ groups: ['engineering', 'vpn-users', 'wiki'] });
    expect(plan.actions).toHaveLength(4);
    expect(planTargets(plan.actions)).toEqual({ objects: 4, accounts: 1 });
  });

  it('counts distinct accounts across a plan that touches two', () => {
    const account = (id: string): Target => ({ system: 'scim', id, display: id });
    const group: Target = { system: 'scim', id: 'g-1', display: 'engineering' };
    const actions: Action[] = ['u-1', 'u-2'].map((id) => ({
      id: 'act_0000000000000001',
      type: 'RemoveGroupMembership',
      target: account(id),
      group,
      reversible: true,
      preState: { member: true },
      postState: { member: false },
    }));
    expect(planTargets(actions)).toEqual({ objects: 3, accounts: 2 });
    expect(planTargets([])).toEqual({ objects: 0, accounts: 0 });
  });

  it('lists the connectors a plan calls, once each and sorted', () => {
    const scim = request({ groups: ['engineering'] }).plan;
    const ldap = request({ groups: ['engineering'], system: 'ldap' }).plan;
    expect(planConnectors(scim)).toEqual(['scim']);
    expect(planConnectors({ ...scim, actions: [...scim.actions, ...ldap.actions] })).toEqual(['ldap', 'scim']);
    expect(planConnectors({ ...scim, actions: [] })).toEqual([]);
  });
});

describe('deciding a run under guardrails', () => {
  const capped = (cap: string, autonomy = 'live') =>
    guardrailsFrom(['version: 1', 'playbooks:', '  deprovision-account:', `    autonomy: ${autonomy}`, `    maxTargetsPerRun: ${cap}`, ''].join('\n'));

  const switchAt = '2026-11-28T08:00:00.000Z';
  const flipped = (scope: KillSwitchState['scope'], engaged: boolean): KillSwitchState => ({ scope, engaged, reason: 'incident', actor: 'admin', at: switchAt });

  it('lets the policy outcome stand under the cap and records every guardrail value applied', async () => {
    const guardrails = await capped('{ count: 25 }');
    const budgets: BudgetUsage[] = [{ name: 'disables', action: 'DisableAccount', playbook: 'deprovision-account', connector: null, limit: 100, windowMs: HOUR_MS, used: 7 }];
    const globalOn = flipped({ kind: 'global' }, true);
    const playbookOn = flipped({ kind: 'playbook', name: 'deprovision-account' }, true);
    const scimOn = flipped({ kind: 'connector', name: 'scim' }, true);
    const killSwitches = [
      globalOn,
      flipped({ kind: 'playbook', name: 'rotate-keys' }, true),
      playbookOn,
      flipped({ kind: 'connector', name: 'ldap' }, true),
      flipped({ kind: 'connector', name: 'scim' }, false),
      scimOn,
      flipped({ kind: 'global' }, false),
    ];
    const req = request({ groups: ['engineering', 'vpn-users'] });
    const decision = decideRun(engine, guardrails, req, { mode: 'live', budgets, killSwitches });
    expect(decision.outcome).toBe('auto');
    expect(decision.policies).toEqual(['auto-deprovision-on-high-severity']);
    expect(decision.reasons.some((r) => r.includes('blast radius'))).toBe(false);
    expect(decision.guardrails).toEqual({
      mode: 'live',
      autonomy: 'live',
      maxTargetsPerRun: { count: 25 },
      targets: 3,
      population: null,
      budgets,
      killSwitches: [globalOn, playbookOn, scimOn],
      rollbackWindowMs: 30 * 24 * 3_600_000,
      guardrailsHash: guardrails.hash,
    });
  });

  it('records the population when observe read it', async () => {
    const decision = decideRun(engine, await capped('{ count: 25 }'), request({ groups: ['engineering'], population: 24 }), live);
    expect(decision.guardrails.population).toBe(24);
  });

  it('denies a plan over the target count whatever the policies say', async () => {
    const guardrails = await capped('{ count: 3 }');
    const decision = decideRun(engine, guardrails, request({ groups: ['engineering', 'vpn-users', 'wiki'] }), live);
    expect(decision.outcome).toBe('deny');
    expect(decision.requiredApprovals).toBe(0);
    expect(decision.approverRoles).toEqual([]);
    expect(decision.policies).toContain('guardrail:maxTargetsPerRun');
    expect(decision.policies).toContain('auto-deprovision-on-high-severity');
    expect(decision.reasons.some((r) => r.includes('maxTargetsPerRun') && r.includes('4 directory objects'))).toBe(true);
    expect(decision.guardrails.targets).toBe(4);
  });

  it('allows a plan exactly at the target count', async () => {
    const decision = decideRun(engine, await capped('{ count: 4 }'), request({ groups: ['engineering', 'vpn-users', 'wiki'] }), live);
    expect(decision.outcome).toBe('auto');
    expect(decision.policies).not.toContain('guardrail:maxTargetsPerRun');
  });

  it('denies an over-cap plan that policy would have sent for approval, with no approvals required', async () => {
    const guardrails = await capped('{ count: 1 }');
    const req = request({ groups: ['admins'] });
    expect(decideRun(engine, noGuardrails(), req, live).outcome).toBe('approve');
    const decision = decideRun(engine, guardrails, req, live);
    expect(decision.outcome).toBe('deny');
    expect(decision.requiredApprovals).toBe(0);
    expect(decision.approverRoles).toEqual([]);
  });

  it('allows one account of 24 (4.2%) under a 10% population cap', async () => {
    const decision = decideRun(engine, await capped('{ count: 25, percentOfPopulation: 10 }'), request({ groups: ['engineering'], population: 24 }), live);
    expect(decision.outcome).toBe('auto');
    expect(decision.policies).not.toContain('guardrail:maxTargetsPerRun');
    expect(decision.guardrails.maxTargetsPerRun).toEqual({ count: 25, percentOfPopulation: 10 });
  });

  it('denies one account of 5 (20%) under a 10% population cap', async () => {
    const decision = decideRun(engine, await capped('{ count: 25, percentOfPopulation: 10 }'), request({ groups: ['engineering'], population: 5 }), live);
    expect(decision.outcome).toBe('deny');
    expect(decision.policies).toContain('guardrail:maxTargetsPerRun');
    expect(decision.reasons.some((r) => r.includes('1 of 5 accounts') && r.includes('10%'))).toBe(true);
  });

  it('denies under a population cap when the population was not observed', async () => {
    const decision = decideRun(engine, await capped('{ count: 25, percentOfPopulation: 10 }'), request({ groups: ['engineering'] }), live);
    expect(decision.outcome).toBe('deny');
    expect(decision.policies).toContain('guardrail:maxTargetsPerRun');
    expect(decision.guardrails.population).toBeNull();
    expect(decision.reasons.some((r) => r.includes('percentOfPopulation') && r.includes('not observed'))).toBe(true);
  });

  it('makes the run a dry run when the playbook autonomy is dry-run, even if live was asked for', async () => {
    const decision = decideRun(engine, await capped('{ count: 25 }', 'dry-run'), request({ groups: ['engineering'] }), live);
    expect(decision.guardrails.mode).toBe('dry-run');
    expect(decision.guardrails.autonomy).toBe('dry-run');
    expect(decision.outcome).toBe('auto');
  });

  it('keeps a requested dry run a dry run under live autonomy', async () => {
    const decision = decideRun(engine, await capped('{ count: 25 }'), request({ groups: ['engineering'] }), { ...live, mode: 'dry-run' });
    expect(decision.guardrails.mode).toBe('dry-run');
    expect(decision.guardrails.autonomy).toBe('live');
  });

  it('applies no cap when the playbook has none', async () => {
    const decision = decideRun(engine, noGuardrails(), request({ groups: Array.from({ length: 40 }, (_, i) => `group-${i}`) }), live);
    expect(decision.outcome).toBe('auto');
    expect(decision.guardrails.maxTargetsPerRun).toBeNull();
    expect(decision.guardrails.targets).toBe(41);
  });
});
