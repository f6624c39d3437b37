// Workflow histories for `cordon replay`: the server hands out Temporal's event histories, and the CLI
// replays them against the workflow code it is about to deploy.
import { Readable } from 'node:stream';
import { isGrpcServiceError, WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorBody, RunId } from '../../domain/index.js';
import { decodeHistoryPayloads } from '../../config/payload-codec.js';
import { historyToJson } from '../../workers/history-json.js';
import { bearerAuth, requireRole, sendError, type ServerContext } from '../app.js';
import { visibilityQuery } from '../run-queries.js';

/** The media type of `GET /v1/histories`: one JSON object per line. */
export const HISTORIES_MEDIA_TYPE = 'application/x-ndjson';

/** The most histories one `GET /v1/histories` streams, and how many it streams unless told. */
export const HISTORIES_MAX = 500;
export const HISTORIES_DEFAULT_LIMIT = 100;

/** Set to `true` on `GET /v1/histories` when more runs started in the period than the limit let through. */
export const HISTORIES_TRUNCATED_HEADER = 'x-cordon-truncated';

// gRPC's NOT_FOUND: fetchHistory passes the service's error on as it is.
const GRPC_NOT_FOUND = 5;
const isNotFound = (error: unknown) => error instanceof WorkflowNotFoundError || (isGrpcServiceError(error) && error.code === GRPC_NOT_FOUND);

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/**
 * A start of a period: a duration back from now (`30m`, `24h`, `7d`, `2w`) or an ISO 8601 date or
 * date-time. Transforms to an ISO timestamp in UTC.
 */
export const Since = z
  .string()
  .trim()
  .transform((text, ctx) => {
    const duration = /^(\d{1,6})([mhdw])$/.exec(text);
    if (duration) return new Date(Date.now() - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS]).toISOString();
    const iso = z.union([z.iso.datetime({ offset: true }), z.iso.date()]).safeParse(text);
    if (iso.success) return new Date(iso.data).toISOString();
    ctx.addIssue({ code: 'custom', message: 'must be a duration (30m, 24h, 7d, 2w) or an ISO 8601 date or date-time (2026-11-28, 2026-11-28T09:00:00Z)' });
    return z.NEVER;
  });

const HistoriesQuery = z.strictObject({
  since: Since,
  limit: z.coerce.number().int().min(1).max(HISTORIES_MAX).default(HISTORIES_DEFAULT_LIMIT),
});

/** Temporal's JSON form of a history, as `historyFromJSON` and `temporal workflow show -o json` use it. */
const HistoryJson = z.object({ events: z.array(z.record(z.string(), z.unknown())) }).meta({ description: "Temporal's JSON form of the run's event history" });

/**
 * GET /v1/runs/:runId/history: one run's Temporal history.
 * GET /v1/histories?since=&limit=: the histories of this deployment's runs started since then, newest first, as JSON Lines.
 */
export const historyRoutes: FastifyPluginAsyncZod<ServerContext> = async (app, deps) => {
  // The role is checked before the parameters, so a caller without it learns nothing from a 400.
  const onRequest = [bearerAuth(deps.identities), requireRole('operator', 'admin')];
  // With payload encryption on, histories go out decrypted by the client's codec, so that `cordon
  // replay` replays them without holding the keys.
  const fetchDecodedHistory = async (runId: string) =>
    decodeHistoryPayloads(await deps.temporal.workflow.getHandle(runId).fetchHistory(), deps.temporal.options.loadedDataConverter.payloadCodecs);

  app.get(
    '/v1/runs/:runId/history',
    {
      schema: {
        summary: "A run's Temporal event history (JSON), to replay against workflow code",
        security: [{ bearer: [] }],
        params: z.object({ runId: RunId }),
        response: { 200: HistoryJson, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest,
    },
    async (request, reply) => {
      const { runId } = request.params;
      try {
        const history = await fetchDecodedHistory(runId);
        return historyToJson(history);
      } catch (error) {
        if (isNotFound(error)) return sendError(reply, 'NotFound', `no run ${runId}`);
        throw error;
      }
    },
  );

  app.get(
    '/v1/histories',
    {
      schema: {
        summary: "The Temporal histories of this deployment's runs started since a time, newest first, as JSON Lines",
        description:
          `Each line is {"runId","history"}, or {"runId","error":{"type","message"}} for a history that could not be read. ` +
          `At most limit runs (default ${HISTORIES_DEFAULT_LIMIT}, at most ${HISTORIES_MAX}); when more started in the period, the header ${HISTORIES_TRUNCATED_HEADER}: true says so.`,
        security: [{ bearer: [] }],
        querystring: HistoriesQuery,
        produces: [HISTORIES_MEDIA_TYPE],
        // No response schemas: the body is a stream, and errors (400, 401, 403) are the usual ErrorBody.
      },
      onRequest,
    },
    async (request, reply) => {
      const { since, limit } = request.query;
      const query = `${visibilityQuery(deps.taskQueue)} AND StartTime >= '${since}'`;
      // The ids first (visibility only), so that the answer's headers can say whether the list was cut.
      const runIds: string[] = [];
      for await (const execution of deps.temporal.workflow.list({ query, pageSize: Math.min(limit + 1, 1000) })) {
        runIds.push(execution.workflowId);
        if (runIds.length > limit) break;
      }
      const truncated = runIds.length > limit;
      const lines = (async function* () {
        for (const runId of runIds.slice(0, limit)) {
          try {
            const history = await fetchDecodedHistory(runId);
            yield `${JSON.stringify({ runId, history: historyToJson(history) })}\n`;
          } catch (error) {
            const type = isNotFound(error) ? 'NotFound' : 'Internal';
            yield `${JSON.stringify({ runId, error: { type, message: (error as Error).message } })}\n`;
          }
        }
      })();
      const body = Readable.from(lines);
      body.on('error', (error) => request.log.error({ err: error }, 'history stream failed'));
      return reply.type(HISTORIES_MEDIA_TYPE).header('cache-control', 'no-store').header(HISTORIES_TRUNCATED_HEADER, String(truncated)).send(body);
    },
  );
};
