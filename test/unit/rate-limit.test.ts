import { describe, expect, it } from 'vitest';
import type { AccountSnapshot } from '../../domain/index.js';
import { createLimiter, rateLimited } from '../../activities/connectors/rate-limit.js';
import type { AccountRef, ChangeResult, DirectoryConnector } from '../../activities/connectors/types.js';

/** A promise the test settles by hand. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run (microtasks, then one macrotask turn). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A clock that only moves when the limiter sleeps, and the sleeps it was asked for. */
function fakeTime() {
  let ms = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => ms,
    sleep: async (duration: number) => {
      sleeps.push(duration);
      ms += duration;
    },
  };
}

describe('the concurrency cap', () => {
  it('never lets more calls be in flight than the cap, and completes every call', async () => {
    const time = fakeTime();
    const limiter = createLimiter({ callsPerSecond: 10_000, concurrency: 3, now: time.now, sleep: time.sleep });
    const gates = Array.from({ length: 20 }, () => deferred<number>());
    const started: number[] = [];
    const results = gates.map((gate, i) =>
      limiter.run(() => {
        started.push(i);
        return gate.promise;
      }),
    );

    await flush();
    expect(limiter.stats().inFlight).toBe(3);
    expect(started).toHaveLength(3);
    for (let done = 0; done < 20; done++) {
      // Complete the oldest call still running; the next queued call takes its slot.
      gates[started[done]!]!.resolve(started[done]! * 10);
      await flush();
      expect(limiter.stats().inFlight).toBeLessThanOrEqual(3);
      expect(started).toHaveLength(Math.min(20, done + 4));
    }

    expect(await Promise.all(results)).toEqual(Array.from({ length: 20 }, (_, i) => i * 10));
    expect(limiter.stats()).toEqual({ inFlight: 0, maxInFlight: 3, calls: 20 });
    expect(time.sleeps).toEqual([]);
  });
});

describe('the token bucket', () => {
  it('lets a second of calls through at once, then paces the rest at callsPerSecond', async () => {
    const time = fakeTime();
    // How many calls the limiter had granted when it asked for each sleep.
    const grantedAtSleep: number[] = [];
    const limiter = createLimiter({
      callsPerSecond: 5,
      concurrency: 100,
      now: time.now,
      sleep: (ms) => {
        grantedAtSleep.push(limiter.stats().calls);
        return time.sleep(ms);
      },
    });
    const startedAt: number[] = [];
    await Promise.all(
      Array.from({ length: 12 }, () =>
        limiter.run(async () => {
          startedAt.push(time.now());
        }),
      ),
    );

    expect(startedAt).toHaveLength(12);
    expect(limiter.stats().calls).toBe(12);
    // The first five spend the initial burst: the first sleep comes after five grants, then one per call.
    expect(grantedAtSleep).toEqual([5, 6, 7, 8, 9, 10, 11]);
    // Each later call waits for a token: one every 200 ms at 5 per second.
    startedAt.slice(5).forEach((at, i) => expect(at).toBeGreaterThanOrEqual((i + 1) * 200));
    const slept = time.sleeps.reduce((sum, ms) => sum + ms, 0);
    expect(slept).toBeGreaterThanOrEqual(1400);
    expect(slept).toBeLessThan(2000);
    expect(time.now()).toBe(slept);
  });

  it('refills the bucket while idle, up to one second of calls', async () => {
    const time = fakeTime();
    const limiter = createLimiter({ callsPerSecond: 5, concurrency: 100, now: time.now, sleep: time.sleep });
    await Promise.all(Array.from({ length: 5 }, () => limiter.run(async () => undefined)));
    expect(time.sleeps).toEqual([]);
    // A long idle spell refills five tokens, not fifty.
    await time.sleep(10_000);
    time.sleeps.length = 0;
    await Promise.all(Array.from({ length: 6 }, () => limiter.run(async () => undefined)));
    expect(time.sleeps.length).toBeGreaterThan(0);
    expect(time.sleeps.reduce((sum, ms) => sum + ms, 0)).toBeGreaterThanOrEqual(200);
  });
});

describe('ordering', () => {
  it('serves calls in the order they arrive', async () => {
    const time = fakeTime();
    const limiter = createLimiter({ callsPerSecond: 10_000, concurrency: 1, now: time.now, sleep: time.sleep });
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        limiter.run(async () => {
          order.push(i);
        }),
      ),
    );
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('keeps arrival order when a call arrives while the limiter waits for a token', async () => {
    let ms = 0;
    const pendingSleeps: { ms: number; wake: () => void }[] = [];
    const sleep = (duration: number) =>
      new Promise<void>((resolve) => {
        pendingSleeps.push({
          ms: duration,
          wake: () => {
            ms += duration;
            resolve();
          },
        });
      });
    const limiter = createLimiter({ callsPerSecond: 1, concurrency: 10, now: () => ms, sleep });
    const order: string[] = [];
    const call = (name: string) =>
      limiter.run(async () => {
        order.push(name);
      });

    const calls = [call('first'), call('second'), call('third')];
    await flush();
    expect(order).toEqual(['first']);
    expect(pendingSleeps).toHaveLength(1);
    calls.push(call('late'));
    for (let turn = 0; turn < 10 && order.length < 4; turn++) {
      await flush();
      pendingSleeps.shift()?.wake();
    }
    await Promise.all(calls);
    expect(order).toEqual(['first', 'second', 'third', 'late']);
  });
});

