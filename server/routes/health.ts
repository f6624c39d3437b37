import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServerDeps } from '../app.js';

/** A health probe answers within this time, whatever its parts do. */
const HEALTH_TIMEOUT_MS = 2000;

const Health = z.object({ status: z.literal('ok') });
const Unhealthy = z.object({ status: z.literal('unavailable'), down: z.record(z.string(), z.string()) });
const Ready = z.object({ status: z.literal('ready') });
const NotReady = z.object({ status: z.literal('not_ready'), reasons: z.record(z.string(), z.string()) });

/** Probes Temporal and the ledger at once; what did not answer in time, by part, with the reason. */
async function probeDependencies(deps: ServerDeps): Promise<Record<string, string>> {
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
  return down;
}

/**
 * GET /healthz: liveness, 200 only when Temporal and the ledger answer; 503 names what is down.
 * GET /readyz: whether this instance should receive traffic: its dependencies answer and it is not
 * draining for shutdown; 503 names each reason.
 */
export const healthRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { summary: 'Liveness of the API and the parts it needs', response: { 200: Health, 503: Unhealthy } } }, async (_request, reply) => {
    const down = await probeDependencies(deps);
    if (Object.keys(down).length > 0) return reply.code(503).send({ status: 'unavailable' as const, down });
    return { status: 'ok' as const };
  });

  app.get('/readyz', { schema: { summary: 'Whether this instance should receive traffic', response: { 200: Ready, 503: NotReady } } }, async (_request, reply) => {
    // A draining instance is out of rotation whatever its dependencies say: no need to ask them.
    const reasons: Record<string, string> = deps.draining?.() ? { draining: 'shutting down: finishing in-flight requests' } : await probeDependencies(deps);
    if (Object.keys(reasons).length > 0) return reply.code(503).send({ status: 'not_ready' as const, reasons });
    return { status: 'ready' as const };
  });
};
