import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { bearerAuth, requireRole, type ServerDeps } from '../app.js';

const Verification = z.union([
  z.object({ ok: z.literal(true), entries: z.int(), headHash: z.string() }),
  z.object({ ok: z.literal(false), entries: z.int(), firstBad: z.object({ seq: z.int(), reason: z.string() }) }),
]);

/** GET /v1/audit/verify: checks the ledger's hash chain and names the first bad entry. */
export const auditRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  app.get(
    '/v1/audit/verify',
    {
      schema: { summary: "Verify the audit ledger's hash chain", security: [{ bearer: [] }], response: { 200: Verification } },
      onRequest: bearerAuth(deps.identities),
      preHandler: requireRole('operator', 'admin'),
    },
    async () => deps.ledger.verify(),
  );
};
