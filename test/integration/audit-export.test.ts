// GET /v1/audit and `cordon audit export|verify` over the real API server and a real SQLite ledger.
// No run is started, so no worker: the Temporal client only has to exist.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../cli/main.js';
import { verifyExport, type AuditExportEnd, type ErrorBody, type LedgerEntry } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { openSqliteGuardrailState, type GuardrailState } from '../../store/guardrail-state.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';

const token = (name: string) => `tok_${name}_${randomBytes(16).toString('hex')}`;
const tokens = { oscar: token('oscar'), ada: token('ada'), bob: token('bob') };
const identities = identityStore({
  oscar: { token: tokens.oscar, roles: ['operator'] },
  ada: { token: tokens.ada, roles: ['admin'] },
  bob: { token: tokens.bob, roles: ['approver', 'soc'] },
});
const bearer = (name: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[name]}` });

let dir: string;
let ledger: Ledger;
let guardrailState: GuardrailState;
let connection: Connection;
let app: CordonServer;
let api: string;
const written: LedgerEntry[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cordon-audit-export-'));
  let ms = Date.parse('2026-11-28T09:00:00.000Z');
  ledger = openSqliteLedger({ path: join(dir, 'ledger.sqlite'), clock: () => new Date((ms += 60_000)) });
  guardrailState = openSqliteGuardrailState({ path: join(dir, 'guardrails.sqlite') });
  for (let n = 1; n <= 8; n++) written.push(await ledger.append({ kind: n % 2 ? 'run.status' : 'action.applied', actor: 'cordon', runId: `run_${n % 3}`, data: { n } }));
  connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [] });
  app = await buildServer({ temporal: new Client({ connection }), taskQueue: 'none', ledger, guardrailState, identities, log: pino({ level: 'silent' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  api = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(async () => {
  await app?.close();
  await connection?.close();
  await ledger?.close();
  await guardrailState?.close();
  await rm(dir, { recursive: true, force: true });
});

const records = (body: string) => body.split('\n').filter(Boolean).map((line) => JSON.parse(line) as LedgerEntry | AuditExportEnd);
const seqs = (body: string) => records(body).flatMap((r) => ('seq' in r ? [r.seq] : []));

async function cli(argv: string[], as: keyof typeof tokens = 'oscar'): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--api', api, '--token', tokens[as], ...argv], { write: (l) => out.push(l), writeError: (l) => err.push(l), env: {} });
  return { code, out, err };
}

describe('GET /v1/audit', () => {
  it('streams the whole ledger as JSON Lines, oldest first, closed by a trailer, and the file verifies', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/audit', headers: bearer('oscar') });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = records(response.body);
    expect(lines.slice(0, -1)).toEqual(written);
    expect(lines.at(-1)).toMatchObject({ type: 'export.end', count: 8, firstSeq: 1, lastSeq: 8, lastHash: written[7]!.hash, headSeq: 8 });
    expect(verifyExport(response.body)).toMatchObject({ ok: true, entries: 8 });
  });

  it('resumes after a sequence number with exactly the entries after it, and that file verifies', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/audit?after=5', headers: bearer('ada') });
    expect(response.statusCode).toBe(200);
    expect(seqs(response.body)).toEqual([6, 7, 8]);
    const verdict = verifyExport(response.body);
    expect(verdict).toMatchObject({ ok: true, entries: 3, trailer: { after: 5, prevHash: written[4]!.hash } });
  });

  it('filters by entry time, since inclusive and until exclusive', async () => {
    // Entries are at 09:01, 09:02, … 09:08.
    const response = await app.inject({ method: 'GET', url: `/v1/audit?since=${encodeURIComponent('2026-11-28T09:02:00Z')}&until=${encodeURIComponent('2026-11-28T09:05:00Z')}`, headers: bearer('oscar') });
    expect(response.statusCode).toBe(200);
    expect(seqs(response.body)).toEqual([2, 3, 4]);
    expect(verifyExport(response.body)).toMatchObject({ ok: true, entries: 3 });
    const combined = await app.inject({ method: 'GET', url: '/v1/audit?since=2026-11-28T09:02:00Z&after=6', headers: bearer('oscar') });
    expect(seqs(combined.body)).toEqual([7, 8]);
  });

  it('refuses a caller without the operator or admin role (403) and an anonymous one (401)', async () => {
    const forbidden = await app.inject({ method: 'GET', url: '/v1/audit?after=nonsense', headers: bearer('bob') });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json<ErrorBody>().error.type).toBe('Forbidden');
    expect(forbidden.body).not.toContain('"seq"');
    expect((await app.inject({ method: 'GET', url: '/v1/audit' })).statusCode).toBe(401);
  });

  it.each([
    ['after=abc', 'querystring.after', 'sequence number'],
    ['after=-1', 'querystring.after', 'sequence number'],
    ['since=yesterday', 'querystring.since', 'ISO 8601'],
    ['until=2026-13-01', 'querystring.until', 'ISO 8601'],
    ['since=2026-11-28T10:00:00Z&until=2026-11-28T09:00:00Z', 'querystring.until', 'later than since'],
    ['limit=5', 'querystring', 'limit'],
  ])('answers 400 naming the field for %s', async (query, path, words) => {
    const response = await app.inject({ method: 'GET', url: `/v1/audit?${query}`, headers: bearer('oscar') });
    expect(response.statusCode).toBe(400);
    const { error } = response.json<ErrorBody>();
    expect(error.type).toBe('InvalidRequest');
    expect(error.issues?.[0]?.path).toBe(path);
    expect(error.message).toContain(words);
  });

  it('is described in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, { get?: { parameters?: { name: string }[] } }> }>();
    expect(doc.paths['/v1/audit']?.get?.parameters?.map((p) => p.name).sort()).toEqual(['after', 'since', 'until']);
  });
});

describe('cordon audit export and verify', () => {
  it('writes the export to --out, and `audit verify --file` passes it', async () => {
    const file = join(dir, 'full.jsonl');
    const exported = await cli(['audit', 'export', '--out', file]);
    expect(exported.err).toEqual([]);
    expect(exported.code).toBe(0);
    expect(exported.out.join('\n')).toContain(`wrote ${file}: 8 entries (1–8)`);
    expect(seqs(await readFile(file, 'utf8'))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await readdir(dir)).filter((name) => name.includes('partial'))).toEqual([]);

    const verified = await cli(['audit', 'verify', '--file', file]);
    expect(verified.code).toBe(0);
    expect(verified.out.join('\n')).toContain(`export intact: 8 entries (1–8)`);
    expect(verified.out.join('\n')).toContain(written[7]!.hash);
  });

  it('fails `audit verify --file` with exit 10 naming the tampered entry', async () => {
    const file = join(dir, 'tampered.jsonl');
    expect((await cli(['audit', 'export', '--out', file])).code).toBe(0);
    const lines = (await readFile(file, 'utf8')).split('\n');
    const entry = JSON.parse(lines[2]!) as LedgerEntry;
    lines[2] = JSON.stringify({ ...entry, actor: 'nobody' });
    await writeFile(file, lines.join('\n'));

    const verified = await cli(['audit', 'verify', '--file', file]);
    expect(verified.code).toBe(10);
    expect(verified.out.join('\n')).toContain('export BROKEN at line 3 (entry 3): tampered');
    const json = await cli(['--json', 'audit', 'verify', '--file', file]);
    expect(json.code).toBe(10);
    expect(JSON.parse(json.out.join('\n'))).toMatchObject({ ok: false, firstBad: { kind: 'tampered', seq: 3, line: 3 } });
  });

  it('fails `audit verify --file` with exit 10 on a truncated file', async () => {
    const file = join(dir, 'cut.jsonl');
    expect((await cli(['audit', 'export', '--out', file])).code).toBe(0);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.slice(0, Math.floor(text.length / 2)));
    const verified = await cli(['audit', 'verify', '--file', file]);
    expect(verified.code).toBe(10);
    expect(verified.out.join('\n')).toMatch(/export BROKEN at line \d+ \(entry \d+\): truncated/);
  });

  it('writes to standard output by default, and resumes with --after', async () => {
    const exported = await cli(['audit', 'export', '--after', '6']);
    expect(exported.code).toBe(0);
    const body = `${exported.out.join('\n')}\n`;
    expect(seqs(body)).toEqual([7, 8]);
    expect(verifyExport(body)).toMatchObject({ ok: true, trailer: { after: 6, prevHash: written[5]!.hash } });
  });

  it('still verifies the live ledger without --file', async () => {
    const verified = await cli(['audit', 'verify']);
    expect(verified.code).toBe(0);
    expect(verified.out.join('\n')).toBe(`ledger intact: 8 entries, head ${written[7]!.hash}`);
  });

  it('refuses a bad --after as a usage error, and a role without access with exit 3', async () => {
    expect((await cli(['audit', 'export', '--after', 'x'])).code).toBe(2);
    const forbidden = await cli(['audit', 'export', '--out', join(dir, 'forbidden.jsonl')], 'bob');
    expect(forbidden.code).toBe(3);
    expect(forbidden.err.join('\n')).toContain('Forbidden');
    expect(await readdir(dir)).not.toContain('forbidden.jsonl');
  });

  it('keeps the copy of a tampered ledger but exits 10 naming the entry', async () => {
    const path = join(dir, 'tampered.sqlite');
    const tampered = openSqliteLedger({ path });
    for (let n = 1; n <= 4; n++) await tampered.append({ kind: 'run.status', actor: 'cordon', data: { n } });
    const db = new Database(path);
    db.exec('DROP TRIGGER ledger_no_update;');
    db.prepare('UPDATE ledger SET actor = ? WHERE seq = 2').run('mallory');
    db.close();
    const server = await buildServer({ temporal: new Client({ connection }), taskQueue: 'none', ledger: tampered, guardrailState, identities, log: pino({ level: 'silent' }) });
    await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const address = server.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const out = join(dir, 'copy.jsonl');
      const err: string[] = [];
      const code = await runCli(['--api', `http://127.0.0.1:${port}`, '--token', tokens.oscar, 'audit', 'export', '--out', out], { write: () => undefined, writeError: (l) => err.push(l), env: {} });
      expect(code).toBe(10);
      expect(err.join('\n')).toContain('BROKEN at line 2 (entry 2): tampered');
      expect(seqs(await readFile(out, 'utf8'))).toEqual([1, 2, 3, 4]);
    } finally {
      await server.close();
      await tampered.close();
    }
  });

  it('leaves no file when the export breaks off', async () => {
    // A store that fails after its first page: the server has sent its headers and can only cut the stream.
    let calls = 0;
    const failing: Ledger = {
      ...ledger,
      entries: async (filter) => {
        if (++calls > 1) throw new Error('disk I/O error');
        return ledger.entries({ ...filter, limit: 2 });
      },
    };
    const broken = await buildServer({ temporal: new Client({ connection }), taskQueue: 'none', ledger: failing, guardrailState, identities, log: pino({ level: 'silent' }) });
    await broken.listen({ host: '127.0.0.1', port: 0 });
    try {
      const address = broken.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const out = join(dir, 'broken.jsonl');
      const err: string[] = [];
      const code = await runCli(['--api', `http://127.0.0.1:${port}`, '--token', tokens.oscar, 'audit', 'export', '--out', out], { write: () => undefined, writeError: (l) => err.push(l), env: {} });
      expect(code).not.toBe(0);
      expect(err.join('\n')).toMatch(/broke off|incomplete/);
      expect(calls).toBe(2);
      const names = await readdir(dir);
      expect(names).not.toContain('broken.jsonl');
      expect(names.filter((name) => name.includes('partial'))).toEqual([]);
    } finally {
      await broken.close();
    }
  });
});
