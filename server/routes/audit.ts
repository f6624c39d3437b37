import { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AUDIT_EXPORT_MEDIA_TYPE, AuditExportQuery, LedgerVerification } from '../../domain/index.js';
import { exportLedger } from '../../store/ledger-export.js';
import { bearerAuth, requireRole, type ServerDeps } from '../app.js';

/** Entries read from the ledger per page of an export. */
const EXPORT_PAGE_SIZE = 500;

/**
 * GET /v1/audit/verify: checks the ledger's hash chain and names the first bad entry.
 * GET /v1/audit: streams the ledger as JSON Lines (format `cordon.audit.v1`, see domain/audit-export.ts).
 */
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

  app.get(
    '/v1/audit',
    {
      schema: {
        summary: 'Export the audit ledger as JSON Lines: its entries oldest first, then an export.end trailer',
        description:
          'since (inclusive) and until (exclusive) choose entries by time; after=<seq> resumes after a sequence number. ' +
          'Each line is an entry with its hash and its predecessor\'s (prevHash); the last line is {"type":"export.end",...}. A file without it is incomplete.',
        security: [{ bearer: [] }],
        querystring: AuditExportQuery,
        produces: [AUDIT_EXPORT_MEDIA_TYPE],
      },
      // The role is checked before the query, so a caller without it learns nothing from a 400.
      onRequest: [bearerAuth(deps.identities), requireRole('operator', 'admin')],
    },
    async (request, reply) => {
      const records = exportLedger(deps.ledger, request.query, { pageSize: EXPORT_PAGE_SIZE });
      const lines = (async function* () {
        for await (const record of records) yield `${JSON.stringify(record)}\n`;
      })();
      const body = Readable.from(lines);
      // Headers are sent already: a failing store can only cut the stream, which leaves no trailer.
      body.on('error', (error) => request.log.error({ err: error }, 'audit export failed'));
      return reply.type(AUDIT_EXPORT_MEDIA_TYPE).header('cache-control', 'no-store').send(body);
    },
  );
};
