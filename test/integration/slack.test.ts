// Slack approvals end to end: the worker's Slack notifier posts to, and updates, a local recorder
// standing in for Slack's Web API; signed button clicks come to the API over a real Temporal dev
// server, a real worker and a real scim2-server, and go through the same approval Update as every
// other channel. Refused clicks get an ephemeral reply (at the recorder's response_url) and a ledger entry.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { WebClient } from '@slack/web-api';
import { Client, type WorkflowClientInterceptor, type WorkflowHandle } from '@temporalio/client';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackNotifier, renderApprovalMessage, slackLogger, SLACK_APPROVE_ACTION, SLACK_OPEN_RUN_ACTION, SLACK_REJECT_ACTION } from '../../activities/notify/slack.js';
import type { ApprovalNotice } from '../../activities/notify/types.js';
import type { Identity, RunView } from '../../domain/index.js';
import { loadPolicyEngine } from '../../policies/engine.js';
import { buildServer, type CordonServer } from '../../server/app.js';
import { responseUrlAllowed, signSlackRequest, verifySlackSignature } from '../../server/chat/slack.js';
import { identityStore, type IdentitiesFile } from '../../server/identities.js';
import { getRunQuery } from '../../workflows/messages.js';
import { testSigningKey } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { copyDefaultPolicies } from '../support/policy-files.js';
import { startSlackRecorder, type SlackBlockLike, type SlackMessageState, type SlackRecorder } from '../support/slack-recorder.js';
import { alertFor, quietLog, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

const signingSecret = randomBytes(32).toString('hex');
const botToken = `xoxb-${randomBytes(16).toString('hex')}`;
const CHANNEL = 'C0CORDON';
const PUBLIC_URL = 'https://cordon.example.test';

const token = () => `tok_${randomBytes(16).toString('hex')}`;
const identitiesFile: IdentitiesFile = {
  soc: { token: token(), roles: ['soc'] },
  alice: { token: token(), roles: ['soc', 'approver'] },
  bob: { token: token(), roles: ['approver'] },
  carol: { token: token(), roles: ['approver'] },
  oscar: { token: token(), roles: ['operator'] },
};
/** Names and roles from the same identities the API authenticates (what `IdentityStore` would answer). */
const identityOf = (name: string): Identity | undefined => {
  const entry = Object.hasOwn(identitiesFile, name) ? identitiesFile[name] : undefined;
  return entry && { name, roles: [...entry.roles] };
};
const alice: Identity = { name: 'alice', roles: ['soc', 'approver'] };

// Slack users: bob, alice and oscar by user id; carol by the email users.info gives; a stranger whose
// email maps to nobody.
const U = { bob: 'U0BOB', alice: 'U0ALICE', oscar: 'U0OSCAR', carol: 'U0CAROL', stranger: 'U0STRANGER' } as const;
const userMap = { [U.bob]: 'bob', [U.alice]: 'alice', [U.oscar]: 'oscar', 'Carol@Example.test': 'carol' };

let env: RemediationEnv;
let recorder: SlackRecorder;
let worker: RunningWorker;
let app: CordonServer;
let apiTemporal: Client;
/** Holds every approval Update this long before it is sent (to show the click is answered first). */
let updateDelayMs = 0;
const logLines: string[] = [];
/** response_urls of requests that must never get a reply (refused with 401, or not an approval). */
const unansweredPaths: string[] = [];

beforeAll(async () => {
  env = await startRemediationEnv();
  recorder = await startSlackRecorder();
  recorder.users.set(U.carol, 'carol@example.test');
  recorder.users.set(U.stranger, 'stranger@example.test');
  const slackClient = new WebClient(botToken, { slackApiUrl: recorder.apiUrl, retryConfig: { retries: 0 }, logger: slackLogger(quietLog) });
  worker = await startWorker({
    taskQueue: env.taskQueue,
    connectors: { scim: env.connector },
    ledger: env.ledger,
    policy: env.policy,
    notifiers: [createSlackNotifier({ client: slackClient, channel: CHANNEL, publicUrl: PUBLIC_URL })],
  });
  const delay: WorkflowClientInterceptor = {
    async startUpdate(input, next) {
      if (updateDelayMs > 0) await new Promise((r) => setTimeout(r, updateDelayMs));
      return next(input);
    },
  };
  apiTemporal = new Client({ connection: env.client.connection, namespace: 'default', interceptors: { workflow: [delay] } });
  const capture = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  app = await buildServer({
    temporal: apiTemporal,
    taskQueue: env.taskQueue,
    ledger: env.ledger,
    guardrailState: env.guardrailState,
    identities: identityStore(identitiesFile),
    approvalSigner: testSigningKey,
    slack: { signingSecret, userMap, botToken, apiUrl: recorder.apiUrl, identityOf },
    log: pino({ level: 'info' }, capture),
  });
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await recorder?.close();
  await env?.close();
});

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Every text in a message's blocks, in order. */
function texts(blocks: SlackBlockLike[]): string[] {
  const out: string[] = [];
  const walk = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      if (typeof record.text === 'string') out.push(record.text);
      for (const [key, child] of Object.entries(record)) if (key !== 'text' || typeof child !== 'string') walk(child);
    }
  };
  walk(blocks);
  return out;
}
const contentOf = (m: { blocks: SlackBlockLike[] }) => texts(m.blocks).join('\n');
const buttonsOf = (m: { blocks: SlackBlockLike[] }) => m.blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []);

