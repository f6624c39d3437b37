// Finding and watching runs, the parts that need no server: the runs list's filters and the
// visibility query they make, the CLI's option values, and what `runs watch` reports for a run's views.
import { describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../cli/main.js';
import { countArg, durationArg, instantArg, parseDuration } from '../../cli/option-parsers.js';
import { describeEvent, endsWatch, runEvents, type WatchEvent, type WatchState } from '../../cli/watch.js';
import { isTerminal, RunStatus, type RunAction, type RunView } from '../../domain/index.js';
import { RunFilters, visibilityQuery } from '../../server/run-queries.js';
import { runsPage } from '../../server/ui/views.js';

describe('run list filters: source, severity and time range', () => {
  it('accepts a source, a severity and a time range, normalising the instants to UTC', () => {
    expect(RunFilters.parse({ source: 'Splunk ES/prod', severity: 'critical', since: '2026-03-01T10:00:00+02:00', until: '2026-03-02T00:00:00Z' })).toEqual({
      source: 'Splunk ES/prod',
      severity: 'critical',
      since: '2026-03-01T08:00:00.000Z',
      until: '2026-03-02T00:00:00.000Z',
    });
    expect(RunFilters.parse({ source: ' ', severity: '', since: '', until: '  ' })).toEqual({});
  });

  it('refuses values that could leave their quotes, unknown severities, loose dates and a range that ends before it starts, naming the field', () => {
    const refused: [Record<string, string>, string][] = [
      [{ source: "siem' OR '1'='1" }, 'source'],
      [{ source: 'siem\\' }, 'source'],
      [{ source: 'a"b' }, 'source'],
      [{ source: 'line\nbreak' }, 'source'],
      [{ source: 'x'.repeat(201) }, 'source'],
      [{ severity: 'urgent' }, 'severity'],
      [{ severity: "high' OR '1'='1" }, 'severity'],
      [{ since: 'yesterday' }, 'since'],
      [{ since: '2026-03-01' }, 'since'],
      [{ since: "2026-03-01T00:00:00Z' OR '1'='1" }, 'since'],
      [{ until: '2026-03-01T00:00:00' }, 'until'],
      [{ since: '2026-03-02T00:00:00Z', until: '2026-03-01T00:00:00Z' }, 'until'],
      [{ since: '2026-03-01T00:00:00Z', until: '2026-03-01T00:00:00Z' }, 'until'],
    ];
    for (const [bad, field] of refused) {
      const parsed = RunFilters.safeParse(bad);
      expect(parsed.success, JSON.stringify(bad)).toBe(false);
      expect(parsed.error?.issues.map((i) => i.path.join('.')), JSON.stringify(bad)).toContain(field);
    }
  });

  it('builds the visibility query with every filter, the time range on the start time', () => {
    const filters = RunFilters.parse({
      status: 'completed',
      playbook: 'deprovision-account',
      target: 'u-1',
      source: 'edr',
      severity: 'high',
      since: '2026-03-01T00:00:00Z',
      until: '2026-03-08T00:00:00Z',
    });
    expect(visibilityQuery('cordon-remediation', filters)).toBe(
      "WorkflowType = 'remediationWorkflow' AND TaskQueue = 'cordon-remediation' AND CordonStatus = 'completed' AND CordonPlaybook = 'deprovision-account'" +
        " AND CordonTargets = 'u-1' AND CordonAlertSource = 'edr' AND CordonSeverity = 'high'" +
        " AND StartTime >= '2026-03-01T00:00:00.000Z' AND StartTime < '2026-03-08T00:00:00.000Z'",
    );
  });

  it('checks every value again when the query is built, so unchecked filters throw instead of reaching Temporal', () => {
    for (const bad of [{ source: "x' OR 'a'='a" }, { severity: 'high OR 1=1' }, { since: "2026' OR '" }, { until: 'not a time' }] as RunFilters[]) {
      expect(() => visibilityQuery('q', bad), JSON.stringify(bad)).toThrow();
    }
  });
});

describe('the web UI runs list', () => {
  it('offers the source, severity and time filters, keeping what was asked for, escaped', () => {
    const page = runsPage(
      { ui: '/ui', devSignIn: false, identity: { name: 'oscar', roles: ['operator'] } },
      { filters: { source: 'edr"><b>', severity: 'high', since: '2026-03-01T00:00:00Z' }, playbooks: ['deprovision-account'], runs: [], limit: 100 },
    ).value;
    expect(page).toContain('name="source" value="edr&quot;&gt;&lt;b&gt;"');
    expect(page).toMatch(/<select name="severity"><option value="">any<\/option><option value="low">low<\/option><option value="medium">medium<\/option><option value="high" selected>high<\/option>/);
    expect(page).toContain('name="since" value="2026-03-01T00:00:00Z"');
    expect(page).toContain('name="until" value=""');
  });
});

describe('CLI option values', () => {
  it('reads durations with units, plain numbers as seconds, and refuses anything else', () => {
    expect([parseDuration('500ms'), parseDuration('30s'), parseDuration('10m'), parseDuration('2h'), parseDuration('7d'), parseDuration('1.5')]).toEqual([
      500, 30_000, 600_000, 7_200_000, 604_800_000, 1500,
    ]);
    expect([parseDuration('soon'), parseDuration('-5s'), parseDuration('10 minutes'), parseDuration('')]).toEqual([undefined, undefined, undefined, undefined]);
    expect(() => durationArg('--timeout', 1)('forever')).toThrow(/--timeout takes a duration/);
    expect(() => durationArg('--interval', 100)('50ms')).toThrow(/at least 100 ms/);
  });

  it('turns a duration into that long before now for time filters, and passes timestamps on as given', () => {
    const now = () => new Date('2026-03-08T12:00:00.000Z');
    expect(instantArg(now)('7d')).toBe('2026-03-01T12:00:00.000Z');
    expect(instantArg(now)('90m')).toBe('2026-03-08T10:30:00.000Z');
    expect(instantArg(now)('2026-01-01T00:00:00Z')).toBe('2026-01-01T00:00:00Z');
    expect(() => countArg('--page-size')('0')).toThrow(/--page-size takes a whole number/);
    expect(() => countArg('--page-size')('2x')).toThrow();
    expect(countArg('--page-size')('25')).toBe(25);
  });

  it('exits 2 on a page size, a timeout or an interval that does not parse, before asking the API anything', async () => {
    for (const args of [
      ['runs', 'list', '--page-size', '0'],
      ['runs', 'watch', 'run_0', '--timeout', 'forever'],
      ['runs', 'watch', 'run_0', '--interval', '1ms'],
    ]) {
      const err: string[] = [];
      const code = await runCli(['--api', 'http://127.0.0.1:9', '--token', 't', ...args], { write: () => undefined, writeError: (l) => err.push(l), env: {} });
      expect(code, args.join(' ')).toBe(EXIT.usage);
      expect(err.join('\n')).toMatch(/takes a (duration|whole number)/);
    }
  });
});

const target = { system: 'scim', id: 'u-7', display: 'jo.smith' };
const disable: RunAction = { id: 'act_0000000000000001', type: 'DisableAccount', target, reversible: true, preState: { active: true }, postState: { active: false } };
const leave: RunAction = {
  id: 'act_0000000000000002',
  type: 'RemoveGroupMembership',
  target,
  group: { system: 'scim', id: 'g-1', display: 'sales' },
  reversible: true,
  preState: { member: true },
  postState: { member: false },
};

/** A run view at some point of its life; only what `runs watch` reads is filled in. */
function view(status: RunStatus, timeline: [RunStatus, string][], journal: RunView['journal'] = [], extra: Partial<RunView> = {}): RunView {
  return {
    runId: `run_${'a'.repeat(32)}`,
    playbook: 'deprovision-account',
    status,
    alert: { source: 'test-siem', id: 'a-1', kind: 'account.orphaned', severity: 'high', subject: { system: 'scim', userName: 'jo.smith' } },
    requestedBy: 'soc',
    createdAt: '2026-03-01T10:00:00.000Z',
    updatedAt: timeline.at(-1)?.[1] ?? '2026-03-01T10:00:00.000Z',
    plan: { digest: 'f'.repeat(64), observedAt: '2026-03-01T10:00:00.100Z', actions: [disable, leave] },
    decision: null,
    approvals: [],
    voidedApprovals: [],
    pausedReason: null,
    journal,
    timeline: timeline.map(([s, at]) => ({ status: s, at })),
    error: null,
    ...extra,
  } as RunView;
}

const t = (ms: number) => new Date(Date.parse('2026-03-01T10:00:00.000Z') + ms).toISOString();
const evidenceAt = (ms: number) => [{ kind: 'after' as const, at: t(ms), observed: {} }];

describe('runs watch: what a run\'s successive views report', () => {
  it('reports each step as it starts and ends with its duration, each journal change once, and the end with the total', () => {
    const state: WatchState = { steps: 0, actions: new Map() };
    const first = runEvents(state, view('planning', [['observing', t(0)], ['planning', t(200)]]));
    expect(first).toEqual([
      { event: 'step-started', status: 'observing', at: t(0) },
      { event: 'step-ended', status: 'observing', at: t(200), durationMs: 200 },
      { event: 'step-started', status: 'planning', at: t(200) },
    ]);
    const executing: [RunStatus, string][] = [['observing', t(0)], ['planning', t(200)], ['deciding', t(300)], ['executing', t(400)]];
    const second = runEvents(state, view('executing', executing, [{ actionId: disable.id, status: 'applied', evidence: evidenceAt(600) }, { actionId: leave.id, status: 'pending', evidence: [] }]));
    expect(second.map((e) => [e.event, 'status' in e ? e.status : ''])).toEqual([
      ['step-ended', 'planning'],
      ['step-started', 'deciding'],
      ['step-ended', 'deciding'],
      ['step-started', 'executing'],
      ['action', 'applied'],
    ]);
    expect(second[4]).toMatchObject({ actionId: disable.id, type: 'DisableAccount', target: 'jo.smith', at: t(600) });
    // Nothing new: nothing reported.
    expect(runEvents(state, view('executing', executing, [{ actionId: disable.id, status: 'applied', evidence: evidenceAt(600) }]))).toEqual([]);

    const done = runEvents(
      state,
      view('completed', [...executing, ['verifying', t(1000)], ['completed', t(1500)]], [
        { actionId: disable.id, status: 'verified', evidence: evidenceAt(1200) },
        { actionId: leave.id, status: 'verified', evidence: evidenceAt(1300) },
      ]),
    );
    expect(done.map((e) => [e.event, 'status' in e ? e.status : ''])).toEqual([
      ['step-ended', 'executing'],
      ['step-started', 'verifying'],
      ['action', 'verified'],
      ['action', 'verified'],
      ['step-ended', 'verifying'],
      ['finished', 'completed'],
    ]);
    expect(done.at(-1)).toEqual({ event: 'finished', status: 'completed', at: t(1500), durationMs: 1500, error: null });
  });

  it('ends at approval, saying how many approvals of which role are needed, who may not approve, and by when', () => {
    const state: WatchState = { steps: 0, actions: new Map() };
    const waiting = view('awaiting_approval', [['observing', t(0)], ['awaiting_approval', t(100)]], [], {
      decision: {
        outcome: 'approve',
        policies: ['p'],
        requiredApprovals: 2,
        approverRoles: ['approver'],
        policySetHash: 'h',
        reasons: [],
        rejectionRule: 'reject-wins',
        escalation: { afterMs: 3_600_000, roles: ['admin'] },
        approvalExpiresAt: '2026-03-02T10:00:00.000Z',
        approvalStage: 'waiting',
      } as unknown as RunView['decision'],
    });
    const events = runEvents(state, waiting);
    const last = events.at(-1) as Extract<WatchEvent, { event: 'awaiting-approval' }>;
    expect(last).toMatchObject({ event: 'awaiting-approval', required: 2, approvals: 0, approverRoles: ['approver'], requestedBy: 'soc', expiresAt: '2026-03-02T10:00:00.000Z' });
    const text = describeEvent(last, { status: (s) => s, duration: (a, b) => `${(Date.parse(b) - Date.parse(a)) / 1000}s` });
    expect(text).toContain('0 of 2 approval(s)');
    expect(text).toContain('the role approver');
    expect(text).toContain('soc, who requested the run, may not approve it');
    expect(text).toContain('by 2026-03-02T10:00:00.000Z');
    expect(text).toContain('after 3600s the role admin may decide too');
  });

  it('stops at every terminal status and at approval, and at no other status', () => {
    for (const status of RunStatus.options) expect(endsWatch(status), status).toBe(isTerminal[status] || status === 'awaiting_approval');
    expect(endsWatch('some_future_status')).toBe(false);
  });

  it('reports the error of a run that ended badly', () => {
    const failed = view('failed', [['observing', t(0)], ['failed', t(50)]], [], { error: { type: 'TargetNotFound', message: 'no user jo.smith' } });
    const events = runEvents({ steps: 0, actions: new Map() }, failed);
    const text = describeEvent(events.at(-1)!, { status: (s) => s, duration: () => '50 ms' });
    expect(text).toContain('failed');
    expect(text).toContain('run over after 50 ms in all');
    expect(text).toContain('error: TargetNotFound: no user jo.smith');
  });
});
