/**
 * The audit ledger's entries and its export format (JSON Lines), with a verifier of exported files.
 *
 * An export is one JSON object per line: the ledger's entries in sequence order, each with its own
 * `hash` and its predecessor's (`prevHash`), then one trailer line `{"type":"export.end", …}` that
 * says how many entries were written, which, and the hash of the last. A file without a valid
 * trailer, or whose trailer disagrees with its entries, is incomplete. Pure (zod only), so that the
 * CLI can verify a file without the server.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './sha256.js';

/** The `prevHash` of the ledger's first entry. */
export const LEDGER_GENESIS_HASH = '0'.repeat(64);

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256 digest');

/** A stored, hash-chained ledger entry, as the ledger keeps it and as an export carries it. */
export const LedgerEntry = z.strictObject({
  seq: z.int().min(1),
  at: z.string(),
  kind: z.string(),
  actor: z.string(),
  runId: z.string().nullable(),
  planDigest: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  idemKey: z.string().nullable(),
  prevHash: Sha256Hex,
  hash: Sha256Hex,
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;

/** The text an entry's hash is taken over: canonical JSON of every field but the hash itself. */
export function ledgerEntryHashText(entry: Omit<LedgerEntry, 'hash'>): string {
  const { seq, at, kind, actor, runId, planDigest, data, idemKey, prevHash } = entry;
  return canonicalJson({ seq, at, kind, actor, runId, planDigest, data, idemKey, prevHash });
}

/** The export format's name, carried by the trailer. */
export const AUDIT_EXPORT_FORMAT = 'cordon.audit.v1';

/** The media type of an export. */
export const AUDIT_EXPORT_MEDIA_TYPE = 'application/x-ndjson';

const Timestamp = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: 'must be an ISO 8601 date or date-time, e.g. 2026-11-28 or 2026-11-28T09:00:00Z',
});

/**
 * What an export asks for. `since` (inclusive) and `until` (exclusive) select by entry time;
 * `after` resumes after a sequence number. Throws nothing; parse with `safeParse` at the edge.
 */
export const AuditExportQuery = z
  .strictObject({
    since: Timestamp.optional(),
    until: Timestamp.optional(),
    after: z
      .string()
      .regex(/^\d{1,15}$/, 'must be a sequence number (a whole number, 0 or more)')
      .transform((value) => Number(value))
      .optional(),
  })
  .refine((q) => q.since === undefined || q.until === undefined || Date.parse(q.since) < Date.parse(q.until), {
    path: ['until'],
    message: 'must be later than since',
  });
export type AuditExportQuery = z.infer<typeof AuditExportQuery>;

/** The last line of a complete export. */
export const AuditExportEnd = z.object({
  type: z.literal('export.end'),
  format: z.literal(AUDIT_EXPORT_FORMAT),
  /** How many entry lines precede this one. */
  count: z.int().min(0),
  /** The first and last entry's sequence numbers; null when the export is empty. */
  firstSeq: z.int().min(1).nullable(),
  lastSeq: z.int().min(1).nullable(),
  /** The first entry's `prevHash`: what the export chains from (the previous export's `lastHash`). */
  prevHash: Sha256Hex.nullable(),
  /** The last entry's hash: where a resumed export must chain from. */
  lastHash: Sha256Hex.nullable(),
  /** The query, as the server applied it (times normalised to UTC). */
  after: z.int().min(0).nullable(),
  since: z.string().nullable(),
  until: z.string().nullable(),
  /** The ledger's head when the export began: entries after it were not exported. */
  headSeq: z.int().min(0),
  headHash: Sha256Hex,
  exportedAt: z.string(),
});
export type AuditExportEnd = z.infer<typeof AuditExportEnd>;

/** What can be wrong with an exported file, in the order the verifier looks. */
export const AuditProblemKind = z.enum([
  /** A line that is neither an entry nor the trailer, or content after the trailer. */
  'malformed',
  /** An entry whose content does not match its hash. */
  'tampered',
  /** A gap in the sequence, or entries the trailer names that are not in the file (at its start or end). */
  'missing',
  /** An entry out of sequence order (it turns up elsewhere in the file, or repeats). */
  'reordered',
  /** An entry whose `prevHash` is not its predecessor's hash: one of the two was replaced. */
  'unlinked',
  /** No trailer (the file ends early or its last line is cut off), or a trailer that does not match the entries. */
  'truncated',
]);
export type AuditProblemKind = z.infer<typeof AuditProblemKind>;

