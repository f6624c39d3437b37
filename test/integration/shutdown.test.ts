// Graceful shutdown of the real API and worker processes (server/main.ts, workers/main.ts) on the
// shared Temporal dev server: SIGTERM drains (in-flight requests and activities finish, /readyz says
// not ready), then each process closes its resources and exits 0.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import { PROJECT_ROOT } from '../../config/config.js';
import { ensureSearchAttributes } from '../../config/temporal.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from '../../dev/processes.js';
import { openSqliteLedger } from '../../store/ledger.js';
import { startScim, TestOrg, type TestScim } from '../support/scim.js';
import { alertFor, expectReplays, startRun, temporalClient, waitForStatus } from '../support/temporal.js';

const GRACE_MS = 15_000;
let scim: TestScim;
let temporal: Awaited<ReturnType<typeof temporalClient>>;
const processes: ManagedProcess[] = [];

/** The environment of a Cordon process: this test run's, less any CORDON_* setting, plus `env`. */
function cordonEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CORDON_')));
  return { ...inherited, TEMPORAL_ADDRESS: inject('temporalAddress'), CORDON_TASK_QUEUE: temporal.taskQueue, CORDON_SHUTDOWN_GRACE_MS: String(GRACE_MS), CORDON_LOG_LEVEL: 'info', ...env };
}

function start(name: string, entry: string, env: NodeJS.ProcessEnv): ManagedProcess {
  const child = spawnManaged(name, process.execPath, { args: ['--import', 'tsx', join(PROJECT_ROOT, entry)], cwd: PROJECT_ROOT, env });
  processes.push(child);
  return child;
}

beforeAll(async () => {
  scim = await startScim();
  temporal = await temporalClient();
  const admin = await Connection.connect({ address: inject('temporalAddress') });
  await ensureSearchAttributes(admin, 'default');
  await admin.close();
});

afterAll(async () => {
  for (const child of processes) await child.stop(2000);
  await temporal?.close();
  await scim?.stop();
});

