import { AUDIT_EXPORT_FORMAT, LEDGER_GENESIS_HASH, type AuditExportEnd, type AuditExportQuery, type LedgerEntry } from '../domain/index.js';
import type { Ledger } from './ledger.js';

/** Options of an export. */
export interface LedgerExportOptions {
  /** Entries read from the store per page; the export never holds more. */
  pageSize?: number;
  clock?: () => Date;
}

/** UTC, millisecond ISO form, the form entry times are stored in (so that text order is time order). */
function utc(time: string): string {
  return new Date(time).toISOString();
}

/**
 * The export of the ledger, as the lines of the `cordon.audit.v1` format: the entries chosen by
 * `query`, oldest first, then the `export.end` trailer. The export is a contiguous run of the
 * chain, so it always verifies: `since` and `until` choose its first and last entry by time, and
 * `after` resumes after a sequence number. Entries appended once the export has begun are left for
 * the next one. Throws when the store fails; the trailer is then never produced.
 */
export async function* exportLedger(ledger: Ledger, query: AuditExportQuery, options: LedgerExportOptions = {}): AsyncGenerator<LedgerEntry | AuditExportEnd> {
  const pageSize = Math.max(1, options.pageSize ?? 500);
  const clock = options.clock ?? (() => new Date());
  const since = query.since === undefined ? null : utc(query.since);
  const until = query.until === undefined ? null : utc(query.until);
  const after = query.after ?? null;

  const head = await ledger.head();
  const headSeq = head?.seq ?? 0;
  let from = (after ?? 0) + 1;
  let through = headSeq;
  if (since !== null || until !== null) {
    const bounds = await ledger.seqBounds({ ...(since !== null ? { since } : {}), ...(until !== null ? { until } : {}) });
    if (bounds) {
      from = Math.max(from, bounds.first);
      through = Math.min(through, bounds.last);
    } else {
      through = from - 1;
    }
  }

  let count = 0;
  let first: LedgerEntry | undefined;
  let last: LedgerEntry | undefined;
  let cursor = from - 1;
  while (cursor < through) {
    const page = await ledger.entries({ afterSeq: cursor, throughSeq: through, limit: pageSize });
    if (page.length === 0) break;
    for (const entry of page) {
      first ??= entry;
      last = entry;
      count++;
      yield entry;
    }
    cursor = page[page.length - 1]!.seq;
  }

  yield {
    type: 'export.end',
    format: AUDIT_EXPORT_FORMAT,
    count,
    firstSeq: first?.seq ?? null,
    lastSeq: last?.seq ?? null,
    prevHash: first?.prevHash ?? null,
    lastHash: last?.hash ?? null,
    after,
    since,
    until,
    headSeq,
    headHash: head?.hash ?? LEDGER_GENESIS_HASH,
    exportedAt: clock().toISOString(),
  };
}
