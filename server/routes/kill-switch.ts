import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorBody, KillSwitchScope, KillSwitchState, scopeKey } from '../../domain/index.js';
import { playbooks } from '../../playbooks/registry.js';
import { bearerAuth, rejectUnparsedBody, requireRole, sendError, type ServerDeps } from '../app.js';

const FlipBody = z.strictObject({
  scope: KillSwitchScope,
  engaged: z.boolean(),
  reason: z.string().trim().min(3, 'say why, in a few words').max(500),
});

/** GET and POST /v1/kill-switch: see and flip the kill switches (global, per playbook, per connector). */
export const killSwitchRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  const bearer = bearerAuth(deps.identities);

  app.get(
    '/v1/kill-switch',
    {
      schema: {
        summary: 'Every kill switch ever flipped, with its state, who flipped it and why',
        security: [{ bearer: [] }],
        response: { 200: z.object({ engaged: z.boolean(), switches: z.array(KillSwitchState) }), 401: ErrorBody },
      },
      onRequest: bearer,
    },
    async () => {
      const switches = await deps.guardrailState.killSwitches();
      return { engaged: switches.some((s) => s.engaged), switches };
    },
  );

  app.post(
    '/v1/kill-switch',
    {
      schema: {
        summary: 'Engage or release a kill switch (role admin); runs pause before their next change',
        security: [{ bearer: [] }],
        body: FlipBody,
        response: { 200: KillSwitchState, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
      onRequest: bearer,
      preValidation: rejectUnparsedBody,
      preHandler: requireRole('admin'),
    },
    async (request, reply) => {
      const { scope, engaged, reason } = request.body;
      if (scope.kind === 'playbook' && !Object.hasOwn(playbooks, scope.name)) {
        return sendError(reply, 'InvalidRequest', `unknown playbook "${scope.name}" (known: ${Object.keys(playbooks).join(', ')})`);
      }
      const actor = request.identity!.name;
      const state = await deps.guardrailState.setKillSwitch(scope, engaged, actor, reason);
      await deps.ledger.append({
        kind: engaged ? 'kill-switch.engaged' : 'kill-switch.released',
        actor,
        data: { scope, scopeKey: scopeKey(scope), reason },
      });
      request.log.warn({ scope: scopeKey(scope), engaged, actor, reason }, 'kill switch flipped');
      return state;
    },
  );
};
