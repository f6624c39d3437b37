// The audit export (store/ledger-export.ts) over a real ledger of each store backend (SQLite and
// PostgreSQL), and the verifier of exported files (domain/audit-export.ts) against deletion, edits,
// reordering, truncation and malformed lines.
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { createExportVerifier, ledgerEntryHashText, verifyExport, type AuditExportEnd, type AuditExportQuery, type ExportVerification, type LedgerEntry } from '../../domain/index.js';
import { exportLedger } from '../../store/ledger-export.js';
import { entryHash, GENESIS_HASH, type Ledger } from '../../store/ledger.js';
import { STORE_BACKENDS, storeHarness, type StoreBackend } from '../support/stores.js';

const store = storeHarness();
let ledger: Ledger;

/** In the calling describe block, each test gets an empty ledger of `backend` whose entries are a minute apart. */
function useLedger(backend: StoreBackend): void {
  store.use(backend);
  beforeEach(async () => {
    let ms = Date.parse('2026-11-28T09:00:00.000Z');
    ledger = await store.openLedger(() => new Date((ms += 60_000)));
  });
}

async function appendEntries(n: number): Promise<LedgerEntry[]> {
  const written: LedgerEntry[] = [];
  for (let i = 1; i <= n; i++) written.push(await ledger.append({ kind: 'run.status', actor: 'cordon', runId: `run_${i % 3}`, data: { n: i, note: 'naïve ✓' } }));
  return written;
}

async function exportText(query: AuditExportQuery = {}, pageSize?: number): Promise<string> {
  let text = '';
  for await (const record of exportLedger(ledger, query, pageSize !== undefined ? { pageSize } : {})) text += `${JSON.stringify(record)}\n`;
  return text;
}

const linesOf = (text: string): string[] => text.split('\n').slice(0, -1);
const fileOf = (lines: string[]): string => `${lines.join('\n')}\n`;
const nodeSha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function problem(verdict: ExportVerification) {
  if (verdict.ok) throw new Error(`expected a problem, the file verified: ${JSON.stringify(verdict)}`);
  return verdict.firstBad;
}

describe.each(STORE_BACKENDS)('exporting the ledger (%s)', (backend) => {
  useLedger(backend);

  it('writes every entry oldest first, then a trailer that names count, range and hashes', async () => {
    const written = await appendEntries(5);
    const lines = linesOf(await exportText());
    expect(lines).toHaveLength(6);
    expect(lines.slice(0, 5).map((l) => JSON.parse(l) as LedgerEntry)).toEqual(written);
    const trailer = JSON.parse(lines[5]!) as AuditExportEnd;
    expect(trailer).toMatchObject({ type: 'export.end', format: 'cordon.audit.v1', count: 5, firstSeq: 1, lastSeq: 5, prevHash: GENESIS_HASH, lastHash: written[4]!.hash, after: null, headSeq: 5, headHash: written[4]!.hash });
  });

  it('reads the store in pages no larger than the page size', async () => {
    await appendEntries(7);
    const limits: (number | undefined)[] = [];
    const real = ledger;
    const counting: Ledger = { ...real, entries: async (filter) => (limits.push(filter?.limit), real.entries(filter)) };
    let count = 0;
    for await (const record of exportLedger(counting, {}, { pageSize: 3 })) if (!('type' in record)) count++;
    expect(count).toBe(7);
    expect(limits).toEqual([3, 3, 3]);
  });

  it('resumes after a sequence number with exactly the entries after it, chained from the earlier export', async () => {
    const written = await appendEntries(6);
    const earlier = linesOf(await exportText({ after: 0 }));
    const resumed = linesOf(await exportText({ after: 4 }));
    expect(resumed.slice(0, -1).map((l) => (JSON.parse(l) as LedgerEntry).seq)).toEqual([5, 6]);
    const trailer = JSON.parse(resumed.at(-1)!) as AuditExportEnd;
    expect(trailer).toMatchObject({ count: 2, firstSeq: 5, lastSeq: 6, after: 4, prevHash: written[3]!.hash, lastHash: written[5]!.hash });
    expect(verifyExport(fileOf(resumed))).toMatchObject({ ok: true, entries: 2 });
    expect((JSON.parse(earlier[3]!) as LedgerEntry).hash).toBe(trailer.prevHash);
  });

  it('exports nothing after the head, with a trailer that still closes the file', async () => {
    await appendEntries(2);
    const text = await exportText({ after: 2 });
    expect(linesOf(text)).toHaveLength(1);
    expect(verifyExport(text)).toMatchObject({ ok: true, entries: 0, trailer: { count: 0, firstSeq: null, lastHash: null, headSeq: 2 } });
  });

  it('selects entries by time: since inclusive, until exclusive', async () => {
    const written = await appendEntries(6); // at 09:01, 09:02, … 09:06
    expect(written[2]!.at).toBe('2026-11-28T09:03:00.000Z');
    const text = await exportText({ since: '2026-11-28T09:03:00Z', until: '2026-11-28T10:05:00+01:00' });
    expect(linesOf(text).slice(0, -1).map((l) => (JSON.parse(l) as LedgerEntry).seq)).toEqual([3, 4]);
    expect(verifyExport(text)).toMatchObject({ ok: true, entries: 2, trailer: { since: '2026-11-28T09:03:00.000Z', until: '2026-11-28T09:05:00.000Z' } });
    expect(verifyExport(await exportText({ since: '2027-01-01' }))).toMatchObject({ ok: true, entries: 0 });
  });
});

