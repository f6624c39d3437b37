import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import {
  actionIdFor,
  Alert,
  canonicalJson,
  combineDecisions,
  DEFAULT_APPROVAL_TIMEOUT_MS,
  ErrorCatalogue,
  httpStatusOf,
  nonRetryableErrorTypes,
  planDigest,
  runIdFor,
  sha256Hex,
  type Action,
  type ActionDecision,
  type ErrorType,
  type GuardrailRecord,
  type Target,
} from '../../domain/index.js';

const nodeSha256 = (text: string): string => createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex');

/** mulberry32: a small seeded PRNG so the random cases are the same on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const exampleAlert: unknown = JSON.parse(
  readFileSync(new URL('../../examples/alerts/orphaned-account.json', import.meta.url), 'utf8'),
);

describe('sha256Hex', () => {
  it.each([
    ['the empty string', ''],
    ['abc', 'abc'],
    ['55 characters (largest single-block message)', 'a'.repeat(55)],
    ['56 characters (length no longer fits the first block)', 'a'.repeat(56)],
    ['63 characters', 'b'.repeat(63)],
    ['64 characters (exactly one block)', 'c'.repeat(64)],
    ['65 characters', 'd'.repeat(65)],
    ['1000 characters', 'e'.repeat(1000)],
    ['two-byte UTF-8 (é)', 'café'],
    ['three-byte UTF-8 (日本)', '日本'],
    ['a surrogate pair (😀)', 'smile 😀!'],
    ['a lone high surrogate, encoded as U+FFFD', '\uD800'],
    ['a lone low surrogate, encoded as U+FFFD', 'x\uDC00y'],
    ['a high surrogate followed by a non-surrogate', '\uD83Dz'],
  ])('matches node:crypto for %s', (_name, text) => {
    expect(sha256Hex(text)).toBe(nodeSha256(text));
  });

  it('matches node:crypto around every padding boundary up to three blocks', () => {
    for (let length = 0; length <= 200; length++) {
      const text = 'x'.repeat(length);
      expect(sha256Hex(text), `length ${length}`).toBe(nodeSha256(text));
    }
  });

  it('matches node:crypto for 200 seeded random strings of mixed scripts', () => {
    const random = prng(0xc0ffee);
    const alphabet = ['a', 'Z', '0', ' ', '"', '\\', 'é', 'ß', '日', '本', '😀', '🚀', '\u0000', '\uD800', '\uDFFF', '\uFFFF'];
    for (let i = 0; i < 200; i++) {
      const length = Math.floor(random() * 150);
      let text = '';
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(random() * alphabet.length)]!;
      expect(sha256Hex(text), JSON.stringify(text)).toBe(nodeSha256(text));
    }
  });

  it('returns 64 lowercase hex digits', () => {
    expect(sha256Hex('anything')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('canonicalJson', () => {
  it('gives the same text whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: 2, c: { z: true, y: null } })).toBe(canonicalJson({ c: { y: null, z: true }, a: 2, b: 1 }));
    expect(canonicalJson({ b: 1, a: 2 })).toBe('{"a":2,"b":1}');
  });

  it('sorts keys inside nested objects and keeps array order', () => {
    expect(canonicalJson({ list: [{ y: 1, x: 2 }, 3, 's'], obj: { b: [2, 1], a: {} } })).toBe(
      '{"list":[{"x":2,"y":1},3,"s"],"obj":{"a":{},"b":[2,1]}}',
    );
  });

  it('drops undefined object members', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });

  it('writes undefined array items as null, as JSON.stringify does', () => {
    expect(canonicalJson([1, undefined, 2])).toBe('[1,null,2]');
    expect(canonicalJson([1, undefined, 2])).toBe(JSON.stringify([1, undefined, 2]));
  });

  it('escapes strings as JSON does', () => {
    expect(canonicalJson({ 'k"ey': 'line\nbreak "quoted"' })).toBe('{"k\\"ey":"line\\nbreak \\"quoted\\""}');
  });

  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
  ])('throws on %s, even nested', (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError);
    expect(() => canonicalJson({ a: [value] })).toThrow(/non-finite/);
  });

  it('throws on a bigint', () => {
    expect(() => canonicalJson({ n: 10n })).toThrow(/bigint/);
  });

  it('throws on a function', () => {
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/function/);
  });
});

describe('planDigest and actionIdFor', () => {
  const account: Target = { system: 'scim', id: 'u-1', display: 'Dana Reyes' };
  const groupA: Target = { system: 'scim', id: 'g-a', display: 'engineering' };
  const groupB: Target = { system: 'scim', id: 'g-b', display: 'vpn-users' };

  const disable = (target: Target = account): Action => ({
    id: actionIdFor('DisableAccount', target),
    type: 'DisableAccount',
    target,
    reversible: true,
    preState: { active: true },
    postState: { active: false },
  });
  const remove = (group: Target, target: Target = account): Action => ({
    id: actionIdFor('RemoveGroupMembership', target, group),
    type: 'RemoveGroupMembership',
    target,
    group,
    reversible: true,
    preState: { member: true },
    postState: { member: false },
  });

  it('gives the same digest for the same actions in the same order', () => {
    expect(planDigest([disable(), remove(groupA), remove(groupB)])).toBe(planDigest([disable(), remove(groupA), remove(groupB)]));
  });

  it('is 64 hex digits', () => {
    expect(planDigest([disable()])).toMatch(/^[0-9a-f]{64}$/);
    expect(planDigest([])).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes when a pre-state changes', () => {
    const base = [disable(), remove(groupA)];
    const changed = structuredClone(base) as unknown as { preState: Record<string, unknown> }[];
    changed[1]!.preState = { member: false };
    expect(planDigest(changed as unknown as Action[])).not.toBe(planDigest(base));
  });

  it('changes when a target id changes', () => {
    const other: Target = { ...account, id: 'u-2' };
    expect(planDigest([disable(other)])).not.toBe(planDigest([disable()]));
  });

  it('changes when the actions are reordered', () => {
    expect(planDigest([remove(groupB), remove(groupA)])).not.toBe(planDigest([remove(groupA), remove(groupB)]));
  });

  it('derives a stable act_ id of 16 hex digits', () => {
    const id = actionIdFor('DisableAccount', account);
    expect(id).toMatch(/^act_[0-9a-f]{16}$/);
    expect(actionIdFor('DisableAccount', { ...account })).toBe(id);
  });

  it('ignores a target display name when deriving an action id', () => {
    expect(actionIdFor('DisableAccount', { ...account, display: 'renamed' })).toBe(actionIdFor('DisableAccount', account));
  });

  it('derives a different action id for each group and each action type', () => {
    const ids = new Set([
      actionIdFor('RemoveGroupMembership', account, groupA),
      actionIdFor('RemoveGroupMembership', account, groupB),
      actionIdFor('DisableAccount', account),
    ]);
    expect(ids.size).toBe(3);
  });
});

describe('Alert schema', () => {
  const valid = exampleAlert as Record<string, unknown>;
  const withField = (patch: Record<string, unknown>): Record<string, unknown> => ({ ...valid, ...patch });
  const issuePaths = (input: unknown): string[] => {
    const result = Alert.safeParse(input);
    expect(result.success).toBe(false);
    return result.success ? [] : result.error.issues.map((issue) => issue.path.join('.'));
  };

  it('accepts the example orphaned-account alert', () => {
    const result = Alert.safeParse(valid);
    expect(result.success).toBe(true);
    expect(result.data?.subject.userName).toBe('dana.reyes');
  });

  it('accepts a subject with only an id', () => {
    expect(Alert.safeParse(withField({ subject: { system: 'scim', id: 'u-1' } })).success).toBe(true);
  });

  it('refuses an unknown top-level field', () => {
    const result = Alert.safeParse(withField({ serverity: 'high' }));
    expect(result.success).toBe(false);
    // A strict object reports unknown keys at the object's own path, with the keys named.
    expect(result.error?.issues).toEqual([expect.objectContaining({ code: 'unrecognized_keys', path: [], keys: ['serverity'] })]);
  });

  it('refuses an unknown subject field', () => {
    const result = Alert.safeParse(withField({ subject: { system: 'scim', userName: 'dana', mail: 'd@example.com' } }));
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([expect.objectContaining({ code: 'unrecognized_keys', path: ['subject'], keys: ['mail'] })]);
  });

  it('refuses a missing severity', () => {
    const { severity: _severity, ...rest } = valid;
    expect(issuePaths(rest)).toEqual(['severity']);
  });

  it('refuses severity "urgent"', () => {
    expect(issuePaths(withField({ severity: 'urgent' }))).toEqual(['severity']);
  });

  it('refuses a subject with neither id nor userName, naming userName', () => {
    const result = Alert.safeParse(withField({ subject: { system: 'scim' } }));
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['subject', 'userName']);
    expect(result.error?.issues[0]?.message).toMatch(/id or a userName/);
  });

  it('refuses control characters in source', () => {
    const result = Alert.safeParse(withField({ source: 'siem\n' }));
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['source']);
    expect(result.error?.issues[0]?.message).toMatch(/control characters/);
  });

  it('refuses a kind that is not dotted', () => {
    const result = Alert.safeParse(withField({ kind: 'orphaned' }));
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['kind']);
    expect(result.error?.issues[0]?.message).toMatch(/dotted/);
  });

  it('refuses a source longer than 200 characters and accepts exactly 200', () => {
    expect(issuePaths(withField({ source: 's'.repeat(201) }))).toEqual(['source']);
    expect(Alert.safeParse(withField({ source: 's'.repeat(200) })).success).toBe(true);
  });

  it('refuses an observedAt that is not ISO 8601', () => {
    expect(issuePaths(withField({ observedAt: '28/11/2026 09:00' }))).toEqual(['observedAt']);
  });
});

describe('runIdFor', () => {
  it('is deterministic and is run_ followed by 32 hex digits', () => {
    const id = runIdFor('demo-siem', 'orphan-1');
    expect(id).toMatch(/^run_[0-9a-f]{32}$/);
    expect(runIdFor('demo-siem', 'orphan-1')).toBe(id);
  });

  it('differs for a different source or a different id', () => {
    const id = runIdFor('demo-siem', 'orphan-1');
    expect(runIdFor('other-siem', 'orphan-1')).not.toBe(id);
    expect(runIdFor('demo-siem', 'orphan-2')).not.toBe(id);
  });

  it('cannot be confused by moving a separator between source and id', () => {
    expect(runIdFor('a', 'b|c')).not.toBe(runIdFor('a|b', 'c'));
    expect(runIdFor('a', 'b:c')).not.toBe(runIdFor('a:b', 'c'));
    expect(runIdFor('ab', 'c')).not.toBe(runIdFor('a', 'bc'));
  });
});

describe('combineDecisions', () => {
  const HASH_A = 'a'.repeat(64);
  const GUARDRAILS: GuardrailRecord = { mode: 'live', autonomy: 'live', maxTargetsPerRun: null, targets: 0, population: null, budgets: [], killSwitches: [], rollbackWindowMs: 0, guardrailsHash: 'b'.repeat(64) };
  let n = 0;
  const decision = (patch: Partial<ActionDecision>): ActionDecision => ({
    actionId: `act_${(n++).toString(16).padStart(16, '0')}`,
    outcome: 'auto',
    policies: [],
    approvers: 0,
    roles: [],
    ...patch,
  });

  it('is auto when every action is auto', () => {
    const combined = combineDecisions([decision({ policies: ['p1'] }), decision({ policies: ['p1'] })], HASH_A, GUARDRAILS);
    expect(combined.outcome).toBe('auto');
    expect(combined.requiredApprovals).toBe(0);
    expect(combined.approverRoles).toEqual([]);
    expect(combined.policies).toEqual(['p1']);
    expect(combined.policySetHash).toBe(HASH_A);
    expect(combined.guardrails).toBe(GUARDRAILS);
  });

  it('lets approve beat auto', () => {
    const combined = combineDecisions([decision({}), decision({ outcome: 'approve', approvers: 1, roles: ['approver'] })], HASH_A, GUARDRAILS);
    expect(combined.outcome).toBe('approve');
  });

  it('lets deny beat approve and auto, and asks for no approvals', () => {
    const combined = combineDecisions(
      [decision({ outcome: 'approve', approvers: 2, roles: ['approver'] }), decision({ outcome: 'deny', policies: ['no'] }), decision({})],
      HASH_A,
      GUARDRAILS,
    );
    expect(combined.outcome).toBe('deny');
    expect(combined.requiredApprovals).toBe(0);
    expect(combined.approverRoles).toEqual([]);
  });

  it('requires the largest approver count among approving actions', () => {
    const combined = combineDecisions(
      [
        decision({ outcome: 'approve', approvers: 1, roles: ['approver'] }),
        decision({ outcome: 'approve', approvers: 3, roles: ['approver'] }),
        decision({ outcome: 'approve', approvers: 2, roles: ['approver'] }),
      ],
      HASH_A,
      GUARDRAILS,
    );
    expect(combined.requiredApprovals).toBe(3);
  });

  it('takes the sorted union of the approving actions roles', () => {
    const combined = combineDecisions(
      [
        decision({ outcome: 'approve', approvers: 1, roles: ['operator', 'approver'] }),
        decision({ outcome: 'approve', approvers: 1, roles: ['admin', 'approver'] }),
      ],
      HASH_A,
      GUARDRAILS,
    );
    expect(combined.approverRoles).toEqual(['admin', 'approver', 'operator']);
  });

  it('takes the shortest approval timeout among approving actions', () => {
    const combined = combineDecisions(
      [
        decision({ outcome: 'approve', approvers: 1, roles: ['approver'], approvalTimeoutMs: 60_000 }),
        decision({ outcome: 'approve', approvers: 1, roles: ['approver'], approvalTimeoutMs: 5_000 }),
        decision({ outcome: 'approve', approvers: 1, roles: ['approver'] }),
        decision({ outcome: 'auto', approvalTimeoutMs: 1_000 }),
      ],
      HASH_A,
      GUARDRAILS,
    );
    expect(combined.approvalTimeoutMs).toBe(5_000);
  });

  it('falls back to the default approval timeout when no approving action sets one', () => {
    const combined = combineDecisions([decision({ outcome: 'approve', approvers: 1, roles: ['approver'] })], HASH_A, GUARDRAILS);
    expect(combined.approvalTimeoutMs).toBe(DEFAULT_APPROVAL_TIMEOUT_MS);
    expect(DEFAULT_APPROVAL_TIMEOUT_MS).toBe(24 * 60 * 60 * 1000);
  });

  it('denies an empty plan and says why', () => {
    const combined = combineDecisions([], HASH_A, GUARDRAILS, ['earlier reason']);
    expect(combined.outcome).toBe('deny');
    expect(combined.reasons).toEqual(['earlier reason', 'the plan has no actions']);
    expect(combined.requiredApprovals).toBe(0);
  });

  it('keeps the per-action decisions and de-duplicates and sorts policy ids', () => {
    const perAction = [decision({ policies: ['b', 'a'] }), decision({ policies: ['a', 'c'] })];
    const combined = combineDecisions(perAction, HASH_A, GUARDRAILS);
    expect(combined.policies).toEqual(['a', 'b', 'c']);
    expect(combined.perAction).toBe(perAction);
  });
});

describe('ErrorCatalogue', () => {
  const types = Object.keys(ErrorCatalogue) as ErrorType[];

  it('gives every entry an HTTP status from 400 to 599', () => {
    expect(types.length).toBeGreaterThan(0);
    for (const type of types) {
      expect(ErrorCatalogue[type].httpStatus, type).toBeGreaterThanOrEqual(400);
      expect(ErrorCatalogue[type].httpStatus, type).toBeLessThanOrEqual(599);
    }
  });

  it('lists exactly the non-retryable entries as non-retryable', () => {
    const expected = types.filter((type) => ErrorCatalogue[type].retryable === false).sort();
    expect([...nonRetryableErrorTypes].sort()).toEqual(expected);
    expect(nonRetryableErrorTypes).not.toContain('ConnectorUnavailable');
    expect(nonRetryableErrorTypes).toContain('ConnectorRejected');
  });

  it('maps each known type to its status and an unknown type to 500', () => {
    expect(httpStatusOf('NotFound')).toBe(404);
    expect(httpStatusOf('nope')).toBe(500);
    expect(httpStatusOf(undefined)).toBe(500);
    expect(httpStatusOf('toString')).toBe(500);
  });
});
