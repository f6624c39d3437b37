import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../dev/processes.js';

const execFileAsync = promisify(execFile);

/** The superuser the test server is created with; it logs in with a password over TCP. */
const SUPERUSER = 'cordon';

/** A private PostgreSQL server on 127.0.0.1, started for one test file. */
export interface TestPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The postmaster's PID. */
  pid: number;
  /** Creates an empty database and returns its URL (without the password, as Cordon is configured). */
  createDatabase(): Promise<string>;
  /** A connected client on `url` with the superuser's password, for arranging and checking behind a store's back. */
  connect(url: string): Promise<pg.Client>;
  /** Stops the server by PID and removes its files. */
  stop(): Promise<void>;
}

/** Debian's server binaries (`apt-get install postgresql`), newest major version first. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = majors.map((major) => join(root, major, 'bin')).find((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres')));
  if (!dir) throw new Error(`no PostgreSQL server under ${root}/<major>/bin: apt-get install -y postgresql (the PostgreSQL store tests run a private server)`);
  return dir;
}

/**
 * The account the server runs as. PostgreSQL refuses to run as root, so under root it runs as the
 * `postgres` account Debian's package creates (or `nobody` where that is missing); otherwise as the
 * current user.
 */
async function serverAccount(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const { stdout } = await execFileAsync('getent', ['passwd', name]);
      const [, , uid, gid] = stdout.trim().split(':');
      if (uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
    } catch {
      // no such account: try the next
    }
  }
  throw new Error('running as root and neither a "postgres" nor a "nobody" account exists to run PostgreSQL as');
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/**
 * Runs `initdb` into a temporary directory and starts `postgres` on a free port of 127.0.0.1 (TCP
 * only, no Unix socket), with durability off since the data is thrown away. A port taken between
 * freePort() and the server's bind is retried twice.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const account = await serverAccount();
  const dir = await mkdtemp(join(tmpdir(), 'cordon-postgres-'));
  const data = join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', HOME: dir };
  const asAccount = account ? { uid: account.uid, gid: account.gid } : {};
  try {
    if (account) await chown(dir, account.uid, account.gid);
    const pwfile = join(dir, 'pwfile');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (account) await chown(pwfile, account.uid, account.gid);
    await execFileAsync(
      join(bin, 'initdb'),
      ['-D', data, '-U', SUPERUSER, `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=reject', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'],
      { env, cwd: dir, ...asAccount },
    ).catch((error: Error & { stderr?: string }) => {
      throw new Error(`initdb failed: ${error.stderr ?? error.message}`, { cause: error });
    });
    await rm(pwfile);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      join(bin, 'postgres'),
      ['-D', data, '-h', '127.0.0.1', '-p', String(port), '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
      { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...asAccount },
    );
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = exitOf(child);
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    const urlOf = (database: string) => `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`;
    const connect = async (url: string) => {
      const withPassword = new URL(url);
      withPassword.password = encodeURIComponent(password);
      const client = new pg.Client({ connectionString: withPassword.toString(), connectionTimeoutMillis: 5000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      }
      return client;
    };
    const deadline = Date.now() + 30_000;
    let ready = false;
    while (!ready && !gone && Date.now() < deadline) {
      try {
        const client = await connect(urlOf('postgres'));
        await client.end();
        ready = true;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const stop = async () => {
      if (!gone && child.pid !== undefined) {
        // SIGINT is PostgreSQL's fast shutdown: sessions are ended, nothing waits for clients.
        process.kill(child.pid, 'SIGINT');
        const timer = setTimeout(() => {
          if (!gone && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
    };
    if (!ready) {
      await stop();
      if (attempt < 3 && /could not bind|address already in use/i.test(output)) continue;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`PostgreSQL did not become ready on port ${port}:\n${output.trim()}`);
    }

    let databases = 0;
    return {
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      password,
      pid: child.pid!,
      async createDatabase() {
        const name = `cordon_test_${++databases}`;
        const admin = await connect(urlOf('postgres'));
        try {
          await admin.query(`CREATE DATABASE ${name}`);
        } finally {
          await admin.end();
        }
        return urlOf(name);
      },
      connect,
      async stop() {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}
