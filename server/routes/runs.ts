import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApprovalResult, ApprovalVerdict, CordonError, ErrorBody, PlanDigest, RunId, RunSummary, RunView, type Identity } from '../../domain/index.js';
import { bearerAuth, rejectUnparsedBody, sendError, sendFailure, type ServerContext } from '../app.js';
import { getRun, rerunsOf, listRunsPage, MAX_PAGE_SIZE, PageToken, RunFilters, runsAwaitingApproval, timeRangeInOrder } from '../run-queries.js';

const RunParams = z.object({ runId: RunId });

const PageSize = z.coerce.number().int().min(1).max(MAX_PAGE_SIZE);

const ListQuery = z
  .strictObject({
    ...RunFilters.shape,
    pageSize: PageSize.optional(),
    /** The older name of `pageSize`. */
    limit: PageSize.optional(),
    pageToken: PageToken.optional(),
  })
  .superRefine((query, ctx) => {
    timeRangeInOrder(query, ctx);
    if (query.pageSize !== undefined && query.limit !== undefined) ctx.addIssue({ code: 'custom', path: ['limit'], message: 'give pageSize or limit, not both' });
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

  /** The bearer check for decisions: a caller without a valid token is logged as a security warning, never written to the ledger. */
  const decisionBearer = async (request: FastifyRequest, reply: FastifyReply) => {
    await bearer(request, reply);
    if (!request.identity) {
      request.log.warn(
        { security: true, channel: 'api', reason: 'Unauthenticated', token: request.headers.authorization ? 'invalid' : 'absent', path: request.url.split('?')[0], ip: request.ip },
        'approval attempt without a valid bearer token refused',
      );
    }
  };
  /** Writes a decision an authenticated caller sent that the API refused before it reached the run. */
  const recordRefused = async (request: FastifyRequest, type: 'InvalidRequest' | 'PayloadTooLarge' | 'UnsupportedMediaType', message: string) => {
    const identity = request.identity;
    if (!identity) return;
    const body = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as Record<string, unknown>;
    await deps.approvals.recordRefusal({
      actor: identity.name,
      channel: body.channel === 'cli' ? 'cli' : 'api',
      runId: (request.params as { runId?: string } | undefined)?.runId,
      decision: body.decision,
      planDigest: body.planDigest,
      reason: type,
      message,
    });
  };

  app.get(
    '/v1/runs',
    {
      schema: {
        summary:
          'List runs of this deployment\'s task queue (newest first), filtered by status, playbook, target, alert source, severity and start time (since inclusive, until exclusive), a page at a time',
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: z.object({ runs: z.array(RunSummary), nextPageToken: z.string().nullable() }), 400: ErrorBody, 401: ErrorBody },
      },
      onRequest: bearer,
    },
    async (request, reply) => {
      const { pageSize, limit, pageToken, ...filters } = request.query;
      try {
        return await listRunsPage(deps, filters, { pageSize: pageSize ?? limit ?? 50, pageToken });
      } catch (error) {
        if (error instanceof CordonError && error.type === 'InvalidRequest') {
          return sendError(reply, error.type, error.message, [{ path: 'querystring.pageToken', message: error.message }]);
        }
        throw error;
      }
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
        // The reruns come from visibility, asked here only: the inbox and the UI's pages do not show them.
        const view = await getRun(deps, runId);
        return view ? { ...view, reruns: await rerunsOf(deps, view.runId) } : sendError(reply, 'NotFound', `no run ${runId}`);
      } catch (error) {
        if (error instanceof CordonError) return sendFailure(reply, error.type, error.message);
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
      onRequest: decisionBearer,
      preValidation: async (request, reply) => {
        if (request.bodyError !== undefined) await recordRefused(request, 'InvalidRequest', request.bodyError);
        return rejectUnparsedBody(request, reply);
      },
      // A request the schema refuses (or a body too large, or not JSON) from a known caller is a
      // refused attempt too; the app's error handler still answers it.
      errorHandler: async (error: FastifyError, request) => {
        const status = error.statusCode ?? 500;
        if (status >= 400 && status < 500) {
          const type = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'PayloadTooLarge' : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'UnsupportedMediaType' : 'InvalidRequest';
          await recordRefused(request, type, error.message);
        }
        throw error;
      },
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
      const views = await runsAwaitingApproval(deps);
      return { runs: views.filter((view) => mayDecide(view, identity)).map(inboxItem) };
    },
  );
};

/** A run in an approver's inbox. */
export const InboxItem = z.object({
  runId: z.string(),
  playbook: z.string(),
  alert: z.object({ source: z.string(), kind: z.string(), severity: z.string(), subject: z.string() }),
  requestedBy: z.string(),
  /** What is to be decided: the run's plan, or a rollback of it. */
  subject: z.enum(['plan', 'rollback']),
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
  const open = view.openApproval;
  if (view.status !== 'awaiting_approval' || !open) return false;
  if (open.requestedBy === identity.name) return false;
  if (open.approvals.some((a) => a.approver === identity.name)) return false;
  return identity.roles.some((role) => open.approverRoles.includes(role));
}

/** A run awaiting approval as an inbox shows it (the API's and the web UI's). */
export function inboxItem(view: RunView): InboxItem {
  const open = view.openApproval!;
  const rollback = open.subject === 'rollback' ? view.rollbacks.at(-1) : undefined;
  return {
    runId: view.runId,
    playbook: view.playbook,
    alert: { source: view.alert.source, kind: view.alert.kind, severity: view.alert.severity, subject: view.alert.subject.userName ?? view.alert.subject.id ?? '' },
    requestedBy: open.requestedBy,
    subject: open.subject,
    planDigest: open.digest,
    actions: open.subject === 'plan' ? (view.plan?.actions.length ?? 0) : (rollback?.actions.length ?? 0),
    approvals: open.approvals.filter((a) => a.decision === 'approve').length,
    required: open.requiredApprovals,
    approverRoles: open.approverRoles,
    stage: (open.subject === 'plan' ? view.decision : rollback?.decision)?.approvalStage ?? null,
    expiresAt: open.expiresAt,
  };
}
