import { randomBytes } from 'node:crypto';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyBaseLogger } from 'fastify';
import type { ApprovalSigningKeyFile } from '../config/approval-keys.js';
import {
  APPROVAL_SIGNATURE_TTL_MS,
  httpStatusOf,
  RunId,
  type ErrorType,
  signApprovalPayload,
  type ApprovalResult,
  type Channel,
  type Identity,
  type SignedApproval,
} from '../domain/index.js';
import type { Ledger } from '../store/ledger.js';
import { decideApprovalUpdate } from '../workflows/messages.js';

/** The API's approval signing key. */
export type ApprovalSigningKey = ApprovalSigningKeyFile;

/** What an approver decides, from whichever channel. */
export interface ApprovalInput {
  decision: 'approve' | 'reject';
  planDigest: string;
  comment?: string | undefined;
  channel: Channel;
}

/** The workflow's answer, or why the decision was refused (type from the error catalogue). */
export type ApprovalOutcome = { ok: true; result: ApprovalResult } | { ok: false; type: string; message: string; httpStatus: number };

/**
 * A decision a known person tried to send that was refused before it reached the run: a malformed
 * request, a form without a valid CSRF token or from another site, a Slack button naming no run.
 */
export interface RefusedAttempt {
  /** Who: a Cordon identity, or `slack:<user id>` for a Slack user linked to none. */
  actor: string;
  channel: Channel;
  /** The run the attempt named, as sent: the entry's run when such a run exists (else kept as `requestedRunId` when well-formed). */
  runId?: string | undefined;
  /** As sent; kept when it is a verdict. */
  decision?: unknown;
  /** As sent; kept when it is a digest. */
  planDigest?: unknown;
  /** A type from the error catalogue. */
  reason: ErrorType;
  message: string;
  /** More facts for the entry (the Slack user id, the check that failed). */
  details?: Readonly<Record<string, string | null>>;
}

/** The one path every channel (API, CLI, web, Slack) takes to decide on a run. */
export interface ApprovalService {
  decide(runId: string, identity: Identity, input: ApprovalInput): Promise<ApprovalOutcome>;
  /** Writes a refused attempt to the ledger as `approval.refused`; only for attempts by an authenticated person (anyone else's would let them grow the ledger). */
  recordRefusal(attempt: RefusedAttempt): Promise<void>;
}

export interface ApprovalServiceDeps {
  temporal: Client;
  ledger: Ledger;
  signer: ApprovalSigningKey | undefined;
  log: FastifyBaseLogger;
  workerTimeoutMs?: number;
}

/**
 * Signs the approver's decision (who, roles now, run, plan digest, a 5-minute validity and a
 * single-use nonce) and sends it to the run as a Temporal Update; the workflow verifies the signature
 * and every rule. A refusal, from here or from the workflow, is written to the ledger with its reason.
 */
