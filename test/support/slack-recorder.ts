import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One call to the recorder's Slack Web API. */
export interface SlackCall {
  method: string;
  /** The form (or JSON) arguments, with `blocks` and other JSON-valued fields decoded. */
  args: Record<string, unknown>;
  authorization: string | undefined;
  /** The raw request body, to check what was (not) sent. */
  raw: string;
  at: number;
}

/** A reply posted to an interaction's `response_url`. */
export interface SlackResponse {
  path: string;
  body: { response_type?: string; replace_original?: boolean; text?: string };
  at: number;
}

/** A message as it stands after every post and update. */
export interface SlackMessageState {
  channel: string;
  ts: string;
  text: string;
  blocks: SlackBlockLike[];
  /** Every version, the post first. */
  versions: { text: string; blocks: SlackBlockLike[] }[];
}

/** The loose shape of a Block Kit block, enough to read messages back in tests. */
export interface SlackBlockLike {
  type: string;
  text?: { type: string; text: string };
  elements?: { type: string; text?: string | { text: string }; action_id?: string; value?: string; url?: string }[];
  accessory?: { type: string; action_id?: string; url?: string };
}

export interface SlackRecorder {
  /** Base URL of the Web API, for `new WebClient(token, { slackApiUrl })` (ends with `/api/`). */
  apiUrl: string;
  /** A fresh `response_url` on this recorder. */
  responseUrl(): string;
  calls: SlackCall[];
  responses: SlackResponse[];
  /** Messages by `<channel>:<ts>`. */
  messages: Map<string, SlackMessageState>;
  /** The message whose content mentions `runId` (every Cordon message links its run). */
  messageFor(runId: string): SlackMessageState | undefined;
  /** Polls until `check` returns a value, or fails after `timeoutMs`. */
  waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs?: number): Promise<T>;
  /** Slack users `users.info` knows: id → email. */
  users: Map<string, string>;
  close(): Promise<void>;
}

// Arguments Slack's client sends JSON-encoded inside the form.
const JSON_FIELDS = new Set(['blocks', 'attachments', 'metadata']);

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseArgs(contentType: string | undefined, raw: string): Record<string, unknown> {
  if (contentType?.startsWith('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  const args: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(raw)) args[key] = JSON_FIELDS.has(key) ? JSON.parse(value) : value;
  return args;
}

/**
 * A local stand-in for Slack on 127.0.0.1: `chat.postMessage`, `chat.update` and `users.info` of the
 * Web API (answering as Slack does, minimally), and `response_url` targets. Records every request.
 */
export async function startSlackRecorder(): Promise<SlackRecorder> {
  const calls: SlackCall[] = [];
  const responses: SlackResponse[] = [];
  const messages = new Map<string, SlackMessageState>();
  const users = new Map<string, string>();
  let counter = 0;
  let responseCounter = 0;

  const answer = (method: string, args: Record<string, unknown>): Record<string, unknown> => {
    switch (method) {
      case 'chat.postMessage': {
        const channel = String(args.channel);
        const ts = `${Math.floor(Date.now() / 1000)}.${String(++counter).padStart(6, '0')}`;
        const content = { text: String(args.text ?? ''), blocks: (args.blocks ?? []) as SlackBlockLike[] };
        messages.set(`${channel}:${ts}`, { channel, ts, ...content, versions: [content] });
        return { ok: true, channel, ts, message: { ts, ...content } };
      }
      case 'chat.update': {
        const key = `${String(args.channel)}:${String(args.ts)}`;
        const message = messages.get(key);
        if (!message) return { ok: false, error: 'message_not_found' };
        const content = { text: String(args.text ?? ''), blocks: (args.blocks ?? []) as SlackBlockLike[] };
        Object.assign(message, content);
        message.versions.push(content);
        return { ok: true, channel: message.channel, ts: message.ts, text: content.text };
      }
      case 'users.info': {
        const id = String(args.user);
        const email = users.get(id);
        if (email === undefined) return { ok: false, error: 'user_not_found' };
        return { ok: true, user: { id, name: email.split('@')[0], deleted: false, is_bot: false, profile: { email } } };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  };

  const server: Server = createServer((request, response) => {
    void (async () => {
      const raw = await readBody(request);
      const path = new URL(request.url ?? '/', 'http://recorder').pathname;
      const send = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.method !== 'POST') return send(405, { ok: false, error: 'method_not_allowed' });
      if (path.startsWith('/response/')) {
        responses.push({ path, body: JSON.parse(raw) as SlackResponse['body'], at: Date.now() });
        response.writeHead(200, { 'content-type': 'text/plain' });
        return response.end('ok');
      }
      const method = path.replace(/^\/api\//, '');
      const args = parseArgs(request.headers['content-type'], raw);
      calls.push({ method, args, authorization: request.headers.authorization, raw, at: Date.now() });
      return send(200, answer(method, args));
    })().catch((error: unknown) => {
      response.writeHead(500);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;

  return {
    apiUrl: `${base}/api/`,
    responseUrl: () => `${base}/response/${++responseCounter}`,
    calls,
    responses,
    messages,
    users,
    messageFor(runId) {
      return [...messages.values()].find((m) => JSON.stringify(m.versions[0]).includes(runId));
    },
    async waitFor(what, check, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = check();
        if (value !== undefined && value !== false) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
