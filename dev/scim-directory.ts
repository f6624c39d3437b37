import { fileURLToPath } from 'node:url';
import { spawnManaged, waitUntil, type ManagedProcess } from './processes.js';

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
  try {
    // Any HTTP answer (even 401) means the server listens.
    await waitUntil(`SCIM directory at ${url}`, async () => (await fetch(`${url}/ServiceProviderConfig`, { signal: AbortSignal.timeout(1000) })).status > 0, {
      timeoutMs: 30_000,
      process: child,
    });
  } catch (error) {
    await child.stop(2000);
    throw error;
  }
  return { url, process: child, stop: () => child.stop(5000) };
}
