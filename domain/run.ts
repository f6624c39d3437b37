import { z } from 'zod';
import { Alert } from './alert.js';
import { Approval } from './approval.js';
import { Decision, Outcome } from './decision.js';
import { Identity } from './identity.js';
import { Action, ActionId, PlanDigest } from './plan.js';
import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './sha256.js';

/** Where a run is in its life. See `isTerminal` for the statuses that end it. */
export const RunStatus = z.enum([
  'observing',
  'planning',
  'deciding',
  'awaiting_approval',
  'executing',
  'verifying',
  'compensating',
  'paused',
  'rolling_back',
  'completed',
  'dry_run_completed',
  'rejected',
  'expired',
  'denied',
  'compensated',
  'needs_human',
  'failed',
  'cancelled',
  'rolled_back',
  'partially_rolled_back',
]);
export type RunStatus = z.infer<typeof RunStatus>;

/** Whether a status ends the run. */
export const isTerminal: Record<RunStatus, boolean> = {
  observing: false,
  planning: false,
  deciding: false,
  awaiting_approval: false,
  executing: false,
  verifying: false,
  compensating: false,
  paused: false,
  rolling_back: false,
  completed: true,
  dry_run_completed: true,
  rejected: true,
  expired: true,
  denied: true,
  compensated: true,
  needs_human: true,
  failed: true,
  cancelled: true,
  rolled_back: true,
  partially_rolled_back: true,
};

/** Run ids are derived from the alert's dedupe key, so a repeated alert names the same run. */
export const RunId = z.string().regex(/^run_[0-9a-f]{32}$/, 'must be run_ followed by 32 hex digits');
export type RunId = z.infer<typeof RunId>;

/**
 * The run id (and Temporal workflow id) for an alert's `source` + `id`. A dry run of an alert has an
 * id of its own, so it never stands in the way of the live run of the same alert.
 */
export function runIdFor(source: string, id: string, mode: 'live' | 'dry-run' = 'live'): RunId {
  const key = mode === 'live' ? [source, id] : [source, id, mode];
  return `run_${sha256Hex(canonicalJson(key)).slice(0, 32)}`;
}

/** The run id of a rerun: the original's, the mode and a request nonce, so every rerun is a new run. */
export function rerunIdFor(originalRunId: string, mode: 'live' | 'dry-run', nonce: string): RunId {
  return `run_${sha256Hex(canonicalJson(['rerun', originalRunId, mode, nonce])).slice(0, 32)}`;
}

/** Where a run's approval stands. */
export const ApprovalStage = z.enum(['waiting', 'reminded_50', 'reminded_80', 'escalated', 'approved']);
export type ApprovalStage = z.infer<typeof ApprovalStage>;

/** Why a run is paused. */
export const PauseReason = z.enum(['budget', 'kill-switch']);
export type PauseReason = z.infer<typeof PauseReason>;

/** Something observed about a target, kept as proof. */
export const Evidence = z.strictObject({
  kind: z.enum(['before', 'after', 'verification', 'compensation', 'drift', 'rollback']),
  at: z.iso.datetime(),
  observed: z.record(z.string(), z.json()),
});
export type Evidence = z.infer<typeof Evidence>;

/** What happened to one action. */
export const JournalStatus = z.enum([
  'pending',
  'applied',
  'already_in_effect',
  'failed',
  'verified',
  'verification_failed',
  'compensated',
  'compensation_skipped',
  'compensation_failed',
  'not_started',
  'rolled_back',
  'drifted',
  'rollback_failed',
]);
export type JournalStatus = z.infer<typeof JournalStatus>;

export const FailureInfo = z.strictObject({ type: z.string(), message: z.string() });
export type FailureInfo = z.infer<typeof FailureInfo>;

export const JournalEntry = z.strictObject({
  actionId: ActionId,
  status: JournalStatus,
  /** Whether this run changed the target (false when the change was already in effect). */
  changed: z.boolean().optional(),
  evidence: z.array(Evidence),
  error: FailureInfo.optional(),
});
export type JournalEntry = z.infer<typeof JournalEntry>;

