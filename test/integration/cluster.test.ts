// Cordon as a team runs it: a Temporal server persisting to PostgreSQL, two worker processes and two
// API servers (the real entry points, configured by environment), one ledger and guardrail state in
// PostgreSQL shared by all four. 50 alerts go in
// through both APIs; one worker is killed and the Temporal server restarted while they run. Every
// run must complete, every action reach the directory exactly once, and the ledger hold every step.
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/config.js';
import { approvalPublicKey, type RunView } from '../../domain/index.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from '../../dev/processes.js';
import { startTemporalCluster, temporalServerTools, type TemporalCluster } from '../../dev/temporal-cluster.js';
import { startTemporalDevServer, type DevServer } from '../../dev/temporal-server.js';
import { openSqliteLedger } from '../../store/ledger.js';
import { openPostgresLedger } from '../../store/postgres-ledger.js';
import { startTestPostgres, type TestPostgres } from '../support/postgres.js';
import { startScim, TestOrg, type TestScim } from '../support/scim.js';
import { alertFor } from '../support/temporal.js';

const RUNS = 50;
const GROUPS = ['cl-engineering', 'cl-vpn'];

const tools = temporalServerTools(PROJECT_ROOT);
const haveServer = (await Promise.all([tools.server, tools.sqlTool].map((path) => access(path).then(() => true, () => false)))).every(Boolean);
const where = haveServer ? 'on a Temporal server persisting to PostgreSQL' : 'on the Temporal dev server with a persisted database (no Temporal server build in .tools)';

let postgres: TestPostgres;
let scim: TestScim;
let temporal: { address: string; restart(): Promise<void>; stop(): Promise<void> };
let dataDir: string;
let ledgerPath: string;
/** The shared store's settings, when it is PostgreSQL. */
let storeEnv: Record<string, string> = {};
const workers: ManagedProcess[] = [];
const apis: { process: ManagedProcess; url: string }[] = [];
const soc = `tok_soc_${randomBytes(16).toString('hex')}`;
const oscar = `tok_oscar_${randomBytes(16).toString('hex')}`;

/** A dev server on a database file, restartable on the same file and port. */
async function persistedDevServer(dir: string): Promise<typeof temporal> {
  const port = await freePort();
  const options = { cliPath: inject('temporalCliPath'), port, dbFile: join(dir, 'temporal.sqlite'), logFile: join(dir, 'temporal.log') };
  let server: DevServer = await startTemporalDevServer(options);
  return {
    address: server.address,
    async restart() {
      await server.stop();
      server = await startTemporalDevServer(options);
    },
    stop: () => server.stop(),
  };
}

function cordonEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CORDON_') && !name.startsWith('TEMPORAL_')));
  return {
    ...inherited,
    CORDON_DATA_DIR: dataDir,
    CORDON_LEDGER_PATH: ledgerPath,
    CORDON_LOG_LEVEL: 'info',
    TEMPORAL_ADDRESS: temporal.address,
    CORDON_SCIM_URL: scim.url,
    CORDON_SCIM_TOKEN_FILE: join(dataDir, 'scim-token'),
    ...storeEnv,
    ...extra,
  };
}

async function startWorker(name: string): Promise<ManagedProcess> {
  const child = spawnManaged(name, process.execPath, { args: ['--import', 'tsx', join(PROJECT_ROOT, 'workers/main.ts')], cwd: PROJECT_ROOT, env: cordonEnv({}), logFile: join(dataDir, `${name}.log`) });
  workers.push(child);
  await waitUntil(name, async () => child.tail(40).includes('worker polling'), { timeoutMs: 120_000, process: child });
  return child;
}

async function startApi(name: string): Promise<{ process: ManagedProcess; url: string }> {
  const port = await freePort();
  const child = spawnManaged(name, process.execPath, { args: ['--import', 'tsx', join(PROJECT_ROOT, 'server/main.ts')], cwd: PROJECT_ROOT, env: cordonEnv({ CORDON_API_PORT: String(port) }), logFile: join(dataDir, `${name}.log`) });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(name, async () => (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok, { timeoutMs: 120_000, process: child });
  const api = { process: child, url };
  apis.push(api);
  return api;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'cordon-cluster-'));
  ledgerPath = join(dataDir, 'ledger.sqlite');
  scim = await startScim();
  await writeFile(join(dataDir, 'scim-token'), scim.token);
  await writeFile(join(dataDir, 'dev-credentials.json'), JSON.stringify({ soc: { token: soc, roles: ['soc'] }, oscar: { token: oscar, roles: ['operator'] } }));
  const signing = randomBytes(32).toString('hex');
  await writeFile(join(dataDir, 'approval-signing-key.json'), JSON.stringify({ kid: 'cluster', privateKey: signing }));
  await writeFile(join(dataDir, 'approval-verify-keys.json'), JSON.stringify([{ kid: 'cluster', publicKey: approvalPublicKey(signing) }]));
  if (haveServer) {
    postgres = await startTestPostgres();
    const cluster: TemporalCluster = await startTemporalCluster({ tools, postgres, dir: join(dataDir, 'temporal'), cliPath: inject('temporalCliPath') });
    temporal = cluster;
    await writeFile(join(dataDir, 'postgres-password'), postgres.password);
    storeEnv = { CORDON_STORE: 'postgres', CORDON_POSTGRES_URL: await postgres.createDatabase(), CORDON_POSTGRES_PASSWORD_FILE: join(dataDir, 'postgres-password') };
  } else {
    temporal = await persistedDevServer(dataDir);
  }
  // One worker first: it registers the search attributes the APIs' queries use.
  await startWorker('worker-1');
  await startWorker('worker-2');
  await Promise.all([startApi('api-1'), startApi('api-2')]);
}, 600_000);

