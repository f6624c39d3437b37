import { WorkflowNotFoundError, WorkflowUpdateFailedError, isGrpcServiceError, type WorkflowExecutionDescription } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApprovalResult, ApprovalVerdict, ErrorBody, PlanDigest, RunId, RunStatus, RunSummary, RunView, type ApprovalRequest } from '../../domain/index.js';
import { playbooks } from '../../playbooks/registry.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import { CordonAlertSource, CordonPlaybook, CordonSeverity, CordonStatus, CordonTargets } from '../../workflows/search-attributes.js';
import { bearerAuth, rejectUnparsedBody, sendError, sendFailure, type ServerDeps } from '../app.js';

/** The run status recorded in a workflow's search attributes. */
export function runStatusFromVisibility(description: Pick<WorkflowExecutionDescription, 'typedSearchAttributes'>): RunStatus {
  const parsed = RunStatus.safeParse(description.typedSearchAttributes.get(CordonStatus));
  return parsed.success ? parsed.data : 'observing';
}

const RunParams = z.object({ runId: RunId });

const ListQuery = z.strictObject({
  status: RunStatus.optional(),
  playbook: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

const ApprovalBody = z.strictObject({
  decision: ApprovalVerdict,
  planDigest: PlanDigest,
  comment: z.string().max(2000).optional(),
  channel: z.enum(['api', 'cli']).default('api'),
});

/** GET /v1/runs, GET /v1/runs/:runId, POST /v1/runs/:runId/approvals. */
export const runRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  const bearer = bearerAuth(deps.identities);
  const workerTimeoutMs = deps.workerTimeoutMs ?? 10_000;

  app.get(
    '/v1/runs',
    {
      schema: {
        summary: 'List runs, filtered by status and playbook (newest first)',
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: z.object({ runs: z.array(RunSummary) }), 400: ErrorBody, 401: ErrorBody },
      },
      onRequest: bearer,
    },
    async (request, reply) => {
      const { status, playbook, limit } = request.query;
      if (playbook !== undefined && !Object.hasOwn(playbooks, playbook)) {
        return sendError(reply, 'InvalidRequest', `unknown playbook "${playbook}" (known: ${Object.keys(playbooks).join(', ')})`);
      }
      // Values are checked against closed sets above, so they are safe to put in the visibility query.
      const clauses = [`WorkflowType = 'remediationWorkflow'`];
      if (status) clauses.push(`${CordonStatus.name} = '${status}'`);
      if (playbook) clauses.push(`${CordonPlaybook.name} = '${playbook}'`);
      const runs: RunSummary[] = [];
      for await (const execution of deps.temporal.workflow.list({ query: clauses.join(' AND '), pageSize: Math.min(limit, 100) })) {
        const sa = execution.typedSearchAttributes;
        const parsedStatus = RunStatus.safeParse(sa.get(CordonStatus));
        runs.push({
          runId: execution.workflowId,
          playbook: sa.get(CordonPlaybook) ?? null,
          status: parsedStatus.success ? parsedStatus.data : null,
          targets: sa.get(CordonTargets) ?? [],
          alertSource: sa.get(CordonAlertSource) ?? null,
          severity: sa.get(CordonSeverity) ?? null,
          startedAt: execution.startTime.toISOString(),
          closedAt: execution.closeTime?.toISOString() ?? null,
        });
        if (runs.length >= limit) break;
      }
      return { runs };
    },
  );

  app.get(
    '/v1/runs/:runId',
    {
      schema: {
        summary: 'A run: alert, plan, policy decision, approvals, journal with evidence, timeline',
        security: [{ bearer: [] }],
        params: RunParams,
        response: { 200: RunView, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody },
      },
      onRequest: bearer,
    },
    async (request, reply) => {
      const { runId } = request.params;
      try {
        const view = await deps.temporal.withAbortSignal(AbortSignal.timeout(workerTimeoutMs), () =>
          deps.temporal.workflow.getHandle(runId).query(getRunQuery),
        );
        return view;
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return sendError(reply, 'NotFound', `no run ${runId}`);
        if (isGrpcServiceError(error) && error.code === 4 /* DEADLINE_EXCEEDED */) {
          return sendError(reply, 'ServiceUnavailable', `no worker answered for run ${runId} within ${workerTimeoutMs} ms`);
        }
        if (isCancelledByTimeout(error)) return sendError(reply, 'ServiceUnavailable', `no worker answered for run ${runId} within ${workerTimeoutMs} ms`);
        throw error;
      }
    },
  );

  app.post(
    '/v1/runs/:runId/approvals',
    {
      schema: {
        summary: 'Approve or reject a run awaiting approval, for the plan digest shown to the approver',
        security: [{ bearer: [] }],
        params: RunParams,
        body: ApprovalBody,
        response: {
          200: ApprovalResult,
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          409: ErrorBody,
          503: ErrorBody,
        },
      },
      onRequest: bearer,
      preValidation: rejectUnparsedBody,
    },
    async (request, reply) => {
      const { runId } = request.params;
      const identity = request.identity!;
      const body = request.body;
      const approval: ApprovalRequest = {
        approver: identity.name,
        roles: identity.roles,
        decision: body.decision,
        planDigest: body.planDigest,
        channel: body.channel,
        ...(body.comment !== undefined ? { comment: body.comment } : {}),
      };
      try {
        const result = await deps.temporal.withAbortSignal(AbortSignal.timeout(workerTimeoutMs), () =>
          deps.temporal.workflow.getHandle(runId).executeUpdate(decideApprovalUpdate, { args: [approval] }),
        );
        request.log.info({ runId, approver: identity.name, decision: body.decision, status: result.status }, 'approval accepted');
        return result;
      } catch (error) {
        if (error instanceof WorkflowUpdateFailedError) {
          const cause = error.cause;
          const type = cause instanceof ApplicationFailure ? cause.type : undefined;
          request.log.info({ runId, approver: identity.name, type }, 'approval refused');
          return sendFailure(reply, type, cause?.message ?? error.message);
        }
        if (error instanceof WorkflowNotFoundError) {
          // Temporal answers "not found" for an update to a run that has ended: tell the two apart.
          const ended = await deps.temporal.workflow.getHandle(runId).describe().catch(() => undefined);
          if (ended) return sendError(reply, 'RunNotAwaitingApproval', `run ${runId} has ended (${runStatusFromVisibility(ended)})`);
          return sendError(reply, 'NotFound', `no run ${runId}`);
        }
        if (isCancelledByTimeout(error)) return sendError(reply, 'ServiceUnavailable', `no worker answered for run ${runId} within ${workerTimeoutMs} ms`);
        throw error;
      }
    },
  );
};

function isCancelledByTimeout(error: unknown): boolean {
  const e = error as { name?: string; code?: number; cause?: unknown } | undefined;
  return e?.name === 'TimeoutError' || e?.name === 'AbortError' || e?.code === 1 /* CANCELLED */ || (e?.cause !== undefined && isCancelledByTimeout(e.cause));
}
