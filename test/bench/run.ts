// `npm run bench [-- --runs N]`: what Cordon costs on top of Temporal, on one local Temporal dev server.
//  (a) N auto-approved deprovision runs against N runs of a bare workflow that schedules the same
//      activities and local activities as no-ops, each batch started all at once: overhead ratio.
//  (b) latency from POST /v1/alerts to the ledger's first `action.applied`, at concurrency 1 and 20.
// Everything is real and local (127.0.0.1): Temporal dev server in memory, scim2-server, an in-process
// worker with the real activities and SQLite ledger, and the HTTP API. Prints a table to stdout
// (progress goes to stderr) and writes bench/results.json.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import Table from 'cli-table3';
import { pino } from 'pino';
import { z } from 'zod';
import { createScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import { PROJECT_ROOT } from '../../config/config.js';
import { freePort } from '../../dev/processes.js';
import { ensureScimServer } from '../../dev/python-tools.js';
import { provisionTemporalCli } from '../../dev/temporal-cli.js';
import { startTemporalDevServer } from '../../dev/temporal-server.js';
import { RunId, runIdFor, type Alert, type Identity } from '../../domain/index.js';
import { playbookForKind } from '../../playbooks/registry.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine } from '../../policies/engine.js';
import { loadGuardrails } from '../../policies/guardrails.js';
import { openSqliteGuardrailState } from '../../store/guardrail-state.js';
import { buildServer } from '../../server/app.js';
import { IdentitiesFile, identityStore } from '../../server/identities.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';
import { createCordonWorker } from '../../workers/build.js';
import { installTemporalRuntime } from '../../workers/runtime.js';
import type { RemediationInput, remediationWorkflow } from '../../workflows/remediation.js';
import { createBareActivities } from './bare-activities.js';
import { cpuSpent, cpuTimes, type CpuTimes } from './cpu.js';
import type { BareStep, bareWorkflow } from './bare-workflows.js';
import { startBenchScim, seedBenchUsers, type BenchUser } from './scim.js';
import { percentile, pool, withTimeout } from './stats.js';

const NAMESPACE = 'default';
const ALERT_KIND = 'account.orphaned';
/** Runs of each kind before anything is measured: bundles loaded, connections and caches warm. */
const WARMUP_RUNS = 4;
const WARMUP_ALERTS = 3;
const C1_ALERTS = 30;
const C20_ALERTS = 60;
const C20_IN_FLIGHT = 20;
const PHASE_TIMEOUT_MS = 120_000;
const BARE_WORKFLOWS_PATH = fileURLToPath(new URL('./bare-workflows.ts', import.meta.url));
const RESULTS_PATH = join(PROJECT_ROOT, 'bench', 'results.json');

const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);
// Errors only, and on stderr: stdout carries the table.
const quietLog = pino({ level: 'error' }, pino.destination(2));

/** What the benchmark measured; written to bench/results.json. */
interface BenchResults {
  overheadRatio: number;
  latencyMs: { c1: LatencySummary; c20: LatencySummary };
  runs: number;
  cordonMs: number;
  bareMs: number;
  activitiesPerRun: number;
  activityBreakdown: { activities: number; localActivities: number };
  /** `loadAvg1m` is the 1-minute load average when the benchmark started: other work on the machine skews every figure. */
  machine: { cpus: number; node: string; loadAvg1m: number };
  /** Wall time and the CPU each process used, per measured phase. */
  phases: Record<Phase, { wallMs: number; cpuMs: CpuTimes }>;
}

type Phase = 'cordon' | 'bare' | 'c1' | 'c20';

interface LatencySummary {
  p50: number;
  p99: number;
  n: number;
}

/** A bad command line: reported without a stack. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

function parseOptions(): { runs: number } {
  let values: { runs?: string | undefined };
  try {
    ({ values } = parseArgs({ options: { runs: { type: 'string' } }, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nusage: npm run bench [-- --runs N]`);
  }
  const runs = values.runs === undefined ? 40 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new UsageError(`--runs: must be an integer from 1 to 1000, got ${JSON.stringify(values.runs)}`);
  return { runs };
}

/** Things to stop at the end, newest first; each runs once even if called again (signal, then finally). */
class Teardown {
  private readonly steps: { name: string; run: () => Promise<void> }[] = [];

  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  async run(): Promise<void> {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await withTimeout(`stopping ${step.name}`, 20_000, step.run());
      } catch (error) {
        progress(`could not stop ${step.name}: ${(error as Error).message}`);
      }
    }
  }
}

