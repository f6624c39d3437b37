// The operator CLI, `cordon`. It talks only to the HTTP API, so authorization and audit have one path.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Table from 'cli-table3';
import { Command, CommanderError, Option } from 'commander';
import picocolors from 'picocolors';

type Colors = ReturnType<typeof picocolors.createColors>;
import { loadCliEnv } from '../config/cli-env.js';
import { describeActionChange, scopeKey, type KillSwitchScope, type RunView } from '../domain/index.js';
import { ApiError, CordonApi } from './api-client.js';
import { registerAuditCommands } from './audit.js';
import { countArg, instantArg } from './option-parsers.js';
import { registerOperationCommands } from './operate.js';
import { registerReplayCommand } from './replay.js';
import { registerWatchCommand } from './watch.js';

/** Exit codes, for scripts. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  auth: 3,
  notFound: 4,
  conflict: 5,
  invalid: 6,
  unavailable: 7,
  auditFailed: 10,
  replayFailed: 11,
} as const;

function exitCodeFor(error: ApiError): number {
  if (error.status === 0 || error.status === 503 || error.status === 502) return EXIT.unavailable;
  if (error.status === 401 || error.status === 403) return EXIT.auth;
  if (error.status === 404) return EXIT.notFound;
  if (error.status === 409) return EXIT.conflict;
  if (error.status === 400 || error.status === 413 || error.status === 415 || error.status === 422) return EXIT.invalid;
  return EXIT.error;
}

interface GlobalOptions {
  api?: string;
  token?: string;
  as?: string;
  json?: boolean;
}

class UsageError extends Error {}

/** A table, with coloured borders and headings only when `pc` colours. */
function newTable(pc: Colors, head: string[]): Table.Table {
  return new Table({ head, style: pc.isColorSupported ? { head: ['cyan'], border: ['grey'] } : { head: [], border: [] } });
}

