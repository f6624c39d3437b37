// `cordon runs watch <runId>`: follows a run through the API, printing each step as it starts and
// ends and each action as the journal records it, until the run ends or waits for approvers.
import { Option, type Command } from 'commander';
import { isTerminal, type FailureInfo, type RunStatus, type RunView } from '../domain/index.js';
import { ApiError, type CordonApi } from './api-client.js';
import { durationArg } from './option-parsers.js';

/** Something that happened to a watched run. Timestamps are the run's own where it has one. */
export type WatchEvent =
  | { event: 'watching'; runId: string; playbook: string; alert: string; status: string }
  | { event: 'step-started'; status: string; at: string }
  | { event: 'step-ended'; status: string; at: string; durationMs: number }
  | { event: 'action'; actionId: string; type: string | null; target: string | null; status: string; at: string; error: FailureInfo | null }
  | { event: 'finished'; status: string; at: string; durationMs: number; error: FailureInfo | null }
  | {
      event: 'awaiting-approval';
      at: string;
      required: number;
      approvals: number;
      approverRoles: string[];
      requestedBy: string;
      expiresAt: string | null;
      escalation: { afterMs: number; roles: string[] } | null;
    }
  | { event: 'unavailable'; message: string };

/** What has been reported of a run so far. */
export interface WatchState {
  steps: number;
  actions: Map<string, string>;
}

// A status this CLI does not know yet (a newer server) is taken for one the run moves on from.
const terminal = (status: string) => Object.hasOwn(isTerminal, status) && isTerminal[status as RunStatus];

/** Whether a status ends the watch: the run is over, or nothing moves until approvers decide. */
export function endsWatch(status: string): boolean {
  return status === 'awaiting_approval' || terminal(status);
}

const ms = (fromIso: string, toIso: string) => Math.max(0, Date.parse(toIso) - Date.parse(fromIso));

/** The events between what `state` has reported and `view`, oldest first; updates `state`. */
export function runEvents(state: WatchState, view: RunView): WatchEvent[] {
  const timed: WatchEvent[] = [];
  const { timeline } = view;
  for (let i = state.steps; i < timeline.length; i++) {
    const step = timeline[i]!;
    const previous = timeline[i - 1];
    if (previous) timed.push({ event: 'step-ended', status: previous.status, at: step.at, durationMs: ms(previous.at, step.at) });
    if (!terminal(step.status)) timed.push({ event: 'step-started', status: step.status, at: step.at });
  }
  state.steps = timeline.length;

  for (const entry of view.journal) {
    if (entry.status === 'pending' || state.actions.get(entry.actionId) === entry.status) continue;
    state.actions.set(entry.actionId, entry.status);
    const action = view.plan?.actions.find((a) => a.id === entry.actionId);
    const lastEvidence = entry.evidence.map((e) => e.at).sort().at(-1);
    timed.push({
      event: 'action',
      actionId: entry.actionId,
      type: action?.type ?? null,
      target: action ? action.target.display : null,
      status: entry.status,
      at: lastEvidence ?? view.updatedAt,
      error: entry.error ?? null,
    });
  }
  // Steps and actions interleave by time; a stable sort keeps a step's end before the next start.
  const at = (e: WatchEvent) => ('at' in e ? Date.parse(e.at) : 0);
  const events = timed.sort((a, b) => at(a) - at(b));

  if (endsWatch(view.status)) {
    const last = timeline.at(-1)?.at ?? view.updatedAt;
    if (view.status === 'awaiting_approval') {
      const decision = view.decision;
      events.push({
        event: 'awaiting-approval',
        at: last,
        required: decision?.requiredApprovals ?? 0,
        approvals: view.approvals.filter((a) => a.decision === 'approve').length,
        approverRoles: decision?.approverRoles ?? [],
        requestedBy: view.requestedBy,
        expiresAt: decision?.approvalExpiresAt ?? null,
        escalation: decision?.escalation ?? null,
      });
    } else {
      events.push({ event: 'finished', status: view.status, at: last, durationMs: ms(timeline[0]?.at ?? view.createdAt, last), error: view.error });
    }
  }
  return events;
}

/** The watch gave up: the run did not end or reach approval within the timeout. */
export class WatchTimeout extends Error {
  constructor(
    readonly runId: string,
    readonly status: string | undefined,
    timeoutMs: number,
  ) {
    super(
      status === undefined
        ? `run ${runId} could not be read within the timeout of ${timeoutMs / 1000} s; stopped watching`
        : `run ${runId} is still ${status} after the timeout of ${timeoutMs / 1000} s; stopped watching (the run goes on)`,
    );
    this.name = 'WatchTimeout';
  }
}

/** How a watch polls. */
export interface WatchOptions {
  timeoutMs: number;
  intervalMs: number;
  onEvent: (event: WatchEvent) => void;
  sleep?: (ms: number) => Promise<void>;
}

// The API answering 502/503 (no worker answered the query in time) or not at all is worth waiting out.
const transient = (error: unknown): error is ApiError => error instanceof ApiError && [0, 502, 503].includes(error.status);

/**
 * Polls the run until it ends or awaits approval, reporting events; resolves to its last view.
 * Throws the ApiError of a run that does not exist (404) or may not be read, and WatchTimeout.
 */
