import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServerDeps } from '../app.js';

/** A health probe answers within this time, whatever its parts do. */
const HEALTH_TIMEOUT_MS = 2000;

const Health = z.object({ status: z.literal('ok') });
const Unhealthy = z.object({ status: z.literal('unavailable'), down: z.record(z.string(), z.string()) });

/** GET /healthz: 200 only when Temporal and the ledger answer; 503 names what is down. */
export const healthRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { summary: 'Liveness of the API and the parts it needs', response: { 200: Health, 503: Unhealthy } } }, async (_request, reply) => {
    const down: Record<string, string> = {};
    const check = async (part: string, probe: () => Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
      });
      const probing = probe();
      // A probe that answers after the timeout must not become an unhandled rejection.
      probing.catch(() => undefined);
      try {
        await Promise.race([probing, timeout]);
      } catch (error) {
        down[part] = (error as Error).message || 'no answer';
      } finally {
        clearTimeout(timer);
      }
    };
    await Promise.all([
      check('temporal', () => deps.temporal.withAbortSignal(AbortSignal.timeout(HEALTH_TIMEOUT_MS), () => deps.temporal.workflowService.getSystemInfo({}))),
      check('ledger', () => deps.ledger.ping()),
    ]);
    if (Object.keys(down).length > 0) return reply.code(503).send({ status: 'unavailable' as const, down });
    return { status: 'ok' as const };
  });
};