/** A worker running in this process; `guard` fails a phase as soon as the worker dies. */
interface RunningWorker {
  guard<T>(promise: Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

function runWorker(name: string, worker: Worker): RunningWorker {
  let stopping = false;
  const running = worker.run();
  const died = new Promise<never>((_, reject) => {
    running.then(
      () => !stopping && reject(new Error(`the ${name} worker stopped during the benchmark`)),
      (error: unknown) => !stopping && reject(new Error(`the ${name} worker failed: ${(error as Error).message}`, { cause: error })),
    );
  });
  died.catch(() => undefined);
  return {
    guard: (promise) => Promise.race([promise, died]),
    async stop() {
      stopping = true;
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running.catch((error: unknown) => progress(`the ${name} worker ended with: ${(error as Error).message}`));
    },
  };
}

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

/**
 * The steps of a finished run, in order: each ActivityTaskScheduled is a regular activity, each
 * local-activity marker a local activity (patch markers are skipped).
 */
function stepsOf(history: History): BareStep[] {
  const steps: BareStep[] = [];
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes) steps.push('activity');
    else if (event.markerRecordedEventAttributes) {
      const marker = event.markerRecordedEventAttributes.markerName;
      // A patch marker (`patched()`) records which code path the run took; it runs no code.
      if (marker === 'core_patch') continue;
      if (marker !== 'core_local_activity') throw new Error(`unexpected marker ${marker ?? '(unnamed)'} in a deprovision run's history`);
      steps.push('local');
    }
  }
  return steps;
}

const countOf = (steps: readonly BareStep[], kind: BareStep) => steps.filter((s) => s === kind).length;

/** Starts `count` workflows at once and waits until all have completed; the wall time covers both. */
async function concurrentBatch<R>(count: number, start: (i: number) => Promise<WorkflowHandle>): Promise<{ ms: number; handles: WorkflowHandle[]; results: R[] }> {
  const started = performance.now();
  const handles = await Promise.all(Array.from({ length: count }, (_, i) => start(i)));
  const results = (await Promise.all(handles.map((h) => h.result()))) as R[];
  return { ms: performance.now() - started, handles, results };
}

const Accepted = z.object({ runId: RunId, duplicate: z.boolean() });

async function main(): Promise<void> {
  const { runs } = parseOptions();
  const teardown = new Teardown();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: stopping everything`);
    void teardown.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const dir = await mkdtemp(join(tmpdir(), 'cordon-bench-'));
  let keepDir = true;
  teardown.add('the scratch directory', async () => {
    if (keepDir) progress(`logs and ledger kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  });
  try {
    const results = await benchmark(runs, dir, teardown);
    printResults(results);
    await mkdir(join(PROJECT_ROOT, 'bench'), { recursive: true });
    await writeFile(RESULTS_PATH, `${JSON.stringify(results, null, 2)}\n`);
    progress(`wrote ${RESULTS_PATH}`);
    keepDir = false;
  } finally {
    await teardown.run();
  }
}

