import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import {
  RunMode,
  scopeAffects,
  SystemName,
  type Action,
  type ActionType,
  type BudgetUsage,
  type Decision,
  type GuardrailRecord,
  type KillSwitchState,
  type Plan,
} from '../domain/index.js';
import { playbooks } from '../playbooks/registry.js';
import { PolicyLoadError, type PolicyEngine, type PolicyRequest } from './engine.js';

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const Duration = z
  .string()
  .regex(/^\d{1,6}(s|m|h|d)$/, 'must be a duration such as 30s, 15m, 1h or 1d')
  .transform((text) => Number(text.slice(0, -1)) * UNIT_MS[text.slice(-1) as keyof typeof UNIT_MS])
  .pipe(z.int().positive().max(31 * UNIT_MS.d));

/** A duration that may be 0 (e.g. `0s`: no rollback), at most a year. */
const OptionalDuration = z
  .string()
  .regex(/^\d{1,6}(s|m|h|d)$/, 'must be a duration such as 0s, 12h or 30d')
  .transform((text) => Number(text.slice(0, -1)) * UNIT_MS[text.slice(-1) as keyof typeof UNIT_MS])
  .pipe(z.int().min(0).max(366 * UNIT_MS.d, 'must be at most 366d'));

/** How long operators may roll back a completed run, unless its playbook says otherwise: 30 days. */
export const DEFAULT_ROLLBACK_WINDOW_MS = 30 * UNIT_MS.d;

const ACTION_TYPES = ['DisableAccount', 'RemoveGroupMembership'] as const satisfies readonly ActionType[];
const knownPlaybooks = () => Object.keys(playbooks).join(', ');
const PlaybookName = z.string().refine((name) => Object.hasOwn(playbooks, name), { message: `unknown playbook (known: ${knownPlaybooks()})` });

const PlaybookGuardrails = z.strictObject({
  /** `dry-run` makes every run of the playbook a dry run: how a team introduces a new playbook. */
  autonomy: RunMode.default('live'),
  /** The blast radius of one run: directory objects changed, and optionally a share of the accounts. */
  maxTargetsPerRun: z
    .strictObject({
      count: z.int().min(1).max(100_000),
      percentOfPopulation: z.number().gt(0).max(100).optional(),
    })
    .optional(),
  /** Groups whose membership is privileged: agent quarantine removes the identity from them. */
  privilegedGroups: z.array(z.string().min(1).max(256)).max(100).default(['admins']),
  /** How long after completing a run operators may roll it back (`0s`: never). */
  rollbackWindow: OptionalDuration.default(DEFAULT_ROLLBACK_WINDOW_MS),
});

const Budget = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be a lowercase name with dashes'),
    /** The action type counted; every type when absent. */
    action: z.enum(ACTION_TYPES).optional(),
    playbook: PlaybookName.optional(),
    connector: SystemName.optional(),
    limit: z.int().min(0).max(1_000_000),
    window: Duration,
  })
  .transform(({ window, ...budget }) => ({ ...budget, windowMs: window }));
export type BudgetRule = z.infer<typeof Budget>;

const RateLimit = z.strictObject({
  callsPerSecond: z.number().positive().max(10_000),
  concurrency: z.int().min(1).max(1000),
});
export type RateLimit = z.infer<typeof RateLimit>;

