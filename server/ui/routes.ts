import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ServerContext } from '../app.js';

/** The web UI for approvers and operators (being built). */
export const uiRoutes: FastifyPluginAsyncZod<ServerContext> = async () => {};