interface ClickOptions {
  action?: string;
  value?: string;
  secret?: string;
  at?: number;
  /** Changes the body after it was signed. */
  tamper?: (body: string) => string;
  headers?: Record<string, string>;
}

/** Sends a block_actions interaction as Slack would, signed; returns the answer and the response_url used. */
async function click(userId: string, run: { runId: string; planDigest: string }, options: ClickOptions = {}) {
  const responseUrl = recorder.responseUrl();
  const payload = {
    type: 'block_actions',
    user: { id: userId, username: userId.toLowerCase(), team_id: 'T0CORDON' },
    team: { id: 'T0CORDON', domain: 'cordon' },
    api_app_id: 'A0CORDON',
    response_url: responseUrl,
    trigger_id: '1.2.3',
    channel: { id: CHANNEL },
    actions: [{ type: 'button', block_id: 'cordon_decision', action_id: options.action ?? SLACK_APPROVE_ACTION, value: options.value ?? JSON.stringify(run), action_ts: `${nowSeconds()}.000100` }],
  };
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const at = options.at ?? nowSeconds();
  const signature = signSlackRequest(options.secret ?? signingSecret, body, at);
  const started = Date.now();
  const response = await app.inject({
    method: 'POST',
    url: '/v1/chat/slack/interactions',
    headers: options.headers ?? { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-signature': signature, 'x-slack-request-timestamp': String(at) },
    payload: options.tamper ? options.tamper(body) : body,
  });
  return { response, elapsedMs: Date.now() - started, responsePath: new URL(responseUrl).pathname };
}

/** POSTs a body to the interactions endpoint, signed as Slack would. */
function signedPost(body: string) {
  const at = nowSeconds();
  return app.inject({
    method: 'POST',
    url: '/v1/chat/slack/interactions',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-signature': signSlackRequest(signingSecret, body, at), 'x-slack-request-timestamp': String(at) },
    payload: body,
  });
}

/** The refusals on channel slack written after `since` that name no run. */
async function slackRefusalsSince(since: number) {
  return (await env.ledger.entries({ afterSeq: since })).filter((e) => e.kind === 'approval.refused' && e.data.channel === 'slack' && e.runId === null);
}

/** The ephemeral reply sent to a click's response_url. */
function replyTo(path: string) {
  return recorder.waitFor(`the ephemeral reply at ${path}`, () => recorder.responses.find((r) => r.path === path));
}

async function viewOf(handle: WorkflowHandle): Promise<RunView> {
  return handle.query(getRunQuery);
}

/** Polls an asynchronous condition until it returns a value. */
async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the v0 signature check', () => {
  const body = Buffer.from('payload=%7B%22type%22%3A%22block_actions%22%7D');
  const now = 1_800_000_000;
  const check = (overrides: Partial<Parameters<typeof verifySlackSignature>[0]>) =>
    verifySlackSignature({ signingSecret, signature: signSlackRequest(signingSecret, body, now), timestamp: String(now), rawBody: body, nowSeconds: now, ...overrides });

  it('accepts a signature over the raw body within five minutes, either way', () => {
    expect(check({})).toEqual({ ok: true });
    expect(check({ nowSeconds: now + 300 })).toEqual({ ok: true });
    expect(check({ nowSeconds: now - 300 })).toEqual({ ok: true });
  });

  it('refuses a signature made with another secret', () => {
    expect(check({ signature: signSlackRequest('another-secret', body, now) })).toMatchObject({ ok: false, reason: expect.stringContaining('does not match') });
  });

  it('refuses a timestamp more than five minutes away (a replay), even with a valid signature', () => {
    expect(check({ nowSeconds: now + 301 })).toMatchObject({ ok: false, reason: expect.stringContaining('window') });
    expect(check({ nowSeconds: now - 301 })).toMatchObject({ ok: false, reason: expect.stringContaining('window') });
  });

  it('refuses missing or malformed headers', () => {
    expect(check({ signature: undefined }).ok).toBe(false);
    expect(check({ timestamp: undefined }).ok).toBe(false);
    expect(check({ signature: 'v1=' + 'a'.repeat(64) }).ok).toBe(false);
    expect(check({ signature: 'v0=xyz' }).ok).toBe(false);
    expect(check({ timestamp: '1e9' }).ok).toBe(false);
  });

  it('refuses a body changed after signing, and a signature moved to another timestamp', () => {
    expect(check({ rawBody: Buffer.from(body.toString().replace('block_actions', 'block_actionz')) }).ok).toBe(false);
    expect(check({ rawBody: undefined }).ok).toBe(false);
    expect(check({ timestamp: String(now + 1), nowSeconds: now + 1 }).ok).toBe(false);
  });
});