/** The first problem in an exported file: which line, which entry (when one is concerned), what. */
export const AuditProblem = z.object({
  kind: AuditProblemKind,
  /** 1-based line of the file where the problem shows. */
  line: z.int().min(1),
  /** The entry concerned: the tampered, missing, out-of-order or unlinked one; null when none is. */
  seq: z.int().nullable(),
  reason: z.string(),
});
export type AuditProblem = z.infer<typeof AuditProblem>;

/** The verdict on an exported file. `entries` counts the entries that held before the first problem. */
export const ExportVerification = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), entries: z.int(), trailer: AuditExportEnd }),
  z.object({ ok: z.literal(false), entries: z.int(), firstBad: AuditProblem }),
]);
export type ExportVerification = z.infer<typeof ExportVerification>;

/** Longest line the verifier accepts; an entry is far smaller, so a longer one is not an entry. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

/** A verifier fed an export piece by piece, so that a file of any size is checked in bounded memory. */
export interface ExportVerifier {
  /** Feeds the next piece of the file's text (any split; lines may span pieces). */
  write(chunk: string): void;
  /** True once the verdict is known; the rest of the file need not be read. */
  readonly settled: boolean;
  /** Ends the file and returns the verdict. */
  end(): ExportVerification;
}

/** Options of the export verifier. */
export interface ExportVerifierOptions {
  /** Lowercase hex SHA-256 of UTF-8 text; defaults to the plain-TypeScript one (callers on Node may pass `node:crypto`). */
  sha256?: (text: string) => string;
}

interface Gap {
  line: number;
  expected: number;
  found: number;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}

function range(from: number, to: number): string {
  return from === to ? `entry ${from}` : `entries ${from}–${to}`;
}

/**
 * Creates a verifier of an exported file. It names the first problem: a malformed line, a tampered
 * entry (content does not match its hash), a missing entry (gap in the sequence), a reordered one, a
 * broken link (`prevHash` is not the predecessor's hash), or a truncated file (no trailer, or a
 * trailer that does not match). A resumed export (`after=N`) is verified from its first entry's
 * `prevHash`, which the trailer repeats so that it can be matched with the previous file's `lastHash`.
 */
