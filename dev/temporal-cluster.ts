// A Temporal server that persists to PostgreSQL (the production persistence, not the dev server's
// SQLite): built from the server's Go module into .tools/, its SQL schema applied with its own SQL
// tool, and started on 127.0.0.1. Used by the multi-process cluster test.
import { execFile } from 'node:child_process';
import { access, cp, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from './processes.js';

const run = promisify(execFile);

/** The server release built, and the Go toolchain it needs (fetched by the go command from the module proxy). */
export const TEMPORAL_SERVER_MODULE = 'go.temporal.io/server';
export const TEMPORAL_SERVER_VERSION = 'v1.32.2';
export const GO_TOOLCHAIN = 'go1.27.3';

/** Where the server, its SQL tool and its PostgreSQL schema are. */
export interface TemporalServerTools {
  server: string;
  sqlTool: string;
  /** `schema/postgresql/v12` of the server's module: `temporal/versioned` and `visibility/versioned`. */
  schemaDir: string;
}

/** The paths `provisionTemporalServer` installs to under `<projectRoot>/.tools`. */
export function temporalServerTools(projectRoot: string): TemporalServerTools {
  const tools = join(projectRoot, '.tools');
  return { server: join(tools, 'bin', 'temporal-server'), sqlTool: join(tools, 'bin', 'temporal-sql-tool'), schemaDir: join(tools, 'temporal-server', TEMPORAL_SERVER_VERSION, 'postgresql-v12') };
}

const exists = (path: string) => access(path).then(() => true, () => false);

/**
 * Builds the Temporal server and its SQL tool from the Go module proxy into .tools/ (once), and copies
 * the PostgreSQL schema beside them. Throws saying what failed and how to do it by hand.
 */
export async function provisionTemporalServer(projectRoot: string, log: (line: string) => void = () => {}): Promise<TemporalServerTools> {
  const tools = temporalServerTools(projectRoot);
  if ((await exists(tools.server)) && (await exists(tools.sqlTool)) && (await exists(join(tools.schemaDir, 'temporal', 'versioned')))) return tools;
  // The go command from PATH, or where Go's own installer puts it.
  const go = (await run('go', ['version']).then(() => true, () => false)) ? 'go' : '/usr/local/go/bin/go';
  const env = { ...process.env, GOTOOLCHAIN: GO_TOOLCHAIN, GOFLAGS: '-mod=mod' };
  const build = join(projectRoot, '.tools', 'temporal-server', 'build');
  await mkdir(build, { recursive: true });
  const packages = [`${TEMPORAL_SERVER_MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`, `${TEMPORAL_SERVER_MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`];
  log(`building the Temporal server ${TEMPORAL_SERVER_VERSION} and its SQL tool with Go (${GO_TOOLCHAIN}) …`);
  try {
    await run(go, ['install', ...packages], { env: { ...env, GOBIN: build }, maxBuffer: 64 * 1024 * 1024, timeout: 30 * 60_000 });
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-5).join('\n') ?? (error as Error).message;
    throw new Error(
      `could not build the Temporal server from ${TEMPORAL_SERVER_MODULE}@${TEMPORAL_SERVER_VERSION}:\n${detail}\n` +
        `It needs the go command and the Go module proxy. By hand: GOTOOLCHAIN=${GO_TOOLCHAIN} GOBIN=$PWD/.tools/bin go install ${packages.join(' ')}`,
      { cause: error },
    );
  }
  await mkdir(join(projectRoot, '.tools', 'bin'), { recursive: true });
  await rename(join(build, 'server'), tools.server);
  await rename(join(build, 'sql'), tools.sqlTool);
  const { stdout } = await run(go, ['env', 'GOMODCACHE'], { env });
  await cp(join(stdout.trim(), `${TEMPORAL_SERVER_MODULE}@${TEMPORAL_SERVER_VERSION}`, 'schema', 'postgresql', 'v12'), tools.schemaDir, { recursive: true });
  log(`Temporal server: ${tools.server}`);
  return tools;
}

/** A PostgreSQL role the server may create its two databases with. */
export interface PostgresAccess {
  host: string;
  port: number;
  user: string;
  password: string;
}

export interface TemporalClusterOptions {
  tools: TemporalServerTools;
  postgres: PostgresAccess;
  /** Where the config and the log go. */
  dir: string;
  /** The `temporal` CLI, to create the namespace. */
  cliPath: string;
  namespace?: string;
}

