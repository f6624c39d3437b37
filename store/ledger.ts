import { createHash } from 'node:crypto';
import { LEDGER_GENESIS_HASH, ledgerEntryHashText, type LedgerEntry, type LedgerVerification } from '../domain/index.js';
import { openSqliteFile } from './sqlite.js';

/** JSON data carried by a ledger entry. */
export type LedgerData = { [key: string]: unknown };

/** What a writer supplies; the ledger adds sequence, time and hashes. */
export interface LedgerEntryInput {
  kind: string;
  actor: string;
  runId?: string | null;
  planDigest?: string | null;
  data?: LedgerData;
  /** When set, the entry is written at most once: a second append with the same key returns the first. */
  idemKey?: string | null;
}

export type { LedgerEntry };

/** The audit ledger: append-only, hash-chained. Async so that a PostgreSQL store can implement it too. */
export interface Ledger {
  append(entry: LedgerEntryInput): Promise<LedgerEntry>;
  /** Appends unless an entry with the same `idemKey` exists; says which happened. */
  appendOnce(entry: LedgerEntryInput & { idemKey: string }): Promise<{ entry: LedgerEntry; created: boolean }>;
  findByIdemKey(idemKey: string): Promise<LedgerEntry | undefined>;
  /** Entries in sequence order; `afterSeq` and `throughSeq` bound the sequence numbers (exclusive, inclusive). */
  entries(filter?: { runId?: string; afterSeq?: number; throughSeq?: number; limit?: number }): Promise<LedgerEntry[]>;
  /** The last entry's sequence number and hash; undefined while the ledger is empty. */
  head(): Promise<{ seq: number; hash: string } | undefined>;
  /**
   * The sequence numbers of the first entry at or after `since` and the last before `until` (ISO
   * times in UTC); undefined when no entry is in that window.
   */
  seqBounds(window: { since?: string; until?: string }): Promise<{ first: number; last: number } | undefined>;
  verify(): Promise<LedgerVerification>;
  /** Throws when the store cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The `prevHash` of the first entry. */
export const GENESIS_HASH = LEDGER_GENESIS_HASH;

/** The hash an entry must carry: SHA-256 of the canonical JSON of every field but the hash itself. */
export function entryHash(entry: Omit<LedgerEntry, 'hash'>): string {
  return createHash('sha256').update(ledgerEntryHashText(entry)).digest('hex');
}

/**
 * Checks entries one at a time, in order: `add` answers the verdict at the first entry that is
 * tampered, missing or out of order (and nothing before), `result` the verdict so far.
 */
export function chainVerifier(): { add(entry: LedgerEntry): LedgerVerification | undefined; result(): LedgerVerification } {
  let previous: LedgerEntry | undefined;
  let count = 0;
  return {
    add(entry) {
      count++;
      const expectedSeq = previous ? previous.seq + 1 : 1;
      if (entry.seq !== expectedSeq) {
        const reason =
          entry.seq > expectedSeq
            ? `entry ${expectedSeq} is missing (next present is ${entry.seq})`
            : `entry ${entry.seq} is out of order (expected ${expectedSeq})`;
        return { ok: false, entries: count, firstBad: { seq: Math.min(entry.seq, expectedSeq), reason } };
      }
      const expectedPrev = previous ? previous.hash : GENESIS_HASH;
      if (entry.prevHash !== expectedPrev) {
        return {
          ok: false,
          entries: count,
          firstBad: { seq: entry.seq, reason: `prevHash does not match the hash of entry ${entry.seq - 1} (reordered or replaced)` },
        };
      }
      if (entryHash(entry) !== entry.hash) {
        return { ok: false, entries: count, firstBad: { seq: entry.seq, reason: 'content does not match its hash (modified)' } };
      }
      previous = entry;
      return undefined;
    },
    result() {
      return { ok: true, entries: count, headHash: previous ? previous.hash : GENESIS_HASH };
    },
  };
}

/** Checks a sequence of entries, in order, and names the first that is tampered, missing or out of order. */
export function verifyChain(entries: Iterable<LedgerEntry>): LedgerVerification {
  const verifier = chainVerifier();
  for (const entry of entries) {
    const bad = verifier.add(entry);
    if (bad) return bad;
  }
  return verifier.result();
}

/** A ledger row as both stores keep it (snake_case columns, `data` as the JSON text that was hashed). */
export interface LedgerRow {
  seq: number;
  at: string;
  kind: string;
  actor: string;
  run_id: string | null;
  plan_digest: string | null;
  data: string;
  idem_key: string | null;
  prev_hash: string;
  hash: string;
}

/** The entry a stored row holds. */
export function entryFromRow(row: LedgerRow): LedgerEntry {
  return {
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    actor: row.actor,
    runId: row.run_id,
    planDigest: row.plan_digest,
    data: JSON.parse(row.data) as LedgerData,
    idemKey: row.idem_key,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger (
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT NOT NULL,
  run_id TEXT,
  plan_digest TEXT,
  data TEXT NOT NULL,
  idem_key TEXT UNIQUE,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_run ON ledger (run_id, seq);
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at);
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
`;

/** Options for the SQLite ledger. */
export interface SqliteLedgerOptions {
  path: string;
  clock?: () => Date;
}

/**
 * The embedded ledger, in a SQLite file shared by the worker and the API (WAL mode). Appends run in
 * an IMMEDIATE transaction, so writers in several processes still form one chain.
 */
export function openSqliteLedger(options: SqliteLedgerOptions): Ledger {
  const db = openSqliteFile(options.path, SCHEMA);
  const clock = options.clock ?? (() => new Date());

  const last = db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1');
  const byKey = db.prepare<[string], LedgerRow>('SELECT * FROM ledger WHERE idem_key = ?');
  const firstSeq = db.prepare<[], { seq: number }>('SELECT seq FROM ledger ORDER BY seq LIMIT 1');
  const firstSince = db.prepare<[string], { seq: number }>('SELECT seq FROM ledger WHERE at >= ? ORDER BY seq LIMIT 1');
  const lastBefore = db.prepare<[string], { seq: number }>('SELECT seq FROM ledger WHERE at < ? ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare(
    `INSERT INTO ledger (seq, at, kind, actor, run_id, plan_digest, data, idem_key, prev_hash, hash)
     VALUES (@seq, @at, @kind, @actor, @runId, @planDigest, @data, @idemKey, @prevHash, @hash)`,
  );

  const write = (input: LedgerEntryInput): LedgerEntry => {
    const head = last.get();
    const unhashed: Omit<LedgerEntry, 'hash'> = {
      seq: head ? head.seq + 1 : 1,
      at: clock().toISOString(),
      kind: input.kind,
      actor: input.actor,
      runId: input.runId ?? null,
      planDigest: input.planDigest ?? null,
      // Round-trip through JSON so that the stored text and the hashed value are the same data.
      data: JSON.parse(JSON.stringify(input.data ?? {})) as LedgerData,
      idemKey: input.idemKey ?? null,
      prevHash: head ? head.hash : GENESIS_HASH,
    };
    const entry: LedgerEntry = { ...unhashed, hash: entryHash(unhashed) };
    insert.run({ ...entry, data: JSON.stringify(entry.data) });
    return entry;
  };

  const appendTx = db.transaction((input: LedgerEntryInput) => write(input));
  const appendOnceTx = db.transaction((input: LedgerEntryInput & { idemKey: string }) => {
    const existing = byKey.get(input.idemKey);
    if (existing) return { entry: entryFromRow(existing), created: false };
    return { entry: write(input), created: true };
  });

  return {
    async append(entry) {
      return appendTx.immediate(entry);
    },
    async appendOnce(entry) {
      return appendOnceTx.immediate(entry);
    },
    async findByIdemKey(idemKey) {
      const row = byKey.get(idemKey);
      return row ? entryFromRow(row) : undefined;
    },
    async entries(filter = {}) {
      const clauses: string[] = [];
      const params: Record<string, unknown> = {};
      if (filter.runId !== undefined) {
        clauses.push('run_id = @runId');
        params.runId = filter.runId;
      }
      if (filter.afterSeq !== undefined) {
        clauses.push('seq > @afterSeq');
        params.afterSeq = filter.afterSeq;
      }
      if (filter.throughSeq !== undefined) {
        clauses.push('seq <= @throughSeq');
        params.throughSeq = filter.throughSeq;
      }
      const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
      const limit = filter.limit !== undefined ? `LIMIT ${Math.max(0, Math.floor(filter.limit))}` : '';
      return db.prepare<[Record<string, unknown>], LedgerRow>(`SELECT * FROM ledger ${where} ORDER BY seq ${limit}`).all(params).map(entryFromRow);
    },
    async head() {
      return last.get();
    },
    async seqBounds(window) {
      // Entry times are UTC ISO strings of one width, so text order is time order.
      const first = window.since === undefined ? firstSeq.get() : firstSince.get(window.since);
      const lastOne = window.until === undefined ? last.get() : lastBefore.get(window.until);
      if (!first || !lastOne || first.seq > lastOne.seq) return undefined;
      return { first: first.seq, last: lastOne.seq };
    },
    async verify() {
      const rows = db.prepare<[], LedgerRow>('SELECT * FROM ledger ORDER BY seq').iterate();
      return verifyChain((function* () {
        for (const row of rows) yield entryFromRow(row);
      })());
    },
    async ping() {
      db.prepare('SELECT 1').get();
    },
    async close() {
      db.close();
    },
  };
}
