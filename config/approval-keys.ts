import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ApprovalVerifyKey } from '../domain/index.js';

/** The API's approval signing key file: `{ "kid": "…", "privateKey": "<64 hex>" }`. */
export const ApprovalSigningKeyFile = z.strictObject({
  kid: ApprovalVerifyKey.shape.kid,
  privateKey: z.string().regex(/^[0-9a-f]{64}$/, 'must be a 32-byte Ed25519 seed in hex'),
});
export type ApprovalSigningKeyFile = z.infer<typeof ApprovalSigningKeyFile>;

/** The workers' verify keys file: `[{ "kid": "…", "publicKey": "<64 hex>" }, …]` (several during a rotation). */
export const ApprovalVerifyKeysFile = z.array(ApprovalVerifyKey).min(1).max(10);

async function readJson<T>(path: string, schema: z.ZodType<T>, what: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`the ${what} ${path} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`);
  }
  return parsed.data;
}

/** The API's signing key, or undefined when the file does not exist (approvals are then refused). */
export function readApprovalSigningKey(path: string): Promise<ApprovalSigningKeyFile | undefined> {
  return readJson(path, ApprovalSigningKeyFile, 'approval signing key');
}

/** The keys workers verify approvals with; none when the file does not exist (every approval is refused). */
export async function readApprovalVerifyKeys(path: string): Promise<ApprovalVerifyKey[]> {
  return (await readJson(path, ApprovalVerifyKeysFile, 'approval verify keys file')) ?? [];
}
