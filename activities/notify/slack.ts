import { LogLevel, type ChatPostMessageArguments, type ChatUpdateArguments, type Logger as SlackSdkLogger } from '@slack/web-api';
import { z } from 'zod';
import { PlanDigest, RunId, type Approval, type RunStatus } from '../../domain/index.js';
import type { ApprovalNotice, ApprovalNotifier } from './types.js';

/** The `action_id` of the Approve button; the interactions endpoint acts on it. */
export const SLACK_APPROVE_ACTION = 'cordon_approve';
/** The `action_id` of the Reject button. */
export const SLACK_REJECT_ACTION = 'cordon_reject';
/** The `action_id` of the "Open run" link button (Slack reports its clicks too; they are ignored). */
export const SLACK_OPEN_RUN_ACTION = 'cordon_open_run';

/**
 * What an Approve / Reject button carries in its `value` (JSON): the run and the plan digest the
 * message showed, so that a click on an outdated message is refused as a stale digest.
 */
export const SlackButtonValue = z.strictObject({ runId: RunId, planDigest: PlanDigest });
export type SlackButtonValue = z.infer<typeof SlackButtonValue>;

/** One Block Kit block, as Slack's own types describe it. */
type SlackBlock = Extract<ChatPostMessageArguments, { blocks: unknown }>['blocks'][number];

/** The part of Slack's Web API the notifier uses; `new WebClient(token)` is one. */
export interface SlackChatClient {
  chat: {
    postMessage(message: ChatPostMessageArguments): Promise<{ ok?: boolean; channel?: string; ts?: string }>;
    update(message: ChatUpdateArguments): Promise<{ ok?: boolean; channel?: string; ts?: string }>;
  };
}

export interface SlackNotifierOptions {
  client: SlackChatClient;
  /** Where approval requests are posted: a channel id (C0123…) or a name the bot may post to. */
  channel: string;
  /** The URL people reach Cordon at; messages link to `<publicUrl>/ui/runs/<runId>`. */
  publicUrl: string;
}

/** The message for a notice: Block Kit blocks, and the text Slack shows in notifications. */
export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

/** How each status reads once the run has ended (and, for completeness, while it runs). */
const OUTCOME: Record<RunStatus, string> = {
  observing: 'observing the target',
  planning: 'planning',
  deciding: 'deciding',
  awaiting_approval: 'awaiting approval',
  executing: 'executing',
  verifying: 'verifying',
  compensating: 'undoing its changes',
  paused: 'paused by a guardrail',
  rolling_back: 'rolling back',
  completed: 'executed: every action applied and verified',
  dry_run_completed: 'dry run completed: nothing was changed',
  rejected: 'rejected: nothing was executed',
  expired: 'expired: the approval window ended without a quorum; nothing was executed',
  denied: 'denied by policy: nothing was executed',
  compensated: 'compensated: a failure or a cancellation undid the changes',
  needs_human: 'needs a person: an undo or a verification failed',
  failed: 'failed: nothing was changed',
  cancelled: 'cancelled before any change',
  rolled_back: 'rolled back: every change was undone',
  partially_rolled_back: 'partially rolled back: some changes were undone',
};

const MAX_PLAN_LINES = 10;
const MAX_CONTEXT_ELEMENTS = 10;

/** Slack's mrkdwn control characters; alert text is untrusted (no `<!channel>`, no forged links). */
function escape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** "approved by bob — 1 of 2" for each decision, in order. */
export function approvalLines(approvals: readonly Approval[], required: number): string[] {
  let approved = 0;
  return approvals.map((a) => {
    const comment = a.comment ? ` — “${clip(a.comment, 200)}”` : '';
    if (a.decision === 'approve') return `approved by ${a.approver} — ${++approved} of ${required}${comment}`;
    return `rejected by ${a.approver}${comment}`;
  });
}

