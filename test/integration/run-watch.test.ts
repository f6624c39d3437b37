// `cordon runs watch` against real runs through the API, on a real Temporal dev server, a real
// worker and a real scim2-server: steps in order with durations until the run completes or needs
// approval; a clear non-zero exit for an unknown run and when the timeout passes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../cli/main.js';
import type { WatchEvent } from '../../cli/watch.js';
import type { Alert } from '../../domain/index.js';
import { startApiEnv, type ApiEnv } from '../support/api-env.js';
import { alertFor } from '../support/temporal.js';

let api: ApiEnv;

beforeAll(async () => {
  api = await startApiEnv();
});

afterAll(async () => {
  await api?.close();
});

async function send(prefix: string, groups: string[], overrides: Partial<Alert> = {}): Promise<string> {
  const user = await api.env.org.user(prefix, groups);
  const response = await api.post('/v1/alerts', 'soc', alertFor({ userName: user.userName }, overrides));
  expect(response.statusCode, response.body).toBe(202);
  return response.json<{ runId: string }>().runId;
}

/** The statuses of the `started` and `ended` lines, in the order printed. */
function printedSteps(lines: string[], verb: 'started' | 'ended'): string[] {
  return lines.flatMap((line) => {
    const match = new RegExp(`^\\s+\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\\s+(\\w+)\\s+${verb}\\b`).exec(line);
    return match?.[1] ? [match[1]] : [];
  });
}

describe('cordon runs watch', () => {
  it("prints each step as it starts and ends, with durations, and each action's journal status as it changes, until the run completes", async () => {
    const runId = await send('watch', ['sales', 'vpn-users']);
    const { code, out, err } = await api.cli('oscar', ['runs', 'watch', runId, '--interval', '100ms', '--timeout', '60s']);
    expect(code, err.join('\n')).toBe(EXIT.ok);
    expect(out[0]).toMatch(new RegExp(`^${runId}\\s+\\w+\\s+playbook deprovision-account: account.orphaned for watch\\.`));
    expect(printedSteps(out, 'started')).toEqual(['observing', 'planning', 'deciding', 'executing', 'verifying']);
    expect(printedSteps(out, 'ended')).toEqual(['observing', 'planning', 'deciding', 'executing', 'verifying']);
    for (const line of out.filter((l) => / ended after /.test(l))) expect(line).toMatch(/ended after \d+(\.\d)? (ms|s)$/);
    // Every step's end comes after its start, and the next step starts where it ended.
    const stepLines = out.filter((l) => /\sstarted$|\sended after /.test(l)).map((l) => l.trim().split(/\s+/).slice(1, 3).join(' '));
    expect(stepLines.slice(0, 4)).toEqual(['observing started', 'observing ended', 'planning started', 'planning ended']);
    const actions = out.filter((l) => /action act_\w+ \(/.test(l));
    expect(actions.filter((l) => l.endsWith(': verified'))).toHaveLength(3);
    expect(actions.some((l) => l.includes('(DisableAccount on '))).toBe(true);
    expect(out.at(-1)).toMatch(/completed\s+run over after \d+(\.\d)? (ms|s) in all$/);
    expect((await api.waitForRun(runId, ['completed'])).status).toBe('completed');
  });

  it('stops at approval, saying who must approve and by when', async () => {
    const runId = await send('watch-low', ['sales'], { severity: 'low' });
    const { code, out } = await api.cli('oscar', ['runs', 'watch', runId, '--interval', '100ms']);
    expect(code).toBe(EXIT.ok);
    expect(printedSteps(out, 'started')).toEqual(['observing', 'planning', 'deciding', 'awaiting_approval']);
    const text = out.join('\n');
    expect(text).toContain('awaiting approval: 0 of 1 approval(s) given; approvers need the role approver, and soc, who requested the run, may not approve it');
    const view = await api.waitForRun(runId, ['awaiting_approval']);
    expect(text).toContain(`decide by ${view.decision?.approvalExpiresAt}`);
  });

  it('prints one JSON object per event with --json, ending with the run finished', async () => {
    const runId = await send('watch-json', ['sales'], { severity: 'critical' });
    const { code, out } = await api.cli('oscar', ['--json', 'runs', 'watch', runId, '--interval', '100ms']);
    expect(code).toBe(EXIT.ok);
    const events = out.map((line) => JSON.parse(line) as WatchEvent);
    expect(events[0]).toMatchObject({ event: 'watching', runId, playbook: 'deprovision-account' });
    expect(events.filter((e) => e.event === 'step-started').map((e) => (e as { status: string }).status)).toEqual(['observing', 'planning', 'deciding', 'executing', 'verifying']);
    for (const e of events) if (e.event === 'step-ended') expect(e.durationMs).toBeGreaterThanOrEqual(0);
    expect(events.at(-1)).toMatchObject({ event: 'finished', status: 'completed', error: null, durationMs: expect.any(Number) });
  });

  it('exits 4 naming the run when there is no such run', async () => {
    const runId = `run_${'0'.repeat(32)}`;
    const { code, err } = await api.cli('oscar', ['runs', 'watch', runId, '--timeout', '5s']);
    expect(code).toBe(EXIT.notFound);
    expect(err.join('\n')).toContain(`NotFound: no run ${runId}`);
  });

  it('exits non-zero saying where the run stands when the timeout passes, and leaves the run alone', async () => {
    const engaged = await api.post('/v1/kill-switch', 'admin', { scope: { kind: 'playbook', name: 'deprovision-account' }, engaged: true, reason: 'watch test' });
    expect(engaged.statusCode).toBe(200);
    try {
      const runId = await send('watch-paused', ['sales']);
      await api.waitForRun(runId, ['paused']);
      const startedAt = Date.now();
      const { code, out, err } = await api.cli('oscar', ['runs', 'watch', runId, '--timeout', '1500ms', '--interval', '200ms']);
      expect(code).toBe(EXIT.error);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1400);
      expect(Date.now() - startedAt).toBeLessThan(10_000);
      expect(printedSteps(out, 'started').at(-1)).toBe('paused');
      expect(err.join('\n')).toContain(`run ${runId} is still paused after the timeout of 1.5 s; stopped watching (the run goes on)`);
      expect((await api.waitForRun(runId, ['paused'])).status).toBe('paused');
    } finally {
      await api.post('/v1/kill-switch', 'admin', { scope: { kind: 'playbook', name: 'deprovision-account' }, engaged: false, reason: 'watch test over' });
    }
  });
});
