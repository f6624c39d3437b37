import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { LedgerVerification } from '../../domain/index.js';
import { bearerAuth, requireRole, type ServerDeps } from '../app.js';


/** GET /v1/audit/verify: checks the ledger's hash chain and names the first bad entry. */
export const auditRoutes: FastifyPluginAsyncZod<ServerDeps> = async (app, deps) => {
  app.get(
    '/v1/audit/verify',
    {
      schema: { summary: "Verify the audit ledger's hash chain", security: [{ bearer: [] }], response: { 200: LedgerVerification } },
      onRequest: bearerAuth(deps.identities),
      preHandler: requireRole('operator', 'admin'),
    },
    async () => deps.ledger.verify(),
  );
};
