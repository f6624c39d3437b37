// Metrics and traces of one run through the API, on a real Temporal dev server, a real worker and a
// real scim2-server: one trace from the alert's HTTP request through the workflow to its activities,
// Cordon's metrics on the API's and the worker's /metrics, and the Temporal SDK's own metrics. The
// traced workflow bundle also replays the captured histories, and a traced run replays without it.
import { temporalMetricsPort } from '../support/temporal-metrics-runtime.js';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clientTracingInterceptors, startTracing, type Tracing } from '../../config/tracing.js';
import type { RunView } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { createCordonWorker, WORKFLOWS_PATH } from '../../workers/build.js';
import { historyFromJson, type HistoryJson } from '../../workers/history-json.js';
import { createWorkerMetrics, serveMetrics, type MetricsListener, type WorkerMetrics } from '../../workers/metrics.js';
import { WORKFLOW_TRACING_MODULES, workerTracing } from '../../workers/tracing.js';
import { testSigningKey, testVerifyKeys } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { alertFor, expectReplays, quietLog } from '../support/temporal.js';

const HISTORIES_DIR = fileURLToPath(new URL('../replay/histories/', import.meta.url));
const token = (name: string) => `tok_${name}_${randomBytes(16).toString('hex')}`;
const tokens = { soc: token('soc'), bob: token('bob'), oscar: token('oscar') };
const identities = identityStore({
  soc: { token: tokens.soc, roles: ['soc'] },
  bob: { token: tokens.bob, roles: ['approver'] },
  oscar: { token: tokens.oscar, roles: ['operator'] },
});
const bearer = (name: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[name]}` });

const spans = new InMemorySpanExporter();
let tracing: Tracing;
let env: RemediationEnv;
let bundleCode: string;
let connection: NativeConnection;
let worker: Worker;
let running: Promise<void>;
let metrics: WorkerMetrics;
let workerMetrics: MetricsListener;
let clientConnection: Connection;
let app: CordonServer;

beforeAll(async () => {
  tracing = startTracing('cordon-test', new SimpleSpanProcessor(spans));
  env = await startRemediationEnv();
  await env.guardrailState.setKillSwitch({ kind: 'playbook', name: 'quarantine-agent' }, true, 'admin', 'telemetry test');
  bundleCode = (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, workflowInterceptorModules: [...WORKFLOW_TRACING_MODULES], logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never })).code;
  connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  metrics = createWorkerMetrics({ guardrailState: env.guardrailState });
  worker = await createCordonWorker({
    connection,
    namespace: 'default',
    taskQueue: env.taskQueue,
    resources: { connectors: { scim: env.connector }, ledger: env.ledger, policy: env.policy, guardrailState: env.guardrailState, approvalKeys: testVerifyKeys },
    log: quietLog,
    workflowBundle: { code: bundleCode },
    shutdownGraceMs: 2000,
    metrics,
    tracing: workerTracing(tracing),
  });
  running = worker.run();
  workerMetrics = await serveMetrics(metrics.registry, { host: '127.0.0.1', port: 0 });
  clientConnection = await Connection.connect({ address: inject('temporalAddress') });
  const temporal = new Client({ connection: clientConnection, namespace: 'default', interceptors: clientTracingInterceptors() });
  app = await buildServer({ temporal, taskQueue: env.taskQueue, ledger: env.ledger, guardrailState: env.guardrailState, identities, approvalSigner: testSigningKey, log: quietLog });
});

afterAll(async () => {
  await app?.close();
  worker?.shutdown();
  await running;
  await connection?.close();
  await clientConnection?.close();
  await workerMetrics?.close();
  await env?.close();
  await tracing?.shutdown();
});

async function waitForRun(runId: string, statuses: string[]): Promise<RunView> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers: bearer('oscar') });
    if (response.statusCode === 200 && statuses.includes(response.json<RunView>().status)) return response.json<RunView>();
    if (Date.now() > deadline) throw new Error(`run ${runId} never reached ${statuses.join('|')}: ${response.body}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The value of one sample in Prometheus' text format, matched by name and (a subset of) labels. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

