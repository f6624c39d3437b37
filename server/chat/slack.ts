import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebClient } from '@slack/web-api';
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SLACK_APPROVE_ACTION, SLACK_REJECT_ACTION, SlackButtonValue, slackLogger } from '../../activities/notify/slack.js';
import { isErrorType, type ApprovalVerdict, type ErrorType, type Identity } from '../../domain/index.js';
import { sendError, type ServerContext } from '../app.js';
import { SIGNATURE_WINDOW_SECONDS, type SignatureCheck } from '../hmac.js';
import type { SlackConfig } from './slack-config.js';

/** Signs a request body as Slack does: `v0=<hex HMAC-SHA256 of "v0:<timestamp>:<raw body>">`. */
export function signSlackRequest(signingSecret: string, body: Buffer | string, unixSeconds: number): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${unixSeconds}:`).update(body).digest('hex')}`;
}

/**
 * Checks Slack's `X-Slack-Signature` and `X-Slack-Request-Timestamp` over the raw body: the
 * timestamp must be within 5 minutes of now (either way) and the MAC must match, compared in
 * constant time. https://api.slack.com/authentication/verifying-requests-from-slack
 */
export function verifySlackSignature(input: {
  signingSecret: string;
  signature: string | undefined;
  timestamp: string | undefined;
  rawBody: Buffer | undefined;
  nowSeconds: number;
}): SignatureCheck {
  const { signature, timestamp } = input;
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'X-Slack-Request-Timestamp is missing or not a number of seconds' };
  if (signature === undefined || !/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'X-Slack-Signature is missing or not a v0 signature' };
  const seconds = Number(timestamp);
  if (Math.abs(input.nowSeconds - seconds) > SIGNATURE_WINDOW_SECONDS) {
    return { ok: false, reason: `the Slack request timestamp is outside the ${SIGNATURE_WINDOW_SECONDS} s window` };
  }
  const expected = createHmac('sha256', input.signingSecret).update(`v0:${timestamp}:`).update(input.rawBody ?? Buffer.alloc(0)).digest();
  return timingSafeEqual(Buffer.from(signature.slice(3), 'hex'), expected) ? { ok: true } : { ok: false, reason: 'the Slack signature does not match' };
}

/** Whether Cordon may POST to an interaction's `response_url`: Slack's hooks host, or the configured API's origin (tests). */
export function responseUrlAllowed(url: string, apiUrl: string | undefined): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.username !== '' || parsed.password !== '') return false;
  if (parsed.protocol === 'https:' && parsed.hostname === 'hooks.slack.com' && parsed.port === '') return true;
  if (apiUrl === undefined) return false;
  try {
    return parsed.origin === new URL(apiUrl).origin;
  } catch {
    return false;
  }
}

// Slack sends many more fields; only these are read.
const InteractionType = z.object({ type: z.string() });
const SlackUserId = z.string().regex(/^[A-Z0-9_]{1,64}$/i, 'must be a Slack user id');
/** The clicking user of a payload that is otherwise malformed, if it names one. */
const PayloadUser = z.object({ user: z.object({ id: SlackUserId }) });
const BlockActions = z.object({
  type: z.literal('block_actions'),
  user: z.object({ id: SlackUserId }),
  response_url: z.string().max(2048).optional(),
  actions: z.array(z.object({ action_id: z.string().max(255), value: z.string().max(2000).optional() })).min(1),
});
type BlockActions = z.infer<typeof BlockActions>;

/** What a refusal tells the person who clicked, by catalogue type; the workflow's message follows. */
const REFUSAL_HINTS: Partial<Record<ErrorType, string>> = {
  Unauthenticated: 'your Slack account is not linked to a Cordon identity',
  SeparationOfDuties: 'you requested this run, so someone else has to decide on it',
  DuplicateApproval: 'you have already decided on this run',
  MissingApproverRole: 'your Cordon identity does not have a role this run needs',
  RunNotAwaitingApproval: 'this run is no longer waiting for approval',
  StalePlanDigest: 'the plan changed after this message was posted; open the run to see the current plan',
  ServiceUnavailable: 'Cordon could not reach the run just now; try again in a moment',
};

/** Who clicked, as a Cordon identity, or why nobody. */
type Resolved = { ok: true; identity: Identity } | { ok: false; message: string };

/**
 * POST /v1/chat/slack/interactions: Slack's interactivity requests (Approve / Reject clicks). The
 * signature is checked first (401 and nothing else otherwise); the answer is an empty 200 right
 * away, as Slack wants one within 3 seconds, and the decision is taken afterwards through the same
 * approval service as every other channel. Whoever may not decide hears why in an ephemeral reply.
 */
