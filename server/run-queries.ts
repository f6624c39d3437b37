// What the API and the web UI read from Temporal: run lists from visibility (search attributes, no
// worker needed), run views from the workflow's `getRun` query.
import { WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { z } from 'zod';
import { CordonError, RunStatus, type RunSummary, type RunView } from '../domain/index.js';
import { playbooks } from '../playbooks/registry.js';
import { getRunQuery } from '../workflows/messages.js';
import { CordonAlertSource, CordonPlaybook, CordonSeverity, CordonStatus, CordonTargets } from '../workflows/search-attributes.js';
import type { ServerContext } from './app.js';
import { isTimeout } from './approvals.js';

/**
 * A target filter: an account id or userName. Only characters that cannot end or escape a quoted
 * string in Temporal's visibility query are allowed.
 */
export const TargetFilter = z.string().regex(/^[A-Za-z0-9._@:-]{1,256}$/, 'must be an account id or userName (letters, digits and . _ @ : -, at most 256)');

/** The runs list's filters, from the query string; empty values mean "any". */
export const RunFilters = z.strictObject({
  status: z.preprocess((v) => (v === '' ? undefined : v), RunStatus.optional()),
  playbook: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .refine((name) => Object.hasOwn(playbooks, name), { message: `must be one of: ${Object.keys(playbooks).join(', ')}` })
      .optional(),
  ),
  target: z.preprocess((v) => (typeof v === 'string' ? v.trim() || undefined : v), TargetFilter.optional()),
});
export type RunFilters = z.infer<typeof RunFilters>;

// Task queue names come from configuration; only put plain ones into a query.
const PLAIN = /^[A-Za-z0-9._:-]{1,200}$/;

/**
 * The visibility query for Cordon's runs matching `filters`. Every value is from a closed set or
 * matched `TargetFilter`, so none can break out of its quotes. Runs are scoped to this deployment's
 * task queue: a run whose worker is elsewhere cannot answer this server's queries anyway.
 */
export function visibilityQuery(taskQueue: string, filters: RunFilters = {}): string {
  const clauses = [`WorkflowType = 'remediationWorkflow'`];
  if (PLAIN.test(taskQueue)) clauses.push(`TaskQueue = '${taskQueue}'`);
  if (filters.status) clauses.push(`${CordonStatus.name} = '${RunStatus.parse(filters.status)}'`);
  if (filters.playbook) clauses.push(`${CordonPlaybook.name} = '${z.string().regex(PLAIN).parse(filters.playbook)}'`);
  if (filters.target) clauses.push(`${CordonTargets.name} = '${TargetFilter.parse(filters.target)}'`);
  return clauses.join(' AND ');
}

/** Lists runs, newest first, from Temporal visibility. */
export async function listRuns(deps: Pick<ServerContext, 'temporal' | 'taskQueue'>, filters: RunFilters, limit: number): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  for await (const execution of deps.temporal.workflow.list({ query: visibilityQuery(deps.taskQueue, filters), pageSize: Math.min(limit, 100) })) {
    const sa = execution.typedSearchAttributes;
    const status = RunStatus.safeParse(sa.get(CordonStatus));
    runs.push({
      runId: execution.workflowId,
      playbook: sa.get(CordonPlaybook) ?? null,
      status: status.success ? status.data : null,
      targets: sa.get(CordonTargets) ?? [],
      alertSource: sa.get(CordonAlertSource) ?? null,
      severity: sa.get(CordonSeverity) ?? null,
      startedAt: execution.startTime.toISOString(),
      closedAt: execution.closeTime?.toISOString() ?? null,
    });
    if (runs.length >= limit) break;
  }
  return runs;
}

/** The run status recorded in a workflow's search attributes. */
export function runStatusFromVisibility(description: Pick<WorkflowExecutionDescription, 'typedSearchAttributes'>): RunStatus {
  const parsed = RunStatus.safeParse(description.typedSearchAttributes.get(CordonStatus));
  return parsed.success ? parsed.data : 'observing';
}

/** A run's view from its workflow; undefined when there is no such run. Throws ServiceUnavailable when no worker answers in time. */
export async function getRun(deps: Pick<ServerContext, 'temporal' | 'workerTimeoutMs'>, runId: string): Promise<RunView | undefined> {
  const timeoutMs = deps.workerTimeoutMs ?? 10_000;
  try {
    return await deps.temporal.withAbortSignal(AbortSignal.timeout(timeoutMs), () => deps.temporal.workflow.getHandle(runId).query(getRunQuery));
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined;
    if (isTimeout(error)) throw new CordonError('ServiceUnavailable', `no worker answered for run ${runId} within ${timeoutMs} ms`);
    throw error;
  }
}

/** The most runs awaiting approval the inbox looks at. */
export const INBOX_LIMIT = 200;

/** The views of the runs awaiting approval (at most INBOX_LIMIT); runs that do not answer are left out. */
export async function runsAwaitingApproval(deps: Pick<ServerContext, 'temporal' | 'taskQueue' | 'workerTimeoutMs'>): Promise<RunView[]> {
  const waiting = await listRuns(deps, { status: 'awaiting_approval' }, INBOX_LIMIT);
  const views = await mapBounded(waiting, 8, (run) => getRun(deps, run.runId).catch(() => undefined));
  return views.filter((view): view is RunView => view !== undefined);
}

/** Maps with at most `concurrency` calls in flight, keeping order. */
async function mapBounded<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}
