import { z } from 'zod';
import { RunId, RunStatus } from './run.js';

/** The answer to an alert: the run it started, or the run an identical alert started before. */
export const AlertAccepted = z.object({ runId: RunId, status: RunStatus, duplicate: z.boolean() });
export type AlertAccepted = z.infer<typeof AlertAccepted>;

/** A run as the run list shows it (from Temporal visibility, without asking a worker). */
export const RunSummary = z.object({
  runId: z.string(),
  playbook: z.string().nullable(),
  status: RunStatus.nullable(),
  targets: z.array(z.string()),
  alertSource: z.string().nullable(),
  severity: z.string().nullable(),
  startedAt: z.string(),
  closedAt: z.string().nullable(),
});
export type RunSummary = z.infer<typeof RunSummary>;

/** A page of the runs list; `nextPageToken` asks for the next page, null on the last. */
export const RunPage = z.object({ runs: z.array(RunSummary), nextPageToken: z.string().nullable() });
export type RunPage = z.infer<typeof RunPage>;

/** What an approval decision returns to the approver. */
export const ApprovalResult = z.object({
  /** The run's status once this decision is counted. */
  status: RunStatus,
  approvals: z.int(),
  required: z.int(),
});
export type ApprovalResult = z.infer<typeof ApprovalResult>;

/** What a run answers to an accepted rollback request. */
export const RollbackAccepted = z.object({
  rollbackId: z.string(),
  /** The run's status once the rollback is under way. */
  status: RunStatus,
  /** The actions it will try to undo. */
  actions: z.array(z.string()),
});
export type RollbackAccepted = z.infer<typeof RollbackAccepted>;

/** What a rerun request answers: the new run, linked to the original. */
export const RerunAccepted = z.object({ runId: RunId, rerunOf: RunId, mode: z.enum(['live', 'dry-run']), status: RunStatus });
export type RerunAccepted = z.infer<typeof RerunAccepted>;

/** The result of checking the ledger's hash chain: the first entry that does not hold, if any. */
export const LedgerVerification = z.union([
  z.object({ ok: z.literal(true), entries: z.int(), headHash: z.string() }),
  z.object({ ok: z.literal(false), entries: z.int(), firstBad: z.object({ seq: z.int(), reason: z.string() }) }),
]);
export type LedgerVerification = z.infer<typeof LedgerVerification>;

/** The body of every error answer. */
export const ErrorBody = z.object({
  error: z.object({
    type: z.string(),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;
