import { createHash, timingSafeEqual } from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { IdentityName, Role, type Identity } from '../domain/index.js';

/** The identities file: `{ "<name>": { "token": "…", "roles": ["…"] } }`. */
export const IdentitiesFile = z.record(
  IdentityName,
  z.strictObject({
    token: z.string().min(24, 'tokens must be at least 24 characters'),
    roles: z.array(Role).min(1).max(8),
  }),
);
export type IdentitiesFile = z.infer<typeof IdentitiesFile>;

/** Resolves bearer tokens to identities. */
export interface IdentityStore {
  authenticate(token: string): Identity | undefined;
  /** The identity with this name and its roles now, or undefined (for channels that name people, like Slack). */
  identity(name: string): Identity | undefined;
  names(): string[];
}

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

/** Builds a store from parsed identities; tokens are kept only as SHA-256 digests. */
export function identityStore(file: IdentitiesFile): IdentityStore {
  const entries = Object.entries(file).map(([name, { token, roles }]) => ({ name, roles, digest: digest(token) }));
  return {
    authenticate(token) {
      const presented = digest(token);
      // Compare against every entry in constant time per entry, so timing says nothing about which matched.
      let found: Identity | undefined;
      for (const entry of entries) if (timingSafeEqual(entry.digest, presented)) found = { name: entry.name, roles: [...entry.roles] };
      return found;
    },
    identity(name) {
      const entry = entries.find((e) => e.name === name);
      return entry ? { name: entry.name, roles: [...entry.roles] } : undefined;
    },
    names: () => entries.map((e) => e.name),
  };
}

/** Reads and validates the identities file; throws naming the file and the bad field. */
async function readIdentitiesFile(path: string): Promise<IdentitiesFile> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the identities file ${path}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new Error(`the identities file ${path} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = IdentitiesFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`the identities file ${path} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`);
  }
  return parsed.data;
}

/** An identity store that follows its file; `close` stops following it. */
export type WatchedIdentityStore = IdentityStore & { close(): void };

/**
 * Loads the identities file (throwing, naming the file and the bad field, when it is bad at startup) and
 * reloads it whenever it changes, looked at every `intervalMs`: a token or a role taken out of the file
 * stops counting within that time, without a restart, so approver eligibility is the file's as it is
 * at the moment of the decision. A file that becomes unreadable or invalid fails closed: no token
 * authenticates and no one has a role until it is fixed (logged as an error).
 */
export async function watchIdentities(path: string, log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void }, intervalMs = 1000): Promise<WatchedIdentityStore> {
  let current = identityStore(await readIdentitiesFile(path));
  let reading = Promise.resolve();
  const reload = (now: Stats, before: Stats) => {
    // Called on any stat change, a read included: only a change of content, or a replaced file, counts.
    if (now.mtimeMs === before.mtimeMs && now.ctimeMs === before.ctimeMs && now.size === before.size && now.ino === before.ino) return;
    reading = reading.then(async () => {
      try {
        current = identityStore(await readIdentitiesFile(path));
        log.info({ file: path, names: current.names().length }, 'identities file reloaded');
      } catch (error) {
        current = identityStore({});
        log.error({ file: path, err: error }, 'the identities file cannot be used: no token is accepted until it is fixed');
      }
    });
  };
  watchFile(path, { interval: intervalMs, persistent: false }, reload);
  return {
    authenticate: (token) => current.authenticate(token),
    identity: (name) => current.identity(name),
    names: () => current.names(),
    close: () => unwatchFile(path, reload),
  };
}
