import { KillSwitchScope, scopeKey, type BudgetUsage, type KillSwitchState } from '../domain/index.js';
import { openSqliteFile } from './sqlite.js';

/** A budget as the store counts it: a name, what it allows per window, and what it counts. */
export interface BudgetSpec {
  name: string;
  limit: number;
  windowMs: number;
  action?: string | undefined;
  playbook?: string | undefined;
  connector?: string | undefined;
}

/** The outcome of reserving budget for one mutation. */
export type Reservation =
  | { ok: true; budgets: BudgetUsage[] }
  | { ok: false; budget: string; used: number; limit: number; retryAfterMs: number; budgets: BudgetUsage[] };

/**
 * The state guardrails keep across runs and processes: kill switches and budget reservations.
 * Async so that a PostgreSQL store can implement it too.
 */
export interface GuardrailState {
  /** Every scope ever flipped, with its last state. */
  killSwitches(): Promise<KillSwitchState[]>;
  setKillSwitch(scope: KillSwitchScope, engaged: boolean, actor: string, reason: string): Promise<KillSwitchState>;
  /**
   * Reserves one use of every budget in `budgets` for the mutation `key`, all or none, atomically
   * across processes. The same key reserves once: a retry of a mutation does not spend twice.
   */
  reserve(budgets: readonly BudgetSpec[], key: string): Promise<Reservation>;
  /** How much of each budget its current window has used. */
  usage(budgets: readonly BudgetSpec[]): Promise<BudgetUsage[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kill_switch (
  scope TEXT PRIMARY KEY,
  scope_json TEXT NOT NULL,
  engaged INTEGER NOT NULL,
  reason TEXT NOT NULL,
  actor TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_reservation (
  budget TEXT NOT NULL,
  key TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (budget, key)
);
CREATE INDEX IF NOT EXISTS budget_reservation_window ON budget_reservation (budget, at_ms);
`;

/** The embedded guardrail state: tables in the SQLite file the ledger uses (WAL, several processes). */
export function openSqliteGuardrailState(options: { path: string; clock?: () => number }): GuardrailState {
  const db = openSqliteFile(options.path, SCHEMA);
  const now = options.clock ?? (() => Date.now());

  const countSince = db.prepare<[string, number], { used: number; oldest: number | null }>(
    'SELECT COUNT(*) AS used, MIN(at_ms) AS oldest FROM budget_reservation WHERE budget = ? AND at_ms > ?',
  );
  const hasKey = db.prepare<[string, string], { at_ms: number }>('SELECT at_ms FROM budget_reservation WHERE budget = ? AND key = ?');
  const insert = db.prepare('INSERT INTO budget_reservation (budget, key, at_ms) VALUES (?, ?, ?)');
  const upsertSwitch = db.prepare(
    `INSERT INTO kill_switch (scope, scope_json, engaged, reason, actor, at) VALUES (@scope, @scopeJson, @engaged, @reason, @actor, @at)
     ON CONFLICT (scope) DO UPDATE SET engaged = excluded.engaged, reason = excluded.reason, actor = excluded.actor, at = excluded.at`,
  );
  const allSwitches = db.prepare<[], { scope_json: string; engaged: number; reason: string; actor: string; at: string }>('SELECT * FROM kill_switch ORDER BY scope');

  const usageAt = (budgets: readonly BudgetSpec[], at: number): BudgetUsage[] =>
    budgets.map((b) => ({
      name: b.name,
      action: b.action ?? '*',
      playbook: b.playbook ?? null,
      connector: b.connector ?? null,
      limit: b.limit,
      windowMs: b.windowMs,
      used: countSince.get(b.name, at - b.windowMs)?.used ?? 0,
    }));

  const reserveTx = db.transaction((budgets: readonly BudgetSpec[], key: string): Reservation => {
    const at = now();
    for (const budget of budgets) {
      if (hasKey.get(budget.name, key)) continue;
      const { used, oldest } = countSince.get(budget.name, at - budget.windowMs) ?? { used: 0, oldest: null };
      if (used >= budget.limit) {
        // Budget frees when the oldest reservation in the window ages out.
        const retryAfterMs = oldest === null ? budget.windowMs : Math.max(1, oldest + budget.windowMs - at);
        // Throwing rolls back the reservations already made for the other budgets: all or none.
        throw Object.assign(new Error('budget exhausted'), { exhausted: { budget: budget.name, used, limit: budget.limit, retryAfterMs } });
      }
    }
    for (const budget of budgets) if (!hasKey.get(budget.name, key)) insert.run(budget.name, key, at);
    return { ok: true, budgets: usageAt(budgets, at) };
  });

  return {
    async killSwitches() {
      return allSwitches.all().map((row) => ({
        scope: KillSwitchScope.parse(JSON.parse(row.scope_json)),
        engaged: row.engaged === 1,
        reason: row.reason,
        actor: row.actor,
        at: row.at,
      }));
    },
    async setKillSwitch(scope, engaged, actor, reason) {
      const state: KillSwitchState = { scope, engaged, reason, actor, at: new Date(now()).toISOString() };
      upsertSwitch.run({ scope: scopeKey(scope), scopeJson: JSON.stringify(scope), engaged: engaged ? 1 : 0, reason, actor, at: state.at });
      return state;
    },
    async reserve(budgets, key) {
      if (budgets.length === 0) return { ok: true, budgets: [] };
      try {
        return reserveTx.immediate(budgets, key);
      } catch (error) {
        const exhausted = (error as { exhausted?: { budget: string; used: number; limit: number; retryAfterMs: number } }).exhausted;
        if (!exhausted) throw error;
        return { ok: false, ...exhausted, budgets: usageAt(budgets, now()) };
      }
    },
    async usage(budgets) {
      return usageAt(budgets, now());
    },
    async ping() {
      db.prepare('SELECT 1').get();
    },
    async close() {
      db.close();
    },
  };
}
