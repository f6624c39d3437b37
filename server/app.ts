import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import sjson from 'secure-json-parse';
import type { Logger } from '../config/logger.js';
import { CordonError, ErrorCatalogue, httpStatusOf, isErrorType, type ErrorBody, type ErrorType, type Identity, type Role } from '../domain/index.js';
import type { GuardrailState } from '../store/guardrail-state.js';
import type { Ledger } from '../store/ledger.js';
import { createApprovalService, type ApprovalService, type ApprovalSigningKey } from './approvals.js';
import { createRollbackService, type RollbackService } from './rollbacks.js';
import { slackRoutes } from './chat/slack.js';
import type { SlackConfig } from './chat/slack-config.js';
import type { IdentityStore } from './identities.js';
import type { UiConfig } from './ui/config.js';
import { uiRoutes } from './ui/routes.js';
import { instrumentServer } from './metrics.js';
import { alertRoutes } from './routes/alerts.js';
import { auditRoutes } from './routes/audit.js';
import { healthRoutes } from './routes/health.js';
import { historyRoutes } from './routes/history.js';
import { killSwitchRoutes } from './routes/kill-switch.js';
import { policyRoutes } from './routes/policy.js';
import { runRoutes } from './routes/runs.js';
import { operationRoutes } from './routes/operations.js';

/** Largest request body accepted (alerts included): 256 KiB. */
export const BODY_LIMIT_BYTES = 256 * 1024;

/** What the API is built from. The server is a Temporal client; it never runs workflow code. */
export interface ServerDeps {
  temporal: Client;
  taskQueue: string;
  ledger: Ledger;
  guardrailState: GuardrailState;
  identities: IdentityStore;
  /** The key the API signs approvals with; approvals are refused when absent. */
  approvalSigner?: ApprovalSigningKey | undefined;
  /** The web UI and how people sign in to it; no UI when absent. */
  ui?: UiConfig | undefined;
  /** Slack interactivity (approve / reject buttons); off when absent. */
  slack?: SlackConfig | undefined;
  /** Shared secret for HMAC-signed alerts; HMAC is refused when absent. */
  alertHmacSecret?: Buffer | undefined;
  log: Logger;
  /** Seconds since the epoch, for the signature window (tests move it). */
  nowSeconds?: () => number;
  /** How long a query or an approval may wait for a worker. */
  workerTimeoutMs?: number;
  /** Blinds the identities runs are found by, as the workers do (payload encryption with a search key). */
  searchIndex?: ((value: string) => string) | undefined;
  /** True once the instance is shutting down: `/readyz` then answers 503. */
  draining?: () => boolean;
}

/** What the route plugins get: the dependencies, and the services built from them. */
export type ServerContext = ServerDeps & { approvals: ApprovalService; rollbacks: RollbackService };

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
    /** Set when the JSON body could not be parsed, so that authentication is answered first. */
    bodyError?: string;
    identity?: Identity;
  }
}


/** Sends a catalogue error. */
export function sendError(reply: FastifyReply, type: ErrorType, message: string, issues?: ErrorBody['error']['issues']): FastifyReply {
  const body: ErrorBody = { error: { type, message, ...(issues ? { issues } : {}) } };
  return reply.code(ErrorCatalogue[type].httpStatus).type('application/json').send(body);
}

/** A preHandler-style check that the caller has at least one of `roles`. */
export function requireRole(...roles: Role[]) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const identity = request.identity;
    if (!identity) return sendError(reply, 'Unauthenticated', 'a bearer token is required');
    if (!identity.roles.some((r) => roles.includes(r))) {
      return sendError(reply, 'Forbidden', `this needs one of the roles: ${roles.join(', ')}`);
    }
    return undefined;
  };
}

/** Authenticates a bearer token into `request.identity`; answers 401 when it is missing or unknown. */
export function bearerAuth(identities: IdentityStore) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    const identity = match?.[1] ? identities.authenticate(match[1]) : undefined;
    if (!identity) {
      reply.header('www-authenticate', 'Bearer');
      return sendError(reply, 'Unauthenticated', header ? 'the bearer token is not valid' : 'a bearer token is required');
    }
    request.identity = identity;
    return undefined;
  };
}

/** Answers 400 for a body that failed to parse; call after authentication. */
export async function rejectUnparsedBody(request: FastifyRequest, reply: FastifyReply) {
  if (request.bodyError !== undefined) return sendError(reply, 'InvalidRequest', request.bodyError, [{ path: 'body', message: request.bodyError }]);
  return undefined;
}

