import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Alert, AlertAccepted, ErrorBody, runIdFor, type Identity } from '../../domain/index.js';
import { handledKinds, playbookForKind } from '../../playbooks/registry.js';
import type { RemediationInput } from '../../workflows/remediation.js';
import { CordonAlertSource, CordonPlaybook, CordonRerunOf, CordonSeverity, CordonStatus, CordonTargets } from '../../workflows/search-attributes.js';
import { bearerAuth, rejectUnparsedBody, sendError, type ServerDeps } from '../app.js';
import { verifyAlertSignature } from '../hmac.js';
import { ocsfToAlert } from '../ocsf.js';
import { runStatusFromVisibility } from '../run-queries.js';

/** The identity of alert senders that authenticate with the shared HMAC secret. */
export const WEBHOOK_IDENTITY: Identity = Object.freeze({ name: 'webhook', roles: ['soc'] }) as Identity;


/**
 * Starts a remediation run with the search attributes runs are found by. Its id is never reused
 * (within the namespace's retention): a repeated alert attaches to the run it started.
 */
export async function startRemediationRun(deps: Pick<ServerDeps, 'temporal' | 'taskQueue' | 'searchIndex'>, input: RemediationInput): Promise<void> {
  const { alert } = input;
  const subject = alert.subject.userName ?? alert.subject.id ?? alert.credential?.id ?? '';
  await deps.temporal.workflow.start('remediationWorkflow', {
    workflowId: input.runId,
    taskQueue: deps.taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    staticSummary: `${input.playbook}: ${input.rerunOf ? 'rerun of ' : ''}${alert.kind} for ${subject} (${alert.severity})`,
    typedSearchAttributes: [
      { key: CordonStatus, value: 'observing' },
      { key: CordonPlaybook, value: input.playbook },
      { key: CordonAlertSource, value: alert.source },
      { key: CordonSeverity, value: alert.severity },
      { key: CordonTargets, value: [alert.subject.id, alert.subject.userName, alert.credential?.id].filter((v): v is string => v !== undefined).map((v) => deps.searchIndex?.(v) ?? v) },
      ...(input.rerunOf ? [{ key: CordonRerunOf, value: input.rerunOf }] : []),
    ],
  });
}

/** POST /v1/alerts and /v1/alerts/ocsf: start a remediation run, or return the run an identical alert already started. */
export const alertRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  const bearer = bearerAuth(deps.identities);
  const nowSeconds = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));

  // Authentication comes before any look at the body's content: HMAC over the raw bytes, or a bearer
  // token with the role soc.
  const authenticate = async (request: FastifyRequest, reply: FastifyReply) => {
    const signature = request.headers['x-cordon-signature'];
    if (typeof signature === 'string') {
      if (!deps.alertHmacSecret) return sendError(reply, 'Unauthenticated', 'HMAC-signed alerts are not enabled on this server');
      const check = verifyAlertSignature(signature, deps.alertHmacSecret, request.rawBody ?? Buffer.alloc(0), nowSeconds());
      if (!check.ok) return sendError(reply, 'Unauthenticated', check.reason);
      request.identity = WEBHOOK_IDENTITY;
      return undefined;
    }
    const denied = await bearer(request, reply);
    if (denied) return denied;
    if (!request.identity?.roles.includes('soc')) return sendError(reply, 'Forbidden', 'sending alerts needs the role soc');
    return undefined;
  };

  /** Starts the run for a valid alert (202), or answers with the run it already has (200). */
  const intake = async (alert: Alert, request: FastifyRequest, reply: FastifyReply) => {
    const playbook = playbookForKind(alert.kind);
    if (!playbook) {
      return sendError(reply, 'UnknownAlertKind', `no playbook handles alert kind "${alert.kind}" (handled: ${handledKinds().join(', ')})`);
    }
    const missing = playbook.missing?.(alert);
    if (missing) return sendError(reply, 'AlertIncomplete', missing);
    const identity = request.identity!;
    const runId = runIdFor(alert.source, alert.id, alert.mode ?? 'live');
    const input: RemediationInput = { runId, playbook: playbook.name, alert, requestedBy: identity, receivedAt: new Date().toISOString() };
    try {
      await startRemediationRun(deps, input);
      request.log.info({ runId, playbook: playbook.name, kind: alert.kind, requestedBy: identity.name }, 'run started');
      return reply.code(202).send({ runId, status: 'observing', duplicate: false });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      const description = await deps.temporal.workflow.getHandle(runId).describe();
      const status = runStatusFromVisibility(description);
      request.log.info({ runId, status }, 'duplicate alert attached to its run');
      return reply.code(200).send({ runId, status, duplicate: true });
    }
  };

  app.post(
    '/v1/alerts',
    {
      schema: {
        summary: "Send an alert in Cordon's format; starts a remediation run (deduplicated by source + id)",
        security: [{ bearer: [] }, { alertSignature: [] }],
        body: Alert,
        response: { 200: AlertAccepted, 202: AlertAccepted, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 413: ErrorBody, 422: ErrorBody },
      },
      preValidation: [authenticate, rejectUnparsedBody],
    },
    async (request, reply) => intake(request.body, request, reply),
  );

  app.post(
    '/v1/alerts/ocsf',
    {
      schema: {
        summary: 'Send an OCSF 1.x Detection Finding (2004) or Account Change (3001); mapped to an alert, then as /v1/alerts',
        security: [{ bearer: [] }, { alertSignature: [] }],
        body: z.record(z.string(), z.unknown()),
        response: { 200: AlertAccepted, 202: AlertAccepted, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 413: ErrorBody, 422: ErrorBody },
      },
      preValidation: [authenticate, rejectUnparsedBody],
    },
    async (request, reply) => {
      const mapped = ocsfToAlert(request.body);
      if (!mapped.ok) {
        return sendError(reply, 'AlertIncomplete', `the OCSF event cannot be mapped to an alert: ${mapped.missing.join('; ')}`, mapped.missing.map((m) => ({ path: m.split(':')[0] ?? m, message: m })));
      }
      return intake(mapped.alert, request, reply);
    },
  );
};