/** The guardrails file, `policies/guardrails.yaml`. */
export const GuardrailsFile = z
  .strictObject({
    version: z.literal(1),
    playbooks: z.record(z.string(), PlaybookGuardrails).default({}),
    budgets: z.array(Budget).max(100).default([]),
    connectors: z.record(z.string(), z.strictObject({ rateLimit: RateLimit.optional() })).default({}),
  })
  .superRefine((file, context) => {
    for (const name of Object.keys(file.connectors)) {
      if (!SystemName.safeParse(name).success) context.addIssue({ code: 'custom', path: ['connectors', name], message: `"${name}" is not a connector name (lowercase letters, digits and dashes, e.g. scim)` });
    }
    for (const name of Object.keys(file.playbooks)) {
      if (!Object.hasOwn(playbooks, name)) context.addIssue({ code: 'custom', path: ['playbooks', name], message: `unknown playbook "${name}" (known: ${knownPlaybooks()})` });
    }
    const seen = new Set<string>();
    file.budgets.forEach((budget, index) => {
      if (seen.has(budget.name)) context.addIssue({ code: 'custom', path: ['budgets', index, 'name'], message: `budget name "${budget.name}" is used twice` });
      seen.add(budget.name);
    });
  });
export type GuardrailsFile = z.infer<typeof GuardrailsFile>;

/** Guardrails as loaded: the file's rules and the hash that names them in decisions. */
export interface Guardrails {
  readonly hash: string;
  readonly file: GuardrailsFile;
  forPlaybook(name: string): z.infer<typeof PlaybookGuardrails>;
  /** The budgets an action of this playbook on this connector draws from. */
  budgetsFor(action: ActionType, playbook: string, connector: string): BudgetRule[];
  /** The budgets any action of a plan draws from. */
  budgetsForPlan(plan: Plan): BudgetRule[];
  rateLimit(connector: string): RateLimit | undefined;
}

/** Guardrails that limit nothing (no file): every playbook live, no caps, no budgets. */
export function noGuardrails(): Guardrails {
  return guardrailsFrom(GuardrailsFile.parse({ version: 1 }), '');
}

function guardrailsFrom(file: GuardrailsFile, text: string): Guardrails {
  const hash = createHash('sha256').update(text).digest('hex');
  const matches = (budget: BudgetRule, action: ActionType, playbook: string, connector: string) =>
    (budget.action === undefined || budget.action === action) &&
    (budget.playbook === undefined || budget.playbook === playbook) &&
    (budget.connector === undefined || budget.connector === connector);
  return {
    hash,
    file,
    forPlaybook: (name) => (Object.hasOwn(file.playbooks, name) ? file.playbooks[name]! : PlaybookGuardrails.parse({})),
    budgetsFor: (action, playbook, connector) => file.budgets.filter((b) => matches(b, action, playbook, connector)),
    budgetsForPlan: (plan) => file.budgets.filter((b) => plan.actions.some((a) => matches(b, a.type, plan.playbook, a.target.system))),
    rateLimit: (connector) => (Object.hasOwn(file.connectors, connector) ? file.connectors[connector]!.rateLimit : undefined),
  };
}

/**
 * Loads and validates a guardrails file. Throws PolicyLoadError with the file, the line and the reason
 * of the first problem (a YAML error, or a value the schema refuses).
 */