describe('rate-limited connectors', () => {
  const snapshot: AccountSnapshot = {
    system: 'scim',
    observedAt: '2026-11-28T09:00:00.000Z',
    account: { id: 'u-1', userName: 'dana.reyes', active: true },
    groups: [],
  };

  /** A connector that records each call and gives fixed answers; `overrides` replaces methods. */
  function fakeConnector(overrides: Partial<DirectoryConnector> = {}) {
    const calls: [string, ...unknown[]][] = [];
    const changed: ChangeResult = { changed: true, before: { active: true } };
    const connector: DirectoryConnector = {
      system: 'scim',
      readAccount: async (ref: AccountRef) => {
        calls.push(['readAccount', ref]);
        return snapshot;
      },
      countAccounts: async () => {
        calls.push(['countAccounts']);
        return 24;
      },
      setAccountActive: async (id, active) => {
        calls.push(['setAccountActive', id, active]);
        return changed;
      },
      isGroupMember: async (group, id) => {
        calls.push(['isGroupMember', group, id]);
        return true;
      },
      removeGroupMember: async (group, id) => {
        calls.push(['removeGroupMember', group, id]);
        return { changed: true, before: { member: true } };
      },
      addGroupMember: async (group, id) => {
        calls.push(['addGroupMember', group, id]);
        return { changed: false, before: { member: true } };
      },
      ...overrides,
    };
    return { connector, calls };
  }

  it('passes every connector method through the limiter with its arguments and returns its results', async () => {
    const time = fakeTime();
    const limiter = createLimiter({ callsPerSecond: 10_000, concurrency: 2, now: time.now, sleep: time.sleep });
    const { connector, calls } = fakeConnector();
    const limited = rateLimited(connector, limiter);

    expect(limited.system).toBe('scim');
    expect(await limited.readAccount({ userName: 'dana.reyes' })).toEqual(snapshot);
    expect(await limited.countAccounts!()).toBe(24);
    expect(await limited.setAccountActive!({ id: 'u-1' }, false)).toEqual({ changed: true, before: { active: true } });
    expect(await limited.isGroupMember!({ id: 'g-1' }, { id: 'u-1' })).toBe(true);
    expect(await limited.removeGroupMember!({ id: 'g-1' }, { id: 'u-1' })).toEqual({ changed: true, before: { member: true } });
    expect(await limited.addGroupMember!({ id: 'g-2' }, { id: 'u-1' })).toEqual({ changed: false, before: { member: true } });
    expect(limited.setCredentialActive).toBeUndefined();

    expect(calls).toEqual([
      ['readAccount', { userName: 'dana.reyes' }],
      ['countAccounts'],
      ['setAccountActive', { id: 'u-1' }, false],
      ['isGroupMember', { id: 'g-1' }, { id: 'u-1' }],
      ['removeGroupMember', { id: 'g-1' }, { id: 'u-1' }],
      ['addGroupMember', { id: 'g-2' }, { id: 'u-1' }],
    ]);
    expect(limiter.stats()).toMatchObject({ inFlight: 0, calls: 6 });
  });

  it('releases the slot of a call that fails, so the next queued call runs', async () => {
    const time = fakeTime();
    const limiter = createLimiter({ callsPerSecond: 10_000, concurrency: 1, now: time.now, sleep: time.sleep });
    const failing = deferred<ChangeResult>();
    const { connector, calls } = fakeConnector({
      setAccountActive: (id, active) => {
        calls.push(['setAccountActive', id, active]);
        return failing.promise;
      },
    });
    const limited = rateLimited(connector, limiter);

    const fails = limited.setAccountActive!({ id: 'u-1' }, false);
    const next = limited.readAccount({ id: 'u-1' });
    await flush();
    expect(calls).toEqual([['setAccountActive', { id: 'u-1' }, false]]);
    expect(limiter.stats().inFlight).toBe(1);

    failing.reject(new Error('connector unavailable'));
    await expect(fails).rejects.toThrow('connector unavailable');
    expect(await next).toEqual(snapshot);
    expect(calls.map((c) => c[0])).toEqual(['setAccountActive', 'readAccount']);
    expect(limiter.stats()).toEqual({ inFlight: 0, maxInFlight: 1, calls: 2 });
  });

  it('releases the slot of a function that throws synchronously', async () => {
    const time = fakeTime();
    const limiter = createLimiter({ callsPerSecond: 10_000, concurrency: 1, now: time.now, sleep: time.sleep });
    const thrown = limiter.run((): Promise<number> => {
      throw new Error('bad arguments');
    });
    const next = limiter.run(async () => 7);
    await expect(thrown).rejects.toThrow('bad arguments');
    expect(await next).toBe(7);
    expect(limiter.stats().inFlight).toBe(0);
  });
});
