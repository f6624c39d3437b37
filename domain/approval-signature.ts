import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { ApprovalRequest } from './approval.js';
import { canonicalJson } from './canonical-json.js';
import { IdentityName, Role } from './identity.js';
import { ActionId } from './plan.js';
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

/** What every message the API signs for a run carries: the run, a short validity, a single-use nonce, the key and the signature. */
function signedEnvelopeShape() {
  return {
    runId: z.string().min(1).max(64),
    issuedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
    nonce: z.string().regex(/^[0-9a-f]{32}$/),
    kid: ApprovalVerifyKey.shape.kid,
    signature: z.string().regex(/^[0-9a-f]{128}$/),
  };
}

/**
 * An approval as the API forwards it to a run: the approver's decision, bound to the run, the plan
 * digest and a short validity window, signed by the API. The workflow verifies it, so an update sent
 * straight to Temporal, around the API, is refused.
 */
export const SignedApproval = ApprovalRequest.extend(signedEnvelopeShape());
export type SignedApproval = z.infer<typeof SignedApproval>;

/** The exact bytes an approval signature covers. */
export function approvalSigningPayload(approval: Omit<SignedApproval, 'signature' | 'kid'> & { kid: string }): Uint8Array {
  const { runId, approver, roles, decision, planDigest, channel, comment, issuedAt, expiresAt, nonce, kid } = approval;
  const text = canonicalJson({ v: 1, kid, runId, approver, roles: [...roles].sort(), decision, planDigest, channel, comment: comment ?? null, issuedAt, expiresAt, nonce });
  return utf8(text);
}

const fromHex = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));
const toHex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** What every signed message to a run carries besides its content. */
interface SignedEnvelope {
  runId: string;
  issuedAt: string;
  expiresAt: string;
  kid: string;
  signature: string;
}

/** Why a signed message is refused (unknown key, other run, bad window, expired, bad signature), or undefined. */
function envelopeProblem(what: string, message: SignedEnvelope, payload: Uint8Array, keys: readonly ApprovalVerifyKey[], runId: string, nowMs: number): string | undefined {
  const key = keys.find((k) => k.kid === message.kid);
  if (!key) return `${what} signed with unknown key "${message.kid}"`;
  if (message.runId !== runId) return `${what} was signed for run ${message.runId}, not ${runId}`;
  const issued = Date.parse(message.issuedAt);
  const expires = Date.parse(message.expiresAt);
  if (!(expires > issued) || expires - issued > APPROVAL_SIGNATURE_TTL_MS) return `${what} validity window is malformed`;
  if (nowMs > expires) return `${what} expired at ${message.expiresAt}`;
  let valid: boolean;
  try {
    valid = ed.verify(fromHex(message.signature), payload, fromHex(key.publicKey));
  } catch {
    valid = false;
  }
  return valid ? undefined : `${what} signature does not verify`;
}

/** Why a signed approval is refused, or undefined when it holds. */
export function approvalSignatureProblem(approval: SignedApproval, keys: readonly ApprovalVerifyKey[], runId: string, nowMs: number): string | undefined {
  return envelopeProblem('approval', approval, approvalSigningPayload(approval), keys, runId, nowMs);
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

/**
 * An operator's request to roll back a completed run, or some of its actions, as the API forwards it:
 * signed like an approval, so a rollback asked for around the API is refused by the run.
 */
export const RollbackRequest = z.strictObject({
  requester: IdentityName,
  roles: z.array(Role).max(8),
  reason: z.string().trim().min(3, 'must say why, in at least 3 characters').max(2000),
  /** The actions to undo; every action the run changed and has not rolled back when absent. */
  actions: z.array(ActionId).min(1).max(100).optional(),
});
export type RollbackRequest = z.infer<typeof RollbackRequest>;

export const SignedRollback = RollbackRequest.extend(signedEnvelopeShape());
export type SignedRollback = z.infer<typeof SignedRollback>;

/** The exact bytes a rollback request's signature covers (never valid as an approval's). */
export function rollbackSigningPayload(request: Omit<SignedRollback, 'signature'>): Uint8Array {
  const { runId, requester, roles, reason, actions, issuedAt, expiresAt, nonce, kid } = request;
  return utf8(canonicalJson({ v: 1, purpose: 'rollback', kid, runId, requester, roles: [...roles].sort(), reason, actions: actions ?? null, issuedAt, expiresAt, nonce }));
}

/** Signs a rollback request with an Ed25519 private key (32-byte seed, hex). */
export function signRollbackPayload(request: Omit<SignedRollback, 'signature'>, privateKeyHex: string): SignedRollback {
  return { ...request, signature: toHex(ed.sign(rollbackSigningPayload(request), fromHex(privateKeyHex))) };
}

/** Why a signed rollback request is refused, or undefined when it holds. */
export function rollbackSignatureProblem(request: SignedRollback, keys: readonly ApprovalVerifyKey[], runId: string, nowMs: number): string | undefined {
  return envelopeProblem('rollback request', request, rollbackSigningPayload(request), keys, runId, nowMs);
}
