import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { cordonSearchAttributes } from '../workflows/search-attributes.js';
import { spawnManaged, waitUntil, type ManagedProcess } from './processes.js';

export interface DevServerOptions {
  cliPath: string;
  port: number;
  ip?: string;
  namespace?: string;
  /** SQLite file that keeps workflows across restarts; in memory when absent. */
  dbFile?: string;
  /** Serve the Temporal UI on this port; headless when absent. */
  uiPort?: number;
  logFile?: string;
  startTimeoutMs?: number;
}

/** A running Temporal dev server. */
export interface DevServer {
  address: string;
  uiUrl: string | undefined;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const SEARCH_ATTRIBUTE_TYPE = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList' } as const;

/** The `temporal server start-dev` arguments for these options. */
export function devServerArgs(options: DevServerOptions): string[] {
  const ip = options.ip ?? '127.0.0.1';
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(options.port), '--namespace', options.namespace ?? 'default'];
  if (options.uiPort !== undefined) args.push('--ui-ip', ip, '--ui-port', String(options.uiPort), '--ui-disable-news-fetch');
  else args.push('--headless');
  if (options.dbFile) {
    // WAL keeps the file consistent if the server is killed; the SDK's own CI runs it this way.
    args.push('--db-filename', options.dbFile, '--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=NORMAL');
  }
  for (const key of cordonSearchAttributes) args.push('--search-attribute', `${key.name}=${SEARCH_ATTRIBUTE_TYPE[key.type as keyof typeof SEARCH_ATTRIBUTE_TYPE]}`);
  args.push(
    '--dynamic-config-value', 'frontend.enableExecuteMultiOperation=true',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true',
    '--log-format', 'json',
    '--log-level', 'warn',
  );
  return args;
}

/**
 * Starts `temporal server start-dev` and waits until its frontend answers gRPC (up to 60 s by default:
 * a cold start on a small machine can take longer than the SDK's own 5 s).
 */
export async function startTemporalDevServer(options: DevServerOptions): Promise<DevServer> {
  if (options.dbFile) mkdirSync(dirname(options.dbFile), { recursive: true });
  const address = `${options.ip ?? '127.0.0.1'}:${options.port}`;
  const child = spawnManaged('temporal', options.cliPath, {
    args: devServerArgs(options),
    ...(options.logFile ? { logFile: options.logFile } : {}),
  });
  const ready = async () => {
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await connection.workflowService.describeNamespace({ namespace: options.namespace ?? 'default' });
      return true;
    } finally {
      await connection.close();
    }
  };
  try {
    await waitUntil(`Temporal dev server at ${address}`, ready, { timeoutMs: options.startTimeoutMs ?? 60_000, intervalMs: 250, process: child });
  } catch (error) {
    await child.stop(2000);
    throw error;
  }
  return {
    address,
    uiUrl: options.uiPort !== undefined ? `http://${options.ip ?? '127.0.0.1'}:${options.uiPort}` : undefined,
    process: child,
    stop: () => child.stop(10_000),
  };
}
