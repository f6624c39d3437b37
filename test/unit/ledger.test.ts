import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, it, expect } from 'vitest';
import { entryHash, GENESIS_HASH, openSqliteLedger, verifyChain, type Ledger, type LedgerEntry } from '../../store/ledger.js';

let dir: string;
let path: string;
const opened: { close(): unknown }[] = [];

function open(clock?: () => Date): Ledger {
  const ledger = openSqliteLedger(clock ? { path, clock } : { path });
  opened.push(ledger);
  return ledger;
}

/** A second connection to the same file, as someone with access to the file would have. */
function attacker(): Database.Database {
  const db = new Database(path);
  opened.push(db);
  return db;
}

/** A clock that ticks one second per call, so entry times are known. */
function tickingClock(): () => Date {
  let ms = Date.parse('2026-11-28T09:00:00.000Z');
  return () => new Date((ms += 1000));
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cordon-ledger-'));
  path = join(dir, 'nested', 'ledger.sqlite');
});

afterEach(async () => {
  for (const handle of opened.splice(0).reverse()) await handle.close();
  await rm(dir, { recursive: true, force: true });
});

async function appendThree(ledger: Ledger): Promise<LedgerEntry[]> {
  return [
    await ledger.append({ kind: 'run.started', actor: 'siem-bot', runId: 'run_a', data: { n: 1 } }),
    await ledger.append({ kind: 'run.decided', actor: 'system', runId: 'run_b', planDigest: 'f'.repeat(64), data: { n: 2 } }),
    await ledger.append({ kind: 'run.completed', actor: 'system', runId: 'run_a', data: { n: 3 } }),
  ];
}

