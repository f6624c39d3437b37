import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { FastifyBaseLogger } from 'fastify';
import { APPROVAL_SIGNATURE_TTL_MS, httpStatusOf, signRollbackPayload, type Identity, type RollbackAccepted, type SignedRollback } from '../domain/index.js';
import type { Ledger } from '../store/ledger.js';
import { requestRollbackUpdate } from '../workflows/messages.js';
import { sendRunUpdate, type ApprovalSigningKey } from './approvals.js';

/** What an operator asks for: why, and optionally which actions (all that can be, otherwise). */
export interface RollbackInput {
  reason: string;
  actions?: string[] | undefined;
}

/** The run's answer, or why the rollback was refused (type from the error catalogue). */
export type RollbackOutcome = { ok: true; result: RollbackAccepted } | { ok: false; type: string; message: string; httpStatus: number };

/** The one path every channel (API, CLI, web) takes to roll back a run. */
export interface RollbackService {
  rollBack(runId: string, identity: Identity, input: RollbackInput): Promise<RollbackOutcome>;
}

export interface RollbackServiceDeps {
  temporal: Client;
  ledger: Ledger;
  signer: ApprovalSigningKey | undefined;
  log: FastifyBaseLogger;
  workerTimeoutMs?: number;
}

/**
 * Signs the operator's rollback request (who, roles now, run, reason, actions, a 5-minute validity
 * and a single-use nonce) and sends it to the run as a Temporal Update; the run checks the signature,
 * its rollback window and the actions, then asks policy as that operator. A refusal, from here or
 * from the run, is written to the ledger with its reason.
 */
export function createRollbackService(deps: RollbackServiceDeps): RollbackService {
  const workerTimeoutMs = deps.workerTimeoutMs ?? 10_000;

  const refuse = async (runId: string, identity: Identity, input: RollbackInput, type: string, message: string): Promise<RollbackOutcome> => {
    await deps.ledger.append({
      kind: 'rollback.refused',
      actor: identity.name,
      runId,
      planDigest: null,
      data: { reason: input.reason, actions: input.actions ?? null, refusal: type, message },
    });
    deps.log.info({ runId, requester: identity.name, type }, 'rollback refused');
    return { ok: false, type, message, httpStatus: httpStatusOf(type) };
  };

  return {
    async rollBack(runId, identity, input) {
      if (!deps.signer) return refuse(runId, identity, input, 'ServiceUnavailable', 'rollbacks are not configured: the API has no signing key');
      const issuedAt = Date.now();
      const unsigned: Omit<SignedRollback, 'signature'> = {
        requester: identity.name,
        roles: identity.roles,
        reason: input.reason,
        ...(input.actions !== undefined ? { actions: input.actions } : {}),
        runId,
        issuedAt: new Date(issuedAt).toISOString(),
        expiresAt: new Date(issuedAt + APPROVAL_SIGNATURE_TTL_MS).toISOString(),
        nonce: randomBytes(16).toString('hex'),
        kid: deps.signer.kid,
      };
      const signed = signRollbackPayload(unsigned, deps.signer.privateKey);
      // A run that has ended is past its rollback window (or never had one).
      const answer = await sendRunUpdate(deps.temporal, runId, workerTimeoutMs, (handle) => handle.executeUpdate(requestRollbackUpdate, { args: [signed] }), {
        type: 'RollbackWindowClosed',
        message: `run ${runId} has ended: its rollback window is over, or it changed nothing that can be undone`,
      });
      if (!answer.ok) return refuse(runId, identity, input, answer.type, answer.message);
      deps.log.info({ runId, requester: identity.name, rollbackId: answer.result.rollbackId, actions: answer.result.actions }, 'rollback accepted');
      return answer;
    },
  };
}
