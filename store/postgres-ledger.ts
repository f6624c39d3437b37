import type { LedgerEntry } from '../domain/index.js';
import { chainVerifier, entryFromRow, entryHash, GENESIS_HASH, type Ledger, type LedgerData, type LedgerEntryInput, type LedgerRow } from './ledger.js';
import { bigintNumber, inTransaction, openPostgresPool, SQL_NOW_ISO, type PostgresConnectionOptions, type PostgresQueryable, type PostgresTransaction } from './postgres.js';

/** PostgreSQL returns bigint `seq` as text. */
type Row = Omit<LedgerRow, 'seq'> & { seq: string };

const fromRow = (row: Row): LedgerEntry => entryFromRow({ ...row, seq: bigintNumber(row.seq) });

// `data` is the JSON text that was hashed (jsonb would reorder keys and refuse some strings); `at`
// compares in byte order, so that text order is time order whatever the database's collation.
const SCHEMA = `
CREATE TABLE ledger (
  seq BIGINT PRIMARY KEY CHECK (seq > 0),
  at TEXT COLLATE "C" NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT NOT NULL,
  run_id TEXT,
  plan_digest TEXT,
  data TEXT NOT NULL,
  idem_key TEXT UNIQUE,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX ledger_run ON ledger (run_id, seq);
CREATE INDEX ledger_at ON ledger (at);
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the ledger is append-only';
END;
$$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
`;