async function benchmark(runs: number, dir: string, teardown: Teardown): Promise<BenchResults> {
  const benchStarted = performance.now();
  const loadAvg1m = round(loadavg()[0] ?? 0, 2);
  if (loadAvg1m > cpus().length / 2) progress(`warning: the 1-minute load average is ${loadAvg1m} on ${cpus().length} CPUs; other work will skew the figures`);
  const usersNeeded = WARMUP_RUNS + runs + WARMUP_ALERTS + C1_ALERTS + C20_ALERTS;

  // --- Peers: Temporal dev server and scim2-server, both on 127.0.0.1 ---
  const [cli, tools] = await Promise.all([provisionTemporalCli({ projectRoot: PROJECT_ROOT, log: progress }), ensureScimServer(PROJECT_ROOT, 'python3', progress)]);
  const [temporal, scim] = await Promise.all([
    startTemporalDevServer({ cliPath: cli.path, port: await freePort(), logFile: join(dir, 'temporal.log') }).then((server) => {
      teardown.add('the Temporal dev server', () => server.stop());
      return server;
    }),
    startBenchScim(tools.scim2Server, join(dir, 'scim.log')).then((server) => {
      teardown.add('scim2-server', () => server.stop());
      return server;
    }),
  ]);
  progress(`Temporal dev server at ${temporal.address} (pid ${temporal.process.pid}), scim2-server at ${scim.url} (pid ${scim.process.pid})`);

  const seedStarted = performance.now();
  const users = await withTimeout('seeding users', PHASE_TIMEOUT_MS, seedBenchUsers(scim.client, usersNeeded));
  progress(`seeded ${users.length} users, each in 3 groups, in ${Math.round(performance.now() - seedStarted)} ms`);
  let nextUser = 0;
  const takeUser = (): BenchUser => {
    const user = users[nextUser++];
    if (!user) throw new Error(`ran out of seeded users after ${users.length}`);
    return user;
  };

  // --- Workers (in this process) and the API ---
  installTemporalRuntime(quietLog);
  const ledger: Ledger = openSqliteLedger({ path: join(dir, 'ledger.sqlite') });
  teardown.add('the ledger', () => ledger.close());
  const policy = await loadPolicyEngine(DEFAULT_POLICY_DIR);
  // Guardrails as a deployment has them (a budget reserved and a kill switch checked before every
  // mutation), with a budget large enough never to pause the benchmark, and no rollback window so that
  // a completed run's workflow ends (its result is what the benchmark waits for).
  const guardrailsFile = join(dir, 'guardrails.yaml');
  await writeFile(guardrailsFile, 'version: 1\nplaybooks:\n  deprovision-account:\n    rollbackWindow: 0s\nbudgets:\n  - name: bench-disable\n    action: DisableAccount\n    limit: 1000000\n    window: 1h\n');
  const guardrails = await loadGuardrails(guardrailsFile);
  const guardrailState = openSqliteGuardrailState({ path: join(dir, 'ledger.sqlite') });
  teardown.add('the guardrail state', () => guardrailState.close());
  const nativeConnection = await NativeConnection.connect({ address: temporal.address });
  teardown.add('the worker connection', () => nativeConnection.close());

  const suffix = randomBytes(4).toString('hex');
  const cordonQueue = `bench-cordon-${suffix}`;
  const bareQueue = `bench-bare-${suffix}`;
  const bundleStarted = performance.now();
  const [cordonWorker, bareWorker] = await Promise.all([
    createCordonWorker({
      connection: nativeConnection,
      namespace: NAMESPACE,
      taskQueue: cordonQueue,
      resources: { ledger, policy, guardrails, guardrailState, connectors: { scim: createScimConnector('scim', { baseUrl: scim.url, bearerToken: scim.token }) } },
      log: quietLog,
    }),
    Worker.create({
      connection: nativeConnection,
      namespace: NAMESPACE,
      taskQueue: bareQueue,
      workflowsPath: BARE_WORKFLOWS_PATH,
      activities: createBareActivities(),
      shutdownGraceTime: '10s',
    }),
  ]);
  progress(`workers created (workflow code bundled) in ${Math.round(performance.now() - bundleStarted)} ms`);
  const cordon = runWorker('Cordon', cordonWorker);
  teardown.add('the Cordon worker', () => cordon.stop());
  const bare = runWorker('bare', bareWorker);
  teardown.add('the bare worker', () => bare.stop());

  const clientConnection = await Connection.connect({ address: temporal.address });
  teardown.add('the client connection', () => clientConnection.close());
  const client = new Client({ connection: clientConnection, namespace: NAMESPACE });

  const socToken = randomBytes(24).toString('base64url');
  const app = await buildServer({
    temporal: client,
    taskQueue: cordonQueue,
    ledger,
    guardrailState,
    identities: identityStore(IdentitiesFile.parse({ soc: { token: socToken, roles: ['soc'] } })),
    log: quietLog,
  });
  const apiUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  teardown.add('the API', () => app.close());
  progress(`API listening at ${apiUrl}`);

  // --- How runs are started ---
  const playbook = playbookForKind(ALERT_KIND);
  if (!playbook) throw new Error(`no playbook handles ${ALERT_KIND}`);
  const requestedBy: Identity = { name: 'soc', roles: ['soc'] };
  let alertCounter = 0;
  const alertFor = (user: BenchUser): Alert => ({
    source: 'bench',
    id: `bench-${suffix}-${++alertCounter}`,
    kind: ALERT_KIND,
    severity: 'high',
    subject: { system: 'scim', userName: user.userName },
  });

  /** Starts a deprovision run directly on Temporal, with the input the API would build. */
  const startCordonRun = (user: BenchUser) => {
    const alert = alertFor(user);
    const runId = runIdFor(alert.source, alert.id);
    const input: RemediationInput = { runId, playbook: playbook.name, alert, requestedBy, receivedAt: new Date().toISOString() };
    return client.workflow.start<typeof remediationWorkflow>('remediationWorkflow', { workflowId: runId, taskQueue: cordonQueue, args: [input] });
  };
  let bareCounter = 0;
  const startBareRun = (steps: BareStep[]) =>
    client.workflow.start<typeof bareWorkflow>('bareWorkflow', { workflowId: `bare-${suffix}-${++bareCounter}`, taskQueue: bareQueue, args: [steps] });

  const phases: Partial<BenchResults['phases']> = {};
  const children = { temporal: temporal.process.pid, 'scim2-server': scim.process.pid };
  /** Runs one measured phase, noting its wall time and where the CPU went. */
  const measure = async <T>(phase: Phase, run: () => Promise<T>): Promise<T> => {
    const before = cpuTimes(children);
    const started = performance.now();
    const result = await run();
    phases[phase] = { wallMs: Math.round(performance.now() - started), cpuMs: cpuSpent(before, cpuTimes(children)) };
    return result;
  };

  const cordonBatch = async (what: string, count: number) => {
    const batch = await withTimeout(what, PHASE_TIMEOUT_MS, cordon.guard(concurrentBatch<Awaited<ReturnType<typeof remediationWorkflow>>>(count, () => startCordonRun(takeUser()))));
    const notCompleted = batch.results.filter((r) => r.status !== 'completed');
    if (notCompleted.length > 0) {
      throw new Error(`${what}: ${notCompleted.length} of ${count} runs did not complete, e.g. ${notCompleted[0]!.runId} is ${notCompleted[0]!.status}: ${JSON.stringify(notCompleted[0]!.error)}`);
    }
    return batch;
  };
  const bareBatch = async (what: string, count: number, steps: BareStep[]) => {
    const batch = await withTimeout(what, PHASE_TIMEOUT_MS, bare.guard(concurrentBatch<number>(count, () => startBareRun(steps))));
    if (batch.results.some((r) => r !== steps.length)) throw new Error(`${what}: a bare run did not run all ${steps.length} steps`);
    return batch;
  };

  // --- Warm-up; the shape of a real run, taken from its history ---
  const warmCordon = await cordonBatch('Cordon warm-up', WARMUP_RUNS);
  const steps = stepsOf(await warmCordon.handles[0]!.fetchHistory());
  for (const handle of warmCordon.handles.slice(1)) {
    const other = stepsOf(await handle.fetchHistory());
    if (other.join() !== steps.join()) throw new Error(`warm-up runs differ in shape: ${steps.join(',')} vs ${other.join(',')}`);
  }
  const activityCount = countOf(steps, 'activity');
  const localCount = countOf(steps, 'local');
  progress(`a deprovision run schedules ${activityCount} activities and ${localCount} local activities: ${steps.map((s) => (s === 'activity' ? 'A' : 'L')).join('')}`);
  const warmBare = await bareBatch('bare warm-up', WARMUP_RUNS, steps);
  const bareSteps = stepsOf(await warmBare.handles[0]!.fetchHistory());
  if (bareSteps.join() !== steps.join()) throw new Error(`the bare workflow's history does not match Cordon's: ${bareSteps.join(',')}`);

  // --- (a) Overhead: N Cordon runs, then N bare runs, each batch started all at once ---
  progress(`(a) ${runs} Cordon runs at once …`);
  const cordonMs = (await measure('cordon', () => cordonBatch('Cordon runs', runs))).ms;
  progress(`(a) ${runs} Cordon runs took ${Math.round(cordonMs)} ms; ${runs} bare runs at once …`);
  const bareMs = (await measure('bare', () => bareBatch('bare runs', runs, steps))).ms;
  progress(`(a) ${runs} bare runs took ${Math.round(bareMs)} ms`);

  // --- (b) Latency: POST /v1/alerts → first action.applied in the ledger ---
  /** Sends one alert, waits for its run to finish, and returns the ms from the request to its first applied action. */
  const alertToFirstAction = async (): Promise<number> => {
    const alert = alertFor(takeUser());
    const sentAt = Date.now();
    const response = await fetch(`${apiUrl}/v1/alerts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${socToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(alert),
      signal: AbortSignal.timeout(30_000),
    });
    const body: unknown = await response.json();
    if (response.status !== 202) throw new Error(`POST /v1/alerts answered ${response.status}: ${JSON.stringify(body)}`);
    const { runId } = Accepted.parse(body);
    const outcome = await client.workflow.getHandle<typeof remediationWorkflow>(runId).result();
    if (outcome.status !== 'completed') throw new Error(`run ${runId} ended ${outcome.status}: ${JSON.stringify(outcome.error)}`);
    const applied = (await ledger.entries({ runId })).find((entry) => entry.kind === 'action.applied');
    if (!applied) throw new Error(`run ${runId} completed without an action.applied ledger entry`);
    return Date.parse(applied.at) - sentAt;
  };
  // A slot stays busy until its run has completed, so "in flight" means whole runs, not just requests.
  const latencies = (what: string, count: number, concurrency: number) =>
    withTimeout(what, PHASE_TIMEOUT_MS, cordon.guard(pool(count, concurrency, alertToFirstAction)));
  const summarise = (samples: number[]): LatencySummary => ({ p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length });

  await latencies('API warm-up', WARMUP_ALERTS, 1);
  progress(`(b) ${C1_ALERTS} alerts, one at a time …`);
  const c1 = summarise(await measure('c1', () => latencies('latency at concurrency 1', C1_ALERTS, 1)));
  progress(`(b) ${C20_ALERTS} alerts, ${C20_IN_FLIGHT} in flight …`);
  const c20 = summarise(await measure('c20', () => latencies(`latency at concurrency ${C20_IN_FLIGHT}`, C20_ALERTS, C20_IN_FLIGHT)));

  const verification = await ledger.verify();
  if (!verification.ok) throw new Error(`the ledger's hash chain is broken at ${verification.firstBad.seq}: ${verification.firstBad.reason}`);
  progress(`ledger chain verified (${verification.entries} entries); benchmark took ${Math.round((performance.now() - benchStarted) / 1000)} s`);

  return {
    overheadRatio: round(cordonMs / bareMs, 2),
    latencyMs: { c1, c20 },
    runs,
    cordonMs: Math.round(cordonMs),
    bareMs: Math.round(bareMs),
    activitiesPerRun: activityCount + localCount,
    activityBreakdown: { activities: activityCount, localActivities: localCount },
    machine: { cpus: cpus().length, node: process.version, loadAvg1m },
    phases: { cordon: phases.cordon!, bare: phases.bare!, c1: phases.c1!, c20: phases.c20! },
  };
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

const PHASE_LABEL: Record<Phase, string> = {
  cordon: '(a) Cordon runs',
  bare: '(a) bare runs',
  c1: '(b) concurrency 1',
  c20: `(b) concurrency ${C20_IN_FLIGHT}`,
};

function printResults(r: BenchResults): void {
  // Plain text when stdout is a file or a pipe.
  const style = process.stdout.isTTY ? {} : { head: [], border: [] };
  const overhead = new Table({ head: ['(a) overhead', 'value'], style });
  overhead.push(
    ['runs, all started at once', String(r.runs)],
    ['activities per run', `${r.activitiesPerRun} (${r.activityBreakdown.activities} activities + ${r.activityBreakdown.localActivities} local)`],
    ['Cordon wall time', `${r.cordonMs} ms (${round((r.runs * 1000) / r.cordonMs, 1)} runs/s)`],
    ['bare workflow wall time', `${r.bareMs} ms (${round((r.runs * 1000) / r.bareMs, 1)} runs/s)`],
    ['overhead ratio', `${r.overheadRatio.toFixed(2)}×`],
  );
  const latency = new Table({ head: ['(b) POST /v1/alerts → first action applied', 'alerts', 'p50', 'p99'], style });
  latency.push(
    ['concurrency 1', String(r.latencyMs.c1.n), `${r.latencyMs.c1.p50} ms`, `${r.latencyMs.c1.p99} ms`],
    [`concurrency ${C20_IN_FLIGHT}`, String(r.latencyMs.c20.n), `${r.latencyMs.c20.p50} ms`, `${r.latencyMs.c20.p99} ms`],
  );
  const seconds = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(1)} s`);
  const cpu = new Table({ head: ['CPU per phase', 'wall', 'node (workers, API)', 'temporal', 'scim2-server'], style });
  for (const phase of Object.keys(PHASE_LABEL) as Phase[]) {
    const { wallMs, cpuMs } = r.phases[phase];
    cpu.push([PHASE_LABEL[phase], seconds(wallMs), seconds(cpuMs.node), seconds(cpuMs.temporal), seconds(cpuMs['scim2-server'])]);
  }
  console.log(overhead.toString());
  console.log(latency.toString());
  console.log(cpu.toString());
  console.log(`machine: ${r.machine.cpus} CPUs, Node ${r.machine.node}, load average ${r.machine.loadAvg1m} at the start`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    const detail = error instanceof UsageError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`bench failed: ${detail}`);
    process.exit(1);
  },
);
