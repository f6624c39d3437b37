// What the API and the web UI read from Temporal: run lists from visibility (search attributes, no
// worker needed), run views from the workflow's `getRun` query.
import { createHash } from 'node:crypto';
import { isGrpcServiceError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { z } from 'zod';
import { CordonError, RunId, RunStatus, Severity, type RunPage, type RunSummary, type RunView } from '../domain/index.js';
import { playbooks } from '../playbooks/registry.js';
import { getRunQuery } from '../workflows/messages.js';
import { CordonAlertSource, CordonPlaybook, CordonRerunOf, CordonSeverity, CordonStatus, CordonTargets } from '../workflows/search-attributes.js';
import type { ServerContext } from './app.js';
import { isTimeout } from './approvals.js';

/**
 * A target filter: an account id or userName. Only characters that cannot end or escape a quoted
 * string in Temporal's visibility query are allowed.
 */
export const TargetFilter = z.string().regex(/^[A-Za-z0-9._@:-]{1,256}$/, 'must be an account id or userName (letters, digits and . _ @ : -, at most 256)');

/**
 * An alert source filter. Sources are free text in alerts; only those made of characters that
 * cannot end or escape a quoted string in a visibility query can be filtered on.
 */
export const SourceFilter = z.string().regex(/^[A-Za-z0-9 ._@:/+-]{1,200}$/, 'must be an alert source (letters, digits, spaces and . _ @ : / + -, at most 200)');

/** An instant of a time range: an ISO 8601 timestamp with a zone, normalised to UTC. */
export const InstantFilter = z.iso
  .datetime({ offset: true, error: 'must be an ISO 8601 timestamp with a time zone, such as 2026-01-31T09:00:00Z' })
  .transform((value) => new Date(value).toISOString());

const blankIsAny = (value: unknown) => (typeof value === 'string' ? value.trim() || undefined : value);

/** Refuses a time range that ends before (or when) it starts; for schemas holding `since` and `until`. */
export function timeRangeInOrder(filters: { since?: string | undefined; until?: string | undefined }, ctx: z.RefinementCtx): void {
  if (filters.since !== undefined && filters.until !== undefined && Date.parse(filters.until) <= Date.parse(filters.since)) {
    ctx.addIssue({ code: 'custom', path: ['until'], message: 'must be later than since' });
  }
}

/**
 * The runs list's filters, from the query string; empty values mean "any". `since` (inclusive) and
 * `until` (exclusive) bound the run's start time.
 */
export const RunFilters = z
  .strictObject({
    status: z.preprocess((v) => (v === '' ? undefined : v), RunStatus.optional()),
    playbook: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z
        .string()
        .refine((name) => Object.hasOwn(playbooks, name), { message: `must be one of: ${Object.keys(playbooks).join(', ')}` })
        .optional(),
    ),
    target: z.preprocess(blankIsAny, TargetFilter.optional()),
    source: z.preprocess(blankIsAny, SourceFilter.optional()),
    severity: z.preprocess(blankIsAny, Severity.optional()),
    since: z.preprocess(blankIsAny, InstantFilter.optional()),
    until: z.preprocess(blankIsAny, InstantFilter.optional()),
  })
  .superRefine(timeRangeInOrder);
export type RunFilters = z.infer<typeof RunFilters>;

/** A page token as `listRunsPage` hands it out: base64url, of a bounded length. */
export const PageToken = z.string().regex(/^[A-Za-z0-9_-]{12,4096}$/, 'must be a nextPageToken as this API returned it');

// Task queue names come from configuration; only put plain ones into a query.
const PLAIN = /^[A-Za-z0-9._:-]{1,200}$/;

/** An instant as the visibility query takes it; toISOString's output holds no quote. Throws TypeError for a value that is no time. */
function instant(value: string): string {
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw new TypeError(`not a timestamp: ${JSON.stringify(value)}`);
  return at.toISOString();
}

/**
 * The visibility query for Cordon's runs matching `filters`. Every value is from a closed set,
 * matched a filter pattern or is a normalised timestamp, so none can break out of its quotes; each
 * is checked again here, so a caller that skipped `RunFilters` gets a throw, not an injection. Runs
 * are scoped to this deployment's task queue: a run whose worker is elsewhere cannot answer this
 * server's queries anyway.
 */
export function visibilityQuery(taskQueue: string, filters: RunFilters = {}): string {
  const clauses = [`WorkflowType = 'remediationWorkflow'`];
  if (PLAIN.test(taskQueue)) clauses.push(`TaskQueue = '${taskQueue}'`);
  if (filters.status) clauses.push(`${CordonStatus.name} = '${RunStatus.parse(filters.status)}'`);
  if (filters.playbook) clauses.push(`${CordonPlaybook.name} = '${z.string().regex(PLAIN).parse(filters.playbook)}'`);
  if (filters.target) clauses.push(`${CordonTargets.name} = '${TargetFilter.parse(filters.target)}'`);
  if (filters.source) clauses.push(`${CordonAlertSource.name} = '${SourceFilter.parse(filters.source)}'`);
  if (filters.severity) clauses.push(`${CordonSeverity.name} = '${Severity.parse(filters.severity)}'`);
  if (filters.since) clauses.push(`StartTime >= '${instant(filters.since)}'`);
  if (filters.until) clauses.push(`StartTime < '${instant(filters.until)}'`);
  return clauses.join(' AND ');
}

/** The largest page `listRunsPage` asks Temporal for. */
export const MAX_PAGE_SIZE = 500;

// A page token is Temporal's own behind a checksum over it and the query it continues: a token is
// only good for the filters it was given with, and an altered or made-up one is refused here.
// Temporal itself answers a token it cannot read with an error that its client retries for seconds.
const CHECKSUM_BYTES = 12;