/** Every appender takes this transaction-scoped lock, so appends form one chain across processes and machines. */
const APPEND_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('cordon.ledger.append', 0))`;

/** Options for the PostgreSQL ledger. */
export interface PostgresLedgerOptions extends PostgresConnectionOptions {
  /** Entry times; by default the database server's clock, which every writer shares. */
  clock?: () => Date;
  /** Entries `verify` reads per query (default 1000). */
  verifyPageSize?: number;
}

/**
 * The production ledger, in PostgreSQL (13 or later), shared by any number of workers and API
 * servers. Creates its table, indexes and append-only triggers on first use. An append runs in a
 * transaction holding an advisory lock, so concurrent writers still form one chain; `idem_key` is
 * unique, so a key is written once even by writers that bypass the lock. Throws when the server
 * cannot be reached or the schema cannot be applied.
 */
export async function openPostgresLedger(options: PostgresLedgerOptions): Promise<Ledger> {
  const pool = await openPostgresPool(options, [{ name: 'ledger.1', sql: SCHEMA }]);
  const clock = options.clock;
  let ended: Promise<void> | undefined;

  const byKey = async (client: PostgresQueryable, idemKey: string): Promise<LedgerEntry | undefined> => {
    const { rows } = await client.query<Row>('SELECT * FROM ledger WHERE idem_key = $1', [idemKey]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  };

  /** Writes `input` after the head; the caller holds APPEND_LOCK. Undefined when its key already exists. */
  const write = async (client: PostgresTransaction, input: LedgerEntryInput): Promise<LedgerEntry | undefined> => {
    // The head (if any) and the server's time in one row, even while the ledger is empty.
    const { rows } = await client.query<{ seq: string | null; hash: string | null; now: string }>(
      `SELECT head.seq, head.hash, ${SQL_NOW_ISO} AS now FROM (SELECT 1) AS one LEFT JOIN (SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1) AS head ON true`,
    );
    const head = rows[0]!;
    const unhashed: Omit<LedgerEntry, 'hash'> = {
      seq: head.seq === null ? 1 : bigintNumber(head.seq) + 1,
      at: clock ? clock().toISOString() : head.now,
      kind: input.kind,
      actor: input.actor,
      runId: input.runId ?? null,
      planDigest: input.planDigest ?? null,
      // Round-trip through JSON so that the stored text and the hashed value are the same data.
      data: JSON.parse(JSON.stringify(input.data ?? {})) as LedgerData,
      idemKey: input.idemKey ?? null,
      prevHash: head.hash ?? GENESIS_HASH,
    };
    const entry: LedgerEntry = { ...unhashed, hash: entryHash(unhashed) };
    const inserted = await client.query(
      `INSERT INTO ledger (seq, at, kind, actor, run_id, plan_digest, data, idem_key, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (idem_key) DO NOTHING`,
      [entry.seq, entry.at, entry.kind, entry.actor, entry.runId, entry.planDigest, JSON.stringify(entry.data), entry.idemKey, entry.prevHash, entry.hash],
    );
    return inserted.rowCount === 1 ? entry : undefined;
  };

  const last = async (): Promise<{ seq: number; hash: string } | undefined> => {
    const { rows } = await pool.query<{ seq: string; hash: string }>('SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1');
    return rows[0] ? { seq: bigintNumber(rows[0].seq), hash: rows[0].hash } : undefined;
  };

  const oneSeq = async (sql: string, params: unknown[] = []): Promise<number | undefined> => {
    const { rows } = await pool.query<{ seq: string }>(sql, params);
    return rows[0] ? bigintNumber(rows[0].seq) : undefined;
  };

  return {
    async append(input) {
      return inTransaction(pool, async (client) => {
        await client.query(APPEND_LOCK);
        const entry = await write(client, input);
        // Only an entry with a key can conflict; appendOnce is the way to write a key at most once.
        if (!entry) throw new Error(`the ledger already holds an entry with key ${input.idemKey ?? ''}`);
        return entry;
      });
    },
    async appendOnce(input) {
      const seen = await byKey(pool, input.idemKey);
      if (seen) return { entry: seen, created: false };
      return inTransaction(pool, async (client) => {
        await client.query(APPEND_LOCK);
        const existing = await byKey(client, input.idemKey);
        if (existing) return { entry: existing, created: false };
        const entry = await write(client, input);
        if (entry) return { entry, created: true };
        const raced = await byKey(client, input.idemKey);
        if (!raced) throw new Error(`the ledger refused the entry with key ${input.idemKey} without saying why`);
        return { entry: raced, created: false };
      });
    },
    async findByIdemKey(idemKey) {
      return byKey(pool, idemKey);
    },
    async entries(filter = {}) {
      const clauses: string[] = [];
      const params: unknown[] = [];
      const where = (clause: string, value: unknown) => {
        params.push(value);
        clauses.push(clause.replace('?', `$${params.length}`));
      };
      if (filter.runId !== undefined) where('run_id = ?', filter.runId);
      if (filter.afterSeq !== undefined) where('seq > ?', filter.afterSeq);
      if (filter.throughSeq !== undefined) where('seq <= ?', filter.throughSeq);
      let sql = `SELECT * FROM ledger ${clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : ''} ORDER BY seq`;
      if (filter.limit !== undefined) {
        params.push(Math.max(0, Math.floor(filter.limit)));
        sql += ` LIMIT $${params.length}`;
      }
      const { rows } = await pool.query<Row>(sql, params);
      return rows.map(fromRow);
    },
    async head() {
      return last();
    },
    async seqBounds(window) {
      const first =
        window.since === undefined ? await oneSeq('SELECT seq FROM ledger ORDER BY seq LIMIT 1') : await oneSeq('SELECT seq FROM ledger WHERE at >= $1 ORDER BY seq LIMIT 1', [window.since]);
      const lastOne =
        window.until === undefined ? (await last())?.seq : await oneSeq('SELECT seq FROM ledger WHERE at < $1 ORDER BY seq DESC LIMIT 1', [window.until]);
      if (first === undefined || lastOne === undefined || first > lastOne) return undefined;
      return { first, last: lastOne };
    },
    async verify() {
      // Pages read on one snapshot: a long ledger never sits in memory, and entries appended
      // meanwhile are left out rather than half seen.
      const pageSize = Math.max(1, options.verifyPageSize ?? 1000);
      return inTransaction(pool, async (client) => {
        await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        const verifier = chainVerifier();
        for (let after = 0; ; ) {
          const { rows } = await client.query<Row>('SELECT * FROM ledger WHERE seq > $1 ORDER BY seq LIMIT $2', [after, pageSize]);
          for (const row of rows) {
            const bad = verifier.add(fromRow(row));
            if (bad) return bad;
          }
          if (rows.length < pageSize) return verifier.result();
          after = bigintNumber(rows[rows.length - 1]!.seq);
        }
      });
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await (ended ??= pool.end());
    },
  };
}