/** The actions of a plan as a run shows them, with policy's outcome per action. */
export const RunAction = z.intersection(Action, z.object({ decision: Outcome.optional() }));
export type RunAction = z.infer<typeof RunAction>;

/** A step of the run's timeline. */
export const TimelineEntry = z.strictObject({ status: RunStatus, at: z.iso.datetime() });

/** The decision as a run shows it: policy's answer, with who may decide now and by when. */
export const DecisionView = Decision.pick({
  outcome: true,
  policies: true,
  requiredApprovals: true,
  approverRoles: true,
  policySetHash: true,
  reasons: true,
  guardrails: true,
  rejectionRule: true,
  escalation: true,
}).extend({ approvalExpiresAt: z.iso.datetime().nullable(), approvalStage: ApprovalStage.nullable() });
export type DecisionView = z.infer<typeof DecisionView>;

/** Where a rollback of a completed run stands. */
export const RollbackStatus = z.enum([
  'checking',
  'deciding',
  'awaiting_approval',
  'rolling_back',
  'rolled_back',
  'partially_rolled_back',
  'drifted',
  'denied',
  'rejected',
  'expired',
  'failed',
]);
export type RollbackStatus = z.infer<typeof RollbackStatus>;

/** What a rollback did with one action. */
export const RollbackResult = z.strictObject({
  actionId: ActionId,
  outcome: z.enum(['rolled_back', 'drifted', 'failed']),
  detail: z.string().optional(),
});
export type RollbackResult = z.infer<typeof RollbackResult>;

/** A rollback an operator asked for: the actions, policy's decision, approvals and what was undone. */
export const RollbackView = z.strictObject({
  id: z.string().regex(/^rb_\d{1,4}$/),
  requestedBy: Identity.shape.name,
  reason: z.string(),
  requestedAt: z.iso.datetime(),
  /** The actions to undo (every action the run changed and has not rolled back, unless named). */
  actions: z.array(ActionId),
  /** What approvals of this rollback are bound to, once the drift check has run. */
  digest: PlanDigest.nullable(),
  status: RollbackStatus,
  decision: DecisionView.nullable(),
  approvals: z.array(Approval),
  results: z.array(RollbackResult),
  finishedAt: z.iso.datetime().nullable(),
  error: FailureInfo.nullable(),
});
export type RollbackView = z.infer<typeof RollbackView>;

/** The decision open now: what an approver decides on (the plan, or a rollback), bound to its digest. */
export const OpenApproval = z.strictObject({
  subject: z.enum(['plan', 'rollback']),
  digest: PlanDigest,
  /** Who asked for it: they may not approve it. */
  requestedBy: Identity.shape.name,
  requiredApprovals: z.int().min(0),
  approverRoles: z.array(z.string()),
  approvals: z.array(Approval),
  expiresAt: z.iso.datetime().nullable(),
});
export type OpenApproval = z.infer<typeof OpenApproval>;

/** Everything an operator or approver needs to know about a run. */
export const RunView = z.strictObject({
  runId: RunId,
  playbook: z.string(),
  status: RunStatus,
  alert: Alert,
  requestedBy: Identity.shape.name,
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  plan: z.strictObject({ digest: PlanDigest, observedAt: z.iso.datetime(), actions: z.array(RunAction) }).nullable(),
  decision: DecisionView.nullable(),
  approvals: z.array(Approval),
  /** Approvals given to an earlier plan that drift replaced; they no longer count. */
  voidedApprovals: z.array(Approval.extend({ planDigest: PlanDigest })),
  pausedReason: PauseReason.nullable(),
  journal: z.array(JournalEntry),
  timeline: z.array(TimelineEntry),
  error: FailureInfo.nullable(),
  /** The decision open now, when the run awaits approval. */
  openApproval: OpenApproval.nullable(),
  /** Until when the run may be rolled back; null when it changed nothing that can be undone. */
  rollbackUntil: z.iso.datetime().nullable(),
  rollbacks: z.array(RollbackView),
  /** The run this one reruns, and the reruns of this one (linked both ways). */
  rerunOf: RunId.nullable(),
  reruns: z.array(RunId),
});
export type RunView = z.infer<typeof RunView>;
