import { z } from 'zod';
import { RunMode, SystemName } from './alert.js';

/** What a kill switch stops: everything, one playbook, or every call to one connector. */
export const KillSwitchScope = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('global') }),
  z.strictObject({ kind: z.literal('playbook'), name: z.string().min(1).max(64).regex(/^[a-z][a-z0-9-]*$/, 'must be a playbook name') }),
  z.strictObject({ kind: z.literal('connector'), name: SystemName }),
]);
export type KillSwitchScope = z.infer<typeof KillSwitchScope>;

/** A kill switch's last flip. */
export const KillSwitchState = z.strictObject({
  scope: KillSwitchScope,
  engaged: z.boolean(),
  reason: z.string(),
  actor: z.string(),
  at: z.iso.datetime(),
});
export type KillSwitchState = z.infer<typeof KillSwitchState>;

/** The stable key of a scope: `global`, `playbook:<name>`, `connector:<name>`. */
export function scopeKey(scope: KillSwitchScope): string {
  return scope.kind === 'global' ? 'global' : `${scope.kind}:${scope.name}`;
}

/** Whether an engaged switch with this scope stops a run of `playbook` touching `connectors`. */
export function scopeAffects(scope: KillSwitchScope, run: { playbook: string; connectors: readonly string[] }): boolean {
  switch (scope.kind) {
    case 'global':
      return true;
    case 'playbook':
      return scope.name === run.playbook;
    case 'connector':
      return run.connectors.includes(scope.name);
  }
}

/** A budget across runs and how much of it the current window has used. */
export const BudgetUsage = z.strictObject({
  name: z.string(),
  action: z.string(),
  playbook: z.string().nullable(),
  connector: z.string().nullable(),
  limit: z.int().min(0),
  windowMs: z.int().positive(),
  used: z.int().min(0),
});
export type BudgetUsage = z.infer<typeof BudgetUsage>;

/** The guardrail values a decision applied, so that "why did it act?" has a whole answer. */
export const GuardrailRecord = z.strictObject({
  /** The mode the run takes: the alert's, or dry-run when the playbook's autonomy forces it. */
  mode: RunMode,
  autonomy: RunMode,
  maxTargetsPerRun: z.strictObject({ count: z.int().min(1), percentOfPopulation: z.number().optional() }).nullable(),
  /** How many distinct directory objects the plan changes (accounts, groups). */
  targets: z.int().min(0),
  /** How many accounts the system holds, when a percentage cap needs it. */
  population: z.int().min(0).nullable(),
  budgets: z.array(BudgetUsage),
  /** Engaged kill switches that stop this run, when decided. */
  killSwitches: z.array(KillSwitchState),
  /** How long after completing the run may be rolled back (0: never). */
  rollbackWindowMs: z.int().min(0),
  guardrailsHash: z.string().regex(/^[0-9a-f]{64}$/),
});
export type GuardrailRecord = z.infer<typeof GuardrailRecord>;