describe('API shutdown', () => {
  let api: ManagedProcess;
  let base: string;
  let port: number;
  const token = `tok_soc_${randomBytes(16).toString('hex')}`;

  beforeAll(async () => {
    const data = await mkdtemp(join(tmpdir(), 'cordon-api-'));
    await writeFile(join(data, 'dev-credentials.json'), JSON.stringify({ soc: { token, roles: ['soc'] } }));
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    api = start('api', 'server/main.ts', cordonEnv({ CORDON_DATA_DIR: data, CORDON_API_PORT: String(port) }));
    await waitUntil('API ready', async () => (await fetch(`${base}/readyz`)).status === 200, { timeoutMs: 60_000, process: api });
  });

  it('answers /readyz with 200 when Temporal and the ledger answer, and /healthz stays the liveness check', async () => {
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('on SIGTERM stops taking traffic, finishes the request in flight, and exits 0 within the grace period', async () => {
    const alert = JSON.stringify(alertFor({ userName: 'drain.test' }));
    // An alert whose body is still arriving: the request is in flight when SIGTERM comes.
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = once(socket, 'end');
    socket.write(
      `POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(alert)}\r\nConnection: close\r\n\r\n${alert.slice(0, 20)}`,
    );
    await waitUntil('the request has reached the API', async () => api.tail(40).includes('"url":"/v1/alerts"'), { timeoutMs: 10_000 });

    let exitedAt: number | undefined;
    void api.exited.then(() => (exitedAt = Date.now()));
    const signalledAt = Date.now();
    api.child.kill('SIGTERM');

    // Out of rotation: /readyz says 503, or nothing listens any more.
    let drainingAnswer: string | undefined;
    await waitUntil(
      'API draining',
      async () => {
        try {
          const response = await fetch(`${base}/readyz`);
          drainingAnswer = `${response.status}`;
          return response.status === 503;
        } catch (error) {
          drainingAnswer = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? String(error);
          return drainingAnswer === 'ECONNREFUSED';
        }
      },
      { timeoutMs: 5000, intervalMs: 50 },
    );
    expect(['503', 'ECONNREFUSED']).toContain(drainingAnswer);
    expect(exitedAt).toBeUndefined();

    // The rest of the body: the request completes, on Temporal, during the drain.
    // Written, not ended: a client that half-closes its side aborts its request in Node's HTTP server.
    socket.write(alert.slice(20));
    await ended;
    const response = Buffer.concat(chunks).toString('utf8');
    expect(response).toMatch(/^HTTP\/1\.1 202 /);
    const { runId } = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as { runId: string };
    expect((await temporal.client.workflow.getHandle(runId).describe()).status.name).toBe('RUNNING');

    const exit = await api.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAt! - signalledAt).toBeLessThan(GRACE_MS);
    expect(api.tail(40)).toContain('API stopped');
    await temporal.client.workflow.getHandle(runId).terminate('test over');
  });
});

/** A proxy in front of the SCIM directory that holds the first PATCH for `holdMs` before passing it on. */
async function holdingProxy(target: string, holdMs: number) {
  let held: (() => void) | undefined;
  const heldRequest = new Promise<void>((resolve) => (held = resolve));
  let releasedAt: number | undefined;
  const origin = new URL(target).origin;
  const body = async (request: IncomingMessage) => {
    const parts: Buffer[] = [];
    for await (const part of request) parts.push(part as Buffer);
    return Buffer.concat(parts);
  };
  const server: Server = createServer((request, response) => {
    void (async () => {
      const payload = await body(request);
      if (request.method === 'PATCH' && held) {
        const release = held;
        held = undefined;
        release();
        await new Promise((r) => setTimeout(r, holdMs));
        releasedAt = Date.now();
      }
      const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name))) as Record<string, string>;
      const answer = await fetch(new URL(request.url!, origin), { method: request.method!, headers, ...(payload.length > 0 ? { body: payload } : {}) });
      const out = Buffer.from(await answer.arrayBuffer());
      const passed = [...answer.headers].filter(([name]) => !['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(name));
      response.writeHead(answer.status, Object.fromEntries(passed));
      response.end(out);
    })().catch((error: unknown) => response.destroy(error as Error));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const url = new URL(target);
  url.host = `127.0.0.1:${port}`;
  return { url: url.toString().replace(/\/$/, ''), heldRequest, releasedAt: () => releasedAt, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function healthcheck(env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'workers/healthcheck.ts')], { cwd: PROJECT_ROOT, env, timeout: 30_000 }, (error, _stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('worker shutdown', () => {
  it('on SIGTERM finishes the activity in flight, exits 0, and the run completes with each action applied once', { timeout: 300_000 }, async () => {
    const org = new TestOrg(scim.client);
    const user = await org.user('drain', ['engineering', 'jira-users']);
    const proxy = await holdingProxy(scim.url, 4000);
    try {
      const data = await mkdtemp(join(tmpdir(), 'cordon-worker-'));
      const tokenFile = join(data, 'scim-token');
      await writeFile(tokenFile, scim.token);
      const ledgerPath = join(data, 'ledger.sqlite');
      const env = cordonEnv({ CORDON_DATA_DIR: data, CORDON_LEDGER_PATH: ledgerPath, CORDON_SCIM_URL: proxy.url, CORDON_SCIM_TOKEN_FILE: tokenFile });
      const first = start('worker-1', 'workers/main.ts', env);
      await waitUntil('worker polling', async () => first.tail(40).includes('worker polling'), { timeoutMs: 120_000, process: first });

      // The container health check: a worker on this host polls the task queue; none polls another.
      let last = { code: -1, stderr: '' };
      await waitUntil('health check passes', async () => (last = await healthcheck(env)).code === 0, { timeoutMs: 30_000, intervalMs: 1000 }).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; the check said: ${last.stderr}`);
      });
      const elsewhere = await healthcheck({ ...env, CORDON_TASK_QUEUE: `${temporal.taskQueue}-nobody` });
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stderr).toMatch(/no workflow or activity poller/);

      const requestsBefore = (await scim.requests()).length;
      const handle = await startRun(temporal.client, temporal.taskQueue, alertFor({ userName: user.userName }));
      await proxy.heldRequest;
      first.child.kill('SIGTERM');
      const exit = await first.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      const exitedAt = Date.now();
      expect(proxy.releasedAt()).toBeDefined();
      expect(proxy.releasedAt()!).toBeLessThanOrEqual(exitedAt);
      expect(first.tail(40)).toContain('worker stopped');

      // Another worker takes the run over from where the first one left it.
      const second = start('worker-2', 'workers/main.ts', env);
      const run = await waitForStatus(handle, ['completed', 'compensated', 'needs_human', 'failed'], 180_000);
      expect(run.status).toBe('completed');
      expect(run.journal.map((j) => j.status)).toEqual(['verified', 'verified', 'verified']);
      await second.stop(GRACE_MS);

      const final = await createScimConnector('scim', scim.client).readAccount({ id: user.id });
      expect(final.account.active).toBe(false);
      expect(final.groups).toEqual([]);
      // Nothing was retried: the activity in flight at SIGTERM finished on the first worker.
      const history = await handle.fetchHistory();
      const started = history.events?.filter((e) => e.activityTaskStartedEventAttributes) ?? [];
      expect(started.length).toBeGreaterThan(0);
      expect(started.every((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) === 1)).toBe(true);
      // One write per target in the directory, one application per action in the ledger.
      const patches = (await scim.requests()).slice(requestsBefore).filter((line) => line.includes('"PATCH '));
      expect(patches).toHaveLength(3);
      const ledger = openSqliteLedger({ path: ledgerPath });
      try {
        const entries = await ledger.entries({ runId: handle.workflowId });
        for (const action of run.plan!.actions) expect(entries.filter((e) => e.kind === 'action.applied' && e.data.actionId === action.id)).toHaveLength(1);
      } finally {
        await ledger.close();
      }
      await expectReplays(handle);
    } finally {
      await proxy.close();
    }
  });
});
