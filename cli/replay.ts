// `cordon replay`: fetches runs' Temporal histories through the API and replays them, in this
// process, against the workflow code of this checkout (or a prebuilt bundle): the check before
// deploying new workflow code. Temporal's worker is loaded only when the command runs.
import { fileURLToPath } from 'node:url';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import type { Command } from 'commander';
import type picocolors from 'picocolors';
import type { CordonApi, HistoryLine } from './api-client.js';
import type { CliIo } from './main.js';

type Colors = ReturnType<typeof picocolors.createColors>;

/** The workflow code replayed against unless `--bundle` names another: this checkout's. */
export const WORKFLOWS_ENTRY = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** What `cordon replay` needs from the program it is added to. */
export interface ReplayCommandContext {
  io: CliIo;
  pc: Colors;
  /** Receives the exit code the command asks for. */
  result: { code: number };
  client: () => Promise<{ api: CordonApi; json: boolean }>;
  /** The exit code when a run does not replay. */
  failedCode: number;
}

/** How one run replayed. */
export interface ReplayReport {
  runId: string;
  ok: boolean;
  events: number;
  /**
   * Why it did not: `nondeterminism` (the code makes other calls than the history records), another
   * replay failure, or a history that could not be read. `eventId` is the WorkflowTaskCompleted event
   * of the first workflow task whose commands the code no longer makes, when it can be found.
   */
  failure?: { kind: 'nondeterminism' | 'replay' | 'history'; eventId: number | null; message: string };
}

/** Where the workflow code comes from: a bundle file, or this checkout's workflows/ bundled now. */
export interface ReplayCode {
  bundlePath?: string | undefined;
}

const quiet = () => undefined;

/** The failure message core reports inside the SDK's wrapping, unescaped; the whole message otherwise. */
function coreMessage(error: Error): string {
  const inner = /message: "((?:[^"\\]|\\.)*)"/.exec(error.message)?.[1];
  return inner ? inner.replace(/\\(.)/g, '$1') : error.message;
}

/**
 * Replays each history against one bundle of workflow code and reports each run as it finishes. A
 * run's history that does not replay is replayed again in ever longer prefixes (each ending where a
 * workflow task starts) to find the first workflow task that diverges.
 */
export async function replayHistories(source: AsyncIterable<HistoryLine> | Iterable<HistoryLine>, code: ReplayCode, onReport: (report: ReplayReport) => void, log: (line: string) => void): Promise<ReplayReport[]> {
  const [{ Worker, ReplayError, bundleWorkflowCode }, { DeterminismViolationError }, { historyFromJson }, { installTemporalRuntime }, { createLogger }] = await Promise.all([
    import('@temporalio/worker'),
    import('@temporalio/workflow'),
    import('../workers/history-json.js'),
    import('../workers/runtime.js'),
    import('../config/logger.js'),
  ]);
  // The command reports every failure itself; the replay worker's own warnings about them would repeat it.
  installTemporalRuntime(createLogger({ log: { level: 'error' } }, 'cordon-replay', { write: (line: string) => log(line.trimEnd()) }));
  const workflowBundle = code.bundlePath
    ? { codePath: code.bundlePath }
    : { code: (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_ENTRY, logger: { trace: quiet, debug: quiet, info: quiet, warn: log, error: log, log: quiet } })).code };
  const options = { workflowBundle, replayName: 'cordon-replay' };

  const replays = async (history: History, runId: string): Promise<boolean> =>
    Worker.runReplayHistory(options, history, runId).then(
      () => true,
      (error: unknown) => {
        if (error instanceof DeterminismViolationError || error instanceof ReplayError) return false;
        throw error;
      },
    );

  /** The WorkflowTaskCompleted event id of the first workflow task the code diverges from. */
  const divergence = async (history: History, runId: string): Promise<number | null> => {
    const events = history.events ?? [];
    const started = events.flatMap((e, i) => (e.workflowTaskStartedEventAttributes ? [i] : []));
    // Replaying up to (and with) the k-th task's start checks every task before it. Find the least k that fails.
    let ok = 0;
    let failing = started.length;
    while (failing - ok > 1) {
      const k = Math.floor((ok + failing) / 2);
      if (await replays({ events: events.slice(0, started[k]! + 1) }, runId)) ok = k;
      else failing = k;
    }
    if (failing === 0) return null;
    const completed = events.slice(started[failing - 1]!).find((e) => e.workflowTaskCompletedEventAttributes);
    return completed?.eventId != null ? Number(String(completed.eventId)) : null;
  };

  const reports: ReplayReport[] = [];
  const report = (r: ReplayReport) => {
    reports.push(r);
    onReport(r);
  };
  const pending = new Map<string, History>();
  const histories = async function* () {
    for await (const line of source) {
      if ('error' in line) {
        report({ runId: line.runId, ok: false, events: 0, failure: { kind: 'history', eventId: null, message: `${line.error.type}: ${line.error.message}` } });
        continue;
      }
      let history: History;
      try {
        history = historyFromJson(line.history);
      } catch (error) {
        report({ runId: line.runId, ok: false, events: 0, failure: { kind: 'history', eventId: null, message: (error as Error).message } });
        continue;
      }
      pending.set(line.runId, history);
      yield { workflowId: line.runId, history };
    }
  };
  const failed: { runId: string; history: History; error: Error }[] = [];
  for await (const result of Worker.runReplayHistories(options, histories())) {
    const history = pending.get(result.workflowId)!;
    pending.delete(result.workflowId);
    const events = history.events?.length ?? 0;
    if (!result.error) report({ runId: result.workflowId, ok: true, events });
    else failed.push({ runId: result.workflowId, history, error: result.error });
  }
  // Diverging runs are examined after the pass: each prefix replay needs a replay worker of its own.
  for (const { runId, history, error } of failed) {
    const kind = error instanceof DeterminismViolationError ? 'nondeterminism' : 'replay';
    const fromMessage = /HistoryEvent\(id: (\d+)/.exec(error.message)?.[1];
    const eventId = fromMessage ? Number(fromMessage) : await divergence(history, runId);
    report({ runId, ok: false, events: history.events?.length ?? 0, failure: { kind, eventId, message: coreMessage(error) } });
  }
  return reports;
}