describe('response_url', () => {
  it('is only called on Slack hooks over https, or on the configured Slack API origin', () => {
    expect(responseUrlAllowed('https://hooks.slack.com/actions/T0/1/abc', undefined)).toBe(true);
    expect(responseUrlAllowed('http://hooks.slack.com/actions/T0/1/abc', undefined)).toBe(false);
    expect(responseUrlAllowed('https://hooks.slack.com:8443/actions', undefined)).toBe(false);
    expect(responseUrlAllowed('https://hooks.slack.com.evil.test/actions', undefined)).toBe(false);
    expect(responseUrlAllowed('https://user@hooks.slack.com/actions', undefined)).toBe(false);
    expect(responseUrlAllowed('http://169.254.169.254/latest/meta-data', undefined)).toBe(false);
    expect(responseUrlAllowed('not a url', undefined)).toBe(false);
    expect(responseUrlAllowed('http://127.0.0.1:9999/response/1', 'http://127.0.0.1:9999/api/')).toBe(true);
    expect(responseUrlAllowed('http://127.0.0.1:9998/response/1', 'http://127.0.0.1:9999/api/')).toBe(false);
  });
});

describe('the approval message', () => {
  it('escapes alert text, so that an alert cannot mention @channel or forge a link', () => {
    const notice: ApprovalNotice = {
      event: 'requested',
      runId: `run_${'a'.repeat(32)}`,
      playbook: 'deprovision-account',
      status: 'awaiting_approval',
      alert: { source: 'siem', kind: 'account.orphaned', severity: 'low', subject: 'jdoe', summary: '<!channel> see <https://evil.test|the docs> & act' },
      requestedBy: 'soc',
      plan: { digest: 'b'.repeat(64), actions: [{ id: 'a1', type: 'DisableAccount', target: 'jdoe', change: 'active: true → false' }] },
      requiredApprovals: 1,
      approverRoles: ['approver'],
      approvals: [],
      expiresAt: null,
    };
    const message = renderApprovalMessage(notice, PUBLIC_URL);
    const content = contentOf(message as { blocks: SlackBlockLike[] });
    expect(content).toContain('&lt;!channel&gt; see &lt;https://evil.test|the docs&gt; &amp; act');
    expect(content).not.toContain('<!channel>');
    expect(message.text).not.toContain('<!channel>');
  });

  it('ends a rejected run with who rejected and the outcome, and no buttons', () => {
    const notice: ApprovalNotice = {
      event: 'finished',
      runId: `run_${'c'.repeat(32)}`,
      playbook: 'deprovision-account',
      status: 'rejected',
      alert: { source: 'siem', kind: 'account.leaver', severity: 'medium', subject: 'kim', summary: null },
      requestedBy: 'soc',
      plan: { digest: 'd'.repeat(64), actions: [{ id: 'a1', type: 'RemoveGroupMembership', target: 'kim', change: 'member of admins: true → false' }] },
      requiredApprovals: 2,
      approverRoles: ['approver'],
      approvals: [
        { approver: 'bob', decision: 'approve', at: new Date().toISOString(), channel: 'slack' },
        { approver: 'carol', decision: 'reject', at: new Date().toISOString(), channel: 'web', comment: 'still employed' },
      ],
      expiresAt: new Date().toISOString(),
    };
    const message = renderApprovalMessage(notice, PUBLIC_URL) as { text: string; blocks: SlackBlockLike[] };
    const content = contentOf(message);
    expect(content).toContain('approved by bob — 1 of 2');
    expect(content).toContain('rejected by carol — “still employed”');
    expect(content).toContain('*Outcome:* rejected');
    expect(buttonsOf(message)).toEqual([]);
    expect(message.text).toContain('rejected');
  });
});

