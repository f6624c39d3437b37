import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { afterAll, afterEach, beforeEach } from 'vitest';
import type { Config } from '../../config/config.js';
import { openSqliteGuardrailState, type GuardrailState } from '../../store/guardrail-state.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';
import { openPostgresGuardrailState } from '../../store/postgres-guardrail-state.js';
import { openPostgresLedger } from '../../store/postgres-ledger.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';

const execFileAsync = promisify(execFile);
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Every store backend; suites run each case against each. */
export const STORE_BACKENDS = ['sqlite', 'postgres'] as const;
export type StoreBackend = (typeof STORE_BACKENDS)[number];

/** A connection of its own to a store, as someone with access to the file or database would have. */
export interface RawStore {
  /** Runs one statement with `?` placeholders; answers the rows it returns (none for a write). */
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Drops the triggers that keep the ledger append-only. */
  dropAppendOnlyTriggers(): Promise<void>;
}

/** The store of the current test, of the backend its describe block chose. */
export interface StoreHarness {
  /** Registers hooks in the calling describe block: each of its tests gets an empty store of `backend`. */
  use(backend: StoreBackend): void;
  /** Opens a ledger on the test's store; each call is another writer, as another process would be. */
  openLedger(clock?: () => Date): Promise<Ledger>;
  /** Opens guardrail state on the test's store; each call is another process's view. */
  openGuardrailState(clock?: () => number): Promise<GuardrailState>;
  raw(): Promise<RawStore>;
  /** The test's PostgreSQL database and the server's superuser password (PostgreSQL tests only). */
  postgres(): Promise<{ url: string; password: string }>;
  /**
   * Runs `script` (an ES module body) in a separate Node process: `process.argv[1]` is the path of
   * store/open.ts, `process.argv[2]` the JSON of the test store's config for `openStores`, then
   * `args`. Answers what it writes to stdout.
   */
  runProcess(script: string, args?: string[]): Promise<string>;
}

interface Current {
  backend: StoreBackend;
  dir: string;
  path: string;
  url: string | undefined;
  passwordFile: string | undefined;
}

/**
 * The store harness of a test file (call at the top level). A PostgreSQL server is started the first
 * time a test needs one and stopped after the file; each test gets a database of its own.
 */
export function storeHarness(): StoreHarness {
  let server: Promise<TestPostgres> | undefined;
  let current: Current | undefined;
  const opened: { close(): unknown }[] = [];

  const postgres = () => (server ??= startTestPostgres());
  const here = (): Current => {
    if (!current) throw new Error('no store: call harness.use(backend) in the describe block');
    return current;
  };

  afterAll(async () => {
    if (server) await (await server).stop();
  });

  return {
    use(backend) {
      beforeEach(async () => {
        const dir = await mkdtemp(join(tmpdir(), `cordon-store-${backend}-`));
        const next: Current = { backend, dir, path: join(dir, 'nested', 'cordon.sqlite'), url: undefined, passwordFile: undefined };
        if (backend === 'postgres') {
          const running = await postgres();
          next.url = await running.createDatabase();
          next.passwordFile = join(dir, 'postgres-password');
          await writeFile(next.passwordFile, `${running.password}\n`, { mode: 0o600 });
        }
        current = next;
      });
      afterEach(async () => {
        for (const handle of opened.splice(0).reverse()) await handle.close();
        if (current) await rm(current.dir, { recursive: true, force: true });
        current = undefined;
      });
    },
    async openLedger(clock) {
      const { backend, path, url } = here();
      // Two entries a page in PostgreSQL, so that every verification reads across page boundaries.
      const ledger =
        backend === 'sqlite'
          ? openSqliteLedger(clock ? { path, clock } : { path })
          : await openPostgresLedger({ url: url!, password: (await postgres()).password, verifyPageSize: 2, ...(clock ? { clock } : {}) });
      opened.push(ledger);
      return ledger;
    },
    async openGuardrailState(clock) {
      const { backend, path, url } = here();
      const state =
        backend === 'sqlite'
          ? openSqliteGuardrailState(clock ? { path, clock } : { path })
          : await openPostgresGuardrailState({ url: url!, password: (await postgres()).password, ...(clock ? { clock } : {}) });
      opened.push(state);
      return state;
    },
    async raw() {
      const { backend, path, url } = here();
      if (backend === 'sqlite') {
        const db = new Database(path);
        opened.push(db);
        return {
          async query(sql, params = []) {
            const statement = db.prepare(sql);
            if (statement.reader) return statement.all(...params) as Record<string, unknown>[];
            statement.run(...params);
            return [];
          },
          async dropAppendOnlyTriggers() {
            db.exec('DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;');
          },
        };
      }
      const client: pg.Client = await (await postgres()).connect(url!);
      opened.push({ close: () => client.end() });
      return {
        async query(sql, params = []) {
          let n = 0;
          const { rows } = await client.query<Record<string, unknown>>(
            sql.replace(/\?/g, () => `$${++n}`),
            params,
          );
          return rows;
        },
        async dropAppendOnlyTriggers() {
          await client.query('DROP TRIGGER ledger_no_update ON ledger; DROP TRIGGER ledger_no_delete ON ledger; DROP TRIGGER ledger_no_truncate ON ledger;');
        },
      };
    },
    async postgres() {
      const { url } = here();
      if (!url) throw new Error('postgres(): the test store is not PostgreSQL');
      return { url, password: (await postgres()).password };
    },
    async runProcess(script, args = []) {
      const { backend, path, url, passwordFile } = here();
      const config: Pick<Config, 'ledger'> = { ledger: { store: backend, path, postgres: url ? { url, passwordFile } : undefined } };
      const module = join(PROJECT_ROOT, 'store', 'open.ts');
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, module, JSON.stringify(config), ...args], { cwd: PROJECT_ROOT });
      return stdout;
    },
  };
}
