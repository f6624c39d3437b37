// The same cases for every store backend: SQLite (a temporary file) and PostgreSQL (a private server
// started for this file, a database per test).
import { describe, it, expect } from 'vitest';
import { entryHash, GENESIS_HASH, verifyChain, type Ledger, type LedgerEntry } from '../../store/ledger.js';
import { openPostgresLedger } from '../../store/postgres-ledger.js';
import { STORE_BACKENDS, storeHarness } from '../support/stores.js';

const store = storeHarness();

function open(clock?: () => Date): Promise<Ledger> {
  return store.openLedger(clock);
}

/** A clock that ticks one second per call, so entry times are known. */
function tickingClock(): () => Date {
  let ms = Date.parse('2026-11-28T09:00:00.000Z');
  return () => new Date((ms += 1000));
}

async function appendThree(ledger: Ledger): Promise<LedgerEntry[]> {
  return [
    await ledger.append({ kind: 'run.started', actor: 'siem-bot', runId: 'run_a', data: { n: 1 } }),
    await ledger.append({ kind: 'run.decided', actor: 'system', runId: 'run_b', planDigest: 'f'.repeat(64), data: { n: 2 } }),
    await ledger.append({ kind: 'run.completed', actor: 'system', runId: 'run_a', data: { n: 3 } }),
  ];
}

