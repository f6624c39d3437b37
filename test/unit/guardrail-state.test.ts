// The same cases for every store backend: SQLite (a temporary file) and PostgreSQL (a private server
// started for this file, a database per test).
import { describe, expect, it } from 'vitest';
import { scopeAffects, scopeKey } from '../../domain/index.js';
import type { BudgetSpec, GuardrailState } from '../../store/guardrail-state.js';
import { STORE_BACKENDS, storeHarness } from '../support/stores.js';

const HOUR_MS = 3_600_000;
const START_MS = Date.parse('2026-11-28T09:00:00.000Z');

const store = storeHarness();

/** A clock the test moves by hand. */
function manualClock(start = START_MS) {
  let ms = start;
  return {
    now: () => ms,
    advance: (by: number) => {
      ms += by;
    },
  };
}

function open(clock: () => number): Promise<GuardrailState> {
  return store.openGuardrailState(clock);
}

const threePerHour: BudgetSpec = { name: 'three-per-hour', limit: 3, windowMs: HOUR_MS };

describe.each(STORE_BACKENDS)('reserving budget (%s)', (backend) => {
  store.use(backend);

  it('reserves nothing and succeeds when no budget applies', async () => {
    const state = await open(manualClock().now);
    expect(await state.reserve([], 'act-1')).toEqual({ ok: true, budgets: [] });
  });

  it('grants up to the limit, then refuses naming the budget, its use and when it frees', async () => {
    const clock = manualClock();
    const state = await open(clock.now);
    const first = await state.reserve([threePerHour], 'a');
    expect(first.ok).toBe(true);
    expect(first.budgets[0]?.used).toBe(1);
    clock.advance(10 * 60_000);
    expect((await state.reserve([threePerHour], 'b')).ok).toBe(true);
    clock.advance(10 * 60_000);
    const third = await state.reserve([threePerHour], 'c');
    expect(third.ok).toBe(true);
    expect(third.budgets[0]?.used).toBe(3);
    clock.advance(5 * 60_000);

    const refused = await state.reserve([threePerHour], 'd');
    expect(refused).toMatchObject({ ok: false, budget: 'three-per-hour', used: 3, limit: 3 });
    // The oldest reservation ('a', at START_MS) ages out of the window first.
    expect(refused.ok === false && refused.retryAfterMs).toBe(START_MS + HOUR_MS - clock.now());
    expect(refused.budgets[0]?.used).toBe(3);
  });

  it('reserves the same key once, so a retried mutation does not spend twice', async () => {
    const state = await open(manualClock().now);
    for (const key of ['a', 'b', 'c']) expect((await state.reserve([threePerHour], key)).ok).toBe(true);
    const again = await state.reserve([threePerHour], 'a');
    expect(again.ok).toBe(true);
    expect(again.budgets[0]?.used).toBe(3);
    expect((await state.usage([threePerHour]))[0]?.used).toBe(3);
    expect((await state.reserve([threePerHour], 'd')).ok).toBe(false);
  });

  it('frees the budget once the window has passed', async () => {
    const clock = manualClock();
    const state = await open(clock.now);
    for (const key of ['a', 'b', 'c']) expect((await state.reserve([threePerHour], key)).ok).toBe(true);
    expect((await state.reserve([threePerHour], 'd')).ok).toBe(false);
    clock.advance(HOUR_MS);
    const later = await state.reserve([threePerHour], 'd');
    expect(later.ok).toBe(true);
    expect(later.budgets[0]?.used).toBe(1);
  });

  it('reserves every budget or none: a refusal by one leaves the others unspent', async () => {
    const state = await open(manualClock().now);
    const roomy: BudgetSpec = { name: 'roomy', limit: 5, windowMs: HOUR_MS };
    const tight: BudgetSpec = { name: 'tight', limit: 1, windowMs: HOUR_MS };
    const first = await state.reserve([roomy, tight], 'a');
    expect(first.ok).toBe(true);
    expect(first.budgets.map((b) => [b.name, b.used])).toEqual([
      ['roomy', 1],
      ['tight', 1],
    ]);

    const second = await state.reserve([roomy, tight], 'b');
    expect(second).toMatchObject({ ok: false, budget: 'tight', used: 1, limit: 1 });
    expect((await state.usage([roomy, tight])).map((b) => b.used)).toEqual([1, 1]);
  });

  it('reports usage per budget within its window, with what each budget counts', async () => {
    const clock = manualClock();
    const state = await open(clock.now);
    const disables: BudgetSpec = { name: 'disables', limit: 100, windowMs: HOUR_MS, action: 'DisableAccount', playbook: 'deprovision-account' };
    const scim: BudgetSpec = { name: 'scim', limit: 10, windowMs: 60_000, connector: 'scim' };
    expect(await state.usage([disables, scim])).toEqual([
      { name: 'disables', action: 'DisableAccount', playbook: 'deprovision-account', connector: null, limit: 100, windowMs: HOUR_MS, used: 0 },
      { name: 'scim', action: '*', playbook: null, connector: 'scim', limit: 10, windowMs: 60_000, used: 0 },
    ]);
    await state.reserve([disables, scim], 'a');
    clock.advance(30_000);
    await state.reserve([disables, scim], 'b');
    clock.advance(30_000);
    // 'a' has left the one-minute window of `scim`, not the hour of `disables`.
    expect((await state.usage([disables, scim])).map((b) => [b.name, b.used])).toEqual([
      ['disables', 2],
      ['scim', 1],
    ]);
  });

  it('never lets two processes sharing the store exceed a limit together', async () => {
    const clock = manualClock();
    const first = await open(clock.now);
    const second = await open(clock.now);
    const budget: BudgetSpec = { name: 'shared', limit: 5, windowMs: HOUR_MS };
    const granted: string[] = [];
    for (let i = 0; i < 12; i++) {
      const state = i % 2 === 0 ? first : second;
      const answer = await state.reserve([budget], `key-${i}`);
      if (answer.ok) granted.push(`key-${i}`);
      clock.advance(1000);
    }
    expect(granted).toEqual(['key-0', 'key-1', 'key-2', 'key-3', 'key-4']);
    expect((await first.usage([budget]))[0]?.used).toBe(5);
    expect((await second.usage([budget]))[0]?.used).toBe(5);
  });

  it('never lets two real processes racing on the store exceed a limit together', async () => {
    // Two Node processes, each reserving 120 keys of its own as fast as it can against one budget of 100.
    const script = `
      const { openStores } = await import(process.argv[1]);
      const { guardrailState, close } = await openStores(JSON.parse(process.argv[2]));
      let granted = 0;
      for (let i = 0; i < 120; i++) if ((await guardrailState.reserve([{ name: 'raced', limit: 100, windowMs: ${HOUR_MS} }], process.argv[3] + i)).ok) granted++;
      await close();
      process.stdout.write(String(granted));
    `;
    await open(manualClock().now); // creates the store and its tables before the race
    const [first, second] = await Promise.all([store.runProcess(script, ['p1-']), store.runProcess(script, ['p2-'])]);
    expect(Number(first) + Number(second)).toBe(100);
    const state = await open(Date.now);
    expect((await state.usage([{ name: 'raced', limit: 100, windowMs: HOUR_MS }]))[0]?.used).toBe(100);
  });

  it('never lets two real processes reserving several budgets at once exceed any, nor deadlock', async () => {
    // The processes name the same two budgets in opposite orders: all or none, whatever the order.
    const script = `
      const { openStores } = await import(process.argv[1]);
      const { guardrailState, close } = await openStores(JSON.parse(process.argv[2]));
      const wide = { name: 'wide', limit: 70, windowMs: ${HOUR_MS} };
      const narrow = { name: 'narrow', limit: 50, windowMs: ${HOUR_MS} };
      const budgets = process.argv[3] === 'p1-' ? [wide, narrow] : [narrow, wide];
      let granted = 0;
      for (let i = 0; i < 40; i++) if ((await guardrailState.reserve(budgets, process.argv[3] + i)).ok) granted++;
      await close();
      process.stdout.write(String(granted));
    `;
    await open(manualClock().now);
    const [first, second] = await Promise.all([store.runProcess(script, ['p1-']), store.runProcess(script, ['p2-'])]);
    expect(Number(first) + Number(second)).toBe(50);
    const state = await open(Date.now);
    const usage = await state.usage([
      { name: 'wide', limit: 70, windowMs: HOUR_MS },
      { name: 'narrow', limit: 50, windowMs: HOUR_MS },
    ]);
    expect(usage.map((b) => b.used)).toEqual([50, 50]);
  });
});