describe.each(STORE_BACKENDS)('verifying an exported file (%s)', (backend) => {
  useLedger(backend);
  let lines: string[];
  beforeEach(async () => {
    await appendEntries(6);
    lines = linesOf(await exportText());
  });

  it('passes a clean file, fed whole or in small pieces, with the pure and the node:crypto hash alike', () => {
    const text = fileOf(lines);
    expect(verifyExport(text)).toMatchObject({ ok: true, entries: 6, trailer: { lastSeq: 6 } });
    const verifier = createExportVerifier({ sha256: nodeSha256 });
    for (let i = 0; i < text.length; i += 7) verifier.write(text.slice(i, i + 7));
    expect(verifier.end()).toEqual(verifyExport(text));
  });

  it('names a deleted entry as missing, by seq and line', () => {
    const verdict = verifyExport(fileOf(lines.filter((_, i) => i !== 2)));
    expect(problem(verdict)).toMatchObject({ kind: 'missing', seq: 3, line: 3 });
    expect(problem(verdict).reason).toContain('entry 3 missing');
    expect(verdict.entries).toBe(2);
  });

  it('names a deleted first entry, and a deleted last entry, as missing against the trailer', () => {
    expect(problem(verifyExport(fileOf(lines.slice(1))))).toMatchObject({ kind: 'missing', seq: 1, line: 1 });
    expect(problem(verifyExport(fileOf([...lines.slice(0, 5), lines[6]!])))).toMatchObject({ kind: 'missing', seq: 6 });
  });

  it('names an edited entry as tampered', () => {
    const edited = JSON.parse(lines[3]!) as LedgerEntry;
    edited.actor = 'mallory';
    lines[3] = JSON.stringify(edited);
    expect(problem(verifyExport(fileOf(lines)))).toMatchObject({ kind: 'tampered', seq: 4, line: 4 });
  });

  it('names an edited entry whose hash was recomputed by the broken link to the next one', () => {
    const edited = JSON.parse(lines[3]!) as LedgerEntry;
    edited.data = { n: 400 };
    const { hash: _old, ...unhashed } = edited;
    lines[3] = JSON.stringify({ ...unhashed, hash: entryHash(unhashed) });
    expect(problem(verifyExport(fileOf(lines)))).toMatchObject({ kind: 'unlinked', seq: 5, line: 5 });
  });

  it('names an edited last entry with a recomputed hash against the trailer', () => {
    const edited = JSON.parse(lines[5]!) as LedgerEntry;
    edited.kind = 'run.nothing';
    const { hash: _old, ...unhashed } = edited;
    lines[5] = JSON.stringify({ ...unhashed, hash: entryHash(unhashed) });
    expect(problem(verifyExport(fileOf(lines)))).toMatchObject({ kind: 'tampered', seq: 6 });
  });

  it('names swapped entries as reordered, not missing', () => {
    [lines[2], lines[3]] = [lines[3]!, lines[2]!];
    expect(problem(verifyExport(fileOf(lines)))).toMatchObject({ kind: 'reordered', seq: 3, line: 3 });
  });

  it('names an entry moved back past others as reordered', () => {
    const moved = [lines[0]!, lines[2]!, lines[3]!, lines[4]!, lines[1]!, lines[5]!, lines[6]!];
    const bad = problem(verifyExport(fileOf(moved)));
    expect(bad).toMatchObject({ kind: 'reordered', seq: 2, line: 2 });
    expect(bad.reason).toContain('entry 2 is at line 5');
  });

  it('names a repeated entry as reordered', () => {
    const repeated = [...lines.slice(0, 4), lines[1]!, ...lines.slice(4)];
    expect(problem(verifyExport(fileOf(repeated)))).toMatchObject({ kind: 'reordered', seq: 2, line: 5 });
  });

  it('names a file without its trailer as truncated', () => {
    const bad = problem(verifyExport(fileOf(lines.slice(0, 6))));
    expect(bad).toMatchObject({ kind: 'truncated', line: 7, seq: 7 });
    expect(problem(verifyExport(fileOf(lines.slice(0, 3))))).toMatchObject({ kind: 'truncated', line: 4 });
    expect(problem(verifyExport(''))).toMatchObject({ kind: 'truncated', line: 1, seq: null });
  });

  it('names a file cut off in the middle of a line as truncated', () => {
    const text = fileOf(lines);
    const cut = text.slice(0, text.length - 40);
    expect(problem(verifyExport(cut))).toMatchObject({ kind: 'truncated', line: 7 });
    const midEntry = fileOf(lines.slice(0, 3)) + lines[3]!.slice(0, 50);
    expect(problem(verifyExport(midEntry))).toMatchObject({ kind: 'truncated', line: 4, seq: 4 });
  });

  it('accepts a complete file whose final newline alone is missing', () => {
    expect(verifyExport(lines.join('\n'))).toMatchObject({ ok: true, entries: 6 });
  });

  it('names a trailer whose count does not match the entries', () => {
    const trailer = JSON.parse(lines[6]!) as AuditExportEnd;
    lines[6] = JSON.stringify({ ...trailer, count: 9 });
    expect(problem(verifyExport(fileOf(lines)))).toMatchObject({ kind: 'truncated', line: 7 });
  });

  it('names malformed lines and content after the trailer', () => {
    const notJson = [...lines];
    notJson[2] = '{"seq": 3,';
    expect(problem(verifyExport(fileOf(notJson)))).toMatchObject({ kind: 'malformed', line: 3 });
    const notEntry = [...lines];
    notEntry[1] = JSON.stringify({ ...(JSON.parse(lines[1]!) as LedgerEntry), extra: true });
    const bad = problem(verifyExport(fileOf(notEntry)));
    expect(bad).toMatchObject({ kind: 'malformed', line: 2, seq: 2 });
    expect(bad.reason).toContain('extra');
    expect(problem(verifyExport(fileOf([...lines, lines[0]!])))).toMatchObject({ kind: 'malformed', line: 8, reason: 'content after the export.end trailer' });
    expect(problem(verifyExport(fileOf([lines[0]!, '', ...lines.slice(1)])))).toMatchObject({ kind: 'malformed', line: 2 });
  });

  it('hashes entries with the same text as the ledger', () => {
    const entry = JSON.parse(lines[0]!) as LedgerEntry;
    const { hash, ...unhashed } = entry;
    expect(nodeSha256(ledgerEntryHashText(unhashed))).toBe(hash);
    expect(entryHash(unhashed)).toBe(hash);
  });
});