export function createExportVerifier(options: ExportVerifierOptions = {}): ExportVerifier {
  const hash = options.sha256 ?? sha256Hex;
  let pending = '';
  let lineNo = 0;
  let count = 0;
  let first: { seq: number; prevHash: string; line: number } | undefined;
  let last: { seq: number; hash: string } | undefined;
  let trailer: AuditExportEnd | undefined;
  let problem: AuditProblem | undefined;
  let gap: Gap | undefined;

  const fail = (kind: AuditProblemKind, line: number, seq: number | null, reason: string) => {
    problem = { kind, line, seq, reason };
  };

  // After a gap, the rest of the file only decides whether the missing entry moved (reordered) or went.
  const lookForMovedEntry = (text: string, open: Gap) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    const seq = (value as { seq?: unknown } | null)?.seq;
    if (typeof seq === 'number' && seq >= open.expected && seq < open.found) {
      fail('reordered', open.line, seq, `entry ${seq} is out of order: line ${open.line} holds entry ${open.found} where entry ${open.expected} belongs, and entry ${seq} is at line ${lineNo}`);
    }
  };

  const checkEntry = (raw: Record<string, unknown>, line: number) => {
    const parsed = LedgerEntry.safeParse(raw);
    if (!parsed.success) {
      return fail('malformed', line, typeof raw.seq === 'number' ? raw.seq : null, `not a ledger entry: ${firstIssue(parsed.error)}`);
    }
    // The hash is taken over the line's own values, not zod's copy of them.
    const entry = raw as LedgerEntry;
    if (last && entry.seq <= last.seq) {
      return fail('reordered', line, entry.seq, `entry ${entry.seq} is out of order: it comes after entry ${last.seq}`);
    }
    if (last && entry.seq > last.seq + 1) {
      gap = { line, expected: last.seq + 1, found: entry.seq };
      return undefined;
    }
    if (hash(ledgerEntryHashText(entry)) !== entry.hash) {
      return fail('tampered', line, entry.seq, `entry ${entry.seq}'s content does not match its hash (modified)`);
    }
    if (last && entry.prevHash !== last.hash) {
      return fail('unlinked', line, entry.seq, `entry ${entry.seq}'s prevHash is not the hash of entry ${last.seq}: one of them was replaced`);
    }
    if (!last && entry.seq === 1 && entry.prevHash !== LEDGER_GENESIS_HASH) {
      return fail('unlinked', line, 1, 'entry 1 does not chain from the genesis hash');
    }
    if (!first) first = { seq: entry.seq, prevHash: entry.prevHash, line };
    last = { seq: entry.seq, hash: entry.hash };
    count++;
    return undefined;
  };

  const checkLine = (text: string) => {
    lineNo++;
    if (gap) return lookForMovedEntry(text, gap);
    if (trailer) return fail('malformed', lineNo, null, 'content after the export.end trailer');
    if (text.trim() === '') return fail('malformed', lineNo, null, 'blank line');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return fail('malformed', lineNo, null, `not JSON: ${(error as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('malformed', lineNo, null, 'not a JSON object');
    const record = value as Record<string, unknown>;
    if (record.type === 'export.end') {
      const parsed = AuditExportEnd.safeParse(record);
      if (!parsed.success) return fail('truncated', lineNo, null, `the export.end trailer is not valid: ${firstIssue(parsed.error)}`);
      trailer = parsed.data;
      return undefined;
    }
    return checkEntry(record, lineNo);
  };

  const checkTrailer = (end: AuditExportEnd): void => {
    const line = lineNo;
    if (first && last) {
      if (end.firstSeq !== null && first.seq > end.firstSeq) {
        return fail('missing', first.line, end.firstSeq, `${range(end.firstSeq, first.seq - 1)} missing from the start of the file (the trailer says it starts at entry ${end.firstSeq})`);
      }
      if (end.lastSeq !== null && last.seq < end.lastSeq) {
        return fail('missing', line, last.seq + 1, `${range(last.seq + 1, end.lastSeq)} missing from the end of the file (the trailer says it ends at entry ${end.lastSeq})`);
      }
      if (end.after !== null && first.seq !== end.after + 1) {
        return fail('missing', first.line, end.after + 1, `the export resumes after entry ${end.after} but starts at entry ${first.seq}`);
      }
      if (end.after === null && end.since === null && first.seq !== 1) {
        return fail('missing', first.line, 1, `${range(1, first.seq - 1)} missing from the start of a full export`);
      }
    }
    if (end.count !== count || end.firstSeq !== (first?.seq ?? null) || end.lastSeq !== (last?.seq ?? null)) {
      return fail('truncated', line, null, `the trailer says ${end.count} entries (${end.firstSeq ?? '-'}–${end.lastSeq ?? '-'}); the file has ${count} (${first?.seq ?? '-'}–${last?.seq ?? '-'})`);
    }
    if (last && end.lastHash !== last.hash) {
      return fail('tampered', line, last.seq, `entry ${last.seq}'s hash is not the trailer's lastHash (the entry or the trailer was replaced)`);
    }
    if (first && end.prevHash !== first.prevHash) {
      return fail('unlinked', first.line, first.seq, `entry ${first.seq}'s prevHash is not the trailer's prevHash`);
    }
    return undefined;
  };

  const drain = () => {
    for (;;) {
      if (problem) {
        pending = '';
        return;
      }
      const newline = pending.indexOf('\n');
      if (newline < 0) break;
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      checkLine(text.endsWith('\r') ? text.slice(0, -1) : text);
    }
    if (pending.length > MAX_LINE_CHARS) {
      fail('malformed', lineNo + 1, null, `line longer than ${MAX_LINE_CHARS} characters`);
      pending = '';
    }
  };

  return {
    write(chunk) {
      if (problem) return;
      pending += chunk;
      drain();
    },
    get settled() {
      return problem !== undefined;
    },
    end() {
      if (!problem && pending !== '') {
        // The last line has no newline: complete (the newline alone was lost) or cut off mid-line.
        const text = pending;
        pending = '';
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        if (parses || gap) checkLine(text);
        else fail('truncated', lineNo + 1, last ? last.seq + 1 : null, `line ${lineNo + 1} is cut off: the file is truncated`);
      }
      if (!problem && gap) {
        const { line, expected, found } = gap;
        fail('missing', line, expected, `${range(expected, found - 1)} missing: line ${line} holds entry ${found} after entry ${expected - 1}`);
      }
      if (!problem && !trailer) {
        fail('truncated', lineNo + 1, last ? last.seq + 1 : null, `the file ends after line ${lineNo} without the export.end trailer: it is truncated`);
      }
      if (!problem && trailer) checkTrailer(trailer);
      if (problem) return { ok: false, entries: count, firstBad: problem };
      return { ok: true, entries: count, trailer: trailer! };
    },
  };
}

/** Verifies a whole exported file held in memory; see `createExportVerifier`. */
export function verifyExport(text: string, options: ExportVerifierOptions = {}): ExportVerification {
  const verifier = createExportVerifier(options);
  verifier.write(text);
  return verifier.end();
}
