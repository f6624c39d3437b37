import { randomBytes } from 'node:crypto';
import {
  APPROVAL_SIGNATURE_TTL_MS,
  approvalPublicKey,
  signApprovalPayload,
  signRollbackPayload,
  type ApprovalRequest,
  type ApprovalVerifyKey,
  type RollbackRequest,
  type SignedApproval,
  type SignedRollback,
} from '../../domain/index.js';
import type { ApprovalSigningKey } from '../../server/approvals.js';

/** The key pair the tests' API signs approvals with, and the tests' workers verify them with. */
export const testSigningKey: ApprovalSigningKey = { kid: 'test', privateKey: randomBytes(32).toString('hex') };
export const testVerifyKeys: ApprovalVerifyKey[] = [{ kid: testSigningKey.kid, publicKey: approvalPublicKey(testSigningKey.privateKey) }];

/** Signs an approval for a run as the API would (valid for 5 minutes from `nowMs`). */
export function signForTest(runId: string, request: ApprovalRequest, nowMs = Date.now(), key: ApprovalSigningKey = testSigningKey): SignedApproval {
  return signApprovalPayload(
    {
      ...request,
      runId,
      issuedAt: new Date(nowMs).toISOString(),
      expiresAt: new Date(nowMs + 5 * 60_000).toISOString(),
      nonce: randomBytes(16).toString('hex'),
      kid: key.kid,
    },
    key.privateKey,
  );
}

/** Signs a rollback request for a run as the API would (valid for 5 minutes from `nowMs`). */
export function signRollbackForTest(runId: string, request: RollbackRequest, nowMs = Date.now(), key: ApprovalSigningKey = testSigningKey): SignedRollback {
  return signRollbackPayload(
    {
      ...request,
      runId,
      issuedAt: new Date(nowMs).toISOString(),
      expiresAt: new Date(nowMs + APPROVAL_SIGNATURE_TTL_MS).toISOString(),
      nonce: randomBytes(16).toString('hex'),
      kid: key.kid,
    },
    key.privateKey,
  );
}
