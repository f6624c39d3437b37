import { KillSwitchScope, scopeKey, type BudgetUsage, type KillSwitchState } from '../domain/index.js';
import type { BudgetSpec, GuardrailState, Reservation } from './guardrail-state.js';
import { bigintNumber, inTransaction, openPostgresPool, SQL_NOW_ISO, SQL_NOW_MS, type PostgresConnectionOptions, type PostgresQueryable } from './postgres.js';

const SCHEMA = `
CREATE TABLE kill_switch (
  scope TEXT PRIMARY KEY,
  scope_json TEXT NOT NULL,
  engaged BOOLEAN NOT NULL,
  reason TEXT NOT NULL,
  actor TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE TABLE budget_reservation (
  budget TEXT NOT NULL,
  key TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  PRIMARY KEY (budget, key)
);
CREATE INDEX budget_reservation_window ON budget_reservation (budget, at_ms);
`;

/** A refusal raised inside the reservation transaction so that it rolls back. */
class BudgetExhausted extends Error {
  constructor(readonly detail: { budget: string; used: number; limit: number; retryAfterMs: number }) {
    super(`budget ${detail.budget} exhausted`);
  }
}

/** Options for the PostgreSQL guardrail state. */
export interface PostgresGuardrailStateOptions extends PostgresConnectionOptions {
  /** Milliseconds since the epoch; by default the database server's clock, which every process shares. */
  clock?: () => number;
}

/**
 * The production guardrail state, in PostgreSQL, shared by every worker and API server. Creates its
 * tables when missing. A reservation holds a transaction-scoped advisory lock per budget (taken in
 * name order, so two reservations never deadlock) while it counts and inserts, so processes on any
 * machine never spend more than a budget's limit together. Throws when the server cannot be reached.
 */
export async function openPostgresGuardrailState(options: PostgresGuardrailStateOptions): Promise<GuardrailState> {
  const pool = await openPostgresPool(options, [{ name: 'guardrail-state.1', sql: SCHEMA }]);
  const clock = options.clock;
  let ended: Promise<void> | undefined;

  const nowMs = async (client: PostgresQueryable): Promise<number> => {
    if (clock) return clock();
    const { rows } = await client.query<{ now: string }>(`SELECT ${SQL_NOW_MS} AS now`);
    return bigintNumber(rows[0]!.now);
  };

  const countSince = async (client: PostgresQueryable, budget: string, after: number): Promise<{ used: number; oldest: number | null }> => {
    const { rows } = await client.query<{ used: string; oldest: string | null }>(
      'SELECT COUNT(*) AS used, MIN(at_ms) AS oldest FROM budget_reservation WHERE budget = $1 AND at_ms > $2',
      [budget, after],
    );
    const row = rows[0]!;
    return { used: bigintNumber(row.used), oldest: row.oldest === null ? null : bigintNumber(row.oldest) };
  };

  const hasKey = async (client: PostgresQueryable, budget: string, key: string): Promise<boolean> => {
    const { rowCount } = await client.query('SELECT 1 FROM budget_reservation WHERE budget = $1 AND key = $2', [budget, key]);
    return (rowCount ?? 0) > 0;
  };

  const usageAt = async (client: PostgresQueryable, budgets: readonly BudgetSpec[], at: number): Promise<BudgetUsage[]> => {
    const usage: BudgetUsage[] = [];
    for (const b of budgets) {
      usage.push({
        name: b.name,
        action: b.action ?? '*',
        playbook: b.playbook ?? null,
        connector: b.connector ?? null,
        limit: b.limit,
        windowMs: b.windowMs,
        used: (await countSince(client, b.name, at - b.windowMs)).used,
      });
    }
    return usage;
  };

  return {
    async killSwitches() {
      const { rows } = await pool.query<{ scope_json: string; engaged: boolean; reason: string; actor: string; at: string }>(
        'SELECT scope_json, engaged, reason, actor, at FROM kill_switch ORDER BY scope COLLATE "C"',
      );
      return rows.map((row) => ({
        scope: KillSwitchScope.parse(JSON.parse(row.scope_json)),
        engaged: row.engaged,
        reason: row.reason,
        actor: row.actor,
        at: row.at,
      }));
    },
    async setKillSwitch(scope, engaged, actor, reason) {
      const at = clock ? new Date(clock()).toISOString() : undefined;
      const { rows } = await pool.query<{ at: string }>(
        `INSERT INTO kill_switch (scope, scope_json, engaged, reason, actor, at) VALUES ($1, $2, $3, $4, $5, COALESCE($6, ${SQL_NOW_ISO}))
         ON CONFLICT (scope) DO UPDATE SET scope_json = excluded.scope_json, engaged = excluded.engaged, reason = excluded.reason, actor = excluded.actor, at = excluded.at
         RETURNING at`,
        [scopeKey(scope), JSON.stringify(scope), engaged, reason, actor, at ?? null],
      );
      const state: KillSwitchState = { scope, engaged, reason, actor, at: rows[0]!.at };
      return state;
    },
    async reserve(budgets, key) {
      if (budgets.length === 0) return { ok: true, budgets: [] };
      try {
        return await inTransaction(pool, async (client): Promise<Reservation> => {
          for (const name of [...new Set(budgets.map((b) => b.name))].sort()) {
            await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`cordon.budget.${name}`]);
          }
          const at = await nowMs(client);
          const missing: BudgetSpec[] = [];
          for (const budget of budgets) {
            if (await hasKey(client, budget.name, key)) continue;
            const { used, oldest } = await countSince(client, budget.name, at - budget.windowMs);
            if (used >= budget.limit) {
              // Budget frees when the oldest reservation in the window ages out.
              const retryAfterMs = oldest === null ? budget.windowMs : Math.max(1, oldest + budget.windowMs - at);
              // Throwing rolls back the reservations already made for the other budgets: all or none.
              throw new BudgetExhausted({ budget: budget.name, used, limit: budget.limit, retryAfterMs });
            }
            missing.push(budget);
          }
          for (const budget of missing) {
            await client.query('INSERT INTO budget_reservation (budget, key, at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [budget.name, key, at]);
          }
          return { ok: true, budgets: await usageAt(client, budgets, at) };
        });
      } catch (error) {
        if (!(error instanceof BudgetExhausted)) throw error;
        return { ok: false, ...error.detail, budgets: await usageAt(pool, budgets, await nowMs(pool)) };
      }
    },
    async usage(budgets) {
      return usageAt(pool, budgets, await nowMs(pool));
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await (ended ??= pool.end());
    },
  };
}