function duration(fromIso: string, toIso: string): string {
  const ms = Date.parse(toIso) - Date.parse(fromIso);
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

async function resolveToken(options: GlobalOptions, dataDir: string, envToken: string | undefined): Promise<string | undefined> {
  if (options.token) return options.token;
  if (options.as) {
    const file = join(dataDir, 'dev-credentials.json');
    let credentials: Record<string, { token?: string }>;
    try {
      credentials = JSON.parse(await readFile(file, 'utf8')) as Record<string, { token?: string }>;
    } catch (error) {
      throw new UsageError(`--as ${options.as} reads the embedded default's ${file}, which cannot be read: ${(error as Error).message}`);
    }
    const token = Object.hasOwn(credentials, options.as) ? credentials[options.as]?.token : undefined;
    if (!token) throw new UsageError(`no identity "${options.as}" in ${file} (known: ${Object.keys(credentials).join(', ')})`);
    return token;
  }
  return envToken;
}

const statusColour = (pc: Colors, status: string | null | undefined): string => {
  if (!status) return pc.dim('unknown');
  if (status === 'completed') return pc.green(status);
  if (status === 'awaiting_approval') return pc.yellow(status);
  if (['failed', 'needs_human', 'denied', 'rejected', 'expired', 'compensated', 'cancelled'].includes(status)) return pc.red(status);
  return pc.cyan(status);
};

function printRun(pc: Colors, run: RunView, write: (line: string) => void): void {
  write(`${pc.bold(run.runId)}  ${statusColour(pc, run.status)}  playbook ${run.playbook}`);
  write(`  alert      ${run.alert.source}/${run.alert.id}  ${run.alert.kind}  severity ${run.alert.severity}  subject ${run.alert.subject.userName ?? run.alert.subject.id} (${run.alert.subject.system})`);
  write(`  requested  by ${run.requestedBy} at ${run.createdAt}`);
  if (run.error) write(`  error      ${pc.red(run.error.type)}: ${run.error.message}`);
  if (run.plan) {
    write(`\n${pc.bold('Plan')}  digest ${run.plan.digest}`);
    const table = newTable(pc, ['action', 'type', 'target', 'change', 'policy']);
    for (const action of run.plan.actions) {
      const change = describeActionChange(action);
      table.push([action.id, action.type, `${action.target.display} (${action.target.id})`, change, action.decision ?? '']);
    }
    write(table.toString());
  }
  if (run.decision) {
    write(`\n${pc.bold('Decision')}  ${run.decision.outcome}  by ${run.decision.policies.join(', ') || '(no policy)'}`);
    if (run.decision.outcome === 'approve') {
      write(`  needs ${run.decision.requiredApprovals} approval(s) from role ${run.decision.approverRoles.join(' or ')}, by ${run.decision.approvalExpiresAt ?? '?'}`);
    }
    for (const reason of run.decision.reasons) write(`  ${reason}`);
    write(`  policy set ${run.decision.policySetHash.slice(0, 16)}…`);
  }
  if (run.approvals.length > 0) {
    write(`\n${pc.bold('Approvals')}`);
    for (const a of run.approvals) write(`  ${a.decision === 'approve' ? pc.green('approved') : pc.red('rejected')} by ${a.approver} via ${a.channel} at ${a.at}${a.comment ? `: ${a.comment}` : ''}`);
  }
  if (run.rerunOf) write(`  rerun of   ${run.rerunOf}`);
  if (run.reruns.length > 0) write(`  reruns     ${run.reruns.join(', ')}`);
  if (run.rollbackUntil || run.rollbacks.length > 0) {
    write(`\n${pc.bold('Rollbacks')}${run.rollbackUntil ? `  possible until ${run.rollbackUntil}` : ''}`);
    for (const rb of run.rollbacks) {
      write(`  ${rb.id}  ${rb.status}  by ${rb.requestedBy}: ${rb.reason}`);
      if (rb.decision) write(`    decision ${rb.decision.outcome} by ${rb.decision.policies.join(', ') || '(no policy)'}${rb.approvals.length > 0 ? `; ${rb.approvals.map((a) => `${a.decision} by ${a.approver}`).join(', ')}` : ''}`);
      for (const r of rb.results) write(`    ${r.actionId}  ${r.outcome}${r.detail ? `: ${r.detail}` : ''}`);
      if (rb.error) write(`    ${pc.red(rb.error.type)}: ${rb.error.message}`);
    }
  }
  if (run.openApproval?.subject === 'rollback') {
    const open = run.openApproval;
    write(`  awaiting ${open.requiredApprovals} approval(s) of the rollback (digest ${open.digest}) from role ${open.approverRoles.join(' or ')}, by ${open.expiresAt ?? '?'}`);
  }
  if (run.journal.length > 0) {
    write(`\n${pc.bold('Journal')}`);
    const table = newTable(pc, ['action', 'status', 'evidence']);
    for (const entry of run.journal) {
      const evidence = entry.evidence.map((e) => `${e.kind}: ${JSON.stringify(e.observed)}`).join('\n');
      table.push([entry.actionId, entry.status + (entry.error ? `\n${entry.error.type}` : ''), evidence]);
    }
    write(table.toString());
  }
  write(`\n${pc.bold('Timeline')}`);
  run.timeline.forEach((step, i) => {
    const next = run.timeline[i + 1];
    write(`  ${step.at}  ${step.status.padEnd(18)}${next ? duration(step.at, next.at) : ''}`);
  });
}

/** Where the CLI writes, what environment it reads, and the exit code a command asks for. */
export interface CliIo {
  write: (line: string) => void;
  writeError: (line: string) => void;
  env?: Record<string, string | undefined>;
  /** Whether output lines may carry ANSI colours; off unless the caller writes to a terminal that takes them. */
  colour?: boolean;
}

/** Builds the `cordon` program; `write` and `writeError` receive output lines, `result.code` the exit code a command sets. */
export function buildProgram(io: CliIo, result: { code: number } = { code: EXIT.ok }): Command {
  const cliEnv = loadCliEnv(io.env ?? process.env);
  const pc = picocolors.createColors(io.colour ?? false);
  const program = new Command('cordon')
    .description('Operate Cordon: send alerts, inspect runs, approve or reject, verify the audit ledger.')
    .option('--api <url>', 'Cordon API base URL (env CORDON_API)', cliEnv.api)
    .option('--token <token>', 'bearer token (env CORDON_TOKEN)')
    .option('--as <name>', "use a dev identity's token from the embedded default's dev-credentials.json")
    .option('--json', 'print JSON instead of tables')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.write(s.trimEnd()), writeErr: (s) => io.writeError(s.trimEnd()) });

  const client = async (): Promise<{ api: CordonApi; json: boolean }> => {
    const options = program.opts<GlobalOptions>();
    const token = await resolveToken(options, cliEnv.dataDir, cliEnv.token);
    return { api: new CordonApi(options.api ?? cliEnv.api, token), json: Boolean(options.json) };
  };
  const out = (json: boolean, value: unknown, human: () => void) => (json ? io.write(JSON.stringify(value, null, 2)) : human());

  const alert = program.command('alert').description('alerts');
  alert
    .command('send')
    .description('send an alert (a JSON file, or - for standard input); prints the run id')
    .argument('<file>', 'alert JSON file, or -')
    .option('--ocsf', 'the file is an OCSF 1.x Detection Finding (2004) or Account Change (3001) event')
    .action(async (file: string, options: { ocsf?: boolean }) => {
      const body = await readAlertFile(file);
      const { api, json } = await client();
      const answer = await api.sendAlert(body, { ocsf: Boolean(options.ocsf) });
      out(json, answer, () => io.write(`${answer.duplicate ? 'duplicate alert: attached to' : 'started'} ${answer.runId} (${answer.status})`));
    });

  const runs = program.command('runs').description('remediation runs');
  runs
    .command('list')
    .description('list runs, newest first')
    .addOption(new Option('--status <status>', 'only runs with this status'))
    .option('--playbook <name>', 'only runs of this playbook')
    .option('--target <id or userName>', 'only runs acting on this account')
    .option('--source <source>', "only runs of alerts from this source (the alert's source)")
    .option('--severity <severity>', 'only runs of alerts of this severity (low, medium, high, critical)')
    .option('--since <time>', 'only runs started at or after this time: an ISO timestamp, or a duration ago (30m, 7d)', instantArg())
    .option('--until <time>', 'only runs started before this time: an ISO timestamp, or a duration ago', instantArg())
    .option('--page-size <n>', 'at most this many runs per page (default 50)', countArg('--page-size'))
    .option('--page-token <token>', 'the next page, from the token the previous page printed')
    .addOption(new Option('--limit <n>', 'the older name of --page-size').argParser(countArg('--limit')).hideHelp())
    .action(async (options: { status?: string; playbook?: string; target?: string; source?: string; severity?: string; since?: string; until?: string; pageSize?: number; pageToken?: string; limit?: number }) => {
      const { limit, ...filters } = options;
      const { api, json } = await client();
      const answer = await api.listRuns({ ...filters, pageSize: filters.pageSize ?? limit });
      out(json, answer, () => {
        if (answer.runs.length === 0) io.write(options.pageToken ? 'no more runs' : 'no runs');
        else {
          const table = newTable(pc, ['run', 'status', 'playbook', 'targets', 'source', 'severity', 'started']);
          for (const run of answer.runs) table.push([run.runId, statusColour(pc, run.status), run.playbook ?? '', run.targets.join(', '), run.alertSource ?? '', run.severity ?? '', run.startedAt]);
          io.write(table.toString());
        }
        if (answer.nextPageToken) io.write(`more runs: add --page-token ${answer.nextPageToken}`);
      });
    });
  registerWatchCommand(runs, { client, write: io.write, status: (status) => statusColour(pc, status), duration });
  runs
    .command('show')
    .description('show a run: plan, decision, approvals, journal with evidence, timeline')
    .argument('<runId>')
    .action(async (runId: string) => {
      const { api, json } = await client();
      const run = await api.getRun(runId);
      out(json, run, () => printRun(pc, run, io.write));
    });

  program
    .command('inbox')
    .description('runs awaiting my decision (eligible by role now, not requested by me, not decided by me)')
    .action(async () => {
      const { api, json } = await client();
      const answer = await api.inbox();
      out(json, answer, () => {
        if (answer.runs.length === 0) return io.write('nothing awaits your decision');
        const table = newTable(pc, ['run', 'alert', 'subject', 'requested by', 'approvals', 'stage', 'expires']);
        for (const r of answer.runs) table.push([r.runId, `${r.alert.kind} (${r.alert.severity})`, r.alert.subject, r.requestedBy, `${r.approvals} of ${r.required}`, r.stage ?? '', r.expiresAt ?? '']);
        io.write(table.toString());
      });
    });

  registerOperationCommands(program, { client, out, write: io.write, status: (status) => statusColour(pc, status) });

  for (const verdict of ['approve', 'reject'] as const) {
    program
      .command(verdict)
      .description(`${verdict} a run (or a rollback) awaiting approval, for the digest it shows now unless --digest is given`)
      .argument('<runId>')
      .option('--comment <text>', 'a comment kept with the decision')
      .option('--digest <planDigest>', 'the plan digest you reviewed; refused if the plan has changed since')
      .action(async (runId: string, options: { comment?: string; digest?: string }) => {
        const { api, json } = await client();
        // The digest of what is open for decision now: the plan, or a rollback of it.
        const digest = options.digest ?? (await api.getRun(runId)).openApproval?.digest;
        if (!digest) throw new ApiError(409, 'RunNotAwaitingApproval', `run ${runId} has nothing awaiting approval to ${verdict}`);
        const answer = await api.decide(runId, { decision: verdict, planDigest: digest, channel: 'cli', ...(options.comment ? { comment: options.comment } : {}) });
        out(json, answer, () =>
          io.write(`${verdict === 'approve' ? 'approved' : 'rejected'} ${runId}: ${answer.approvals} of ${answer.required} approval(s); status ${statusColour(pc, answer.status)}`),
        );
      });
  }

  const killSwitch = program.command('kill-switch').description('stop (or let resume) every change: everywhere, for one playbook, or for one connector');
  for (const [verb, engaged] of [
    ['on', true],
    ['off', false],
  ] as const) {
    killSwitch
      .command(verb)
      .description(engaged ? 'engage: runs pause before their next change (role admin)' : 'release: paused runs resume by themselves (role admin)')
      .option('--playbook <name>', 'only this playbook')
      .option('--connector <name>', 'only calls to this connector')
      .requiredOption('--reason <text>', 'why; kept in the ledger')
      .action(async (options: { playbook?: string; connector?: string; reason: string }) => {
        if (options.playbook && options.connector) throw new UsageError('give --playbook or --connector, not both');
        const scope: KillSwitchScope = options.playbook
          ? { kind: 'playbook', name: options.playbook }
          : options.connector
            ? { kind: 'connector', name: options.connector }
            : { kind: 'global' };
        const { api, json } = await client();
        const state = await api.flipKillSwitch({ scope, engaged, reason: options.reason });
        out(json, state, () => io.write(`kill switch ${scopeKey(scope)} ${state.engaged ? pc.red('ENGAGED') : pc.green('released')} by ${state.actor}: ${state.reason}`));
      });
  }
  killSwitch
    .command('status')
    .description('every kill switch and its state')
    .action(async () => {
      const { api, json } = await client();
      const answer = await api.killSwitches();
      out(json, answer, () => {
        if (answer.switches.length === 0) return io.write('no kill switch has ever been flipped');
        const table = newTable(pc, ['scope', 'state', 'by', 'at', 'reason']);
        for (const s of answer.switches) table.push([scopeKey(s.scope), s.engaged ? pc.red('ENGAGED') : 'released', s.actor, s.at, s.reason]);
        io.write(table.toString());
      });
    });

  const policy = program.command('policy').description('policies and guardrails');
  policy
    .command('test')
    .description('simulate an alert: observe and plan against the live target, evaluate policy and guardrails; starts no run')
    .argument('<file>', 'alert JSON file, or -')
    .action(async (file: string) => {
      const body = await readAlertFile(file);
      const { api, json } = await client();
      const answer = await api.evaluatePolicy(body);
      out(json, answer, () => {
        io.write(`${pc.bold(answer.playbook)} for ${answer.target.userName} (${answer.target.id}): would run ${pc.bold(answer.wouldRun)}`);
        const table = newTable(pc, ['action', 'type', 'change', 'outcome', 'policies']);
        for (const a of answer.actions) table.push([a.id, a.type, a.change, a.outcome, a.policies.join(', ')]);
        io.write(table.toString());
        for (const reason of answer.decision.reasons) io.write(`  ${reason}`);
        const g = answer.decision.guardrails;
        io.write(`  guardrails: mode ${g.mode}, ${g.targets} target(s)${g.maxTargetsPerRun ? ` (max ${g.maxTargetsPerRun.count})` : ''}, ${g.killSwitches.length} kill switch(es) engaged`);
        for (const b of g.budgets) io.write(`  budget ${b.name}: ${b.used} of ${b.limit} used`);
      });
    });
  policy
    .command('check')
    .description('validate the policy files and the guardrails file (for a policy repository\'s CI); needs no running Cordon')
    .option('--dir <dir>', 'the policy directory', 'policies')
    .option('--guardrails <file>', 'the guardrails file (default: <dir>/guardrails.yaml)')
    .action(async (options: { dir: string; guardrails?: string }) => {
      const { checkPolicyFiles } = await import('./policy-check.js');
      const report = await checkPolicyFiles(options.dir, options.guardrails);
      const json = Boolean(program.opts<GlobalOptions>().json);
      out(json, report, () => {
        if (report.ok) io.write(`ok: ${report.policies.length} policies (set ${report.policySetHash.slice(0, 16)}…), guardrails ${report.guardrailsFile ?? '(none)'}`);
        else io.writeError(`cordon: ${report.error}`);
      });
      if (!report.ok) result.code = EXIT.invalid;
    });

  registerAuditCommands(program, { io, result, exit: EXIT, client, json: () => Boolean(program.opts<GlobalOptions>().json), usageError: (message) => new UsageError(message) });
  registerReplayCommand(program, { io, pc, result, client, failedCode: EXIT.replayFailed });

  return program;
}

async function readAlertFile(file: string): Promise<string> {
  if (file === '-') return readStdin();
  return readFile(file, 'utf8').catch((error: Error) => {
    throw new UsageError(`cannot read ${file}: ${error.message}`);
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const result = { code: EXIT.ok as number };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return result.code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof UsageError) {
      io.writeError(`cordon: ${error.message}`);
      return EXIT.usage;
    }
    if (error instanceof ApiError) {
      const json = program.opts<GlobalOptions>().json;
      if (json) io.write(JSON.stringify({ error: { status: error.status, type: error.type, message: error.message } }, null, 2));
      else io.writeError(`cordon: ${error.type}: ${error.message}`);
      return exitCodeFor(error);
    }
    io.writeError(`cordon: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.error;
  }
}
