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
  'completed',
  'dry_run_completed',
  'rejected',
  'expired',
  'denied',
  'compensated',
  'needs_human',
  'failed',
  'cancelled',
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
  completed: true,
  dry_run_completed: true,
  rejected: true,
  expired: true,
  denied: true,
  compensated: true,
  needs_human: true,
  failed: true,
  cancelled: true,
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

/** Where a run's approval stands. */
export const ApprovalStage = z.enum(['waiting', 'reminded_50', 'reminded_80', 'escalated', 'approved']);
export type ApprovalStage = z.infer<typeof ApprovalStage>;

/** Why a run is paused. */
export const PauseReason = z.enum(['budget', 'kill-switch']);
export type PauseReason = z.infer<typeof PauseReason>;

/** Something observed about a target, kept as proof. */
export const Evidence = z.strictObject({
  kind: z.enum(['before', 'after', 'verification', 'compensation']),
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
  decision: Decision.pick({
    outcome: true,
    policies: true,
    requiredApprovals: true,
    approverRoles: true,
    policySetHash: true,
    reasons: true,
    guardrails: true,
    rejectionRule: true,
    escalation: true,
  })
    .extend({ approvalExpiresAt: z.iso.datetime().nullable(), approvalStage: ApprovalStage.nullable() })
    .nullable(),
  approvals: z.array(Approval),
  /** Approvals given to an earlier plan that drift replaced; they no longer count. */
  voidedApprovals: z.array(Approval.extend({ planDigest: PlanDigest })),
  pausedReason: PauseReason.nullable(),
  journal: z.array(JournalEntry),
  timeline: z.array(TimelineEntry),
  error: FailureInfo.nullable(),
});
export type RunView = z.infer<typeof RunView>;