describe.each(STORE_BACKENDS)('appending to the ledger (%s)', (backend) => {
  store.use(backend);

  it('numbers entries 1, 2, 3 and chains each to the hash of the one before', async () => {
    const ledger = await open(tickingClock());
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

  it('stamps entries with the current UTC time in millisecond ISO form when no clock is given', async () => {
    const before = Date.now();
    const entry = await (await open()).append({ kind: 'k', actor: 'a' });
    expect(entry.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // The PostgreSQL store takes the database server's clock: the same machine here.
    expect(Math.abs(Date.parse(entry.at) - before)).toBeLessThan(60_000);
  });

  it('fills absent optional fields with null and data with an empty object', async () => {
    const entry = await (await open()).append({ kind: 'k', actor: 'a' });
    expect(entry).toMatchObject({ runId: null, planDigest: null, idemKey: null, data: {} });
  });

  it('returns the stored data unchanged when read back', async () => {
    const ledger = await open();
    const data = { text: 'é 日本 😀 \u0000', nested: { list: [1, 'two', null, true], empty: {} }, number: 1.5, z: 1, a: 2 };
    const written = await ledger.append({ kind: 'k', actor: 'a', runId: 'run_x', data });
    const [read] = await ledger.entries();
    expect(read).toEqual(written);
    expect(read?.data).toEqual(data);
    expect(Object.keys(read!.data)).toEqual(['text', 'nested', 'number', 'z', 'a']);
    expect(await ledger.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('stores data as JSON would, so what is hashed is what is read back', async () => {
    const ledger = await open();
    const written = await ledger.append({ kind: 'k', actor: 'a', data: { at: new Date('2026-01-01T00:00:00Z'), gone: undefined } });
    expect(written.data).toEqual({ at: '2026-01-01T00:00:00.000Z' });
    expect(await ledger.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('writes an idempotent entry once and returns the first on a repeat', async () => {
    const ledger = await open();
    const first = await ledger.appendOnce({ idemKey: 'run_a:approved:alice', kind: 'approval', actor: 'alice', data: { v: 1 } });
    const again = await ledger.appendOnce({ idemKey: 'run_a:approved:alice', kind: 'approval', actor: 'mallory', data: { v: 2 } });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.entry).toEqual(first.entry);
    expect(await ledger.entries()).toHaveLength(1);
    expect(await ledger.findByIdemKey('run_a:approved:alice')).toEqual(first.entry);
    expect(await ledger.findByIdemKey('other')).toBeUndefined();
  });

  it('refuses a plain append that repeats an existing idempotency key, and writes nothing', async () => {
    const ledger = await open();
    await ledger.appendOnce({ idemKey: 'k1', kind: 'k', actor: 'a' });
    await expect(ledger.append({ idemKey: 'k1', kind: 'k', actor: 'b' })).rejects.toThrow();
    expect(await ledger.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('filters entries by run, by sequence and by limit', async () => {
    const ledger = await open();
    await appendThree(ledger);
    expect((await ledger.entries({ runId: 'run_a' })).map((e) => e.seq)).toEqual([1, 3]);
    expect((await ledger.entries({ runId: 'run_b' })).map((e) => e.kind)).toEqual(['run.decided']);
    expect(await ledger.entries({ runId: 'run_none' })).toEqual([]);
    expect((await ledger.entries({ afterSeq: 1 })).map((e) => e.seq)).toEqual([2, 3]);
    expect((await ledger.entries({ throughSeq: 2 })).map((e) => e.seq)).toEqual([1, 2]);
    expect((await ledger.entries({ afterSeq: 1, throughSeq: 2 })).map((e) => e.seq)).toEqual([2]);
    expect((await ledger.entries({ limit: 2 })).map((e) => e.seq)).toEqual([1, 2]);
    expect((await ledger.entries({ runId: 'run_a', afterSeq: 1, limit: 5 })).map((e) => e.seq)).toEqual([3]);
    expect(await ledger.entries({ limit: 0 })).toEqual([]);
  });

  it('names the head, and none while the ledger is empty', async () => {
    const ledger = await open();
    expect(await ledger.head()).toBeUndefined();
    const written = await appendThree(ledger);
    expect(await ledger.head()).toEqual({ seq: 3, hash: written[2]!.hash });
  });

  it('bounds sequence numbers by time: since inclusive, until exclusive', async () => {
    const ledger = await open(tickingClock());
    await appendThree(ledger); // at 09:00:01, 09:00:02, 09:00:03
    expect(await ledger.seqBounds({})).toEqual({ first: 1, last: 3 });
    expect(await ledger.seqBounds({ since: '2026-11-28T09:00:02.000Z' })).toEqual({ first: 2, last: 3 });
    expect(await ledger.seqBounds({ until: '2026-11-28T09:00:03.000Z' })).toEqual({ first: 1, last: 2 });
    expect(await ledger.seqBounds({ since: '2026-11-28T09:00:02.000Z', until: '2026-11-28T09:00:02.500Z' })).toEqual({ first: 2, last: 2 });
    expect(await ledger.seqBounds({ since: '2026-11-28T10:00:00.000Z' })).toBeUndefined();
    expect(await ledger.seqBounds({ since: '2026-11-28T09:00:02.200Z', until: '2026-11-28T09:00:02.500Z' })).toBeUndefined();
  });

  it('answers a ping while the store is open and refuses one once it is closed', async () => {
    const ledger = await open();
    await expect(ledger.ping()).resolves.toBeUndefined();
    await ledger.close();
    await expect(ledger.ping()).rejects.toThrow();
  });

  it('verifies an intact chain and names its head', async () => {
    const ledger = await open();
    const written = await appendThree(ledger);
    expect(await ledger.verify()).toEqual({ ok: true, entries: 3, headHash: written[2]?.hash });
  });

  it('verifies an empty ledger with the genesis hash as head', async () => {
    expect(await (await open()).verify()).toEqual({ ok: true, entries: 0, headHash: GENESIS_HASH });
  });

  it('verifies a ledger longer than one page of reads', async () => {
    const ledger = await open();
    for (let i = 0; i < 7; i++) await ledger.append({ kind: 'k', actor: 'a', data: { i } });
    expect(await ledger.verify()).toMatchObject({ ok: true, entries: 7 });
  });

  it('keeps one chain when two processes append to the same store alternately', async () => {
    const worker = await open();
    const api = await open();
    for (let i = 0; i < 10; i++) await (i % 2 === 0 ? worker : api).append({ kind: 'k', actor: i % 2 === 0 ? 'worker' : 'api', data: { i } });
    const fromWorker = await worker.verify();
    expect(fromWorker).toMatchObject({ ok: true, entries: 10 });
    expect(await api.verify()).toEqual(fromWorker);
    expect((await api.entries()).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps one chain when two writers append at the same time', async () => {
    const worker = await open();
    const api = await open();
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? worker : api).append({ kind: 'k', actor: 'a', data: { i } })));
    expect(await worker.verify()).toMatchObject({ ok: true, entries: 40 });
    const data = (await api.entries()).map((e) => e.data.i as number).sort((a, b) => a - b);
    expect(data).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('honours an idempotency key written by another process', async () => {
    const worker = await open();
    const api = await open();
    const first = await worker.appendOnce({ idemKey: 'k1', kind: 'k', actor: 'worker' });
    const second = await api.appendOnce({ idemKey: 'k1', kind: 'k', actor: 'api' });
    expect(second).toEqual({ entry: first.entry, created: false });
  });

  it('writes a key once when writers race on it, and every writer gets the one entry', async () => {
    const writers = [await open(), await open()];
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => writers[i % 2]!.appendOnce({ idemKey: 'raced', kind: 'k', actor: `w${i}` })));
    expect(answers.filter((a) => a.created)).toHaveLength(1);
    const written = answers.find((a) => a.created)!.entry;
    for (const answer of answers) expect(answer.entry).toEqual(written);
    expect(await writers[0]!.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('keeps one valid chain when two real processes append concurrently, writing shared keys once', async () => {
    // Each process appends 60 entries of its own and, interleaved, 20 keyed entries both processes try to write.
    const script = `
      const { openStores } = await import(process.argv[1]);
      const { ledger, close } = await openStores(JSON.parse(process.argv[2]));
      let created = 0;
      for (let i = 0; i < 60; i++) {
        await ledger.append({ kind: 'k', actor: process.argv[3], data: { i } });
        if (i % 3 === 0 && (await ledger.appendOnce({ idemKey: 'shared-' + i, kind: 'k', actor: process.argv[3] })).created) created++;
      }
      await close();
      process.stdout.write(String(created));
    `;
    await open(); // creates the store before the race
    const [first, second] = await Promise.all([store.runProcess(script, ['p1']), store.runProcess(script, ['p2'])]);
    expect(Number(first) + Number(second)).toBe(20);
    const ledger = await open();
    expect(await ledger.verify()).toMatchObject({ ok: true, entries: 140 });
    const entries = await ledger.entries();
    expect(entries.filter((e) => e.actor === 'p1' && e.idemKey === null)).toHaveLength(60);
    expect(entries.filter((e) => e.actor === 'p2' && e.idemKey === null)).toHaveLength(60);
    expect(new Set(entries.filter((e) => e.idemKey !== null).map((e) => e.idemKey)).size).toBe(20);
  });
});

describe.each(STORE_BACKENDS)('tamper detection (%s)', (backend) => {
  store.use(backend);

  it('refuses UPDATE and DELETE on the ledger table', async () => {
    await appendThree(await open());
    const db = await store.raw();
    await expect(db.query("UPDATE ledger SET actor = 'mallory' WHERE seq = 2")).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM ledger WHERE seq = 2')).rejects.toThrow(/append-only/);
    expect(await (await open()).verify()).toMatchObject({ ok: true, entries: 3 });
  });

  // SQLite has no TRUNCATE; its DELETE is refused above.
  if (backend === 'postgres') {
    it('refuses TRUNCATE of the ledger table', async () => {
      await appendThree(await open());
      const db = await store.raw();
      await expect(db.query('TRUNCATE ledger')).rejects.toThrow(/append-only/);
      expect(await (await open()).verify()).toMatchObject({ ok: true, entries: 3 });
    });
  }

  it('keeps its append-only guard when the store is opened again', async () => {
    await appendThree(await open());
    await open();
    await expect((await store.raw()).query('DELETE FROM ledger WHERE seq = 1')).rejects.toThrow(/append-only/);
  });

  // Roles and grants are PostgreSQL's; a SQLite file has none.
  if (backend === 'postgres') {
    it('opens an existing ledger as a role that may only read and append', async () => {
      await appendThree(await open());
      const db = await store.raw();
      const { url, password } = await store.postgres();
      const role = `appender_${Date.now()}`;
      await db.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      await db.query(`GRANT SELECT, INSERT ON ledger, cordon_migrations TO ${role}`);
      const asRole = new URL(url);
      asRole.username = role;
      const ledger = await openPostgresLedger({ url: asRole.toString(), password });
      try {
        await ledger.append({ kind: 'k', actor: 'a' });
        expect(await ledger.verify()).toMatchObject({ ok: true, entries: 4 });
        await expect(db.query(`SET ROLE ${role}; UPDATE ledger SET actor = 'x'`)).rejects.toThrow(/permission denied|append-only/);
      } finally {
        await ledger.close();
        await db.query('RESET ROLE');
        await db.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
      }
    });
  }

  describe('with the triggers dropped by someone with access to the store', () => {
    async function tamperable(): Promise<{ ledger: Ledger; db: Awaited<ReturnType<typeof store.raw>>; written: LedgerEntry[] }> {
      const ledger = await open();
      await appendThree(ledger);
      const written = [...(await appendThree(ledger))];
      const db = await store.raw();
      await db.dropAppendOnlyTriggers();
      return { ledger, db, written };
    }

    it('names the entry whose data was modified', async () => {
      const { ledger, db } = await tamperable();
      await db.query('UPDATE ledger SET data = ? WHERE seq = 4', [JSON.stringify({ n: 999 })]);
      const result = await ledger.verify();
      expect(result.ok).toBe(false);
      expect(result).toMatchObject({ firstBad: { seq: 4, reason: expect.stringMatching(/modified/) } });
    });

    it('names the entry whose actor was modified', async () => {
      const { ledger, db } = await tamperable();
      await db.query("UPDATE ledger SET actor = 'mallory' WHERE seq = 2");
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringMatching(/modified/) } });
    });

    it('names the missing entry when a middle row is deleted', async () => {
      const { ledger, db } = await tamperable();
      await db.query('DELETE FROM ledger WHERE seq = 3');
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: 3, reason: expect.stringMatching(/entry 3 is missing/) } });
    });

    it('names the first of two rows whose contents were swapped', async () => {
      const { ledger, db } = await tamperable();
      const cols = ['at', 'kind', 'actor', 'run_id', 'plan_digest', 'data', 'idem_key', 'prev_hash', 'hash'];
      const row = async (seq: number) => (await db.query(`SELECT ${cols.join(', ')} FROM ledger WHERE seq = ?`, [seq]))[0]!;
      const two = await row(2);
      const five = await row(5);
      const set = `UPDATE ledger SET ${cols.map((c) => `${c} = ?`).join(', ')} WHERE seq = ?`;
      await db.query(set, [...cols.map((c) => five[c]), 2]);
      await db.query(set, [...cols.map((c) => two[c]), 5]);
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringMatching(/prevHash/) } });
    });

    it('names a row whose hash was recomputed after its data was changed', async () => {
      const { ledger, db, written } = await tamperable();
      const original = written[1]!;
      const { hash: _hash, ...unhashed } = { ...original, data: { n: 42 } };
      await db.query('UPDATE ledger SET data = ?, hash = ? WHERE seq = ?', [JSON.stringify({ n: 42 }), entryHash(unhashed), original.seq]);
      // The row itself is now self-consistent; the next entry's prevHash no longer matches it.
      expect(await ledger.verify()).toMatchObject({ ok: false, firstBad: { seq: original.seq + 1, reason: expect.stringMatching(/prevHash/) } });
    });
  });
});

describe.each(STORE_BACKENDS)('verifyChain (%s)', (backend) => {
  store.use(backend);

  async function entries(): Promise<LedgerEntry[]> {
    const ledger = await open();
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