const scrape = async (url: string) => {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return response.text();
};

describe('one run through the API, traced and measured', () => {
  let runId: string;
  let userName: string;

  beforeAll(async () => {
    const user = await env.org.user('otel', ['engineering', 'vpn-users']);
    userName = user.userName;
    const response = await app.inject({ method: 'POST', url: '/v1/alerts', headers: { ...bearer('soc'), 'content-type': 'application/json' }, payload: JSON.stringify(alertFor({ userName })) });
    expect(response.statusCode).toBe(202);
    runId = response.json<{ runId: string }>().runId;
    expect((await waitForRun(runId, ['completed', 'failed', 'needs_human'])).status).toBe('completed');
  });

  it('traces the alert request, the workflow start and run, and every activity in one trace', async () => {
    const named = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
    const traceOf = async (id: string) => {
      const start = await waitFor(`the start span of ${id}`, () => named('StartWorkflow:remediationWorkflow').find((s) => s.attributes.temporalWorkflowId === id));
      const request = named('POST /v1/alerts').find((s) => s.spanContext().spanId === start.parentSpanId);
      expect(request?.kind, 'the POST /v1/alerts span is the parent of the workflow start').toBe(SpanKind.SERVER);
      const traceId = start.spanContext().traceId;
      return { start, inTrace: (name: string) => named(name).find((s) => s.spanContext().traceId === traceId), all: () => spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId) };
    };

    // The live run stays open for its rollback window, so its workflow span has not ended yet: its
    // activities hang under one parent (that span), which is neither the request nor the start.
    const live = await traceOf(runId);
    const scheduledLive: ReadableSpan[] = [];
    for (const activity of ['observeTarget', 'planRemediation', 'decidePolicy', 'applyAction', 'verifyActions']) {
      const scheduled = await waitFor(`StartActivity:${activity}`, () => live.inTrace(`StartActivity:${activity}`));
      const executed = await waitFor(`RunActivity:${activity}`, () => live.inTrace(`RunActivity:${activity}`));
      expect(executed.parentSpanId, activity).toBe(scheduled.spanContext().spanId);
      scheduledLive.push(scheduled);
    }
    const parents = new Set(scheduledLive.map((s) => s.parentSpanId));
    expect(parents.size).toBe(1);
    expect(parents.has(live.start.spanContext().spanId)).toBe(false);

    // A dry run ends at once: its workflow span is the start's child and the parent of its activities.
    const dryRunUser = await env.org.user('otel-dry', ['sales']);
    const dryRun = await app.inject({ method: 'POST', url: '/v1/alerts', headers: { ...bearer('soc'), 'content-type': 'application/json' }, payload: JSON.stringify(alertFor({ userName: dryRunUser.userName }, { mode: 'dry-run' })) });
    expect(dryRun.statusCode).toBe(202);
    const dryRunId = dryRun.json<{ runId: string }>().runId;
    await waitForRun(dryRunId, ['dry_run_completed']);
    const dry = await traceOf(dryRunId);
    const workflowRun = await waitFor('the dry run workflow span', () => dry.inTrace('RunWorkflow:remediationWorkflow'));
    expect(workflowRun.parentSpanId).toBe(dry.start.spanContext().spanId);
    const observe = await waitFor('the dry run observeTarget span', () => dry.inTrace('StartActivity:observeTarget'));
    expect(observe.parentSpanId).toBe(workflowRun.spanContext().spanId);
    expect(dry.all().some((s) => s.name === 'RunActivity:applyAction')).toBe(false);
  });

  it("serves Cordon's run metrics on the worker's /metrics, counted once per transition, with no identities", async () => {
    const text = await scrape(workerMetrics.url);
    const playbook = 'deprovision-account';
    // The live run and the dry run.
    expect(sample(text, 'cordon_runs_total', { status: 'observing', playbook })).toBe(2);
    expect(sample(text, 'cordon_runs_total', { status: 'dry_run_completed', playbook })).toBe(1);
    expect(sample(text, 'cordon_runs_total', { status: 'executing', playbook })).toBe(1);
    expect(sample(text, 'cordon_runs_total', { status: 'completed', playbook })).toBe(1);
    expect(sample(text, 'cordon_alert_to_first_action_seconds_count', { playbook })).toBe(1);
    expect(sample(text, 'cordon_alert_to_first_action_seconds_sum', { playbook })).toBeGreaterThan(0);
    expect(sample(text, 'cordon_compensations_total', { playbook }) ?? 0).toBe(0);
    expect(sample(text, 'cordon_kill_switch_engaged', { scope: 'playbook', name: 'quarantine-agent' })).toBe(1);
    expect(sample(text, 'cordon_kill_switch_engaged', { scope: 'global' })).toBe(0);
    expect(text).toContain('# TYPE cordon_time_to_approve_seconds histogram');
    expect(text).toContain('# TYPE cordon_verification_failures_total counter');
    for (const identity of [userName, runId, tokens.soc]) expect(text).not.toContain(identity);
  });

  it("serves request and kill-switch metrics on the API's /metrics without authentication", async () => {
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    const text = response.body;
    expect(sample(text, 'cordon_http_requests_total', { method: 'POST', route: '/v1/alerts', status_code: '202' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'cordon_http_requests_total', { method: 'GET', route: '/v1/runs/:runId', status_code: '200' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'cordon_kill_switch_engaged', { scope: 'playbook', name: 'quarantine-agent' })).toBe(1);
    for (const identity of [userName, runId, tokens.soc]) expect(text).not.toContain(identity);
  });

  it("serves the Temporal SDK's own metrics on their port", async () => {
    const text = await scrape(`http://127.0.0.1:${temporalMetricsPort}/metrics`);
    expect(text).toMatch(/^temporal_workflow_task_execution_latency\w*/m);
    expect(text).toMatch(/^temporal_activity_execution_latency\w*/m);
    expect(text).toMatch(new RegExp(`task_queue="${env.taskQueue}"`));
  });

  it('records the time to approve when an approval completes the quorum', async () => {
    const user = await env.org.user('otel-approve', ['jira-users']);
    const response = await app.inject({ method: 'POST', url: '/v1/alerts', headers: { ...bearer('soc'), 'content-type': 'application/json' }, payload: JSON.stringify(alertFor({ userName: user.userName }, { severity: 'low' })) });
    expect(response.statusCode).toBe(202);
    const approvalRun = response.json<{ runId: string }>().runId;
    const waiting = await waitForRun(approvalRun, ['awaiting_approval']);
    const approved = await app.inject({ method: 'POST', url: `/v1/runs/${approvalRun}/approvals`, headers: { ...bearer('bob'), 'content-type': 'application/json' }, payload: JSON.stringify({ decision: 'approve', planDigest: waiting.plan!.digest }) });
    expect(approved.statusCode).toBe(200);
    await waitForRun(approvalRun, ['completed']);
    const text = await scrape(workerMetrics.url);
    expect(sample(text, 'cordon_time_to_approve_seconds_count', { playbook: 'deprovision-account' })).toBe(1);
    expect(sample(text, 'cordon_runs_total', { status: 'awaiting_approval', playbook: 'deprovision-account' })).toBe(1);
    expect(sample(text, 'cordon_runs_total', { status: 'completed', playbook: 'deprovision-account' })).toBe(2);
  });

  it('replays the traced run against the workflow code without the tracing interceptors', async () => {
    await expectReplays(env.client.workflow.getHandle(runId));
  });
});

describe('the traced workflow bundle', () => {
  it('replays every captured history, written without the tracing interceptors', async () => {
    const names = readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json'));
    expect(names.length).toBeGreaterThan(0);
    const histories = await Promise.all(names.map(async (name) => ({ workflowId: name, history: historyFromJson(JSON.parse(await readFile(join(HISTORIES_DIR, name), 'utf8')) as HistoryJson) })));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: { code: bundleCode }, sinks: workerTracing(tracing).sinks, replayName: 'replay-traced' }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${(result.error as Error).message}`);
    }
    expect(failures).toEqual([]);
  });
});
