import { randomBytes } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ActionId, CordonError, ErrorBody, RerunAccepted, RollbackAccepted, RunId, RunMode, rerunIdFor } from '../../domain/index.js';
import { playbookForKind } from '../../playbooks/registry.js';
import type { RemediationInput } from '../../workflows/remediation.js';
import { bearerAuth, rejectUnparsedBody, requireRole, sendError, sendFailure, type ServerContext } from '../app.js';
import { getRun } from '../run-queries.js';
import { startRemediationRun } from './alerts.js';

const RunParams = z.object({ runId: RunId });

const RollbackBody = z.strictObject({
  reason: z.string().trim().min(3, 'must say why, in at least 3 characters').max(2000),
  /** The actions to undo; every action the run changed and has not rolled back when absent. */
  actions: z.array(ActionId).min(1).max(100).optional(),
});

const RerunBody = z.strictObject({ mode: RunMode.default('live') });

const failures = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 500: ErrorBody, 503: ErrorBody };

/** POST /v1/runs/:runId/rollback and /v1/runs/:runId/rerun (roles operator or admin). */
export const operationRoutes: FastifyPluginAsyncZod<ServerContext> = async (app, deps) => {
  const bearer = bearerAuth(deps.identities);
  const operator = requireRole('operator', 'admin');

  app.post(
    '/v1/runs/:runId/rollback',
    {
      schema: {
        summary: 'Roll back a completed run, whole or in part, within its rollback window; policy (and approvers, where it says) decide first',
        security: [{ bearer: [] }],
        params: RunParams,
        body: RollbackBody,
        response: { 202: RollbackAccepted, ...failures },
      },
      onRequest: bearer,
      // The role is checked before the body is looked at.
      preValidation: [operator, rejectUnparsedBody],
    },
    async (request, reply) => {
      const { reason, actions } = request.body;
      const outcome = await deps.rollbacks.rollBack(request.params.runId, request.identity!, { reason, actions });
      return outcome.ok ? reply.code(202).send(outcome.result) : sendFailure(reply, outcome.type, outcome.message);
    },
  );

  app.post(
    '/v1/runs/:runId/rerun',
    {
      schema: {
        summary: 'Start a new run from the same alert, observing the world as it is now; linked to the original both ways',
        security: [{ bearer: [] }],
        params: RunParams,
        body: RerunBody,
        response: { 202: RerunAccepted, ...failures },
      },
      onRequest: bearer,
      // The role is checked before the body is looked at.
      preValidation: [operator, rejectUnparsedBody],
    },
    async (request, reply) => {
      const { runId } = request.params;
      const { mode } = request.body;
      let original;
      try {
        original = await getRun(deps, runId);
      } catch (error) {
        if (error instanceof CordonError) return sendFailure(reply, error.type, error.message);
        throw error;
      }
      if (!original) return sendError(reply, 'NotFound', `no run ${runId}`);
      const playbook = playbookForKind(original.alert.kind);
      if (!playbook) return sendError(reply, 'UnknownAlertKind', `no playbook handles alert kind "${original.alert.kind}" any more`);
      const identity = request.identity!;
      const rerunId = rerunIdFor(runId, mode, randomBytes(16).toString('hex'));
      const input: RemediationInput = {
        runId: rerunId,
        playbook: playbook.name,
        alert: { ...original.alert, mode },
        requestedBy: identity,
        receivedAt: new Date().toISOString(),
        rerunOf: runId,
      };
      try {
        await startRemediationRun(deps, input);
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) return sendError(reply, 'Internal', `run id ${rerunId} is already taken`);
        throw error;
      }
      await deps.ledger.append({ kind: 'run.rerun', actor: identity.name, runId: rerunId, planDigest: null, data: { rerunOf: runId, mode } });
      request.log.info({ runId: rerunId, rerunOf: runId, mode, requestedBy: identity.name }, 'rerun started');
      return reply.code(202).send({ runId: rerunId, rerunOf: runId, mode, status: 'observing' as const });
    },
  );
};
