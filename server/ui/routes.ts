// The web UI for approvers and operators, under /ui: sign-in (OIDC, or the embedded default's dev
// sign-in), the inbox, the runs list, the run page with approve / reject. Server-rendered HTML, no
// script, a strict Content-Security-Policy; every POST needs a signed-in session's CSRF token.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApprovalVerdict, CordonError, httpStatusOf, PlanDigest, RunId, type ErrorType, type Identity } from '../../domain/index.js';
import { playbooks } from '../../playbooks/registry.js';
import type { ServerContext } from '../app.js';
import { inboxItem, mayDecide } from '../routes/runs.js';
import { rolesFrom } from './claims.js';
import { isLoopbackUrl, type UiConfig } from './config.js';
import { getRun, listRuns, RunFilters, runsAwaitingApproval } from '../run-queries.js';
import type { Html } from './html.js';
import { roleMapReader, type RoleMap } from './load.js';
import { createOidcSignIn, describeOidcError, PENDING_LOGIN_TTL_MS } from './oidc.js';
import { DEFAULT_SESSION_TTL_SECONDS, registerSession, sessionSignIn, signIn, takeFlash, type Flash } from './session.js';
import { STYLESHEET } from './style.js';
import { devLoginPage, errorPage, inboxPage, loginPage, runPage, runsPage, statusLabel, type PageContext } from './views.js';

/** The Content-Security-Policy of every UI response: no script at all, styles from our stylesheet only. */
export const UI_CSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The decision route, and the prefix the UI is registered under (`routeOptions.url` is the two joined). */
const DECISION_ROUTE = '/runs/:runId/decision';
const UI_PREFIX = '/ui';

/** How many runs the runs list shows. */
const LIST_LIMIT = 100;

const DecisionForm = z.object({
  decision: ApprovalVerdict,
  planDigest: PlanDigest,
  comment: z
    .string()
    .max(2000)
    .optional()
    .transform((c) => c?.trim() || undefined),
});

/** The web UI (registered by the app when `deps.ui` is set). Throws when the dev sign-in is on for a non-loopback URL. */
export const uiRoutes: FastifyPluginAsyncZod<ServerContext> = async (app, deps) => {
  const ui = deps.ui;
  if (!ui) return;
  const publicUrl = new URL(ui.publicUrl);
  if (ui.devSignIn) {
    // The dev sign-in lets anyone be anyone: keep it to a server only this machine can reach.
    if (!isLoopbackUrl(publicUrl)) throw new Error(`the development sign-in is for the embedded default only; the public URL ${ui.publicUrl} is not a loopback address`);
    if (!ui.devIdentities || Object.keys(ui.devIdentities).length === 0) throw new Error('the development sign-in needs the dev identities (ui.devIdentities)');
  }
  await app.register((scope) => registerUi(scope, deps, ui, publicUrl), { prefix: UI_PREFIX });
};

