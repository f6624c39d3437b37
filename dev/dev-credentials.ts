import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readApprovalSigningKey } from '../config/approval-keys.js';
import { approvalPublicKey, type Role } from '../domain/index.js';
import { IdentitiesFile } from '../server/identities.js';

/** The embedded default's identities and their roles. */
export const DEV_IDENTITIES: Readonly<Record<string, Role[]>> = Object.freeze({
  soc: ['soc'],
  alice: ['soc', 'approver'],
  bob: ['approver'],
  carol: ['approver'],
  oscar: ['operator'],
  admin: ['admin'],
});

const token = () => `cdn_${randomBytes(24).toString('base64url')}`;

async function writePrivate(path: string, content: string): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    // 'wx': never overwrite what a previous start generated.
    await writeFile(path, content, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    await chmod(path, 0o600);
    return false;
  }
}

/**
 * Generates `dev-credentials.json` (mode 0600) at first start: a token per dev identity. Later starts
 * keep the file, after checking it still parses.
 */
export async function ensureDevCredentials(path: string): Promise<{ created: boolean; names: string[] }> {
  const fresh = Object.fromEntries(Object.entries(DEV_IDENTITIES).map(([name, roles]) => [name, { token: token(), roles }]));
  const created = await writePrivate(path, `${JSON.stringify(fresh, null, 2)}\n`);
  const parsed = IdentitiesFile.safeParse(JSON.parse(await readFile(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path} is not a valid identities file: ${parsed.error.issues[0]?.message ?? 'invalid'}; delete it to regenerate`);
  return { created, names: Object.keys(parsed.data) };
}

/**
 * Creates the embedded default's approval key pair unless it exists: the API's signing key (0600) and
 * the workers' verify keys (the public half).
 */
export async function ensureApprovalKeys(signingKeyFile: string, verifyKeysFile: string): Promise<{ kid: string }> {
  const kid = `dev-${new Date().toISOString().slice(0, 10)}-${randomBytes(3).toString('hex')}`;
  await writePrivate(signingKeyFile, `${JSON.stringify({ kid, privateKey: randomBytes(32).toString('hex') }, null, 2)}\n`);
  const signing = await readApprovalSigningKey(signingKeyFile);
  if (!signing) throw new Error(`${signingKeyFile} disappeared`);
  await writeFile(verifyKeysFile, `${JSON.stringify([{ kid: signing.kid, publicKey: approvalPublicKey(signing.privateKey) }], null, 2)}\n`, { mode: 0o644 });
  return { kid: signing.kid };
}

/** Creates a file holding a random secret (mode 0600) unless it exists; returns the secret. */
export async function ensureSecretFile(path: string): Promise<string> {
  await writePrivate(path, `${randomBytes(32).toString('base64url')}\n`);
  return (await readFile(path, 'utf8')).trim();
}
