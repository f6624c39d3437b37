import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { ApprovalRequest } from './approval.js';
import { canonicalJson } from './canonical-json.js';
import { utf8 } from './sha256.js';

// Ed25519 over pure-JS SHA-512: usable inside workflow code, where node:crypto is not.
ed.hashes.sha512 = sha512;

/** How long a signed approval stays valid after the API signed it. */
export const APPROVAL_SIGNATURE_TTL_MS = 5 * 60 * 1000;

/** A public key that verifies approvals, by key id. */
export const ApprovalVerifyKey = z.strictObject({
  kid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/, 'must be a 32-byte Ed25519 public key in hex'),
});
export type ApprovalVerifyKey = z.infer<typeof ApprovalVerifyKey>;

/**
 * An approval as the API forwards it to a run: the approver's decision, bound to the run, the plan
 * digest and a short validity window, signed by the API. The workflow verifies it, so an update sent
 * straight to Temporal, around the API, is refused.
 */
export const SignedApproval = ApprovalRequest.extend({
  runId: z.string().min(1).max(64),
  issuedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  kid: ApprovalVerifyKey.shape.kid,
  signature: z.string().regex(/^[0-9a-f]{128}$/),
});
export type SignedApproval = z.infer<typeof SignedApproval>;

/** The exact bytes an approval signature covers. */
export function approvalSigningPayload(approval: Omit<SignedApproval, 'signature' | 'kid'> & { kid: string }): Uint8Array {
  const { runId, approver, roles, decision, planDigest, channel, comment, issuedAt, expiresAt, nonce, kid } = approval;
  const text = canonicalJson({ v: 1, kid, runId, approver, roles: [...roles].sort(), decision, planDigest, channel, comment: comment ?? null, issuedAt, expiresAt, nonce });
  return utf8(text);
}

const fromHex = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));
const toHex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** Why a signed approval is refused, or undefined when it holds. */
export function approvalSignatureProblem(approval: SignedApproval, keys: readonly ApprovalVerifyKey[], runId: string, nowMs: number): string | undefined {
  const key = keys.find((k) => k.kid === approval.kid);
  if (!key) return `approval signed with unknown key "${approval.kid}"`;
  if (approval.runId !== runId) return `approval was signed for run ${approval.runId}, not ${runId}`;
  const issued = Date.parse(approval.issuedAt);
  const expires = Date.parse(approval.expiresAt);
  if (!(expires > issued) || expires - issued > APPROVAL_SIGNATURE_TTL_MS) return 'approval validity window is malformed';
  if (nowMs > expires) return `approval expired at ${approval.expiresAt}`;
  let valid: boolean;
  try {
    valid = ed.verify(fromHex(approval.signature), approvalSigningPayload(approval), fromHex(key.publicKey));
  } catch {
    valid = false;
  }
  return valid ? undefined : 'approval signature does not verify';
}

/** Signs an approval with an Ed25519 private key (32-byte seed, hex). */
export function signApprovalPayload(approval: Omit<SignedApproval, 'signature'>, privateKeyHex: string): SignedApproval {
  const signature = toHex(ed.sign(approvalSigningPayload(approval), fromHex(privateKeyHex)));
  return { ...approval, signature };
}

/** The public key (hex) of an Ed25519 private key (32-byte seed, hex). */
export function approvalPublicKey(privateKeyHex: string): string {
  return toHex(ed.getPublicKey(fromHex(privateKeyHex)));
}