export async function watchRun(api: Pick<CordonApi, 'getRun'>, runId: string, options: WatchOptions): Promise<RunView> {
  const sleep = options.sleep ?? ((delay: number) => new Promise<void>((resolve) => setTimeout(resolve, delay)));
  const deadline = Date.now() + options.timeoutMs;
  const state: WatchState = { steps: 0, actions: new Map() };
  let last: RunView | undefined;
  let lastProblem: string | undefined;
  for (;;) {
    try {
      const view = await api.getRun(runId);
      if (!last) {
        const { alert } = view;
        const subject = alert.subject.userName ?? alert.subject.id ?? alert.credential?.id ?? '';
        options.onEvent({ event: 'watching', runId, playbook: view.playbook, alert: `${alert.kind} for ${subject} from ${alert.source}, severity ${alert.severity}`, status: view.status });
      }
      last = view;
      lastProblem = undefined;
      for (const event of runEvents(state, last)) options.onEvent(event);
      if (endsWatch(last.status)) return last;
    } catch (error) {
      if (!transient(error)) throw error;
      if (error.message !== lastProblem) options.onEvent({ event: 'unavailable', message: `${error.type}: ${error.message}` });
      lastProblem = error.message;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new WatchTimeout(runId, last?.status, options.timeoutMs);
    await sleep(Math.min(options.intervalMs, left));
  }
}

/** How the watch command prints. */
export interface WatchCommandContext {
  client: () => Promise<{ api: CordonApi; json: boolean }>;
  write: (line: string) => void;
  /** A status as the rest of the CLI shows it (coloured when the output takes colours). */
  status: (status: string) => string;
  /** The time between two ISO timestamps, as the rest of the CLI shows it. */
  duration: (fromIso: string, toIso: string) => string;
}

const clock = (iso: string) => (iso.length >= 23 ? `${iso.slice(11, 23)}Z` : iso);

/** One event as a line for people. */
export function describeEvent(event: WatchEvent, context: Pick<WatchCommandContext, 'status' | 'duration'>): string {
  const span = (durationMs: number) => context.duration(new Date(0).toISOString(), new Date(durationMs).toISOString());
  // Padded after colouring, so that colour codes do not count towards the column's width.
  const status = (name: string) => `${context.status(name)}${' '.repeat(Math.max(1, 22 - name.length))}`;
  switch (event.event) {
    case 'watching':
      return `${event.runId}  ${context.status(event.status)}  playbook ${event.playbook}: ${event.alert}`;
    case 'step-started':
      return `  ${clock(event.at)}  ${status(event.status)}started`;
    case 'step-ended':
      return `  ${clock(event.at)}  ${status(event.status)}ended after ${span(event.durationMs)}`;
    case 'action': {
      const what = [event.type, event.target ? `on ${event.target}` : null].filter(Boolean).join(' ');
      return `  ${clock(event.at)}  action ${event.actionId}${what ? ` (${what})` : ''}: ${event.status}${event.error ? ` — ${event.error.type}: ${event.error.message}` : ''}`;
    }
    case 'finished':
      return [
        `  ${clock(event.at)}  ${status(event.status)}run over after ${span(event.durationMs)} in all`,
        ...(event.error ? [`  error: ${event.error.type}: ${event.error.message}`] : []),
      ].join('\n');
    case 'awaiting-approval': {
      const roles = event.approverRoles.length > 0 ? event.approverRoles.join(' or ') : '(none named)';
      const lines = [
        `  awaiting approval: ${event.approvals} of ${event.required} approval(s) given; approvers need the role ${roles}, and ${event.requestedBy}, who requested the run, may not approve it`,
        `  decide by ${event.expiresAt ?? '(no deadline given)'}, or the run expires with nothing changed (cordon approve|reject <runId>)`,
      ];
      if (event.escalation) lines.push(`  after ${span(event.escalation.afterMs)} the role ${event.escalation.roles.join(' or ')} may decide too`);
      return lines.join('\n');
    }
    case 'unavailable':
      return `  (the API cannot show the run now: ${event.message}; trying again)`;
  }
}

/** The default bound of a watch. */
export const DEFAULT_WATCH_TIMEOUT_MS = 10 * 60_000;

/** Adds `watch <runId>` to the `runs` command. */
export function registerWatchCommand(runs: Command, context: WatchCommandContext): void {
  runs
    .command('watch')
    .description('follow a run live: each step as it starts and ends, with durations, and each action as it is applied and verified, until the run ends or needs approval')
    .argument('<runId>')
    .addOption(new Option('--timeout <duration>', 'stop watching after this long (exit code 1), e.g. 90s, 10m, 1h').default(DEFAULT_WATCH_TIMEOUT_MS, '10m').argParser(durationArg('--timeout', 1)))
    .addOption(new Option('--interval <duration>', 'how often to ask the API').default(1000, '1s').argParser(durationArg('--interval', 100)))
    .action(async (runId: string, options: { timeout: number; interval: number }) => {
      const { api, json } = await context.client();
      await watchRun(api, runId, {
        timeoutMs: options.timeout,
        intervalMs: options.interval,
        onEvent: (event) => context.write(json ? JSON.stringify(event) : describeEvent(event, context)),
      });
    });
}
