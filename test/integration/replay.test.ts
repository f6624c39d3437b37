// `cordon replay` end to end: the history routes of the API (fastify.inject and a listening server)
// over a real Temporal dev server, a real worker and a real scim2-server, and the CLI replaying the
// runs' histories in its own process against this checkout's workflow code, or a broken copy of it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT, runCli } from '../../cli/main.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { HISTORIES_MAX } from '../../server/routes/history.js';
import { identityStore } from '../../server/identities.js';
import { historyFromJson, type HistoryJson } from '../../workers/history-json.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { alertFor, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';
import { bundleReorderedWorkflows } from '../replay/reordered-bundle.js';

const token = (name: string) => `tok_${name}_${randomBytes(16).toString('hex')}`;
const tokens = { soc: token('soc'), oscar: token('oscar'), admin: token('admin') };
const identities = identityStore({
  soc: { token: tokens.soc, roles: ['soc'] },
  oscar: { token: tokens.oscar, roles: ['operator'] },
  admin: { token: tokens.admin, roles: ['admin'] },
});
const bearer = (name: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[name]}` });
const UNKNOWN_RUN = `run_${'0'.repeat(32)}`;

let env: RemediationEnv;
let worker: RunningWorker;
let app: CordonServer;
let api: string;
/** Runs on this file's task queue: one completed, one denied. */
let runIds: string[];
/** A run on another task queue: not this deployment's. */
let foreignRunId: string;

beforeAll(async () => {
  env = await startRemediationEnv();
  worker = await startWorker({ taskQueue: env.taskQueue, connectors: { scim: env.connector }, ledger: env.ledger, policy: env.policy });
  app = await buildServer({ temporal: env.client, taskQueue: env.taskQueue, ledger: env.ledger, guardrailState: env.guardrailState, identities, log: pino({ level: 'silent' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  api = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  const ordinary = await env.org.user('rosa', ['engineering', 'vpn-users']);
  const completed = await startRun(env.client, env.taskQueue, alertFor({ userName: ordinary.userName }));
  const guarded = await env.org.user('rosa.bg', ['break-glass']);
  const denied = await startRun(env.client, env.taskQueue, alertFor({ userName: guarded.userName }, { severity: 'critical' }));
  await waitForStatus(completed, ['completed']);
  await waitForStatus(denied, ['denied']);
  runIds = [completed.workflowId, denied.workflowId];
  // Nothing polls this queue: the run stays at its start.
  foreignRunId = (await startRun(env.client, `${env.taskQueue}-elsewhere`, alertFor({ userName: ordinary.userName }))).workflowId;
  // Visibility (which /v1/histories lists from) catches up with the starts.
  const deadline = Date.now() + 30_000;
  while ((await env.client.workflow.count(`TaskQueue = '${env.taskQueue}'`)).count < runIds.length) {
    if (Date.now() > deadline) throw new Error('the runs never showed in Temporal visibility');
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await env?.close();
});

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--api', api, '--token', tokens.oscar, ...args], { write: (l) => out.push(l), writeError: (l) => err.push(l), env: {} });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** The JSON Lines of a /v1/histories answer. */
function linesOf(body: string): { runId: string; history?: HistoryJson; error?: unknown }[] {
  return body
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as { runId: string; history?: HistoryJson });
}

describe('GET /v1/runs/:runId/history', () => {
  it("answers the run's history in Temporal's JSON form, which replays against the current workflow code", async () => {
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${runIds[0]}/history`, headers: bearer('oscar') });
    expect(response.statusCode).toBe(200);
    const history = response.json<HistoryJson>();
    expect(history.events[0]).toMatchObject({ eventId: '1', eventType: 'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED', workflowExecutionStartedEventAttributes: { workflowType: { name: 'remediationWorkflow' } } });
    expect(history.events.some((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED')).toBe(true);
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, historyFromJson(history), runIds[0])).resolves.toBeUndefined();
  });

  it('answers 404 for an unknown run, 400 for a malformed id, 403 without the operator or admin role, 401 without a token', async () => {
    const get = (url: string, headers: Record<string, string> = bearer('admin')) => app.inject({ method: 'GET', url, headers });
    const unknown = await get(`/v1/runs/${UNKNOWN_RUN}/history`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: { type: 'NotFound', message: `no run ${UNKNOWN_RUN}` } });
    expect((await get('/v1/runs/run_nope/history')).statusCode).toBe(400);
    const forbidden = await get(`/v1/runs/${runIds[0]}/history`, bearer('soc'));
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.type).toBe('Forbidden');
    expect((await get(`/v1/runs/${runIds[0]}/history`, {})).statusCode).toBe(401);
  });
});