export const slackRoutes: FastifyPluginAsyncZod<ServerContext> = async (app, deps) => {
  const slack: SlackConfig | undefined = deps.slack;
  if (!slack) throw new Error('slackRoutes needs the slack settings');
  const nowSeconds = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  const log = deps.log.child({ component: 'slack' });
  if (!slack.identityOf) log.warn('Slack clicks cannot be attributed: no identity lookup is configured, so every click will be refused');

  const users = slack.botToken
    ? new WebClient(slack.botToken, {
        // Slack's client appends the method name to this URL as is.
        ...(slack.apiUrl !== undefined ? { slackApiUrl: slack.apiUrl.replace(/\/?$/, '/') } : {}),
        logger: slackLogger(log),
        // The click is already acknowledged; a slow or failing lookup is told to the user, not retried for minutes.
        retryConfig: { retries: 1, maxTimeout: 1000 },
        timeout: 5000,
      })
    : undefined;
  // Keys with an @ are emails, compared without case.
  const byEmail = new Map(Object.entries(slack.userMap).filter(([key]) => key.includes('@')).map(([key, name]) => [key.toLowerCase(), name]));

  // Work started after answering Slack; the server waits for it when it closes.
  const pending = new Set<Promise<void>>();
  app.addHook('onClose', async () => {
    await Promise.allSettled([...pending]);
  });
  const afterReply = (work: () => Promise<void>, requestLog: FastifyBaseLogger) => {
    const task: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .catch((error: unknown) => requestLog.error({ err: error }, 'handling a Slack interaction failed'))
      .finally(() => pending.delete(task));
    pending.add(task);
  };

  const emailOf = async (userId: string, requestLog: FastifyBaseLogger): Promise<string | undefined> => {
    if (!users) return undefined;
    try {
      const answer = await users.users.info({ user: userId });
      if (answer.user?.deleted || answer.user?.is_bot) return undefined;
      return answer.user?.profile?.email ?? undefined;
    } catch (error) {
      requestLog.warn({ slackUser: userId, err: error }, 'users.info failed');
      return undefined;
    }
  };

  const resolve = async (userId: string, requestLog: FastifyBaseLogger): Promise<Resolved> => {
    let name = Object.hasOwn(slack.userMap, userId) ? slack.userMap[userId] : undefined;
    if (name === undefined) {
      const email = await emailOf(userId, requestLog);
      if (email !== undefined) name = byEmail.get(email.toLowerCase()) ?? (slack.identityOf?.(email) ? email : undefined);
    }
    if (name === undefined) return { ok: false, message: `Slack user ${userId} is not mapped to a Cordon identity (ask an administrator to add it to the Slack user map)` };
    if (!slack.identityOf) return { ok: false, message: 'this Cordon server cannot look identities up for Slack' };
    const identity = slack.identityOf(name);
    if (!identity) return { ok: false, message: `Slack user ${userId} is mapped to "${name}", which is not a Cordon identity` };
    return { ok: true, identity };
  };

  /** Answers only the person who clicked, through the interaction's response_url. */
  const reply = async (responseUrl: string | undefined, text: string, requestLog: FastifyBaseLogger): Promise<void> => {
    if (responseUrl === undefined) return;
    if (!responseUrlAllowed(responseUrl, slack.apiUrl)) {
      requestLog.warn({ host: URL.canParse(responseUrl) ? new URL(responseUrl).host : 'invalid' }, 'not calling a response_url outside Slack');
      return;
    }
    const response = await fetch(responseUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text }),
      redirect: 'error',
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok) requestLog.warn({ status: response.status }, 'Slack refused the ephemeral reply');
  };

  /**
   * Records a signed request that Cordon refused before it reached the approval service: it came
   * from Slack (the signature says so), so it is an attempt by someone, named by their Cordon
   * identity when their Slack user is linked to one, else by the Slack user id (`slack` when the
   * payload names no user).
   */
  const recordRefused = async (slackUser: string | undefined, attempt: { runId?: string; decision?: ApprovalVerdict; planDigest?: string; reason: ErrorType; message: string }, requestLog: FastifyBaseLogger): Promise<void> => {
    const who = slackUser === undefined ? undefined : await resolve(slackUser, requestLog);
    await deps.approvals.recordRefusal({
      actor: who?.ok ? who.identity.name : slackUser !== undefined ? `slack:${slackUser}` : 'slack',
      channel: 'slack',
      ...attempt,
      details: { slackUser: slackUser ?? null },
    });
  };

  const handleClick = async (click: BlockActions, requestLog: FastifyBaseLogger): Promise<void> => {
    const action = click.actions[0]!;
    const decision: ApprovalVerdict | undefined = action.action_id === SLACK_APPROVE_ACTION ? 'approve' : action.action_id === SLACK_REJECT_ACTION ? 'reject' : undefined;
    // Other actions (the "Open run" link button) need nothing but the acknowledgement.
    if (decision === undefined) return;
    let value: SlackButtonValue;
    try {
      value = SlackButtonValue.parse(JSON.parse(action.value ?? ''));
    } catch {
      requestLog.warn({ slackUser: click.user.id }, 'a Slack button without a Cordon run');
      await recordRefused(click.user.id, { decision, reason: 'InvalidRequest', message: 'the button does not name a Cordon run' }, requestLog);
      await reply(click.response_url, 'This button does not name a Cordon run.', requestLog);
      return;
    }
    const { runId, planDigest } = value;
    const who = await resolve(click.user.id, requestLog);
    if (!who.ok) {
      // Refused before reaching the approval service: recorded here, as that service records its own.
      await deps.approvals.recordRefusal({
        actor: `slack:${click.user.id}`,
        channel: 'slack',
        runId,
        decision,
        planDigest,
        reason: 'Unauthenticated',
        message: who.message,
        details: { slackUser: click.user.id },
      });
      requestLog.info({ runId, slackUser: click.user.id, decision }, 'Slack click from an unmapped user refused');
      await reply(click.response_url, `Not recorded: ${REFUSAL_HINTS.Unauthenticated} (Unauthenticated: ${who.message}).`, requestLog);
      return;
    }
    const outcome = await deps.approvals.decide(runId, who.identity, { decision, planDigest, channel: 'slack' });
    if (outcome.ok) {
      const { approvals, required } = outcome.result;
      await reply(click.response_url, `Recorded: you ${decision === 'approve' ? 'approved' : 'rejected'} ${runId} as ${who.identity.name} (${approvals} of ${required} approvals).`, requestLog);
      return;
    }
    const hint = (isErrorType(outcome.type) ? REFUSAL_HINTS[outcome.type] : undefined) ?? 'Cordon refused the decision';
    await reply(click.response_url, `Not recorded: ${hint} (${outcome.type}: ${outcome.message}).`, requestLog);
  };

  app.post(
    '/v1/chat/slack/interactions',
    {
      schema: {
        summary: "Slack's interactivity requests (Approve / Reject buttons); signed with Slack's signing secret",
        consumes: ['application/x-www-form-urlencoded'],
      },
    },
    async (request, reply) => {
      const header = (name: string) => {
        const value = request.headers[name];
        return typeof value === 'string' ? value : undefined;
      };
      const check = verifySlackSignature({
        signingSecret: slack.signingSecret,
        signature: header('x-slack-signature'),
        timestamp: header('x-slack-request-timestamp'),
        rawBody: request.rawBody,
        nowSeconds: nowSeconds(),
      });
      if (!check.ok) {
        // Not from Slack, as far as anyone can tell: logged, never written to the ledger (anyone could send these).
        request.log.warn({ security: true, channel: 'slack', reason: 'Unauthenticated', check: check.reason, ip: request.ip }, 'Slack request refused');
        return sendError(reply, 'Unauthenticated', check.reason);
      }
      const form = request.body as Record<string, unknown> | undefined;
      const raw = typeof form?.payload === 'string' ? form.payload : undefined;
      let payload: unknown;
      try {
        payload = raw === undefined ? undefined : JSON.parse(raw);
      } catch {
        payload = undefined;
      }
      // Signed, yet malformed: an attempt from Slack all the same, recorded once answered.
      const refuseMalformed = (message: string) => {
        const user = PayloadUser.safeParse(payload);
        afterReply(() => recordRefused(user.success ? user.data.user.id : undefined, { reason: 'InvalidRequest', message }, request.log), request.log);
        return sendError(reply, 'InvalidRequest', message);
      };
      const kind = InteractionType.safeParse(payload);
      if (!kind.success) return refuseMalformed('the body has no valid payload field');
      if (kind.data.type === 'block_actions') {
        const click = BlockActions.safeParse(payload);
        if (!click.success) {
          const issue = click.error.issues[0];
          return refuseMalformed(`invalid block_actions payload: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'malformed'}`);
        }
        afterReply(() => handleClick(click.data, request.log), request.log);
      }
      return reply.code(200).send();
    },
  );
};