async function registerUi(app: FastifyInstance, deps: ServerContext, ui: UiConfig, publicUrl: URL): Promise<void> {
  // Paths as the browser sees them: the public URL may carry a prefix that a proxy strips.
  const root = `${publicUrl.origin}${publicUrl.pathname.replace(/\/+$/, '')}`;
  const uiPath = `${publicUrl.pathname.replace(/\/+$/, '')}/ui`;
  const ttlSeconds = ui.sessionTtlSeconds ?? DEFAULT_SESSION_TTL_SECONDS;
  const fixedRoleMap = ui.oidc?.roleMap ?? {};
  const roleMap: () => Promise<RoleMap> = ui.oidc?.roleMapFile ? roleMapReader(ui.oidc.roleMapFile, fixedRoleMap, deps.log) : async () => fixedRoleMap;
  const oidc = ui.oidc ? createOidcSignIn(ui.oidc, `${root}/ui/auth/callback`, roleMap, deps.log) : undefined;
  const devIdentities = ui.devSignIn ? ui.devIdentities : undefined;

  await registerSession(app, { secret: ui.sessionSecret, path: uiPath, secure: publicUrl.protocol === 'https:', ttlSeconds });

  /**
   * Who is signed in, with their roles as they are now: an OIDC sign-in's roles are the claim's (as
   * of the sign-in, which the session TTL bounds) and the role map's as it is now; a dev sign-in's
   * are the dev identity's. Resolved once per request, before any check, so that a role taken away
   * counts from the next request on: for the pages and for every decision.
   */
  const signedInAs = new WeakMap<FastifyRequest, Identity>();
  const resolveIdentity = async (request: FastifyRequest): Promise<Identity | undefined> => {
    const session = sessionSignIn(request, ttlSeconds);
    if (!session) return undefined;
    if (session.via === 'dev') {
      const roles = devIdentities && Object.hasOwn(devIdentities, session.identity.name) ? devIdentities[session.identity.name] : undefined;
      return roles ? { name: session.identity.name, roles: [...roles] } : undefined;
    }
    if (!ui.oidc) return undefined;
    return { name: session.identity.name, roles: rolesFrom(session.sources, await roleMap()) };
  };

  app.addHook('onRequest', async (request, reply) => {
    reply.header('content-security-policy', UI_CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cache-control', 'no-store');
    const identity = await resolveIdentity(request);
    if (identity) signedInAs.set(request, identity);
  });

  const identityOf = (request: FastifyRequest): Identity | undefined => signedInAs.get(request);
  const path = (request: FastifyRequest) => request.url.split('?')[0] ?? '';
  const isDecision = (request: FastifyRequest) => request.method === 'POST' && request.routeOptions.url === `${UI_PREFIX}${DECISION_ROUTE}`;

  /**
   * A refused POST. From a signed-in person, a decision attempt is written to the ledger (channel
   * `web`); from nobody, it is only logged as a security warning: a stranger must not be able to
   * grow the ledger. A failed CSRF or origin check is a security warning either way.
   */
  const refusedPost = async (request: FastifyRequest, reason: ErrorType, check: string, message: string): Promise<void> => {
    const identity = identityOf(request);
    const fields = { channel: 'web', check, reason, path: path(request), user: identity?.name ?? null, ip: request.ip };
    if (!identity || check === 'csrf' || check === 'origin') request.log.warn({ security: true, ...fields }, `UI: POST refused (${check})`);
    else request.log.info(fields, `UI: POST refused (${check})`);
    if (!identity || !isDecision(request)) return;
    const body = (request.body ?? {}) as Record<string, unknown>;
    await deps.approvals.recordRefusal({
      actor: identity.name,
      channel: 'web',
      runId: (request.params as { runId?: string }).runId,
      decision: body.decision,
      planDigest: body.planDigest,
      reason,
      message,
      details: { check },
    });
  };
  const context = (request: FastifyRequest, reply: FastifyReply, extra: { flash?: Flash | undefined; csrf?: boolean } = {}): PageContext => {
    const identity = identityOf(request);
    return { ui: uiPath, identity, csrf: identity || extra.csrf ? reply.generateCsrf() : undefined, devSignIn: ui.devSignIn, flash: extra.flash };
  };
  const send = (reply: FastifyReply, status: number, page: Html) => reply.code(status).type('text/html; charset=utf-8').send(page.value);
  const fail = (request: FastifyRequest, reply: FastifyReply, status: number, title: string, message: string) =>
    send(reply, status, errorPage(context(request, reply), status, title, message));
  const toLogin = (request: FastifyRequest, reply: FastifyReply) =>
    reply.redirect(`${uiPath}/login?next=${encodeURIComponent(`${uiPath}${request.url.slice('/ui'.length)}`)}`, 303);
  /** A path inside the UI to return to after signing in; anything else becomes the inbox. */
  const returnTo = (value: unknown): string =>
    typeof value === 'string' &&
    value.length <= 1024 &&
    /^[\x21-\x7e]+$/.test(value) &&
    (value === uiPath || value.startsWith(`${uiPath}/`)) &&
    !/\\|\/\/|\/\.\.?(\/|$|\?)/.test(value)
      ? value
      : `${uiPath}/`;

  /** Refuses a POST that another site could have made: a foreign Origin or a cross-site fetch. */
  const sameOrigin = async (request: FastifyRequest, reply: FastifyReply) => {
    const site = request.headers['sec-fetch-site'];
    const origin = request.headers.origin;
    // Origin is "null" on our own forms: the pages' Referrer-Policy is no-referrer.
    if ((typeof site === 'string' && site !== 'same-origin' && site !== 'none') || (typeof origin === 'string' && origin !== 'null' && origin !== publicUrl.origin)) {
      const from = typeof origin === 'string' ? `Origin ${origin.slice(0, 200)}` : `Sec-Fetch-Site ${String(site).slice(0, 50)}`;
      await refusedPost(request, 'Forbidden', 'origin', `the form was not sent from a Cordon page (${from})`);
      return fail(request, reply, 403, 'Forbidden', 'This form was not sent from a Cordon page.');
    }
    return undefined;
  };
  const signedIn = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!identityOf(request)) {
      await refusedPost(request, 'Unauthenticated', 'session', 'no signed-in session');
      return fail(request, reply, 403, 'Not signed in', 'Sign in before deciding on a run.');
    }
    return undefined;
  };
  const csrf = app.csrfProtection.bind(app);

  app.setErrorHandler(async (error: Error & { code?: string; statusCode?: number }, request, reply) => {
    if (typeof error.code === 'string' && error.code.startsWith('FST_CSRF_')) {
      await refusedPost(request, 'Forbidden', 'csrf', `no valid CSRF token for the session (${error.code})`);
      return fail(request, reply, 403, 'Forbidden', 'This form has no valid token for your session: reload the page and try again.');
    }
    if (error instanceof CordonError) return fail(request, reply, httpStatusOf(error.type), error.type, error.message);
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      if (request.method === 'POST') await refusedPost(request, error.statusCode === 413 ? 'PayloadTooLarge' : 'InvalidRequest', 'request', error.message);
      return fail(request, reply, error.statusCode, 'Bad request', error.message);
    }
    request.log.error({ err: error }, 'UI: unhandled error');
    return fail(request, reply, 500, 'Something went wrong', 'Cordon could not show this page; the error is in the API log.');
  });
  app.setNotFoundHandler((request, reply) => fail(request, reply, 404, 'Not found', `There is no page ${request.url.split('?')[0] ?? ''}.`));

  app.get('/static/cordon.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('cache-control', 'public, max-age=3600').type('text/css; charset=utf-8').send(STYLESHEET),
  );

  // The inbox: runs awaiting this person's decision (eligible role, not the requester, not decided yet).
  app.get('/', { schema: { hide: true } }, async (request, reply) => {
    const identity = identityOf(request);
    if (!identity) return toLogin(request, reply);
    const runs = identity.roles.length === 0 ? [] : (await runsAwaitingApproval(deps)).filter((view) => mayDecide(view, identity)).map(inboxItem);
    return send(reply, 200, inboxPage(context(request, reply, { flash: takeFlash(request) }), runs));
  });

  app.get('/runs', { schema: { hide: true } }, async (request, reply) => {
    const identity = identityOf(request);
    if (!identity) return toLogin(request, reply);
    if (identity.roles.length === 0) return fail(request, reply, 403, 'No role', 'Your account has no Cordon role: ask an administrator for one.');
    const query = request.query as Record<string, unknown>;
    const shown = {
      status: asText(query.status),
      playbook: asText(query.playbook),
      target: asText(query.target),
      source: asText(query.source),
      severity: asText(query.severity),
      since: asText(query.since),
      until: asText(query.until),
    };
    const filters = RunFilters.safeParse(query);
    const ctx = context(request, reply);
    if (!filters.success) {
      const problem = filters.error.issues.map((i) => `${i.path.join('.') || 'filter'}: ${i.message}`).join('; ');
      return send(reply, 400, runsPage(ctx, { filters: shown, playbooks: Object.keys(playbooks), runs: [], limit: LIST_LIMIT, problem }));
    }
    const runs = await listRuns(deps, filters.data, LIST_LIMIT);
    return send(reply, 200, runsPage(ctx, { filters: shown, playbooks: Object.keys(playbooks), runs, limit: LIST_LIMIT }));
  });

  app.get<{ Params: { runId: string } }>('/runs/:runId', { schema: { hide: true } }, async (request, reply) => {
    const identity = identityOf(request);
    if (!identity) return toLogin(request, reply);
    if (identity.roles.length === 0) return fail(request, reply, 403, 'No role', 'Your account has no Cordon role: ask an administrator for one.');
    const runId = RunId.safeParse(request.params.runId);
    const view = runId.success ? await getRun(deps, runId.data) : undefined;
    if (!view) return fail(request, reply, 404, 'No such run', `There is no run ${request.params.runId}.`);
    return send(reply, 200, runPage(context(request, reply, { flash: takeFlash(request) }), view, { canDecide: mayDecide(view, identity) }));
  });

  // Approve or reject, through the same approval service as every other channel. Accepted: back to
  // the run page (303) with the workflow's answer. Refused: the run page with the reason, answered
  // with the refusal's status (403 separation of duties, 409 stale plan, ...).
  app.post<{ Params: { runId: string } }>(
    DECISION_ROUTE,
    { schema: { hide: true }, preValidation: [sameOrigin, csrf, signedIn] },
    async (request, reply) => {
      const identity = identityOf(request)!;
      const runId = RunId.safeParse(request.params.runId);
      if (!runId.success) {
        await refusedPost(request, 'NotFound', 'run', 'the run id is malformed');
        return fail(request, reply, 404, 'No such run', `There is no run ${request.params.runId}.`);
      }
      const form = DecisionForm.safeParse(request.body ?? {});
      if (!form.success) {
        const problem = form.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        await refusedPost(request, 'InvalidRequest', 'form', problem);
        return fail(request, reply, 400, 'Bad request', problem);
      }
      const { decision, planDigest, comment } = form.data;
      const outcome = await deps.approvals.decide(runId.data, identity, { decision, planDigest, comment, channel: 'web' });
      if (outcome.ok) {
        const { status, approvals, required } = outcome.result;
        const text = decision === 'approve' ? `Approved: ${approvals} of ${required} approvals; the run is ${statusLabel(status)}.` : `Rejected; the run is ${statusLabel(status)}.`;
        request.session.set('flash', { kind: 'ok', text });
        return reply.redirect(`${uiPath}/runs/${runId.data}`, 303);
      }
      const refusal = { type: outcome.type, message: outcome.message };
      const view = await getRun(deps, runId.data).catch(() => undefined);
      if (!view) return fail(request, reply, outcome.httpStatus, `Refused: ${outcome.type}`, outcome.message);
      return send(reply, outcome.httpStatus, runPage(context(request, reply), view, { canDecide: mayDecide(view, identity), refusal }));
    },
  );

  app.get('/login', { schema: { hide: true } }, async (request, reply) => {
    const next = returnTo((request.query as Record<string, unknown>).next);
    return send(reply, 200, loginPage(context(request, reply), { oidc: oidc !== undefined, next }));
  });

  app.post('/logout', { schema: { hide: true }, preValidation: [sameOrigin, csrf] }, async (request, reply) => {
    const who = identityOf(request);
    request.session.delete();
    if (who) request.log.info({ user: who.name }, 'UI: signed out');
    return reply.redirect(`${uiPath}/login`, 303);
  });

  if (oidc) {
    app.get('/login/oidc', { schema: { hide: true } }, async (request, reply) => {
      const next = returnTo((request.query as Record<string, unknown>).next);
      let started;
      try {
        started = await oidc.start(next);
      } catch (error) {
        request.log.warn({ err: error }, 'UI: OIDC discovery failed');
        return send(reply, 503, loginPage(context(request, reply), { oidc: true, next, problem: 'The identity provider could not be reached; try again in a moment.' }));
      }
      request.session.set('login', started.pending);
      return reply.redirect(started.url.href, 303);
    });

    app.get('/auth/callback', { schema: { hide: true } }, async (request, reply) => {
      const pending = request.session.get('login');
      request.session.set('login', undefined);
      if (!pending || Date.now() - pending.startedAt > PENDING_LOGIN_TTL_MS) {
        return send(reply, 400, loginPage(context(request, reply), { oidc: true, next: `${uiPath}/`, problem: 'This sign-in has expired or was started in another browser: sign in again.' }));
      }
      const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
      const callbackUrl = new URL(`${root}/ui/auth/callback${query}`);
      let result;
      try {
        result = await oidc.finish(callbackUrl, pending);
      } catch (error) {
        request.log.warn({ err: error }, 'UI: OIDC sign-in failed');
        return send(reply, 401, loginPage(context(request, reply), { oidc: true, next: pending.returnTo, problem: `Sign-in failed: ${describeOidcError(error)}.` }));
      }
      if (!result.ok) {
        request.log.warn({ reason: result.reason }, 'UI: OIDC identity refused');
        return send(reply, 403, loginPage(context(request, reply), { oidc: true, next: pending.returnTo, problem: `Signed in at the provider, but Cordon cannot use this account: ${result.reason}.` }));
      }
      signIn(request, result.identity, { oidc: result.sources });
      request.log.info({ user: result.identity.name, roles: result.identity.roles }, 'UI: signed in (OIDC)');
      return reply.redirect(returnTo(pending.returnTo), 303);
    });
  }

  if (devIdentities) {
    app.get('/dev-login', { schema: { hide: true } }, async (request, reply) => {
      const next = returnTo((request.query as Record<string, unknown>).next);
      return send(reply, 200, devLoginPage(context(request, reply, { csrf: true }), devIdentities, next));
    });

    app.post('/dev-login', { schema: { hide: true }, preValidation: [sameOrigin, csrf] }, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const name = typeof body.name === 'string' && Object.hasOwn(devIdentities, body.name) ? body.name : undefined;
      if (!name) return fail(request, reply, 400, 'Unknown identity', 'Pick one of the development identities.');
      const identity: Identity = { name, roles: [...(devIdentities[name] ?? [])] };
      signIn(request, identity, { dev: true });
      request.log.info({ user: name, roles: identity.roles }, 'UI: signed in (development sign-in)');
      return reply.redirect(returnTo(body.next), 303);
    });
  }
}

function asText(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
