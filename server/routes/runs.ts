import { WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApprovalResult, ApprovalVerdict, ErrorBody, PlanDigest, RunId, RunStatus, RunSummary, RunView, type Identity } from '../../domain/index.js';
import { playbooks } from '../../playbooks/registry.js';
import { getRunQuery } from '../../workflows/messages.js';
import { CordonAlertSource, CordonPlaybook, CordonSeverity, CordonStatus, CordonTargets } from '../../workflows/search-attributes.js';
import { bearerAuth, rejectUnparsedBody, sendError, sendFailure, type ServerContext } from '../app.js';
import { isTimeout } from '../approvals.js';

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
export const runRoutes: FastifyPluginAsyncZod<ServerContext> = async (app, deps) => {
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
        if (isTimeout(error)) return sendError(reply, 'ServiceUnavailable', `no worker answered for run ${runId} within ${workerTimeoutMs} ms`);
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
      const { body } = request;
      const outcome = await deps.approvals.decide(request.params.runId, request.identity!, {
        decision: body.decision,
        planDigest: body.planDigest,
        channel: body.channel,
        ...(body.comment !== undefined ? { comment: body.comment } : {}),
      });
      return outcome.ok ? outcome.result : sendFailure(reply, outcome.type, outcome.message);
    },
  );

  app.get(
    '/v1/inbox',
    {
      schema: {
        summary: 'Runs awaiting the caller\'s decision: eligible by role now, not requested by them, not yet decided by them',
        security: [{ bearer: [] }],
        response: { 200: z.object({ runs: z.array(InboxItem) }), 401: ErrorBody },
      },
      onRequest: bearer,
    },
    async (request) => {
      const identity = request.identity!;
      const waiting: string[] = [];
      for await (const execution of deps.temporal.workflow.list({ query: `WorkflowType = 'remediationWorkflow' AND ${CordonStatus.name} = 'awaiting_approval'`, pageSize: 100 })) {
        waiting.push(execution.workflowId);
        if (waiting.length >= INBOX_LIMIT) break;
      }
      const views = await mapBounded(waiting, 8, (runId) =>
        deps.temporal.withAbortSignal(AbortSignal.timeout(workerTimeoutMs), () => deps.temporal.workflow.getHandle(runId).query(getRunQuery)).catch(() => undefined),
      );
      const runs = views.filter((view): view is RunView => view !== undefined && mayDecide(view, identity)).map(inboxItem);
      return { runs };
    },
  );
};

/** The most runs the inbox looks at. */
const INBOX_LIMIT = 200;

/** A run in an approver's inbox. */
export const InboxItem = z.object({
  runId: z.string(),
  playbook: z.string(),
  alert: z.object({ source: z.string(), kind: z.string(), severity: z.string(), subject: z.string() }),
  requestedBy: z.string(),
  planDigest: z.string(),
  actions: z.int(),
  approvals: z.int(),
  required: z.int(),
  approverRoles: z.array(z.string()),
  stage: z.string().nullable(),
  expiresAt: z.string().nullable(),
});
export type InboxItem = z.infer<typeof InboxItem>;

/** Whether `identity` may decide on a run now: awaiting approval, an eligible role, not the requester, not decided yet. */
export function mayDecide(view: RunView, identity: Identity): boolean {
  if (view.status !== 'awaiting_approval' || !view.decision || !view.plan) return false;
  if (view.requestedBy === identity.name) return false;
  if (view.approvals.some((a) => a.approver === identity.name)) return false;
  return identity.roles.some((role) => view.decision!.approverRoles.includes(role));
}

function inboxItem(view: RunView): InboxItem {
  return {
    runId: view.runId,
    playbook: view.playbook,
    alert: { source: view.alert.source, kind: view.alert.kind, severity: view.alert.severity, subject: view.alert.subject.userName ?? view.alert.subject.id ?? '' },
    requestedBy: view.requestedBy,
    planDigest: view.plan!.digest,
    actions: view.plan!.actions.length,
    approvals: view.approvals.filter((a) => a.decision === 'approve').length,
    required: view.decision!.requiredApprovals,
    approverRoles: view.decision!.approverRoles,
    stage: view.decision!.approvalStage,
    expiresAt: view.decision!.approvalExpiresAt,
  };
}

/** Maps with at most `concurrency` calls in flight, keeping order. */
async function mapBounded<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}