afterAll(async () => {
  for (const api of apis) await api.process.stop(5000);
  for (const worker of workers) await worker.stop(5000);
  await temporal?.stop();
  await postgres?.stop();
  await scim?.stop();
});

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${soc}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** The run as either API shows it, or undefined while neither can answer (the server restarting). */
async function view(runId: string): Promise<RunView | undefined> {
  for (const api of apis) {
    try {
      const response = await fetch(`${api.url}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${oscar}` }, signal: AbortSignal.timeout(10_000) });
      if (response.ok) return (await response.json()) as RunView;
    } catch {
      // this one is down or busy: ask the other
    }
  }
  return undefined;
}

// Changes the directory made: a PATCH refused for a stale version (412, many runs leaving the same
// group at once) changed nothing and is retried.
const patches = async () => (await scim.requests()).filter((line) => line.includes('"PATCH ') && /" 20\d\b/.test(line));

describe(`a cluster of two workers and two API servers ${where}`, () => {
  it(`completes ${RUNS} runs while a worker is killed and Temporal restarts, each action applied exactly once, the ledger complete`, async () => {
    const org = new TestOrg(scim.client);
    const users: { id: string; userName: string }[] = [];
    for (let i = 0; i < RUNS; i++) users.push(await org.user('cl', GROUPS));

    const runIds: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const api = apis[i % 2]!;
      let sent: { status: number; json: Record<string, unknown> } | undefined;
      for (let attempt = 0; attempt < 60 && sent?.status !== 202; attempt++) {
        sent = await post(`${api.url}/v1/alerts`, alertFor({ userName: users[i]!.userName }, { id: `cluster-${i}-${randomBytes(3).toString('hex')}` })).catch(() => undefined);
        if (sent?.status !== 202) await new Promise((r) => setTimeout(r, 1000));
      }
      expect(sent?.status).toBe(202);
      runIds.push(String(sent!.json.runId));
      if (i === 15) {
        // A worker dies without warning, possibly mid-action.
        workers[0]!.child.kill('SIGKILL');
        await workers[0]!.exited;
      }
      if (i === 30) await temporal.restart();
    }

    const deadline = Date.now() + 300_000;
    const done = new Map<string, RunView>();
    while (done.size < RUNS && Date.now() < deadline) {
      for (const runId of runIds) {
        if (done.has(runId)) continue;
        const run = await view(runId);
        if (run && ['completed', 'failed', 'needs_human', 'compensated', 'denied'].includes(run.status)) done.set(runId, run);
      }
      if (done.size < RUNS) await new Promise((r) => setTimeout(r, 1000));
    }
    const statuses = [...done.values()].map((r) => r.status);
    expect(done.size).toBe(RUNS);
    expect(statuses.filter((s) => s !== 'completed')).toEqual([]);
    for (const run of done.values()) {
      expect(run.journal.map((j) => [j.status, j.changed])).toEqual([
        ['verified', true],
        ['verified', true],
        ['verified', true],
      ]);
    }

    // Exactly once in the directory: one PATCH per account (disable) and one per membership removed,
    // on top of the one per membership the setup added. Counted over the whole log: the server writes
    // a request's line after answering it, so a count taken right after the setup may miss the last.
    const all = await patches();
    expect(all.filter((line) => line.includes('/v2/Users/'))).toHaveLength(RUNS);
    expect(all.filter((line) => line.includes('/v2/Groups/'))).toHaveLength(2 * RUNS * GROUPS.length);
    for (const user of users) expect(all.filter((line) => line.includes(`/v2/Users/${user.id} `))).toHaveLength(1);

    // The ledger holds every step of every run, once, and its chain holds.
    const ledger = storeEnv.CORDON_POSTGRES_URL ? await openPostgresLedger({ url: storeEnv.CORDON_POSTGRES_URL, password: postgres.password }) : openSqliteLedger({ path: ledgerPath });
    try {
      for (const runId of runIds) {
        const kinds = (await ledger.entries({ runId })).map((e) => e.kind);
        for (const kind of ['run.received', 'run.planned', 'policy.decided']) expect(kinds.filter((k) => k === kind), `${runId} ${kind}`).toHaveLength(1);
        // Observed when planning, and again right before executing.
        expect(kinds.filter((k) => k === 'run.observed'), runId).toHaveLength(2);
        expect(kinds.filter((k) => k === 'action.applied'), runId).toHaveLength(3);
        expect(kinds.filter((k) => k === 'action.verified'), runId).toHaveLength(3);
      }
      expect((await ledger.verify()).ok).toBe(true);
    } finally {
      await ledger.close();
    }
  });
});