function checksum(query: string, temporalToken: Uint8Array): Buffer {
  return createHash('sha256').update(query).update('\0').update(temporalToken).digest().subarray(0, CHECKSUM_BYTES);
}

function sealPageToken(temporalToken: Uint8Array, query: string): string {
  return Buffer.concat([checksum(query, temporalToken), temporalToken]).toString('base64url');
}

function openPageToken(token: string, query: string): Buffer {
  const bytes = Buffer.from(token, 'base64url');
  const temporalToken = bytes.subarray(CHECKSUM_BYTES);
  if (temporalToken.length === 0 || !bytes.subarray(0, CHECKSUM_BYTES).equals(checksum(query, temporalToken))) {
    throw new CordonError('InvalidRequest', 'pageToken: not a nextPageToken given for these filters (ask for the first page again)');
  }
  return temporalToken;
}

type RawExecution = Awaited<ReturnType<Client['workflowService']['listWorkflowExecutions']>>['executions'][number];
type RawTimestamp = NonNullable<RawExecution['startTime']>;

function isoOf(ts: RawTimestamp | null | undefined): string | null {
  if (!ts) return null;
  const seconds = typeof ts.seconds === 'number' ? ts.seconds : (ts.seconds?.toNumber() ?? 0);
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1_000_000)).toISOString();
}

/** One search attribute of a listed execution, decoded as Temporal encodes them (JSON payloads). */
function attribute(execution: RawExecution, name: string): unknown {
  const payload = execution.searchAttributes?.indexedFields?.[name];
  if (!payload) return undefined;
  try {
    return defaultPayloadConverter.fromPayload(payload);
  } catch {
    return undefined;
  }
}

const KeywordValue = z.string();
const KeywordListValue = z.array(z.string());

function summaryOf(execution: RawExecution): RunSummary {
  const keyword = (name: string) => {
    const parsed = KeywordValue.safeParse(attribute(execution, name));
    return parsed.success ? parsed.data : null;
  };
  const status = RunStatus.safeParse(attribute(execution, CordonStatus.name));
  const targets = KeywordListValue.safeParse(attribute(execution, CordonTargets.name));
  return {
    runId: execution.execution?.workflowId ?? '',
    playbook: keyword(CordonPlaybook.name),
    status: status.success ? status.data : null,
    targets: targets.success ? targets.data : [],
    alertSource: keyword(CordonAlertSource.name),
    severity: keyword(CordonSeverity.name),
    startedAt: isoOf(execution.startTime) ?? new Date(0).toISOString(),
    closedAt: isoOf(execution.closeTime),
  };
}

/**
 * One page of runs matching `filters`, newest first, from Temporal visibility, with the token of the
 * next page (null on the last). Throws CordonError `InvalidRequest` naming `pageToken` when the token
 * was not given for these filters or Temporal refuses it.
 */
export async function listRunsPage(
  deps: Pick<ServerContext, 'temporal' | 'taskQueue' | 'searchIndex'>,
  filters: RunFilters,
  page: { pageSize: number; pageToken?: string | undefined },
): Promise<RunPage> {
  // Targets are looked up as the runs hold them: blinded when identities are not kept in clear.
  const target = filters.target !== undefined && deps.searchIndex ? deps.searchIndex(filters.target) : filters.target;
  const query = visibilityQuery(deps.taskQueue, { ...filters, ...(target !== undefined ? { target } : {}) });
  const nextPageToken = page.pageToken === undefined ? undefined : openPageToken(page.pageToken, query);
  let response;
  try {
    response = await deps.temporal.workflowService.listWorkflowExecutions({
      namespace: deps.temporal.options.namespace,
      query,
      pageSize: Math.min(Math.max(1, Math.trunc(page.pageSize)), MAX_PAGE_SIZE),
      ...(nextPageToken ? { nextPageToken } : {}),
    });
  } catch (error) {
    // 3 is gRPC's INVALID_ARGUMENT; the query is always well formed, so it is the token Temporal refuses
    // (one that passed the checksum, but that this Temporal cannot continue from).
    if (nextPageToken && isGrpcServiceError(error) && error.code === 3) {
      throw new CordonError('InvalidRequest', `pageToken: Temporal does not take it (${error.details || error.message})`);
    }
    throw error;
  }
  const token = response.nextPageToken;
  return {
    runs: response.executions.map(summaryOf),
    nextPageToken: token && token.length > 0 ? sealPageToken(token, query) : null,
  };
}

/** Lists at most `limit` runs, newest first, from Temporal visibility, page by page. */
export async function listRuns(deps: Pick<ServerContext, 'temporal' | 'taskQueue'>, filters: RunFilters, limit: number): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  let pageToken: string | undefined;
  do {
    const page = await listRunsPage(deps, filters, { pageSize: Math.min(limit - runs.length, 100), pageToken });
    runs.push(...page.runs);
    pageToken = page.nextPageToken ?? undefined;
  } while (pageToken !== undefined && runs.length < limit);
  return runs.slice(0, limit);
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

/** The most reruns of one run a view lists. */
const MAX_RERUNS = 100;

/** The runs started as reruns of `runId`, newest first, from visibility (the run itself cannot know them). */
export async function rerunsOf(deps: Pick<ServerContext, 'temporal'>, runId: string): Promise<string[]> {
  const reruns: string[] = [];
  const query = `WorkflowType = 'remediationWorkflow' AND ${CordonRerunOf.name} = '${RunId.parse(runId)}'`;
  for await (const execution of deps.temporal.workflow.list({ query, pageSize: MAX_RERUNS })) {
    reruns.push(execution.workflowId);
    if (reruns.length >= MAX_RERUNS) break;
  }
  return reruns;
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
