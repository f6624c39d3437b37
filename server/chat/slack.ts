import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ServerContext } from '../app.js';

/** Slack interactivity: POST /v1/chat/slack/interactions (being built). */
export const slackRoutes: FastifyPluginAsyncZod<ServerContext> = async () => {};
