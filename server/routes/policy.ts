import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Alert, describeActionChange, Decision, ErrorBody, Plan } from '../../domain/index.js';
import { handledKinds, playbookForKind } from '../../playbooks/registry.js';
import type { SimulationInput, SimulationResult } from '../../workflows/simulation.js';
import { bearerAuth, rejectUnparsedBody, requireRole, sendError, sendFailure, type ServerDeps } from '../app.js';

/** What the policy simulator answers: the plan against the live target, and what would happen to each action. */
export const SimulationAnswer = z.object({
  playbook: z.string(),
  target: z.object({ system: z.string(), id: z.string(), userName: z.string(), active: z.boolean(), groups: z.array(z.string()) }),
  plan: Plan,
  decision: Decision,
  actions: z.array(z.object({ id: z.string(), type: z.string(), target: z.string(), group: z.string().nullable(), change: z.string(), outcome: z.string(), policies: z.array(z.string()) })),
  /** What a run of this alert would do now: act, wait for approval, refuse, or only simulate (dry run). */
  wouldRun: z.enum(['auto', 'approve', 'deny', 'dry-run']),
});

/** POST /v1/policy/evaluate: the policy simulator. Starts no run and changes nothing. */
export const policyRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  app.post(
    '/v1/policy/evaluate',
    {
      schema: {
        summary: 'Observe and plan an alert against the live target and evaluate policy and guardrails, without starting a run',
        security: [{ bearer: [] }],
        body: Alert,
        response: { 200: SimulationAnswer, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 422: ErrorBody, 503: ErrorBody },
      },
      onRequest: bearerAuth(deps.identities),
      preValidation: rejectUnparsedBody,
      preHandler: requireRole('soc', 'operator', 'admin'),
    },
    async (request, reply) => {
      const alert = request.body;
      const playbook = playbookForKind(alert.kind);
      if (!playbook) {
        return sendError(reply, 'UnknownAlertKind', `no playbook handles alert kind "${alert.kind}" (handled: ${handledKinds().join(', ')})`);
      }
      const missing = playbook.missing?.(alert);
      if (missing) return sendError(reply, 'AlertIncomplete', missing);
      const input: SimulationInput = { simulationId: `sim_${randomUUID()}`, alert, requestedBy: request.identity! };
      try {
        const result: SimulationResult = await deps.temporal.withAbortSignal(AbortSignal.timeout(deps.workerTimeoutMs ?? 30_000), () =>
          deps.temporal.workflow.execute('policySimulationWorkflow', { workflowId: input.simulationId, taskQueue: deps.taskQueue, args: [input], workflowExecutionTimeout: '2m' }),
        );
        const outcomes = new Map(result.decision.perAction.map((d) => [d.actionId, d]));
        const wouldRun: z.infer<typeof SimulationAnswer>['wouldRun'] =
          result.decision.outcome === 'deny' ? 'deny' : result.decision.guardrails.mode === 'dry-run' ? 'dry-run' : result.decision.outcome;
        return {
          ...result,
          actions: result.plan.actions.map((a) => ({
            id: a.id,
            type: a.type,
            target: a.target.id,
            group: a.type === 'RemoveGroupMembership' ? a.group.display : null,
            change: describeActionChange(a),
            outcome: outcomes.get(a.id)?.outcome ?? 'deny',
            policies: outcomes.get(a.id)?.policies ?? [],
          })),
          wouldRun,
        };
      } catch (error) {
        if (error instanceof WorkflowFailedError) {
          const cause = error.cause instanceof ActivityFailure ? error.cause.cause : error.cause;
          if (cause instanceof ApplicationFailure) return sendFailure(reply, cause.type, cause.message);
        }
        throw error;
      }
    },
  );
};