/** Adds `cordon replay [runId] [--all --since] [--bundle]` to the program. */
export function registerReplayCommand(program: Command, ctx: ReplayCommandContext): void {
  const { io, pc } = ctx;
  program
    .command('replay')
    .description("replay runs' Temporal histories against this checkout's workflow code (the check before deploying it); exits 11 when one does not replay")
    .argument('[runId]', 'the run to replay')
    .option('--all', 'replay every run of this deployment started since --since, newest first')
    .option('--since <when>', 'with --all: a duration back from now (30m, 24h, 7d, 2w) or an ISO date or date-time', '7d')
    .option('--limit <n>', 'with --all: at most this many runs (the API allows up to 500)', (v) => Number.parseInt(v, 10), 100)
    .option('--bundle <file>', 'replay against this prebuilt workflow bundle instead of bundling workflows/ from this checkout')
    .action(async function (this: Command, runId: string | undefined, options: { all?: boolean; since: string; limit: number; bundle?: string }) {
      if (Boolean(runId) === Boolean(options.all)) this.error('give a run id, or --all (with --since) for every recent run', { exitCode: 2 });
      if (!Number.isInteger(options.limit) || options.limit < 1) this.error('--limit must be a whole number of runs, 1 or more', { exitCode: 2 });
      const { api, json } = await ctx.client();
      let source: AsyncIterable<HistoryLine> | Iterable<HistoryLine>;
      let truncated = false;
      if (runId) {
        source = [{ runId, history: await api.runHistory(runId) }];
      } else {
        const answer = await api.histories({ since: options.since, limit: options.limit });
        source = answer.lines;
        truncated = answer.truncated;
      }
      const codeName = options.bundle ?? 'workflows/ (this checkout)';
      if (!json) io.write(`replaying against ${codeName}`);
      const reports = await replayHistories(
        source,
        { bundlePath: options.bundle },
        (r) => {
          if (json) return;
          if (r.ok) return io.write(`${pc.green('ok')}              ${r.runId}  ${r.events} events`);
          const where = r.failure?.eventId != null ? ` at event ${r.failure.eventId}` : '';
          io.write(`${pc.red(r.failure?.kind === 'nondeterminism' ? 'NONDETERMINISM' : r.failure?.kind === 'history' ? 'NO HISTORY    ' : 'REPLAY FAILED ')}  ${r.runId}${where}: ${r.failure?.message ?? ''}`);
        },
        io.writeError,
      );
      const failed = reports.filter((r) => !r.ok).length;
      if (json) {
        io.write(JSON.stringify({ code: codeName, runs: reports, replayed: reports.length, failed, truncated }, null, 2));
      } else {
        if (options.all && reports.length === 0) io.write(`no runs started since ${options.since}`);
        if (truncated) io.write(pc.yellow(`only the newest ${options.limit} runs started since ${options.since} were replayed: more started (raise --limit, up to 500, or shorten --since)`));
        io.write(`${reports.length} replayed, ${failed} failed`);
      }
      if (failed > 0) ctx.result.code = ctx.failedCode;
    });
}
