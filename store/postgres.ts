import pg from 'pg';

/** Where a PostgreSQL store connects: a postgres:// URL and, kept out of it, the password. */
export interface PostgresConnectionOptions {
  url: string;
  password?: string | undefined;
  /** Connections the store's pool keeps at most (default 5). */
  maxConnections?: number;
}

/** A store's connection pool, with the idempotent schema applied. */
export type PostgresPool = pg.Pool;

/** The pool or one of its clients: what runs a query. */
export type PostgresQueryable = pg.Pool | pg.PoolClient;

/** A client inside a transaction. */
export type PostgresTransaction = pg.PoolClient;

/**
 * The URL with the password set in it. The driver reads every field from a connection string and
 * would drop a password given beside it.
 */
function withPassword(url: string, password: string | undefined): string {
  if (password === undefined) return url;
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/**
 * The time on the database server as the UTC ISO string entries carry (millisecond precision, one
 * width), so that writers on several machines stamp entries from one clock.
 */
export const SQL_NOW_ISO = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The time on the database server in milliseconds since the epoch. */
export const SQL_NOW_MS = `floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/** One step of a store's schema, applied once per database and recorded in `cordon_migrations` by name. */
export interface PostgresMigration {
  name: string;
  sql: string;
}

async function appliedMigrations(client: PostgresQueryable): Promise<Set<string>> {
  const { rows } = await client.query<{ present: boolean }>(`SELECT to_regclass('cordon_migrations') IS NOT NULL AS present`);
  if (!rows[0]?.present) return new Set();
  const applied = await client.query<{ name: string }>('SELECT name FROM cordon_migrations');
  return new Set(applied.rows.map((row) => row.name));
}

/**
 * Applies the migrations not yet recorded, in order, in one transaction under an advisory lock, so
 * that several processes opening a store at once apply each step once. A database already up to
 * date is only read: the role Cordon runs as then needs no right to create or alter anything.
 */
async function migrate(pool: PostgresPool, migrations: readonly PostgresMigration[]): Promise<void> {
  const applied = await appliedMigrations(pool);
  if (migrations.every((m) => applied.has(m.name))) return;
  await inTransaction(pool, async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('cordon.migrations', 0))`);
    await client.query('CREATE TABLE IF NOT EXISTS cordon_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
    const done = await appliedMigrations(client);
    for (const migration of migrations) {
      if (done.has(migration.name)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO cordon_migrations (name) VALUES ($1)', [migration.name]);
    }
  });
}

/**
 * Opens a pool on `options.url` and brings the database's schema up to `migrations`. Throws when
 * the server cannot be reached or a migration fails.
 */
export async function openPostgresPool(options: PostgresConnectionOptions, migrations: readonly PostgresMigration[]): Promise<PostgresPool> {
  const pool = new pg.Pool({
    connectionString: withPassword(options.url, options.password),
    max: options.maxConnections ?? 5,
    connectionTimeoutMillis: 10_000,
    application_name: 'cordon',
  });
  // An idle connection the server drops emits here; without a listener the process would exit. The
  // next query on the pool opens a new connection, and fails (to its caller) if the server is gone.
  pool.on('error', () => undefined);
  try {
    await migrate(pool, migrations);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return pool;
}

/** Runs `work` in a READ COMMITTED transaction on one pooled connection; rolls back when it throws. */
export async function inTransaction<T>(pool: PostgresPool, work: (client: PostgresTransaction) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    // A connection whose rollback fails is broken: release it destroyed rather than back to the pool.
    const rolledBack = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    client.release(!rolledBack);
    throw error;
  }
}

/** A BIGINT column (the driver returns them as text) as a number. */
export function bigintNumber(value: string | number): number {
  return typeof value === 'number' ? value : Number(value);
}