/** The line that says which stage the approval is at, for the notices that have one. */
function stageLine(notice: ApprovalNotice): string | undefined {
  switch (notice.event) {
    case 'reminder':
      return `reminder: ${notice.elapsedPercent ?? '?'}% of the approval window has passed`;
    case 'escalated':
      return `escalated: now ${notice.approverRoles.join(', ')} may decide`;
    case 'requested':
    case 'decision':
    case 'finished':
      return undefined;
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Renders a notice as the run's one Slack message; later notices re-render it whole. */
export function renderApprovalMessage(notice: ApprovalNotice, publicUrl: string): SlackMessage {
  const link = `${publicUrl.replace(/\/+$/, '')}/ui/runs/${notice.runId}`;
  const subject = notice.alert.subject || '(unnamed subject)';
  const approved = notice.approvals.filter((a) => a.decision === 'approve').length;
  const finished = notice.event === 'finished';
  const quorum = approved >= notice.requiredApprovals;
  // Buttons until the run ends or has its quorum; a rejection ends the run by itself where it decides
  // (reject-wins), and under a majority rule the others may still decide.
  const open = !finished && !quorum;
  const roles = notice.approverRoles.join(', ') || '(none)';
  const lines = approvalLines(notice.approvals, notice.requiredApprovals);
  const stage = stageLine(notice);

  const actions = notice.plan.actions.slice(0, MAX_PLAN_LINES).map((a) => `• \`${a.type}\` ${escape(a.target)}: ${escape(a.change)}`);
  if (notice.plan.actions.length > MAX_PLAN_LINES) actions.push(`… and ${notice.plan.actions.length - MAX_PLAN_LINES} more`);
  const deadline = notice.expiresAt
    ? ` by <!date^${Math.floor(Date.parse(notice.expiresAt) / 1000)}^{date_short_pretty} {time}|${notice.expiresAt}>`
    : '';
  const summary = notice.alert.summary ? ` — ${escape(clip(notice.alert.summary, 500))}` : '';

  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: clip(`${notice.playbook}: ${subject}`, 150), emoji: false } },
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `*Alert* \`${escape(notice.alert.kind)}\` · *${escape(notice.alert.severity)}*${summary}\n*Requested by* ${escape(notice.requestedBy)} · *Run* <${link}|${notice.runId}>`,
      },
    },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: `*Plan* (${plural(notice.plan.actions.length, 'action')}, digest \`${notice.plan.digest.slice(0, 12)}\`)\n${actions.join('\n')}` },
    },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: `Needs *${plural(notice.requiredApprovals, 'approval')}* from *${escape(roles)}*${deadline}` },
      accessory: { type: 'button', action_id: SLACK_OPEN_RUN_ACTION, text: { type: 'plain_text', text: 'Open run' }, url: link },
    },
  ];
  const context = [...lines, ...(stage ? [stage] : []), ...(!finished && quorum ? ['quorum reached: executing'] : [])];
  if (context.length > 0) {
    blocks.push({ type: 'context', elements: context.slice(-MAX_CONTEXT_ELEMENTS).map((text) => ({ type: 'mrkdwn' as const, text: escape(text) })) });
  }
  if (finished) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*Outcome:* ${OUTCOME[notice.status]}` } });
  } else if (open) {
    const value = JSON.stringify({ runId: notice.runId, planDigest: notice.plan.digest } satisfies SlackButtonValue);
    blocks.push({
      type: 'actions',
      block_id: 'cordon_decision',
      elements: [
        { type: 'button', action_id: SLACK_APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value },
        {
          type: 'button',
          action_id: SLACK_REJECT_ACTION,
          style: 'danger',
          text: { type: 'plain_text', text: 'Reject' },
          value,
          confirm: {
            title: { type: 'plain_text', text: 'Reject this plan?' },
            text: { type: 'plain_text', text: 'Nothing will be executed for this run.' },
            confirm: { type: 'plain_text', text: 'Reject' },
            deny: { type: 'plain_text', text: 'Cancel' },
          },
        },
      ],
    });
  }

  const what = `${notice.playbook} for ${subject}`;
  const text = ((): string => {
    switch (notice.event) {
      case 'requested':
        return `Approval needed: ${what} needs ${plural(notice.requiredApprovals, 'approval')} from ${roles}${notice.expiresAt ? ` by ${notice.expiresAt}` : ''}. ${link}`;
      case 'decision':
        return `${what}: ${lines.at(-1) ?? 'no decision yet'}. ${link}`;
      case 'reminder':
      case 'escalated':
        return `${what}: ${stage ?? ''} (${approved} of ${notice.requiredApprovals} approvals). ${link}`;
      case 'finished':
        return `${what}: ${OUTCOME[notice.status]}. ${link}`;
    }
  })();
  return { text: clip(escape(text), 3000), blocks };
}

/** Splits a message reference, `<channel>:<ts>`. */
export function parseMessageRef(ref: string): { channel: string; ts: string } | undefined {
  const at = ref.lastIndexOf(':');
  if (at <= 0 || at === ref.length - 1) return undefined;
  return { channel: ref.slice(0, at), ts: ref.slice(at + 1) };
}

/**
 * Tells approvers in a Slack channel: posts the request with Approve / Reject buttons, then updates
 * that one message at each later stage (decisions, reminders, escalation, the outcome). Throws what
 * Slack's client throws; `notifyApprovers` reports it without failing the run.
 */
export function createSlackNotifier(options: SlackNotifierOptions): ApprovalNotifier {
  const { client, channel, publicUrl } = options;
  return {
    channel: 'slack',
    async notify(notice) {
      const message = renderApprovalMessage(notice, publicUrl);
      const ref = notice.messageRef !== undefined ? parseMessageRef(notice.messageRef) : undefined;
      if (ref) {
        await client.chat.update({ channel: ref.channel, ts: ref.ts, text: message.text, blocks: message.blocks });
        return { messageRef: `${ref.channel}:${ref.ts}` };
      }
      // No message to update: nobody was told this run needed them, so there is no outcome to tell.
      if (notice.event === 'finished') return {};
      // Any other stage without a message (the first post failed) posts one now.
      const posted = await client.chat.postMessage({ channel, text: message.text, blocks: message.blocks, unfurl_links: false, unfurl_media: false });
      if (!posted.ts) throw new Error('Slack accepted the message but returned no ts');
      return { messageRef: `${posted.channel ?? channel}:${posted.ts}` };
    },
  };
}

/** The pino-like logger Slack's client can write to instead of the console. */
export interface PinoLike {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** Sends Slack client logs (`new WebClient(token, { logger })`) to pino rather than the console. */
export function slackLogger(log: PinoLike): SlackSdkLogger {
  let level: LogLevel = LogLevel.INFO;
  const text = (parts: unknown[]) => parts.map((p) => (typeof p === 'string' ? p : p instanceof Error ? p.message : JSON.stringify(p))).join(' ');
  return {
    debug: (...parts: unknown[]) => log.debug(`slack: ${text(parts)}`),
    info: (...parts: unknown[]) => log.info(`slack: ${text(parts)}`),
    warn: (...parts: unknown[]) => log.warn(`slack: ${text(parts)}`),
    error: (...parts: unknown[]) => log.error(`slack: ${text(parts)}`),
    setLevel: (next: LogLevel) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
