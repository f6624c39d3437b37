// The API listening on a free port over a real worker, Temporal dev server and scim2-server, with a
// token per dev identity: for tests that drive Cordon through HTTP and the CLI.
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { runCli } from '../../cli/main.js';
import type { RunView } from '../../domain/index.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { testSigningKey } from './approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from './env.js';
import { guardrailsFrom } from './policy-files.js';
import { startWorker, type RunningWorker } from './temporal.js';

const ROLES = { soc: ['soc'], bob: ['approver'], oscar: ['operator'], admin: ['admin'] } as const;
export type ApiIdentity = keyof typeof ROLES;

/** What a test file gets: the peers, the API (in-process and at `url`) and helpers. */
export interface ApiEnv {
  env: RemediationEnv;
  app: CordonServer;
  url: string;
  tokens: Record<ApiIdentity, string>;
  headers(who: ApiIdentity): Record<string, string>;
  get(path: string, who?: ApiIdentity): Promise<LightMyRequestResponse>;
  post(path: string, who: ApiIdentity, body: unknown): Promise<LightMyRequestResponse>;
  /** Polls GET /v1/runs/:runId until the run has one of `statuses`. */
  waitForRun(runId: string, statuses: readonly string[], timeoutMs?: number): Promise<RunView>;
  /** Runs the CLI against this API as `who`; the output lines and the exit code. */
  cli(who: ApiIdentity, args: string[]): Promise<{ code: number; out: string[]; err: string[] }>;
  close(): Promise<void>;
}

/** Starts the peers, a worker (guardrails on, so kill switches hold runs) and the API on a free port. */
export async function startApiEnv(): Promise<ApiEnv> {
  const env = await startRemediationEnv();
  let worker: RunningWorker | undefined;
  let app: CordonServer | undefined;
  try {
    worker = await startWorker({
      taskQueue: env.taskQueue,
      connectors: { scim: env.connector },
      ledger: env.ledger,
      policy: env.policy,
      guardrails: await guardrailsFrom('version: 1\n'),
      guardrailState: env.guardrailState,
    });
    const tokens = Object.fromEntries(Object.keys(ROLES).map((name) => [name, `tok_${name}_${randomBytes(16).toString('hex')}`])) as Record<ApiIdentity, string>;
    const identities = identityStore(Object.fromEntries(Object.entries(ROLES).map(([name, roles]) => [name, { token: tokens[name as ApiIdentity], roles: [...roles] }])));
    app = await buildServer({
      temporal: env.client,
      taskQueue: env.taskQueue,
      ledger: env.ledger,
      guardrailState: env.guardrailState,
      identities,
      approvalSigner: testSigningKey,
      log: pino({ level: 'silent' }),
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const server = app;
    const headers = (who: ApiIdentity) => ({ authorization: `Bearer ${tokens[who]}` });
    const get = (path: string, who: ApiIdentity = 'oscar') => server.inject({ method: 'GET', url: path, headers: headers(who) });
    const running = worker;
    return {
      env,
      app,
      url,
      tokens,
      headers,
      get,
      post: (path, who, body) => server.inject({ method: 'POST', url: path, headers: { ...headers(who), 'content-type': 'application/json' }, payload: JSON.stringify(body) }),
      async waitForRun(runId, statuses, timeoutMs = 60_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const response = await get(`/v1/runs/${runId}`);
          if (response.statusCode === 200 && statuses.includes(response.json<RunView>().status)) return response.json<RunView>();
          if (Date.now() > deadline) throw new Error(`run ${runId} never reached ${statuses.join('|')} in ${timeoutMs} ms: ${response.body.slice(0, 500)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      async cli(who, args) {
        const out: string[] = [];
        const err: string[] = [];
        const code = await runCli(['--api', url, '--token', tokens[who], ...args], { write: (l) => out.push(l), writeError: (l) => err.push(l), env: {} });
        return { code, out, err };
      },
      async close() {
        await server.close();
        await running.stop();
        await env.close();
      },
    };
  } catch (error) {
    await app?.close();
    await worker?.stop();
    await env.close();
    throw error;
  }
}