describe('appending to the ledger', () => {
  it('numbers entries 1, 2, 3 and chains each to the hash of the one before', async () => {
    const ledger = open(tickingClock());
    const [first, second, third] = await appendThree(ledger);
    expect([first?.seq, second?.seq, third?.seq]).toEqual([1, 2, 3]);
    expect(first?.prevHash).toBe(GENESIS_HASH);
    expect(second?.prevHash).toBe(first?.hash);
    expect(third?.prevHash).toBe(second?.hash);
    for (const entry of [first!, second!, third!]) {
      const { hash, ...unhashed } = entry;
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      expect(entryHash(unhashed)).toBe(hash);
    }
    expect(first?.at).toBe('2026-11-28T09:00:01.000Z');
  });

  it('fills absent optional fields with null and data with an empty object', async () => {
    const entry = await open().append({ kind: 'k', actor: 'a' });
    expect(entry).toMatchObject({ runId: null, planDigest: null, idemKey: null, data: {} });
  });

  it('returns the stored data unchanged when read back', async () => {
    const ledger = open();
    const data = { text: 'é 日本 😀', nested: { list: [1, 'two', null, true], empty: {} }, number: 1.5 };
    const written = await ledger.append({ kind: 'k', actor: 'a', runId: 'run_x', data });
    const [read] = await ledger.entries();
    expect(read).toEqual(written);
    expect(read?.data).toEqual(data);
  });

  it('stores data as JSON would, so what is hashed is what is read back', async () => {
    const ledger = open();
    const written = await ledger.append({ kind: 'k', actor: 'a', data: { at: new Date('2026-01-01T00:00:00Z'), gone: undefined } });
    expect(written.data).toEqual({ at: '2026-01-01T00:00:00.000Z' });
    expect(await ledger.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('writes an idempotent entry once and returns the first on a repeat', async () => {
    const ledger = open();
    const first = await ledger.appendOnce({ idemKey: 'run_a:approved:alice', kind: 'approval', actor: 'alice', data: { v: 1 } });
    const again = await ledger.appendOnce({ idemKey: 'run_a:approved:alice', kind: 'approval', actor: 'mallory', data: { v: 2 } });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.entry).toEqual(first.entry);
    expect(await ledger.entries()).toHaveLength(1);
    expect(await ledger.findByIdemKey('run_a:approved:alice')).toEqual(first.entry);
    expect(await ledger.findByIdemKey('other')).toBeUndefined();
  });

  it('filters entries by run, by sequence and by limit', async () => {
    const ledger = open();
    await appendThree(ledger);
    expect((await ledger.entries({ runId: 'run_a' })).map((e) => e.seq)).toEqual([1, 3]);
    expect((await ledger.entries({ runId: 'run_b' })).map((e) => e.kind)).toEqual(['run.decided']);
    expect(await ledger.entries({ runId: 'run_none' })).toEqual([]);
    expect((await ledger.entries({ afterSeq: 1 })).map((e) => e.seq)).toEqual([2, 3]);
    expect((await ledger.entries({ limit: 2 })).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('verifies an intact chain and names its head', async () => {
    const ledger = open();
    const written = await appendThree(ledger);
    expect(await ledger.verify()).toEqual({ ok: true, entries: 3, headHash: written[2]?.hash });
  });

  it('verifies an empty ledger with the genesis hash as head', async () => {
    expect(await open().verify()).toEqual({ ok: true, entries: 0, headHash: GENESIS_HASH });
  });

  it('keeps one chain when two processes append to the same file alternately', async () => {
    const worker = open();
    const api = open();
    for (let i = 0; i < 10; i++) await (i % 2 === 0 ? worker : api).append({ kind: 'k', actor: i % 2 === 0 ? 'worker' : 'api', data: { i } });
    const fromWorker = await worker.verify();
    expect(fromWorker).toMatchObject({ ok: true, entries: 10 });
    expect(await api.verify()).toEqual(fromWorker);
    expect((await api.entries()).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('honours an idempotency key written by another process', async () => {
    const worker = open();
    const api = open();
    const first = await worker.appendOnce({ idemKey: 'k1', kind: 'k', actor: 'worker' });
    const second = await api.appendOnce({ idemKey: 'k1', kind: 'k', actor: 'api' });
    expect(second).toEqual({ entry: first.entry, created: false });
  });
});

describe('tamper detection', () => {
  it('refuses UPDATE and DELETE on the ledger table', async () => {
    await appendThree(open());
    const db = attacker();
    expect(() => db.prepare("UPDATE ledger SET actor = 'mallory' WHERE seq = 2").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM ledger WHERE seq = 2').run()).toThrow(/append-only/);
  });

  describe('with the triggers dropped by someone with file access', () => {
    async function tamperable(): Promise<{ ledger: Ledger; db: Database.Database; written: LedgerEntry[] }> {
      const ledger = open();
      await appendThree(ledger);
      const written = [...(await appendThree(ledger))];
      const db = attacker();
      db.exec('DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;');
      return { ledger, db, written };
    }

    it('names the entry whose data was modified', async () => {
      const { ledger, db } = await tamperable();
      db.prepare('UPDATE ledger SET data = ? WHERE seq = 4').run(JSON.stringify({ n: 999 }));
      const result = await ledger.verify();
      expect(result.ok).toBe(false);
      expect(result).toMatchObject({ firstBad: { seq: 4, reason: expect.stringMatching(/modified/) } });
    });

    it('names the entry whose actor was modified', async () => {
      const { ledger, db } = await tamperable();
      db.prepare("UPDATE ledger SET actor = 'mallory' WHERE seq = 2").run();
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringMatching(/modified/) } });
    });

    it('names the missing entry when a middle row is deleted', async () => {
      const { ledger, db } = await tamperable();
      db.prepare('DELETE FROM ledger WHERE seq = 3').run();
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: 3, reason: expect.stringMatching(/entry 3 is missing/) } });
    });

    it('names the first of two rows whose contents were swapped', async () => {
      const { ledger, db } = await tamperable();
      const cols = 'at, kind, actor, run_id, plan_digest, data, idem_key, prev_hash, hash';
      const row = (seq: number) => db.prepare(`SELECT ${cols} FROM ledger WHERE seq = ?`).get(seq) as Record<string, unknown>;
      const two = row(2);
      const five = row(5);
      const set = db.prepare(
        'UPDATE ledger SET at = @at, kind = @kind, actor = @actor, run_id = @run_id, plan_digest = @plan_digest, data = @data, idem_key = @idem_key, prev_hash = @prev_hash, hash = @hash WHERE seq = @seq',
      );
      db.transaction(() => {
        set.run({ ...five, seq: 2 });
        set.run({ ...two, seq: 5 });
      })();
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringMatching(/prevHash/) } });
    });

    it('names a row whose hash was recomputed after its data was changed', async () => {
      const { ledger, db, written } = await tamperable();
      const original = written[1]!;
      const { hash: _hash, ...unhashed } = { ...original, data: { n: 42 } };
      db.prepare('UPDATE ledger SET data = ?, hash = ? WHERE seq = ?').run(JSON.stringify({ n: 42 }), entryHash(unhashed), original.seq);
      // The row itself is now self-consistent; the next entry's prevHash no longer matches it.
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: original.seq + 1, reason: expect.stringMatching(/prevHash/) } });
    });
  });
});

describe('verifyChain', () => {
  async function entries(): Promise<LedgerEntry[]> {
    const ledger = open();
    await appendThree(ledger);
    return ledger.entries();
  }

  it('accepts entries in order', async () => {
    const list = await entries();
    expect(verifyChain(list)).toEqual({ ok: true, entries: 3, headHash: list[2]?.hash });
  });

  it('names an entry that is out of order', async () => {
    const [a, b, c] = await entries();
    const result = verifyChain([a!, c!, b!]);
    expect(result).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringMatching(/missing/) } });
  });

  it('names an entry that repeats an earlier sequence number', async () => {
    const [a, b] = await entries();
    expect(verifyChain([a!, b!, b!])).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringMatching(/out of order/) } });
  });

  it('refuses a chain that does not start at sequence 1', async () => {
    const [, b, c] = await entries();
    expect(verifyChain([b!, c!])).toMatchObject({ ok: false, firstBad: { seq: 1 } });
  });

  it('refuses a first entry whose prevHash is not the genesis hash', async () => {
    const [a] = await entries();
    const forged = { ...a!, prevHash: 'f'.repeat(64) };
    expect(verifyChain([{ ...forged, hash: entryHash(forged) }])).toMatchObject({ ok: false, firstBad: { seq: 1, reason: expect.stringMatching(/prevHash/) } });
  });
});
