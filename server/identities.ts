import { createHash, timingSafeEqual } from 'node:crypto';
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
export async function loadIdentities(path: string): Promise<IdentityStore> {
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
  return identityStore(parsed.data);
}