describe('GET /v1/histories', () => {
  it("streams the histories of this deployment's runs started since then, as JSON Lines, and no other run's", async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/histories?since=1h', headers: bearer('oscar') });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('application/x-ndjson');
    expect(response.headers['x-cordon-truncated']).toBe('false');
    const lines = linesOf(response.body);
    expect(lines.map((l) => l.runId).sort()).toEqual([...runIds].sort());
    expect(lines.map((l) => l.runId)).not.toContain(foreignRunId);
    for (const line of lines) expect(line.history?.events[0]?.eventType).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_STARTED');
  });

  it('streams nothing for a period after the runs started, and takes an ISO date-time', async () => {
    const since = new Date(Date.now() + 60_000).toISOString();
    const response = await app.inject({ method: 'GET', url: `/v1/histories?since=${encodeURIComponent(since)}`, headers: bearer('oscar') });
    expect(response.statusCode).toBe(200);
    expect(linesOf(response.body)).toEqual([]);
  });

  it('stops at the limit and says so in a header', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/histories?since=1h&limit=1', headers: bearer('oscar') });
    expect(response.headers['x-cordon-truncated']).toBe('true');
    expect(linesOf(response.body)).toHaveLength(1);
  });

  it('refuses a since that is neither a duration nor a date, a limit above the cap, and callers without the role', async () => {
    const bad = await app.inject({ method: 'GET', url: '/v1/histories?since=last-week', headers: bearer('oscar') });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('since');
    const many = await app.inject({ method: 'GET', url: `/v1/histories?since=1h&limit=${HISTORIES_MAX + 1}`, headers: bearer('oscar') });
    expect(many.statusCode).toBe(400);
    expect(many.json().error.message).toContain('limit');
    expect((await app.inject({ method: 'GET', url: '/v1/histories?since=1h', headers: bearer('soc') })).statusCode).toBe(403);
  });

  it('is in the OpenAPI document with its parameters, as is the single-run route', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, { get?: { parameters?: { name: string }[] } }> }>();
    expect(doc.paths['/v1/histories']?.get?.parameters?.map((p) => p.name).sort()).toEqual(['limit', 'since']);
    expect(doc.paths['/v1/runs/{runId}/history']?.get?.parameters?.map((p) => p.name)).toEqual(['runId']);
  });
});

describe('cordon replay', () => {
  it('replays a run against the workflow code of this checkout and says it replayed', async () => {
    const { code, out } = await cli(['replay', runIds[0]!]);
    expect(code).toBe(EXIT.ok);
    expect(out).toMatch(new RegExp(`^ok\\s+${runIds[0]}\\s+\\d+ events$`, 'm'));
    expect(out).toContain('1 replayed, 0 failed');
  });

  it('exits 4 with a clear message for an unknown run, and 2 when given neither a run nor --all', async () => {
    const unknown = await cli(['replay', UNKNOWN_RUN]);
    expect(unknown.code).toBe(EXIT.notFound);
    expect(unknown.err).toContain(`NotFound: no run ${UNKNOWN_RUN}`);
    expect((await cli(['replay'])).code).toBe(EXIT.usage);
    expect((await cli(['replay', runIds[0]!, '--all'])).code).toBe(EXIT.usage);
  });

  it('replays every run started in the period with --all --since, and sums up', async () => {
    const { code, out } = await cli(['replay', '--all', '--since', '1h']);
    expect(code).toBe(EXIT.ok);
    for (const runId of runIds) expect(out).toMatch(new RegExp(`^ok\\s+${runId}\\s+\\d+ events$`, 'm'));
    expect(out).not.toContain(foreignRunId);
    expect(out).toContain(`${runIds.length} replayed, 0 failed`);
  });

  it('reports the first nondeterminism and exits 11 when the workflow code calls its activities in another order', async () => {
    const bundlePath = join(await mkdtemp(join(tmpdir(), 'cordon-replay-')), 'reordered-bundle.js');
    await writeFile(bundlePath, (await bundleReorderedWorkflows()).code);

    const { code, out } = await cli(['replay', runIds[0]!, '--bundle', bundlePath]);
    expect(code).toBe(EXIT.replayFailed);
    expect(out).toMatch(new RegExp(`^NONDETERMINISM\\s+${runIds[0]} at event \\d+: \\[TMPRL1100\\] Nondeterminism error: .*planRemediation`, 'm'));
    expect(out).toContain('1 replayed, 1 failed');

    const json = await cli(['--json', 'replay', '--all', '--since', '1h', '--bundle', bundlePath]);
    expect(json.code).toBe(EXIT.replayFailed);
    const answer = JSON.parse(json.out) as { replayed: number; failed: number; runs: { runId: string; ok: boolean; failure?: { kind: string; eventId: number | null } }[] };
    expect(answer).toMatchObject({ replayed: runIds.length, failed: runIds.length });
    for (const run of answer.runs) expect(run.failure).toMatchObject({ kind: 'nondeterminism', eventId: expect.any(Number) });
  });
});