/** Builds the HTTP API: routes, JSON handling, errors and the OpenAPI document. */
export async function buildServer(deps: ServerDeps) {
  const app = Fastify({
    loggerInstance: deps.log,
    bodyLimit: BODY_LIMIT_BYTES,
    genReqId: () => randomUUID(),
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // Keep the raw bytes (HMAC is computed over them) and parse JSON without prototype pollution.
  // A parse failure is remembered rather than answered, so that an unauthenticated caller gets 401.
  // JSON only: any other content type is answered 415.
  app.removeAllContentTypeParsers();
  const parseJson = (request: FastifyRequest, body: string | Buffer, done: (error: Error | null, body?: unknown) => void) => {
    const raw = Buffer.isBuffer(body) ? body : Buffer.from(body);
    request.rawBody = raw;
    try {
      done(null, sjson.parse(raw.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' }));
    } catch (error) {
      const message = (error as Error).message;
      request.bodyError = /prototype/i.test(message)
        ? 'the JSON body contains a forbidden key (__proto__ or constructor.prototype)'
        : `the body is not valid JSON: ${message}`;
      done(null, undefined);
    }
  };
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, parseJson);
  app.addContentTypeParser(/^application\/[a-z.+-]*\+json$/, { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, parseJson);
  // Forms (the web UI) and Slack's interactivity posts; the raw bytes are kept for Slack's signature.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (request, body, done) => {
    const raw = Buffer.isBuffer(body) ? body : Buffer.from(body);
    request.rawBody = raw;
    const form: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [key, value] of new URLSearchParams(raw.toString('utf8'))) {
      if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
      form[key] = value;
    }
    done(null, form);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Cordon API', version: '1', description: 'Policy-bounded remediation runs on Temporal.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          alertSignature: { type: 'apiKey', in: 'header', name: 'X-Cordon-Signature' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.map((v) => ({
        path: [error.validationContext, ...String(v.instancePath).split('/').filter(Boolean)].filter(Boolean).join('.'),
        message: v.message ?? 'invalid',
      }));
      return sendError(reply, 'InvalidRequest', `invalid ${error.validationContext ?? 'request'}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 'PayloadTooLarge', `the body exceeds ${BODY_LIMIT_BYTES} bytes`);
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendError(reply, 'UnsupportedMediaType', 'send the body as application/json');
    if (error instanceof CordonError) return sendError(reply, error.type, error.message);
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, error.statusCode === 413 ? 'PayloadTooLarge' : 'InvalidRequest', error.message);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendError(reply, 'Internal', 'internal error');
  });

  app.setNotFoundHandler((request, reply) => sendError(reply, 'NotFound', `no route ${request.method} ${request.url.split('?')[0]}`));

  instrumentServer(app, deps);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const context: ServerContext = {
    ...deps,
    approvals: createApprovalService({ temporal: deps.temporal, ledger: deps.ledger, signer: deps.approvalSigner, log: deps.log, ...(deps.workerTimeoutMs !== undefined ? { workerTimeoutMs: deps.workerTimeoutMs } : {}) }),
    rollbacks: createRollbackService({ temporal: deps.temporal, ledger: deps.ledger, signer: deps.approvalSigner, log: deps.log, ...(deps.workerTimeoutMs !== undefined ? { workerTimeoutMs: deps.workerTimeoutMs } : {}) }),
  };
  await app.register(healthRoutes, context);
  await app.register(alertRoutes, context);
  await app.register(runRoutes, context);
  await app.register(operationRoutes, context);
  await app.register(historyRoutes, context);
  await app.register(auditRoutes, context);
  await app.register(killSwitchRoutes, context);
  await app.register(policyRoutes, context);
  if (deps.ui) await app.register(uiRoutes, context);
  if (deps.slack) await app.register(slackRoutes, context);
  return app;
}

/** Maps a failure type from Temporal (update validators, activities) to an HTTP answer. */
export function sendFailure(reply: FastifyReply, type: string | undefined | null, message: string): FastifyReply {
  if (isErrorType(type)) return sendError(reply, type, message);
  return reply.code(httpStatusOf(type)).send({ error: { type: type ?? 'Internal', message } } satisfies ErrorBody);
}

/** The API server instance. */
export type CordonServer = Awaited<ReturnType<typeof buildServer>>;
