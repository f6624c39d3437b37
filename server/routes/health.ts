import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServerDeps } from '../app.js';

const Health = z.object({ status: z.literal('ok') });
const Unhealthy = z.object({ status: z.literal('unavailable'), down: z.record(z.string(), z.string()) });

/** GET /healthz: 200 only when Temporal and the ledger answer; 503 names what is down. */
export const healthRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { summary: 'Liveness of the API and the parts it needs', response: { 200: Health, 503: Unhealthy } } }, async (_request, reply) => {
    const down: Record<string, string> = {};
    await Promise.all([
      deps.temporal.withAbortSignal(AbortSignal.timeout(2000), () => deps.temporal.workflowService.getSystemInfo({})).catch((error: Error) => {
        down.temporal = error.message || 'no answer';
      }),
      deps.ledger.ping().catch((error: Error) => {
        down.ledger = error.message || 'no answer';
      }),
    ]);
    if (Object.keys(down).length > 0) return reply.code(503).send({ status: 'unavailable' as const, down });
    return { status: 'ok' as const };
  });
};
