import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';

/** A child process Cordon started and will stop, by PID. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last `lines` lines the process wrote (15 by default), for error messages. */
  tail(lines?: number): string;
  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Append stdout and stderr to this file (otherwise they are only kept for tail()). */
  logFile?: string;
}

/** Starts a program with its output captured; the caller owns stopping it. */
export function spawnManaged(name: string, command: string, options: SpawnOptions = {}): ManagedProcess {
  const child = spawn(command, options.args ?? [], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let recent = '';
  const log = options.logFile
    ? (mkdirSync(dirname(options.logFile), { recursive: true }), createWriteStream(options.logFile, { flags: 'a' }))
    : undefined;
  const keep = (chunk: Buffer) => {
    recent = (recent + chunk.toString('utf8')).slice(-4000);
    log?.write(chunk);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      log?.end();
      resolve({ code, signal });
    });
    child.once('error', (error) => {
      recent += `\n${error.message}`;
      log?.end();
      resolve({ code: -1, signal: null });
    });
  });
  return {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    tail: (lines = 15) => recent.trim().split('\n').slice(-lines).join('\n'),
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Whether a process with this PID exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. Drawn below Linux's ephemeral range
 * (32768-60999): the Temporal dev server picks its internal ports from that range, and a port handed
 * out there by the kernel a moment ago is likely to be handed out again.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  throw new Error('no free TCP port found in 20000-31999 after 200 attempts');
}

/** Polls `check` until it resolves true, the process exits, or `timeoutMs` passes. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; process?: ManagedProcess },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let exited = false;
  void options.process?.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`${what}: ${options.process?.name ?? 'the process'} exited before it was ready:\n${options.process?.tail() ?? ''}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${options.timeoutMs} ms${options.process ? `:\n${options.process.tail()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
}
