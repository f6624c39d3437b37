// `cordon rollback` and `cordon rerun`: an operator undoes what a run did, or runs its alert again.
import type { Command } from 'commander';
import type { RunStatus } from '../domain/index.js';
import type { CordonApi } from './api-client.js';

/** What the commands need from the program that hosts them. */
export interface OperationCommandContext {
  client: () => Promise<{ api: CordonApi; json: boolean }>;
  out: (json: boolean, value: unknown, human: () => void) => void;
  write: (line: string) => void;
  status: (status: RunStatus) => string;
}

const actionList = (value: string): string[] => {
  const ids = value
    .split(',')
    .map((id) => id.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new Error('--actions needs at least one action id');
  return ids;
};

/** Adds `rollback` and `rerun` to the program. */
export function registerOperationCommands(program: Command, ctx: OperationCommandContext): void {
  program
    .command('rollback')
    .description('roll back a completed run within its rollback window, whole or only --actions (role operator); policy, and approvers where it says, decide first')
    .argument('<runId>')
    .requiredOption('--reason <text>', 'why; kept in the ledger with every undo')
    .option('--actions <ids>', 'comma-separated action ids to undo (default: every action the run changed and has not rolled back)', actionList)
    .action(async (runId: string, options: { reason: string; actions?: string[] }) => {
      const { api, json } = await ctx.client();
      const answer = await api.rollBack(runId, { reason: options.reason, ...(options.actions ? { actions: options.actions } : {}) });
      ctx.out(json, answer, () => {
        ctx.write(`rollback ${answer.rollbackId} of ${runId} accepted: ${answer.actions.length} action(s) (${answer.actions.join(', ')}); status ${ctx.status(answer.status)}`);
        ctx.write(`follow it with: cordon runs watch ${runId}   or   cordon runs show ${runId}`);
      });
    });

  program
    .command('rerun')
    .description("start a new run from a run's alert, observing the target as it is now (role operator); changes already in effect are not repeated")
    .argument('<runId>')
    .option('--dry-run', 'observe, plan and decide only; change nothing')
    .action(async (runId: string, options: { dryRun?: boolean }) => {
      const { api, json } = await ctx.client();
      const answer = await api.rerun(runId, { mode: options.dryRun ? 'dry-run' : 'live' });
      ctx.out(json, answer, () => ctx.write(`started ${answer.runId} (${answer.mode}), a rerun of ${answer.rerunOf}; status ${ctx.status(answer.status)}`));
    });
}
