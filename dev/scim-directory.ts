import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from './processes.js';

const SCRIPT = fileURLToPath(new URL('./scim-directory.py', import.meta.url));

export interface ScimDirectoryOptions {
  /** The `.tools` Python, which has scim2-server installed. */
  python: string;
  port: number;
  stateFile: string;
  tokenFile: string;
  logFile?: string;
}

/** The running demo directory. */
export interface ScimDirectory {
  /** SCIM base URL, e.g. http://127.0.0.1:9090/v2 */
  url: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts the file-backed scim2-server directory on 127.0.0.1 and waits until it answers. */
export async function startScimDirectory(options: ScimDirectoryOptions): Promise<ScimDirectory> {
  const url = `http://127.0.0.1:${options.port}/v2`;
  const child = spawnManaged('scim-directory', options.python, {
    args: [SCRIPT, '--port', String(options.port), '--state', options.stateFile, '--token-file', options.tokenFile],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    ...(options.logFile ? { logFile: options.logFile } : {}),
  });
  await waitForScim(url, child);
  return { url, process: child, stop: () => child.stop(5000) };
}

/** Waits until a SCIM server answers HTTP (any status, even 401, means it listens); stops it if it never does. */
async function waitForScim(url: string, child: ManagedProcess): Promise<void> {
  try {
    await waitUntil(`SCIM server at ${url}`, async () => (await fetch(`${url}/ServiceProviderConfig`, { signal: AbortSignal.timeout(1000) })).status > 0, {
      timeoutMs: 30_000,
      process: child,
    });
  } catch (error) {
    await child.stop(2000);
    throw error;
  }
}

/** A plain, in-memory scim2-server with a bearer token of its own, for tests and the benchmark. */
export interface Scim2Server {
  url: string;
  token: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts the `scim2-server` CLI (from PyPI) on a free 127.0.0.1 port and waits until it answers. */
export async function startScim2Server(options: { scim2ServerPath: string; logFile: string }): Promise<Scim2Server> {
  const port = await freePort();
  // Hex: a token starting with '-' would be read as an option of the command line.
  const token = randomBytes(18).toString('hex');
  const child = spawnManaged('scim2-server', options.scim2ServerPath, {
    args: ['--hostname', '127.0.0.1', '--port', String(port), '--bearer-token', token],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    logFile: options.logFile,
  });
  const url = `http://127.0.0.1:${port}/v2`;
  await waitForScim(url, child);
  return { url, token, process: child, stop: () => child.stop(5000) };
}