export async function loadGuardrails(path: string): Promise<Guardrails> {
  const display = relative(process.cwd(), path) || path;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PolicyLoadError(display, 1, 1, `cannot read the guardrails file: ${(error as Error).message}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const at = lineCounter.linePos(yamlError.pos[0]);
    throw new PolicyLoadError(display, at.line, at.col, yamlError.message.split('\n')[0] ?? 'invalid YAML');
  }
  const content: unknown = doc.toJS();
  if (content === null || content === undefined) throw new PolicyLoadError(display, 1, 1, 'the guardrails file is empty; it needs at least `version: 1`');
  const parsed = GuardrailsFile.safeParse(content);
  if (!parsed.success) {
    // A misspelt key is usually why a required one is "missing": report the unknown key first, where it is.
    const issues = parsed.error.issues;
    const unknown = issues.find((i) => i.code === 'unrecognized_keys');
    const issue = unknown ?? issues[0]!;
    const path = (unknown ? [...unknown.path, unknown.keys[0]!] : issue.path) as (string | number)[];
    const at = lineCounter.linePos(offsetOf(doc, path));
    const where = path.length > 0 ? `${path.join('.')}: ` : '';
    throw new PolicyLoadError(display, at.line, at.col, `${where}${issue.message}`);
  }
  return guardrailsFrom(parsed.data, text);
}

/**
 * Where a path points in a YAML document: the key of a map entry (so that a bad key is shown where it
 * is written), an item of a sequence, or the deepest node the path reaches when the rest is missing.
 */
function offsetOf(doc: Document, path: (string | number)[]): number {
  let node: unknown = doc.contents;
  let offset = 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      offset = (isScalar(pair.key) && pair.key.range?.[0]) || offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (!item) break;
      offset = (item as { range?: [number] }).range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

/** The directory objects a plan changes: each account, and each group whose membership changes. */
export function planTargets(actions: readonly Action[]): { objects: number; accounts: number } {
  const objects = new Set<string>();
  const accounts = new Set<string>();
  for (const action of actions) {
    objects.add(`${action.target.system}:${action.target.id}`);
    accounts.add(`${action.target.system}:${action.target.id}`);
    if (action.type === 'RemoveGroupMembership') objects.add(`${action.group.system}:group:${action.group.id}`);
  }
  return { objects: objects.size, accounts: accounts.size };
}

/** The connectors a plan calls. */
export function planConnectors(plan: Plan): string[] {
  return [...new Set(plan.actions.map((a) => a.target.system))].sort();
}

/** What decideRun needs beyond the policy request: the requested mode and the live guardrail state. */
export interface RunGuardrailState {
  mode: RunMode;
  budgets: BudgetUsage[];
  killSwitches: KillSwitchState[];
}

/**
 * The decision for a run: policy's outcome, then the guardrails on top. A plan over the blast-radius
 * cap is denied whatever the policies say; the record names every guardrail value applied.
 */
export function decideRun(engine: PolicyEngine, guardrails: Guardrails, request: PolicyRequest, state: RunGuardrailState): Decision {
  const { plan, snapshot } = request;
  const rules = guardrails.forPlaybook(plan.playbook);
  const targets = planTargets(plan.actions);
  const connectors = planConnectors(plan);
  const record: GuardrailRecord = {
    mode: state.mode === 'dry-run' || rules.autonomy === 'dry-run' ? 'dry-run' : 'live',
    autonomy: rules.autonomy,
    maxTargetsPerRun: rules.maxTargetsPerRun ?? null,
    targets: targets.objects,
    population: snapshot.population ?? null,
    budgets: state.budgets,
    killSwitches: state.killSwitches.filter((k) => k.engaged && scopeAffects(k.scope, { playbook: plan.playbook, connectors })),
    rollbackWindowMs: rules.rollbackWindow,
    guardrailsHash: guardrails.hash,
  };
  const decision = engine.decide(request, record);
  const cap = rules.maxTargetsPerRun;
  if (!cap) return decision;
  let exceeded: string | undefined;
  if (targets.objects > cap.count) {
    exceeded = `the plan changes ${targets.objects} directory objects; maxTargetsPerRun for ${plan.playbook} is ${cap.count}`;
  } else if (cap.percentOfPopulation !== undefined) {
    const population = snapshot.population;
    if (population === undefined) exceeded = `maxTargetsPerRun.percentOfPopulation needs the population of ${snapshot.system}, which was not observed`;
    else if (targets.accounts * 100 > population * cap.percentOfPopulation) {
      exceeded = `the plan changes ${targets.accounts} of ${population} accounts; maxTargetsPerRun for ${plan.playbook} allows ${cap.percentOfPopulation}%`;
    }
  }
  if (!exceeded) return decision;
  return {
    ...decision,
    outcome: 'deny',
    requiredApprovals: 0,
    approverRoles: [],
    policies: [...decision.policies, 'guardrail:maxTargetsPerRun'],
    reasons: [...decision.reasons, `blast radius: ${exceeded}`],
  };
}