describe('approving a run from Slack', () => {
  let handle: WorkflowHandle;
  let run: { runId: string; planDigest: string };
  let message: SlackMessageState;

  beforeAll(async () => {
    const user = await env.org.user('slack', ['admins', 'vpn-users']);
    handle = await startRun(env.client, env.taskQueue, alertFor({ userName: user.userName }, { severity: 'critical', summary: 'contractor left in March' }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    run = { runId: handle.workflowId, planDigest: waiting.plan!.digest };
    message = await recorder.waitFor('the approval request', () => recorder.messageFor(run.runId));
  });

  it('posts the request with the plan, the run link and Approve / Reject buttons carrying the run and digest', () => {
    const post = recorder.calls.find((c) => c.method === 'chat.postMessage' && c.raw.includes(run.runId))!;
    expect(post.args.channel).toBe(CHANNEL);
    expect(post.authorization).toBe(`Bearer ${botToken}`);
    expect(post.raw).not.toContain(botToken);
    expect(String(post.args.text)).toContain('Approval needed');

    const content = contentOf(message);
    expect(message.blocks[0]).toMatchObject({ type: 'header', text: { text: expect.stringContaining('deprovision-account: slack.') } });
    expect(content).toContain('`account.orphaned` · *critical* — contractor left in March');
    expect(content).toContain('*Requested by* alice');
    expect(content).toContain('`DisableAccount`');
    expect(content).toContain('`RemoveGroupMembership`');
    expect(content).toContain('member of admins: true → false');
    expect(content).toMatch(/Needs \*2 approvals\* from \*approver\* by <!date\^\d+\^/);
    expect(content).toContain(`<${PUBLIC_URL}/ui/runs/${run.runId}|${run.runId}>`);
    expect(JSON.stringify(message.blocks)).toContain(`"url":"${PUBLIC_URL}/ui/runs/${run.runId}"`);

    const buttons = buttonsOf(message);
    expect(buttons.map((b) => b.action_id)).toEqual([SLACK_APPROVE_ACTION, SLACK_REJECT_ACTION]);
    for (const button of buttons) expect(JSON.parse(button.value!)).toEqual(run);
  });

  it("answers bob's signed click at once, then records his approval through the workflow Update (1 of 2)", async () => {
    updateDelayMs = 1500;
    try {
      const { response, elapsedMs, responsePath } = await click(U.bob, run);
      expect(response.statusCode).toBe(200);
      expect(response.body).toBe('');
      expect(elapsedMs).toBeLessThan(1000);
      // The Update is still held back: the answer came before the decision.
      expect((await viewOf(handle)).approvals).toEqual([]);

      const view = await eventually('bob in the run', async () => {
        const current = await viewOf(handle);
        return current.approvals.length > 0 && current;
      });
      expect(view.approvals.map((a) => [a.approver, a.decision, a.channel])).toEqual([['bob', 'approve', 'slack']]);
      expect((await replyTo(responsePath)).body).toMatchObject({ response_type: 'ephemeral', replace_original: false, text: expect.stringContaining('you approved') });
    } finally {
      updateDelayMs = 0;
    }
    await recorder.waitFor('"approved by bob — 1 of 2" in the message', () => contentOf(message).includes('approved by bob — 1 of 2'));
    expect(buttonsOf(message)).toHaveLength(2);
  });

  it('refuses a click signed with the wrong secret: 401, nothing recorded, nobody answered', async () => {
    const before = (await env.ledger.entries({ runId: run.runId })).length;
    const { response, responsePath } = await click(U.carol, run, { secret: 'not-the-signing-secret' });
    unansweredPaths.push(responsePath);
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ error: { type: 'Unauthenticated', message: expect.stringContaining('does not match') } });
    expect((await viewOf(handle)).approvals.map((a) => a.approver)).toEqual(['bob']);
    expect(await env.ledger.entries({ runId: run.runId })).toHaveLength(before);
  });

  it('refuses a correctly signed click replayed six minutes later: 401', async () => {
    const { response, responsePath } = await click(U.carol, run, { at: nowSeconds() - 360 });
    unansweredPaths.push(responsePath);
    expect(response.statusCode).toBe(401);
    expect(response.json<{ error: { message: string } }>().error.message).toContain('window');
  });

  it('refuses a click without signature headers, or with a body changed after signing: 401', async () => {
    const unsigned = await click(U.carol, run, { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(unsigned.response.statusCode).toBe(401);
    const tampered = await click(U.bob, run, { tamper: (body) => body.replace(U.bob, U.carol) });
    expect(tampered.response.statusCode).toBe(401);
    unansweredPaths.push(unsigned.responsePath, tampered.responsePath);
    expect((await viewOf(handle)).approvals.map((a) => a.approver)).toEqual(['bob']);
  });

  it('answers a signed request that is not an interaction with 400, after checking its signature, and writes it to the ledger as an attempt from Slack', async () => {
    const since = (await env.ledger.head())?.seq ?? 0;
    const response = await signedPost('payload=not-json');
    expect(response.statusCode).toBe(400);
    const entry = await eventually('the refusal in the ledger', async () => (await slackRefusalsSince(since))[0]);
    expect([entry.actor, entry.runId, entry.data.channel, entry.data.reason, entry.data.slackUser]).toEqual(['slack', null, 'slack', 'InvalidRequest', null]);
    expect(entry.data.message).toBe('the body has no valid payload field');
  });

  it('writes a signed click with a malformed payload, or whose button names no run, to the ledger under the Cordon identity of the Slack user', async () => {
    const since = (await env.ledger.head())?.seq ?? 0;
    // bob's click with no action at all: 400.
    const responseUrl = recorder.responseUrl();
    unansweredPaths.push(new URL(responseUrl).pathname);
    const malformed = { type: 'block_actions', user: { id: U.bob }, response_url: responseUrl, actions: [] };
    expect((await signedPost(new URLSearchParams({ payload: JSON.stringify(malformed) }).toString())).statusCode).toBe(400);
    // carol (mapped by her email): a button whose value is no run, then one naming a run that does not exist.
    const garbled = await click(U.carol, run, { value: 'not a run' });
    expect(garbled.response.statusCode).toBe(200);
    expect((await replyTo(garbled.responsePath)).body.text).toContain('does not name a Cordon run');
    const unknownRun = `run_${'f'.repeat(32)}`;
    const unknown = await click(U.carol, { runId: unknownRun, planDigest: run.planDigest });
    expect((await replyTo(unknown.responsePath)).body.text).toContain('NotFound');

    const refused = await eventually('three refusals in the ledger', async () => {
      const entries = await slackRefusalsSince(since);
      return entries.length >= 3 && entries;
    });
    expect(refused.map((e) => [e.actor, e.runId, e.data.decision, e.data.reason, e.data.requestedRunId ?? null])).toEqual([
      ['bob', null, null, 'InvalidRequest', null],
      ['carol', null, 'approve', 'InvalidRequest', null],
      ['carol', null, 'approve', 'NotFound', unknownRun],
    ]);
    expect(refused[0]?.data).toMatchObject({ slackUser: U.bob, message: expect.stringContaining('actions') });
    expect(refused[1]?.data).toMatchObject({ slackUser: U.carol, message: 'the button does not name a Cordon run' });
    expect((await viewOf(handle)).approvals.map((a) => a.approver)).toEqual(['bob']);
  });

  it('tells an unmapped Slack user, and only them, that the click was not recorded', async () => {
    const { response, responsePath } = await click(U.stranger, run);
    expect(response.statusCode).toBe(200);
    const reply = await replyTo(responsePath);
    expect(reply.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(reply.body.text).toContain('not linked to a Cordon identity');
    expect(reply.body.text).toContain(U.stranger);
    // users.info was asked for the email, with the bot token in the header only.
    const lookup = recorder.calls.find((c) => c.method === 'users.info' && c.args.user === U.stranger);
    expect(lookup?.authorization).toBe(`Bearer ${botToken}`);
    expect((await viewOf(handle)).approvals.map((a) => a.approver)).toEqual(['bob']);
  });

  it('tells a mapped identity without the approver role why (MissingApproverRole)', async () => {
    const { responsePath } = await click(U.oscar, run);
    const reply = await replyTo(responsePath);
    expect(reply.body.response_type).toBe('ephemeral');
    expect(reply.body.text).toContain('MissingApproverRole');
  });

  it('tells the requester they cannot decide on their own run (SeparationOfDuties)', async () => {
    const { responsePath } = await click(U.alice, run);
    expect((await replyTo(responsePath)).body.text).toContain('SeparationOfDuties');
  });

  it("refuses bob's second click as a duplicate and counts him once", async () => {
    const { response, responsePath } = await click(U.bob, run);
    expect(response.statusCode).toBe(200);
    expect((await replyTo(responsePath)).body.text).toContain('DuplicateApproval');
    const view = await viewOf(handle);
    expect(view.approvals.filter((a) => a.approver === 'bob')).toHaveLength(1);
    expect(view.status).toBe('awaiting_approval');
  });

  it('ignores a click on the "Open run" link button', async () => {
    const { response, responsePath } = await click(U.bob, run, { action: SLACK_OPEN_RUN_ACTION, value: '' });
    unansweredPaths.push(responsePath);
    expect(response.statusCode).toBe(200);
    expect(response.body).toBe('');
  });

  it("executes on carol's click (mapped by her email) and ends the message 'executed', without buttons", async () => {
    const { response, responsePath } = await click(U.carol, run);
    expect(response.statusCode).toBe(200);
    expect((await replyTo(responsePath)).body.text).toContain('2 of 2');
    const done = await waitForStatus(handle, ['completed', 'failed', 'needs_human', 'compensated']);
    expect(done.status).toBe('completed');
    expect(done.approvals.map((a) => [a.approver, a.decision, a.channel])).toEqual([
      ['bob', 'approve', 'slack'],
      ['carol', 'approve', 'slack'],
    ]);
    await recorder.waitFor('the outcome in the message', () => contentOf(message).includes('*Outcome:* executed'));
    const content = contentOf(message);
    expect(content).toContain('approved by bob — 1 of 2');
    expect(content).toContain('approved by carol — 2 of 2');
    expect(buttonsOf(message)).toEqual([]);
    // One message for the run: posted once, then only updated.
    expect(recorder.calls.filter((c) => c.method === 'chat.postMessage' && c.raw.includes(run.runId))).toHaveLength(1);
    expect(message.versions.length).toBeGreaterThanOrEqual(4);
  });

  it('tells a late click that the run is no longer waiting (RunNotAwaitingApproval)', async () => {
    const { responsePath } = await click(U.bob, run, { action: SLACK_REJECT_ACTION });
    expect((await replyTo(responsePath)).body.text).toContain('RunNotAwaitingApproval');
  });

  it("writes every refused click to the ledger as approval.refused on channel 'slack', and nothing for the others", async () => {
    const refused = (await env.ledger.entries({ runId: run.runId })).filter((e) => e.kind === 'approval.refused');
    expect(refused.map((e) => [e.actor, e.data.channel, e.data.decision, e.data.reason])).toEqual([
      [`slack:${U.stranger}`, 'slack', 'approve', 'Unauthenticated'],
      ['oscar', 'slack', 'approve', 'MissingApproverRole'],
      ['alice', 'slack', 'approve', 'SeparationOfDuties'],
      ['bob', 'slack', 'approve', 'DuplicateApproval'],
      ['bob', 'slack', 'reject', 'RunNotAwaitingApproval'],
    ]);
    const recorded = (await env.ledger.entries({ runId: run.runId })).filter((e) => e.kind === 'approval.recorded');
    expect(recorded.map((e) => [e.actor, e.data.channel])).toEqual([
      ['bob', 'slack'],
      ['carol', 'slack'],
    ]);
    // Checked after every later click was answered: the 401s, the malformed click and the link click never got a reply.
    expect(unansweredPaths).toHaveLength(6);
    expect(recorder.responses.filter((r) => unansweredPaths.includes(r.path))).toEqual([]);
  });

  it('lists the interactions endpoint in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(doc.paths)).toContain('/v1/chat/slack/interactions');
  });

  it('writes no secret, token or signature to the logs or to Slack, and logs each unsigned or badly signed request as a security warning', () => {
    const logs = logLines.join('');
    expect(logs).toContain('approval refused');
    const warnings = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.msg === 'Slack request refused');
    // The wrong secret, the replay, no headers and the tampered body.
    expect(warnings).toHaveLength(4);
    for (const warning of warnings) expect(warning).toMatchObject({ level: 40, security: true, channel: 'slack', reason: 'Unauthenticated' });
    expect(warnings.map((w) => w.check)).toEqual([
      expect.stringContaining('does not match'),
      expect.stringContaining('window'),
      expect.stringContaining('missing'),
      expect.stringContaining('does not match'),
    ]);
    for (const secret of [signingSecret, botToken]) {
      expect(logs).not.toContain(secret);
      for (const call of recorder.calls) expect(call.raw).not.toContain(secret);
    }
    expect(logs).not.toMatch(/v0=[0-9a-f]{64}/);
  });
});

describe('a run that waits: escalation, reminders and expiry in the message', () => {
  let shortWorker: RunningWorker;
  let shortQueue: string;

  beforeAll(async () => {
    // The default policies, with a 4-second window for privileged accounts that escalates to admin after 1 s (not 12 h).
    const privileged = '@approvers("2")\n@roles("approver")\n@expires("24h")\n@escalateAfter("12h")\n@escalateRoles("admin")';
    const dir = await copyDefaultPolicies((original) => {
      expect(original).toContain(privileged);
      return original.replace(privileged, '@approvers("2")\n@roles("approver")\n@expires("4s")\n@escalateAfter("1s")\n@escalateRoles("admin")');
    });
    shortQueue = `${env.taskQueue}-short`;
    const slackClient = new WebClient(botToken, { slackApiUrl: recorder.apiUrl, retryConfig: { retries: 0 }, logger: slackLogger(quietLog) });
    shortWorker = await startWorker({
      taskQueue: shortQueue,
      connectors: { scim: env.connector },
      ledger: env.ledger,
      policy: await loadPolicyEngine(dir),
      notifiers: [createSlackNotifier({ client: slackClient, channel: CHANNEL, publicUrl: PUBLIC_URL })],
    });
  });

  afterAll(async () => {
    await shortWorker?.stop();
  });

  it('shows the escalation, the 50% and 80% reminders, then "expired" without buttons', async () => {
    const user = await env.org.user('slackwait', ['admins']);
    const handle = await startRun(env.client, shortQueue, alertFor({ userName: user.userName }, { severity: 'critical' }), alice);
    const waiting = await waitForStatus(handle, ['awaiting_approval']);
    const message = await recorder.waitFor('the approval request', () => recorder.messageFor(handle.workflowId));
    const { responsePath } = await click(U.bob, { runId: handle.workflowId, planDigest: waiting.plan!.digest });
    await replyTo(responsePath);

    const run = await waitForStatus(handle, ['expired'], 30_000);
    expect(run.error).toMatchObject({ type: 'ApprovalExpired' });
    await recorder.waitFor('the outcome in the message', () => contentOf(message).includes('*Outcome:* expired'));

    const versions = message.versions.map((v) => contentOf(v));
    const firstWith = (needle: string) => versions.findIndex((v) => v.includes(needle));
    const escalated = firstWith('escalated: now admin, approver may decide');
    const half = firstWith('reminder: 50% of the approval window has passed');
    const late = firstWith('reminder: 80% of the approval window has passed');
    const expired = firstWith('*Outcome:* expired');
    expect(firstWith('approved by bob — 1 of 2')).toBeGreaterThan(0);
    expect(escalated).toBeGreaterThan(0);
    expect(half).toBeGreaterThan(escalated);
    expect(late).toBeGreaterThan(half);
    expect(expired).toBe(versions.length - 1);
    // Escalated roles show in the requirement from then on.
    expect(versions[late]).toContain('from *admin, approver*');
    expect(buttonsOf(message.versions[late]!)).toHaveLength(2);
    expect(buttonsOf(message)).toEqual([]);
    expect(contentOf(message)).toContain('approved by bob — 1 of 2');
    // The text Slack shows in notifications tells each stage too.
    const texts = recorder.calls.filter((c) => c.method === 'chat.update' && c.args.ts === message.ts).map((c) => String(c.args.text));
    expect(texts.some((t) => t.includes('reminder: 80%'))).toBe(true);
    expect(texts.at(-1)).toContain('expired');
  });
});