export interface TemporalCluster {
  address: string;
  namespace: string;
  process(): ManagedProcess;
  /** Stops the server (SIGTERM, then SIGKILL) and starts it again on the same database and ports. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** The server's static config: PostgreSQL persistence and visibility, every service on 127.0.0.1. */
function serverConfig(pg: PostgresAccess, ports: Record<'frontend' | 'frontendHttp' | 'history' | 'matching' | 'worker' | 'm1' | 'm2' | 'm3' | 'm4' | 'metrics', number>, dynamicConfig: string): string {
  const store = (database: string, conns: number) => `      sql:
        pluginName: "postgres12"
        databaseName: "${database}"
        connectAddr: "${pg.host}:${pg.port}"
        connectProtocol: "tcp"
        user: "${pg.user}"
        password: "${pg.password}"
        maxConns: ${conns}
        maxIdleConns: ${conns}
        maxConnLifetime: "1h"`;
  const service = (grpc: number, membership: number, http?: number) => `    rpc:
      grpcPort: ${grpc}
      membershipPort: ${membership}
      bindOnLocalHost: true${http !== undefined ? `\n      httpPort: ${http}` : ''}`;
  return `log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
${store('temporal', 20)}
    visibility:
${store('temporal_visibility', 4)}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  metrics:
    prometheus:
      framework: "tally"
      timerType: "histogram"
      listenAddress: "127.0.0.1:${ports.metrics}"
services:
  frontend:
${service(ports.frontend, ports.m1, ports.frontendHttp)}
  history:
${service(ports.history, ports.m2)}
  matching:
${service(ports.matching, ports.m3)}
  worker:
${service(ports.worker, ports.m4)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:${ports.frontend}"
dcRedirectionPolicy:
  policy: "noop"
dynamicConfigClient:
  filepath: "${dynamicConfig}"
  pollInterval: "10s"
`;
}

/** Creates (if needed) and migrates one of the server's databases with its SQL tool. */
async function migrate(options: TemporalClusterOptions, database: 'temporal' | 'temporal_visibility'): Promise<void> {
  const pg = options.postgres;
  const base = ['--plugin', 'postgres12', '--ep', pg.host, '-p', String(pg.port), '-u', pg.user, '--pw', pg.password, '--db', database];
  const tool = (args: string[]) => run(options.tools.sqlTool, [...base, ...args], { timeout: 120_000 });
  await tool(['create-database']).catch((error: { stderr?: string; message: string }) => {
    if (!/already exists/.test(`${error.stderr ?? ''}${error.message}`)) throw error;
  });
  await tool(['setup-schema', '-v', '0.0']);
  await tool(['update-schema', '-d', join(options.tools.schemaDir, database === 'temporal' ? 'temporal' : 'visibility', 'versioned')]);
}

/** Migrates PostgreSQL, starts the server, and creates the namespace. */
export async function startTemporalCluster(options: TemporalClusterOptions): Promise<TemporalCluster> {
  const namespace = options.namespace ?? 'default';
  await mkdir(join(options.dir, 'config'), { recursive: true });
  await migrate(options, 'temporal');
  await migrate(options, 'temporal_visibility');
  const names = ['frontend', 'frontendHttp', 'history', 'matching', 'worker', 'm1', 'm2', 'm3', 'm4', 'metrics'] as const;
  const ports = {} as Record<(typeof names)[number], number>;
  for (const name of names) {
    let port = await freePort();
    while (Object.values(ports).includes(port)) port = await freePort();
    ports[name] = port;
  }
  const dynamicConfig = join(options.dir, 'config', 'dynamic.yaml');
  // Search attributes registered by a worker are usable at once, as on the dev server.
  await writeFile(dynamicConfig, 'system.forceSearchAttributesCacheRefreshOnRead:\n  - value: true\n    constraints: {}\n');
  await writeFile(join(options.dir, 'config', 'cluster.yaml'), serverConfig(options.postgres, ports, dynamicConfig));
  const address = `127.0.0.1:${ports.frontend}`;

  let child: ManagedProcess;
  const launch = async () => {
    child = spawnManaged('temporal-server', options.tools.server, {
      args: ['--root', options.dir, '--config', 'config', '--env', 'cluster', '--allow-no-auth', 'start'],
      logFile: join(options.dir, 'server.log'),
    });
    const ready = async () => {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        const health = await connection.healthService.check({});
        return health.status === 1;
      } finally {
        await connection.close();
      }
    };
    await waitUntil(`Temporal server at ${address}`, ready, { timeoutMs: 120_000, intervalMs: 500, process: child });
  };
  await launch();
  const registered = async () => {
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await connection.workflowService.describeNamespace({ namespace });
      return true;
    } finally {
      await connection.close();
    }
  };
  if (!(await registered().catch(() => false))) {
    await run(options.cliPath, ['operator', 'namespace', 'create', '--namespace', namespace, '--retention', '72h', '--address', address], { timeout: 60_000 });
    await waitUntil(`namespace ${namespace}`, registered, { timeoutMs: 60_000, intervalMs: 500, process: child! });
  }
  return {
    address,
    namespace,
    process: () => child,
    async restart() {
      await child.stop(10_000);
      await launch();
    },
    stop: () => child.stop(10_000),
  };
}