describe.each(STORE_BACKENDS)('kill switches (%s)', (backend) => {
  store.use(backend);

  it('lists none before any is flipped', async () => {
    const state = await open(manualClock().now);
    expect(await state.killSwitches()).toEqual([]);
  });

  it('engages a global switch and reads it back with who, why and when', async () => {
    const state = await open(manualClock().now);
    const set = await state.setKillSwitch({ kind: 'global' }, true, 'admin', 'incident 42');
    const expected = { scope: { kind: 'global' }, engaged: true, actor: 'admin', reason: 'incident 42', at: '2026-11-28T09:00:00.000Z' };
    expect(set).toEqual(expected);
    expect(await state.killSwitches()).toEqual([expected]);
  });

  it('keeps each scope as its own row, and keeps a released switch as released', async () => {
    const clock = manualClock();
    const state = await open(clock.now);
    await state.setKillSwitch({ kind: 'global' }, true, 'admin', 'incident 42');
    clock.advance(1000);
    await state.setKillSwitch({ kind: 'playbook', name: 'deprovision-account' }, true, 'alice', 'bad plan');
    clock.advance(1000);
    await state.setKillSwitch({ kind: 'connector', name: 'scim' }, true, 'bob', 'vendor outage');
    clock.advance(1000);
    await state.setKillSwitch({ kind: 'global' }, false, 'carol', 'incident 42 closed');

    const switches = await state.killSwitches();
    expect(switches).toHaveLength(3);
    const byKey = new Map(switches.map((s) => [scopeKey(s.scope), s]));
    expect(byKey.get('global')).toEqual({ scope: { kind: 'global' }, engaged: false, actor: 'carol', reason: 'incident 42 closed', at: '2026-11-28T09:00:03.000Z' });
    expect(byKey.get('playbook:deprovision-account')).toEqual({
      scope: { kind: 'playbook', name: 'deprovision-account' },
      engaged: true,
      actor: 'alice',
      reason: 'bad plan',
      at: '2026-11-28T09:00:01.000Z',
    });
    expect(byKey.get('connector:scim')).toMatchObject({ scope: { kind: 'connector', name: 'scim' }, engaged: true, actor: 'bob' });
  });

  it('shows a switch flipped by one process to another process on the same store', async () => {
    const clock = manualClock();
    const first = await open(clock.now);
    const second = await open(clock.now);
    await first.setKillSwitch({ kind: 'connector', name: 'scim' }, true, 'admin', 'vendor outage');
    expect((await second.killSwitches()).map((s) => [scopeKey(s.scope), s.engaged])).toEqual([['connector:scim', true]]);
    await second.setKillSwitch({ kind: 'connector', name: 'scim' }, false, 'admin', 'vendor back');
    expect((await first.killSwitches()).map((s) => [scopeKey(s.scope), s.engaged])).toEqual([['connector:scim', false]]);
  });
});

describe('kill switch scopes', () => {
  it('keys scopes as global, playbook:<name> and connector:<name>', () => {
    expect(scopeKey({ kind: 'global' })).toBe('global');
    expect(scopeKey({ kind: 'playbook', name: 'deprovision-account' })).toBe('playbook:deprovision-account');
    expect(scopeKey({ kind: 'connector', name: 'scim' })).toBe('connector:scim');
  });

  it('stops every run with a global scope, only its playbook with a playbook scope, and runs calling it with a connector scope', () => {
    const run = { playbook: 'deprovision-account', connectors: ['scim'] };
    expect(scopeAffects({ kind: 'global' }, run)).toBe(true);
    expect(scopeAffects({ kind: 'playbook', name: 'deprovision-account' }, run)).toBe(true);
    expect(scopeAffects({ kind: 'playbook', name: 'rotate-keys' }, run)).toBe(false);
    expect(scopeAffects({ kind: 'connector', name: 'scim' }, run)).toBe(true);
    expect(scopeAffects({ kind: 'connector', name: 'ldap' }, run)).toBe(false);
    expect(scopeAffects({ kind: 'connector', name: 'scim' }, { playbook: 'deprovision-account', connectors: [] })).toBe(false);
  });
});