export function createApprovalService(deps: ApprovalServiceDeps): ApprovalService {
  const workerTimeoutMs = deps.workerTimeoutMs ?? 10_000;

  /** Whether a run with this id exists (ended or not); false when Temporal cannot say. */
  const runExists = async (runId: string): Promise<boolean> => {
    if (!RunId.safeParse(runId).success) return false;
    try {
      await deps.temporal.withAbortSignal(AbortSignal.timeout(workerTimeoutMs), () => deps.temporal.workflow.getHandle(runId).describe());
      return true;
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) deps.log.warn({ err: error, runId }, 'could not tell whether a run exists for a refused attempt');
      return false;
    }
  };

  const write = async (attempt: Omit<RefusedAttempt, 'reason'> & { reason: string }, exists: boolean): Promise<void> => {
    const { actor, channel, runId, reason, message } = attempt;
    const wellFormedRun = runId !== undefined && RunId.safeParse(runId).success;
    await deps.ledger.append({
      kind: 'approval.refused',
      actor,
      runId: exists && runId !== undefined ? runId : null,
      planDigest: typeof attempt.planDigest === 'string' && /^[0-9a-f]{64}$/.test(attempt.planDigest) ? attempt.planDigest : null,
      data: {
        channel,
        decision: attempt.decision === 'approve' || attempt.decision === 'reject' ? attempt.decision : null,
        reason,
        message: message.slice(0, 1000),
        ...(!exists && wellFormedRun ? { requestedRunId: runId } : {}),
        ...attempt.details,
      },
    });
    deps.log.info({ runId: exists ? runId : null, approver: actor, channel, type: reason }, 'approval refused');
  };

  const refuse = async (runId: string, identity: Identity, input: ApprovalInput, type: string, message: string): Promise<ApprovalOutcome> => {
    // NotFound is the one answer that says the run does not exist; every other came from (or about) the run.
    await write({ actor: identity.name, channel: input.channel, runId, decision: input.decision, planDigest: input.planDigest, reason: type, message }, type !== 'NotFound');
    return { ok: false, type, message, httpStatus: httpStatusOf(type) };
  };

  return {
    async decide(runId, identity, input) {
      if (!deps.signer) return refuse(runId, identity, input, 'ServiceUnavailable', 'approvals are not configured: the API has no signing key');
      const issuedAt = Date.now();
      const unsigned: Omit<SignedApproval, 'signature'> = {
        approver: identity.name,
        roles: identity.roles,
        decision: input.decision,
        planDigest: input.planDigest,
        channel: input.channel,
        ...(input.comment !== undefined ? { comment: input.comment } : {}),
        runId,
        issuedAt: new Date(issuedAt).toISOString(),
        expiresAt: new Date(issuedAt + APPROVAL_SIGNATURE_TTL_MS).toISOString(),
        nonce: randomBytes(16).toString('hex'),
        kid: deps.signer.kid,
      };
      const signed = signApprovalPayload(unsigned, deps.signer.privateKey);
      const answer = await sendRunUpdate(deps.temporal, runId, workerTimeoutMs, (handle) => handle.executeUpdate(decideApprovalUpdate, { args: [signed] }), {
        type: 'RunNotAwaitingApproval',
        message: `run ${runId} has ended`,
      });
      if (!answer.ok) return refuse(runId, identity, input, answer.type, answer.message);
      deps.log.info({ runId, approver: identity.name, channel: input.channel, decision: input.decision, status: answer.result.status }, 'approval accepted');
      return answer;
    },

    async recordRefusal(attempt) {
      await write(attempt, attempt.runId !== undefined && (await runExists(attempt.runId)));
    },
  };
}

/**
 * Sends a signed Update to a run and says, in the error catalogue's terms, why it did not land: the
 * workflow's validator refused it, the run has ended (`ended`), there is no such run, or no worker
 * answered within `timeoutMs`. Anything else is thrown.
 */
export async function sendRunUpdate<T>(
  temporal: Client,
  runId: string,
  timeoutMs: number,
  send: (handle: WorkflowHandle) => Promise<T>,
  ended: { type: string; message: string },
): Promise<{ ok: true; result: T } | { ok: false; type: string; message: string }> {
  try {
    return { ok: true, result: await temporal.withAbortSignal(AbortSignal.timeout(timeoutMs), () => send(temporal.workflow.getHandle(runId))) };
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError) {
      const cause = error.cause;
      return { ok: false, type: cause instanceof ApplicationFailure && cause.type ? cause.type : 'Internal', message: cause?.message ?? error.message };
    }
    if (error instanceof WorkflowNotFoundError) {
      // Temporal answers "not found" for an update to a run that has ended: tell the two apart.
      const description = await temporal.workflow.getHandle(runId).describe().catch(() => undefined);
      return description ? { ok: false, ...ended } : { ok: false, type: 'NotFound', message: `no run ${runId}` };
    }
    if (isTimeout(error)) return { ok: false, type: 'ServiceUnavailable', message: `no worker answered for run ${runId} within ${timeoutMs} ms` };
    throw error;
  }
}

/** Whether an error is a deadline or an abort (no worker answered in time). */
export function isTimeout(error: unknown): boolean {
  const e = error as { name?: string; code?: number; cause?: unknown } | undefined;
  return e?.name === 'TimeoutError' || e?.name === 'AbortError' || e?.code === 1 /* CANCELLED */ || e?.code === 4 /* DEADLINE_EXCEEDED */ || (e?.cause !== undefined && isTimeout(e.cause));
}
