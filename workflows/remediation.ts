import {
  ActivityCancellationType,
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  type ActivityOptions,
  type LocalActivityOptions,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { ApprovalEvent, ApprovalNotice } from '../activities/notify/types.js';
import type { ApplyResult, GuardrailBlock, RecordInput, RemediationActivities, UndoResult, VerifyResult } from '../activities/remediation.js';
import {
  approvalSignatureProblem,
  canonicalJson,
  rollbackSignatureProblem,
  sha256Hex,
  SignedApproval,
  SignedRollback,
  isTerminal,
  nonRetryableErrorTypes,
  describeActionChange,
  type AccountSnapshot,
  type Action,
  type ApprovalResult,
  type ApprovalStage,
  type ApprovalVerifyKey,
  type Alert,
  type Approval,
  type Decision,
  type DecisionView,
  type ErrorType,
  type Evidence,
  type FailureInfo,
  type Identity,
  type JournalEntry,
  type PauseReason,
  type Plan,
  type Role,
  type RollbackAccepted,
  type RollbackView,
  type RunId,
  type RunStatus,
  type RunView,
} from '../domain/index.js';
import { decideApprovalUpdate, getRunQuery, requestRollbackUpdate } from './messages.js';
import { CordonStatus, CordonTargets } from './search-attributes.js';

/** What starts a remediation run. */
export interface RemediationInput {
  runId: RunId;
  playbook: string;
  alert: Alert;
  requestedBy: Identity;
  receivedAt: string;
  /** The run this one reruns, when it is a rerun. */
  rerunOf?: RunId;
}

/** How a run ended. */
export interface RemediationOutcome {
  runId: RunId;
  status: RunStatus;
  error: FailureInfo | null;
}

const retry = (maximumAttempts: number): RetryPolicy => ({
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
  maximumAttempts,
  nonRetryableErrorTypes: [...nonRetryableErrorTypes],
});

// Reads: observe, plan, decide, verify. Bounded in attempts and in total time.
const readOptions: ActivityOptions = { startToCloseTimeout: '30s', scheduleToCloseTimeout: '5m', retry: retry(6) };
// Mutations heartbeat, so a worker that dies mid-call is noticed in 10 s rather than at the timeout;
// a cancelled run waits for an in-flight mutation to finish before it compensates.
const mutationOptions: ActivityOptions = {
  startToCloseTimeout: '60s',
  heartbeatTimeout: '10s',
  scheduleToCloseTimeout: '10m',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: retry(8),
};
// Undo tries harder and longer: giving up means a person has to finish the job.
const undoOptions: ActivityOptions = { ...mutationOptions, scheduleToCloseTimeout: '30m', retry: retry(12) };
// Steps that only compute and write the worker's ledger (planning, policy, ledger entries) run as
// local activities: no server round trip each, which is most of an alert's latency to first action.
const localOptions: LocalActivityOptions = { startToCloseTimeout: '15s', retry: retry(10) };

const reads = proxyActivities<RemediationActivities>(readOptions);
const mutations = proxyActivities<RemediationActivities>(mutationOptions);
const undos = proxyActivities<RemediationActivities>(undoOptions);
const local = proxyLocalActivities<RemediationActivities>(localOptions);
// Telling approvers is best effort: a few quick attempts, then the run goes on (the ledger says so).
const notices = proxyActivities<RemediationActivities>({ startToCloseTimeout: '15s', scheduleToCloseTimeout: '1m', retry: retry(3) });

/** How many times a run observes its target before it gives up on a plan that keeps changing. */
const MAX_OBSERVATIONS = 4;
/**
 * Patch id: the guardrails are checked before the re-observation that precedes the first change, so
 * a run held there (a kill switch may hold it for days) re-observes its target after the hold. Runs
 * begun before it replay without the check.
 */
const GUARDRAILS_BEFORE_REOBSERVE = 'guardrails-before-reobserve';

/** How often a run waiting out its rollback window re-reads the keys that verify rollback requests. */
const KEY_REFRESH_MS = 24 * 60 * 60 * 1000;

/** What an approver decides on: the plan, or a rollback, bound to its digest and requester. */
interface ApprovalRound {
  subject: 'plan' | 'rollback';
  digest: string;
  requester: string;
  /** The actions as notices show them. */
  actions: { id: string; type: string; target: string; change: string }[];
}

/** A rollback the run accepted and has not started yet. */
interface PendingRollback {
  id: string;
  requester: string;
  roles: Role[];
  reason: string;
  actionIds: string[];
}

/** The guardrail that stopped an activity, when a guardrail did. */
function guardrailBlock(error: unknown): GuardrailBlock | undefined {
  const cause = error instanceof ActivityFailure ? error.cause : undefined;
  if (!(cause instanceof ApplicationFailure) || cause.type !== 'GuardrailBlocked') return undefined;
  return cause.details?.[0] as GuardrailBlock | undefined;
}

function failure(type: ErrorType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** The catalogue type and message of whatever an activity or the workflow threw. */
function failureInfo(error: unknown): FailureInfo {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'Internal', message: cause.message };
  if (cause instanceof Error) return { type: 'Internal', message: cause.message };
  return { type: 'Internal', message: String(cause) };
}

/**
 * The remediation engine: observe → plan → decide → (approve) → execute → verify, for whichever
 * playbook handles the alert. Each executed action registers its undo before it runs; any failure,
 * and cancellation, undoes them in reverse in a non-cancellable scope.
 */
export async function remediationWorkflow(input: RemediationInput): Promise<RemediationOutcome> {
  const { runId, alert, requestedBy } = input;
  const now = () => new Date().toISOString();

  let status: RunStatus = 'observing';
  let updatedAt = input.receivedAt;
  let plan: Plan | null = null;
  let decision: Decision | null = null;
  let approvalExpiresAt: string | null = null;
  let runError: FailureInfo | null = null;
  let decidedAt = 0;
  let pausedReason: PauseReason | null = null;
  const approvals: Approval[] = [];
  const voidedApprovals: (Approval & { planDigest: string })[] = [];
  const usedNonces = new Set<string>();
  // Who may decide now: the policy's roles, widened when the approval escalates.
  let approverRoles: Role[] = [];
  let approvalKeys: ApprovalVerifyKey[] = [];
  let approvalStage: ApprovalStage | null = null;
  // Each notification channel's message for this run, so later notices update it.
  let noticeRefs: Record<string, string> = {};
  const journal: JournalEntry[] = [];
  const timeline: RunView['timeline'] = [{ status, at: input.receivedAt }];
  // The approval round open now: the plan's, and later perhaps a rollback's.
  let round: ApprovalRound | null = null;
  // The plan's decision and approvals, kept for the run's view while a rollback has a round of its own.
  let planRound: { decision: Decision | null; approvals: Approval[]; approvalExpiresAt: string | null; approverRoles: Role[]; approvalStage: ApprovalStage | null } | null = null;
  // Until when operators may roll the run back (epoch ms), once it completed having changed something.
  let rollbackUntil: number | null = null;
  const rollbacks: RollbackView[] = [];
  let activeRollback: RollbackView | null = null;
  let pendingRollback: PendingRollback | null = null;

  const record = async (kind: string, key: string, data: RecordInput['data'] = {}, actor = 'cordon') => {
    const digest = activeRollback?.digest ?? plan?.digest ?? null;
    await local.recordEvents({ events: [{ runId, kind, actor, planDigest: digest, data, idemKey: `${runId}:${key}` }] });
  };

  const setStatus = async (next: RunStatus, reason?: string) => {
    const from = status;
    status = next;
    updatedAt = now();
    timeline.push({ status: next, at: updatedAt });
    upsertSearchAttributes([{ key: CordonStatus, value: next }]);
    await record('run.status', `status:${timeline.length}:${next}`, { from, to: next, ...(reason ? { reason } : {}) });
  };

  const journalEntry = (actionId: string): JournalEntry => {
    let entry = journal.find((j) => j.actionId === actionId);
    if (!entry) {
      entry = { actionId, status: 'pending', evidence: [] };
      journal.push(entry);
    }
    return entry;
  };
  const note = (actionId: string, update: Partial<JournalEntry>, evidence: Evidence[] = []) => {
    const entry = journalEntry(actionId);
    Object.assign(entry, update);
    entry.evidence.push(...evidence);
  };

  const approveCount = () => approvals.filter((a) => a.decision === 'approve').length;
  const rejectCount = () => approvals.filter((a) => a.decision === 'reject').length;
  // reject-wins: one rejection rejects. majority: rejections must reach the quorum, and approvals
  // must outnumber them.
  const rejected = () => (decision?.rejectionRule === 'majority' ? rejectCount() >= decision.requiredApprovals : rejectCount() > 0);
  const quorum = () => decision !== null && approveCount() >= decision.requiredApprovals && !rejected() && (decision.rejectionRule !== 'majority' || approveCount() > rejectCount());

  /** The decision as the run shows it, with who may decide now and by when. */
  const decisionView = (shown: Decision | null, expiresAt: string | null, roles: Role[], stage: ApprovalStage | null): DecisionView | null =>
    shown && {
      outcome: shown.outcome,
      policies: shown.policies,
      requiredApprovals: shown.requiredApprovals,
      policySetHash: shown.policySetHash,
      reasons: shown.reasons,
      rejectionRule: shown.rejectionRule,
      escalation: shown.escalation,
      guardrails: shown.guardrails,
      approvalExpiresAt: expiresAt,
      // Who may decide now (wider once escalated), and where the approval stands.
      approverRoles: roles.length > 0 ? roles : shown.approverRoles,
      approvalStage: stage,
    };
  const currentDecisionView = () => decisionView(decision, approvalExpiresAt, approverRoles, approvalStage);

  /** The actions this run changed that an operator may still roll back. */
  const rollbackable = (): Action[] =>
    (plan?.actions ?? []).filter((action) => {
      const entry = journal.find((j) => j.actionId === action.id);
      return entry?.changed === true && (entry.status === 'verified' || entry.status === 'rollback_failed');
    });

  setHandler(getRunQuery, (): RunView => {
    const main = planRound ?? { decision, approvals, approvalExpiresAt, approverRoles, approvalStage };
    return {
    runId,
    // The plan's playbook is the one that acts (chosen by the alert's kind on the worker).
    playbook: plan?.playbook ?? input.playbook,
    status,
    alert,
    requestedBy: requestedBy.name,
    createdAt: input.receivedAt,
    updatedAt,
    plan: plan && {
      digest: plan.digest,
      observedAt: plan.observedAt,
      actions: plan.actions.map((action) => {
        const outcome = decision?.perAction.find((d) => d.actionId === action.id)?.outcome;
        return outcome ? { ...action, decision: outcome } : { ...action };
      }),
    },
    decision: decisionView(main.decision, main.approvalExpiresAt, main.approverRoles, main.approvalStage),
    approvals: main.approvals.map((a) => ({ ...a })),
    voidedApprovals: voidedApprovals.map((a) => ({ ...a })),
    pausedReason,
    journal: journal.map((j) => ({ ...j, evidence: [...j.evidence] })),
    timeline: [...timeline],
    error: runError,
    openApproval:
      status === 'awaiting_approval' && round !== null && decision !== null
        ? {
            subject: round.subject,
            digest: round.digest,
            requestedBy: round.requester,
            requiredApprovals: decision.requiredApprovals,
            approverRoles: approverRoles.length > 0 ? [...approverRoles] : [...decision.approverRoles],
            approvals: approvals.map((a) => ({ ...a })),
            expiresAt: approvalExpiresAt,
          }
        : null,
    rollbackUntil: rollbackUntil === null ? null : new Date(rollbackUntil).toISOString(),
    rollbacks: rollbacks.map((rb) => {
      const live = rb === activeRollback && round?.subject === 'rollback';
      return { ...rb, actions: [...rb.actions], results: rb.results.map((r) => ({ ...r })), decision: live ? currentDecisionView() : rb.decision, approvals: (live ? approvals : rb.approvals).map((a) => ({ ...a })) };
    }),
    rerunOf: input.rerunOf ?? null,
    // Reruns are found by the API in Temporal's visibility (CordonRerunOf); the run cannot know them.
    reruns: [],
    };
  });

  // The handler is synchronous on purpose: it only records the decision in workflow state. The main
  // flow writes approvals to the ledger, so no activity runs concurrently with the main flow's own
  // (concurrent local activities would make the order of commands differ on replay).
  setHandler(
    decideApprovalUpdate,
    (request): ApprovalResult => {
      usedNonces.add(request.nonce);
      approvals.push({
        approver: request.approver,
        decision: request.decision,
        at: now(),
        channel: request.channel,
        ...(request.comment !== undefined ? { comment: request.comment } : {}),
      });
      const required = decision?.requiredApprovals ?? 0;
      const forRollback = round?.subject === 'rollback';
      const next: RunStatus = rejected() ? (forRollback ? statusAfterRollback() : 'rejected') : quorum() ? (forRollback ? 'rolling_back' : 'executing') : 'awaiting_approval';
      return { status: next, approvals: approveCount(), required };
    },
    {
      validator: (request: SignedApproval) => {
        const parsed = SignedApproval.safeParse(request);
        const unsigned = typeof request !== 'object' || request === null || !('signature' in request) || !('kid' in request);
        if (unsigned) throw failure('ForgedApproval', 'the approval is not signed by the API');
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw failure('InvalidApproval', `invalid approval: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'malformed'}`);
        }
        if (status !== 'awaiting_approval' || plan === null || decision === null || round === null) {
          throw failure('RunNotAwaitingApproval', `run ${runId} is ${status}, not awaiting approval`);
        }
        // Only the API can sign: an update sent around it, altered, replayed or late is refused here.
        const forged = approvalSignatureProblem(request, approvalKeys, runId, Date.now());
        if (forged) throw failure('ForgedApproval', forged);
        if (usedNonces.has(request.nonce)) throw failure('ForgedApproval', 'this signed approval was already used');
        if (request.planDigest !== round.digest) {
          throw failure('StalePlanDigest', `digest ${request.planDigest} is not the ${round.subject === 'plan' ? 'current plan' : 'rollback awaiting approval'} ${round.digest}`);
        }
        if (request.approver === round.requester) {
          throw failure('SeparationOfDuties', `${request.approver} requested ${round.subject === 'plan' ? `run ${runId}` : `the rollback of run ${runId}`} and cannot decide on it`);
        }
        if (approvals.some((a) => a.approver === request.approver)) {
          throw failure('DuplicateApproval', `${request.approver} has already decided on run ${runId}`);
        }
        const allowed = approverRoles;
        if (!request.roles.some((role) => allowed.includes(role))) {
          throw failure('MissingApproverRole', `deciding on run ${runId} needs one of the roles ${allowed.join(', ')}`);
        }
      },
    },
  );

  /** The run's status from its journal once a rollback ends: how much of what it changed is undone. */
  const statusAfterRollback = (): RunStatus => {
    const changed = journal.filter((j) => j.changed === true);
    const undone = changed.filter((j) => j.status === 'rolled_back').length;
    return undone === 0 ? 'completed' : undone === changed.length ? 'rolled_back' : 'partially_rolled_back';
  };

  // Like approvals, a rollback request is recorded only in workflow state here; the main flow acts on it.
  setHandler(
    requestRollbackUpdate,
    (request): RollbackAccepted => {
      usedNonces.add(request.nonce);
      const actionIds = request.actions ?? rollbackable().map((a) => a.id);
      pendingRollback = { id: `rb_${rollbacks.length + 1}`, requester: request.requester, roles: [...request.roles], reason: request.reason, actionIds };
      return { rollbackId: pendingRollback.id, status: 'rolling_back', actions: actionIds };
    },
    {
      validator: (request: SignedRollback) => {
        const unsigned = typeof request !== 'object' || request === null || !('signature' in request) || !('kid' in request);
        if (unsigned) throw failure('ForgedRollback', 'the rollback request is not signed by the API');
        const parsed = SignedRollback.safeParse(request);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw failure('InvalidRequest', `invalid rollback request: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'malformed'}`);
        }
        if (rollbackUntil === null || (status !== 'completed' && status !== 'partially_rolled_back')) {
          const why = status === 'completed' ? 'it changed nothing that can be undone, or its playbook allows no rollback' : `it is ${status}`;
          throw failure('RollbackNotAllowed', `run ${runId} cannot be rolled back: ${why}`);
        }
        if (pendingRollback !== null || activeRollback !== null) throw failure('RollbackNotAllowed', `a rollback of run ${runId} is already in progress`);
        if (Date.now() >= rollbackUntil) throw failure('RollbackWindowClosed', `the rollback window of run ${runId} ended at ${new Date(rollbackUntil).toISOString()}`);
        const forged = rollbackSignatureProblem(request, approvalKeys, runId, Date.now());
        if (forged) throw failure('ForgedRollback', forged);
        if (usedNonces.has(request.nonce)) throw failure('ForgedRollback', 'this signed rollback request was already used');
        if (!request.roles.includes('operator') && !request.roles.includes('admin')) {
          throw failure('Forbidden', `rolling back run ${runId} needs the role operator or admin`);
        }
        const open = rollbackable().map((a) => a.id);
        if (open.length === 0) throw failure('RollbackNotAllowed', `run ${runId} has nothing left to roll back`);
        for (const id of request.actions ?? []) {
          if (!open.includes(id)) {
            const entry = journal.find((j) => j.actionId === id);
            const why = !entry ? 'is not an action of this run' : entry.changed !== true ? 'did not change anything' : `is ${entry.status}`;
            throw failure('UnknownAction', `action ${id} ${why}; actions that can be rolled back: ${open.join(', ')}`);
          }
        }
      },
    },
  );

  // Each action is pushed before it runs: an action that took effect but whose call failed is undone too.
  const undoStack: Action[] = [];

  const compensate = (reason: string): Promise<boolean> =>
    CancellationScope.nonCancellable(async () => {
      if (undoStack.length === 0 || plan === null) return true;
      const digest = plan.digest;
      await setStatus('compensating', reason);
      let allUndone = true;
      for (const action of undoStack) {
        try {
          const result = await undos.undoAction({ runId, action, planDigest: digest, reason });
          // The action that failed keeps `failed` when its undo found nothing to restore.
          const keepFailed = journalEntry(action.id).status === 'failed' && !result.changed;
          note(action.id, keepFailed ? {} : { status: result.status }, result.evidence);
        } catch (error) {
          allUndone = false;
          note(action.id, { status: 'compensation_failed', error: failureInfo(error) });
        }
      }
      return allUndone;
    });

  const finish = (next: RunStatus, error: FailureInfo | null = null, reason?: string): Promise<void> =>
    CancellationScope.nonCancellable(async () => {
      runError = error;
      await setStatus(next, error?.message ?? reason);
      // Approvers who were asked hear how it ended (executed, rejected, expired…).
      if (Object.keys(noticeRefs).length > 0) await notify('finished');
    });

  /** Decides on a plan; ends the run `denied` and answers false when policy or a guardrail says no. */
  const decidePlan = async (current: Plan, snapshot: AccountSnapshot, reason?: string): Promise<boolean> => {
    await setStatus('deciding', reason);
    decision = await local.decidePolicy({ runId, alert, plan: current, snapshot, requestedBy, mode: alert.mode ?? 'live' });
    decidedAt = Date.now();
    for (const action of current.actions) journalEntry(action.id);
    if (decision.outcome === 'deny') {
      await finish('denied', { type: 'PolicyDenied', message: decision.reasons.join('; ') || 'policy denies the plan' });
      return false;
    }
    return true;
  };

  /** Tells approvers where the approval stands (Slack and other channels); never fails the run. */
  const notify = async (event: ApprovalEvent, extra: { elapsedPercent?: number } = {}): Promise<void> => {
    if (plan === null || decision === null) return;
    const notice: ApprovalNotice = {
      event,
      runId,
      playbook: plan.playbook,
      status,
      alert: { source: alert.source, kind: alert.kind, severity: alert.severity, subject: alert.subject.userName ?? alert.subject.id ?? '', summary: alert.summary ?? null },
      requestedBy: round?.requester ?? requestedBy.name,
      plan: round
        ? { digest: round.digest, actions: round.actions.map((a) => ({ ...a })) }
        : { digest: plan.digest, actions: plan.actions.map((a) => ({ id: a.id, type: a.type, target: a.target.display, change: describeActionChange(a) })) },
      requiredApprovals: decision.requiredApprovals,
      approverRoles,
      approvals: approvals.map((a) => ({ ...a })),
      expiresAt: approvalExpiresAt,
      ...extra,
    };
    try {
      const answer = await notices.notifyApprovers({ notice, refs: noticeRefs });
      noticeRefs = answer.refs;
      if (answer.failed.length > 0) await record('notification.failed', `notify:${timeline.length}:${event}:${approvals.length}`, { event, failed: answer.failed });
    } catch (error) {
      await record('notification.failed', `notify:${timeline.length}:${event}:${approvals.length}`, { event, failed: [failureInfo(error).message] });
    }
  };

  /**
   * Waits for a quorum on `next` (the plan, or a rollback), reminding approvers at 50% and 80% of the
   * window and widening the approvers to the escalation roles when the policy says so. Answers null
   * once approved, or how it ended otherwise: rejected, or expired (never approved by default).
   */
  const awaitApprovals = async (current: Decision, next: ApprovalRound): Promise<{ status: 'rejected' | 'expired'; error: FailureInfo } | null> => {
    round = next;
    const digest16 = next.digest.slice(0, 16);
    const startedAt = Date.now();
    const deadline = startedAt + current.approvalTimeoutMs;
    approvalExpiresAt = new Date(deadline).toISOString();
    approverRoles = [...current.approverRoles];
    approvalStage = 'waiting';
    approvalKeys = await local.approvalVerifyKeys();
    await setStatus('awaiting_approval', `${current.requiredApprovals} approval(s) needed by ${approvalExpiresAt}`);
    await notify('requested');
    const milestones: { at: number; stage: ApprovalStage; percent?: number }[] = [
      { at: startedAt + current.approvalTimeoutMs * 0.5, stage: 'reminded_50' as const, percent: 50 },
      { at: startedAt + current.approvalTimeoutMs * 0.8, stage: 'reminded_80' as const, percent: 80 },
      ...(current.escalation ? [{ at: startedAt + current.escalation.afterMs, stage: 'escalated' as const }] : []),
    ].sort((a, b) => a.at - b.at);
    let recorded = 0;
    for (;;) {
      const milestone = milestones[0];
      const remaining = Math.min(deadline, milestone?.at ?? deadline) - Date.now();
      const woke = remaining > 0 && (await condition(() => approvals.length > recorded || rejected() || quorum(), remaining));
      // Each decision goes to the ledger as it arrives, including those that never reach a quorum.
      for (; recorded < approvals.length; recorded++) {
        const approval = approvals[recorded]!;
        await record(
          'approval.recorded',
          `approval:${digest16}:${approval.approver}`,
          { decision: approval.decision, channel: approval.channel, comment: approval.comment ?? null, at: approval.at, approvals: approvals.slice(0, recorded + 1).filter((a) => a.decision === 'approve').length, required: current.requiredApprovals },
          approval.approver,
        );
        await notify('decision');
      }
      if (rejected() || quorum() || Date.now() >= deadline) break;
      if (woke || !milestone || Date.now() < milestone.at) continue;
      milestones.shift();
      approvalStage = milestone.stage;
      if (milestone.stage === 'escalated') {
        approverRoles = [...new Set([...approverRoles, ...(current.escalation?.roles ?? [])])].sort();
        await record('approval.escalated', `escalated:${digest16}`, { roles: approverRoles, afterMs: current.escalation?.afterMs ?? null });
        await notify('escalated');
      } else {
        await record('approval.reminder', `reminder:${digest16}:${milestone.percent}`, { elapsedPercent: milestone.percent ?? null, approvals: approveCount(), required: current.requiredApprovals });
        await notify('reminder', milestone.percent !== undefined ? { elapsedPercent: milestone.percent } : {});
      }
    }
    // Checked in this order: a rejection wins over a quorum reached at the same moment, and an
    // approval accepted just before the deadline still counts.
    if (rejected()) {
      const by = approvals.find((a) => a.decision === 'reject');
      return { status: 'rejected', error: { type: 'ApprovalRejected', message: `rejected by ${by?.approver ?? 'an approver'}${by?.comment ? `: ${by.comment}` : ''}` } };
    }
    if (!quorum()) {
      return { status: 'expired', error: { type: 'ApprovalExpired', message: `${approveCount()} of ${current.requiredApprovals} approvals by ${approvalExpiresAt}; nothing was executed` } };
    }
    approvalStage = 'approved';
    return null;
  };

  /**
   * Applies one action; when a guardrail blocks it (kill switch, spent budget) the run pauses and
   * tries again once the guardrails clear (see pauseUntilClear).
   */
  const applyWithinGuardrails = async (current: Plan, action: Action): Promise<ApplyResult> => {
    for (;;) {
      try {
        return await mutations.applyAction({ runId, playbook: current.playbook, action, planDigest: current.digest });
      } catch (error) {
        const block = guardrailBlock(error);
        if (!block) throw error;
        await pauseUntilClear(current, action, block, 'executing');
      }
    }
  };

  /**
   * Undoes one action of a rollback; while an engaged kill switch stops it, the run pauses and tries
   * again on release, with no deadline (undoing spends no budget).
   */
  const undoWithinGuardrails = async (current: Plan, action: Action, rb: RollbackView, request: PendingRollback): Promise<UndoResult> => {
    for (;;) {
      try {
        return await undos.undoAction({
          runId,
          action,
          planDigest: current.digest,
          reason: `${rb.id}: ${request.reason}`,
          purpose: { kind: 'rollback', rollbackId: rb.id, requestedBy: request.requester, playbook: current.playbook },
        });
      } catch (error) {
        const block = guardrailBlock(error);
        if (!block) throw error;
        await pauseUntilClear(current, action, block, 'rolling_back');
      }
    }
  };

  /**
   * Holds the run `paused` until the guardrails let `action` start, then sets `resume`. A kill switch
   * holds it until released, however long that takes: it is a person's call to stop, and theirs to
   * let go. A spent budget holds it until the budget frees or the run's window (its approval window)
   * ends, which throws PausedTooLong: the run then ends without failing (expired, or compensated).
   */
  const pauseUntilClear = async (current: Plan, action: Action, first: GuardrailBlock, resume: 'observing' | 'executing' | 'rolling_back'): Promise<void> => {
    const deadline = decidedAt + decision!.approvalTimeoutMs;
    let block: GuardrailBlock = first;
    pausedReason = block.reason;
    await setStatus('paused', `${block.reason}: ${block.detail}`);
    for (;;) {
      const remaining = block.reason === 'kill-switch' ? Infinity : deadline - Date.now();
      if (remaining <= 0) throw failure('PausedTooLong', `paused (${block.reason}: ${block.detail}) until the run's window ended`);
      // A kill switch is looked at every few seconds; a budget when it frees (at least once a minute).
      await sleep(Math.min(Math.max(block.retryAfterMs, 1000), block.reason === 'kill-switch' ? 3000 : 60_000, remaining));
      const check = await local.checkGuardrails({ playbook: current.playbook, action, undo: resume === 'rolling_back' });
      if (check.clear) break;
      if (check.reason !== block.reason) await record('run.paused', `paused:${timeline.length}:${check.reason}`, { reason: check.reason, detail: check.detail });
      block = check;
      pausedReason = block.reason;
    }
    pausedReason = null;
    await setStatus(resume, 'guardrails clear again');
  };

  /**
   * Rolls back what an operator asked for: re-reads each target and leaves alone (drifted) any that
   * changed since the run; asks policy (and approvers, where it says) as the operator; then undoes the
   * rest in reverse order, with evidence, pausing before an undo while a kill switch stops it. The run
   * ends `rolled_back` when everything it changed is undone, `partially_rolled_back` when some is, and
   * keeps its status when nothing was.
   */
  const rollBack = async (request: PendingRollback): Promise<void> => {
    const current = plan!;
    const rb: RollbackView = {
      id: request.id,
      requestedBy: request.requester,
      reason: request.reason,
      requestedAt: now(),
      actions: [...request.actionIds],
      digest: null,
      status: 'checking',
      decision: null,
      approvals: [],
      results: [],
      finishedAt: null,
      error: null,
    };
    rollbacks.push(rb);
    activeRollback = rb;
    const close = async (next: RollbackView['status'], error: FailureInfo | null, reason: string): Promise<void> => {
      rb.status = next;
      rb.error = error;
      rb.finishedAt = now();
      await record('rollback.finished', `${rb.id}:finished`, { rollbackId: rb.id, status: next, results: rb.results.map((r) => ({ ...r })), error: error?.message ?? null }, request.requester);
      activeRollback = null;
      await setStatus(statusAfterRollback(), `${rb.id} ${next.replaceAll('_', ' ')}: ${reason}`);
    };
    await record('rollback.requested', `${rb.id}:requested`, { rollbackId: rb.id, reason: request.reason, actions: rb.actions, roles: request.roles }, request.requester);
    await setStatus('rolling_back', `${rb.id} requested by ${request.requester}: ${request.reason}`);
    try {
      const { checks, snapshot } = await reads.checkRollback({ runId, rollbackId: rb.id, plan: current, actionIds: rb.actions });
      for (const check of checks) {
        if (check.inPlace) continue;
        note(check.actionId, { status: 'drifted' }, [check.evidence]);
        rb.results.push({ actionId: check.actionId, outcome: 'drifted', detail: 'the target changed since the run; left as it is' });
      }
      const undoable = checks.filter((c) => c.inPlace).map((c) => c.actionId);
      if (undoable.length === 0) {
        await close('drifted', null, 'every target changed since the run; nothing was undone');
        return;
      }
      rb.digest = sha256Hex(canonicalJson({ runId, rollbackId: rb.id, planDigest: current.digest, actions: undoable }));
      rb.status = 'deciding';
      const requester: Identity = { name: request.requester, roles: request.roles };
      const verdict = await local.decideRollback({ runId, rollbackId: rb.id, digest: rb.digest, alert, plan: current, actionIds: undoable, snapshot, requestedBy: requester });
      rb.decision = decisionView(verdict, null, [], null);
      if (verdict.outcome === 'deny') {
        await close('denied', { type: 'PolicyDenied', message: verdict.reasons.join('; ') || 'policy denies the rollback' }, 'policy denies it');
        return;
      }
      if (verdict.outcome === 'approve') {
        rb.status = 'awaiting_approval';
        planRound ??= { decision, approvals: approvals.map((a) => ({ ...a })), approvalExpiresAt, approverRoles: [...approverRoles], approvalStage };
        decision = verdict;
        approvals.splice(0);
        noticeRefs = {};
        const undoing = current.actions
          .filter((a) => undoable.includes(a.id))
          .map((a) => ({ id: a.id, type: `undo ${a.type}`, target: a.target.display, change: `undo: ${describeActionChange(a)}` }));
        const refused = await awaitApprovals(verdict, { subject: 'rollback', digest: rb.digest, requester: request.requester, actions: undoing });
        rb.decision = currentDecisionView();
        rb.approvals = approvals.map((a) => ({ ...a }));
        round = null;
        if (refused) {
          await close(refused.status, refused.error, refused.error.message);
          return;
        }
        await setStatus('rolling_back', `${rb.id} approved`);
      }
      rb.status = 'rolling_back';
      for (const action of current.actions.filter((a) => undoable.includes(a.id)).reverse()) {
        try {
          // An engaged kill switch pauses the rollback before the undo, as it pauses a run's actions.
          const result = await undoWithinGuardrails(current, action, rb, request);
          note(action.id, { status: 'rolled_back' }, result.evidence);
          rb.results.push({ actionId: action.id, outcome: 'rolled_back' });
        } catch (error) {
          if (isCancellation(error)) throw error;
          const info = failureInfo(error);
          note(action.id, { status: 'rollback_failed', error: info });
          rb.results.push({ actionId: action.id, outcome: 'failed', detail: info.message });
        }
      }
      const failed = rb.results.filter((r) => r.outcome === 'failed').map((r) => r.actionId);
      const drifted = rb.results.some((r) => r.outcome === 'drifted');
      if (failed.length > 0) {
        await close('failed', { type: 'RollbackFailed', message: `could not undo ${failed.join(', ')}` }, `could not undo ${failed.join(', ')}`);
      } else {
        await close(drifted ? 'partially_rolled_back' : 'rolled_back', null, drifted ? 'drifted targets were left as they are' : 'every selected action was undone');
      }
      // Approvers of the rollback hear how it ended.
      if (rb.approvals.length > 0 && Object.keys(noticeRefs).length > 0) await notify('finished');
    } catch (error) {
      round = null;
      if (isCancellation(error)) {
        // Cancelling the run ends its window; what this rollback undid so far stays in the journal.
        await CancellationScope.nonCancellable(() => close('failed', { type: 'Cancelled', message: 'the run was cancelled during the rollback' }, 'cancelled'));
        throw error;
      }
      const info = failureInfo(error);
      await close('failed', info, info.message);
    }
  };

  /**
   * Opens the rollback window of a run about to complete, when it changed something and its playbook
   * allows rollbacks: done before the status says `completed`, so a rollback asked for at that very
   * moment finds the window open and the keys that verify it.
   */
  const openRollbackWindow = async (): Promise<void> => {
    const windowMs = decision?.guardrails.rollbackWindowMs ?? 0;
    if (windowMs <= 0 || rollbackable().length === 0) return;
    approvalKeys = await local.approvalVerifyKeys();
    rollbackUntil = Date.now() + windowMs;
  };

  /**
   * After a run completed having changed something, it stays open for its playbook's rollback window
   * (default 30 days), waiting for operators' rollback requests. Cancelling the run closes the window.
   */
  const offerRollback = async (): Promise<void> => {
    if (rollbackUntil === null) return;
    await record('rollback.window_opened', 'rollback-window:opened', { until: new Date(rollbackUntil).toISOString() });
    try {
      for (;;) {
        const remaining = rollbackUntil - Date.now();
        if (remaining <= 0) break;
        const wait = Math.min(remaining, KEY_REFRESH_MS);
        if (!(await condition(() => pendingRollback !== null, wait))) {
          // Keys rotate: read them again now and then while the window is long.
          if (wait < remaining) approvalKeys = await local.approvalVerifyKeys();
          continue;
        }
        const request = pendingRollback!;
        pendingRollback = null;
        await rollBack(request);
      }
    } catch (error) {
      if (!isCancellation(error)) throw error;
    }
    await CancellationScope.nonCancellable(() => record('rollback.window_closed', 'rollback-window:closed', { remaining: rollbackable().map((a) => a.id) }));
    rollbackUntil = Math.min(rollbackUntil, Date.now());
  };

  /**
   * Before the first change: waits `paused` while a guardrail stops the plan's first action, so that the
   * re-observation after it sees the target as it is when the run may act. False when the run ended
   * (`expired`: a spent budget outlasted its window, before any change).
   */
  const holdUntilGuardrailsClear = async (current: Plan): Promise<boolean> => {
    const first = current.actions[0]!;
    const check = await local.checkGuardrails({ playbook: current.playbook, action: first });
    if (check.clear) return true;
    try {
      await pauseUntilClear(current, first, check, 'observing');
      return true;
    } catch (error) {
      const info = failureInfo(error);
      if (info.type !== 'PausedTooLong') throw error;
      await finish('expired', info);
      return false;
    }
  };

  /** The run itself: it leaves `status` terminal, or throws (cancellation, or an unexpected failure). */
  const remediate = async (): Promise<void> => {
    // observeTarget writes `run.received` (the entry into `observing`) itself.
    let snapshot: AccountSnapshot = await reads.observeTarget({ runId, alert, requestedBy });
    upsertSearchAttributes([{ key: CordonTargets, value: snapshot.searchTargets ?? [snapshot.account.id, snapshot.account.userName] }]);

    await setStatus('planning');
    plan = await local.planRemediation({ runId, alert, snapshot });
    if (plan.actions.length === 0) {
      await finish('completed');
      return;
    }
    if (!(await decidePlan(plan, snapshot))) return;
    if (decision!.guardrails.mode === 'dry-run') {
      await finish('dry_run_completed');
      return;
    }

    // Approve (where policy says), then re-observe right before executing. If the target changed, the
    // plan is rebuilt; a new digest voids the approvals and is decided (and approved) again, so only
    // the approved actions on the approved targets ever run.
    for (let observation = 2; ; observation++) {
      if (decision!.outcome === 'approve') {
        const planActions = plan.actions.map((a) => ({ id: a.id, type: a.type, target: a.target.display, change: describeActionChange(a) }));
        const refused = await awaitApprovals(decision!, { subject: 'plan', digest: plan.digest, requester: requestedBy.name, actions: planActions });
        if (refused) {
          await finish(refused.status, refused.error);
          return;
        }
      }
      if (patched(GUARDRAILS_BEFORE_REOBSERVE) && !(await holdUntilGuardrailsClear(plan))) return;
      const account = { id: snapshot.account.id, ...(snapshot.account.kind !== undefined ? { kind: snapshot.account.kind } : {}) };
      const fresh = await reads.observeTarget({ runId, alert, requestedBy, account, attempt: observation });
      const freshPlan = await local.planRemediation({ runId, alert, snapshot: fresh });
      if (freshPlan.digest === plan.digest) break;
      if (observation > MAX_OBSERVATIONS) {
        await finish('failed', { type: 'PlanUnstable', message: `the target changed ${observation - 1} times before the plan could run` });
        return;
      }
      await record('plan.drifted', `drifted:${freshPlan.digest.slice(0, 16)}`, { from: plan.digest, to: freshPlan.digest, voidedApprovals: approvals.map((a) => a.approver) });
      voidedApprovals.push(...approvals.splice(0).map((a) => ({ ...a, planDigest: plan!.digest })));
      journal.splice(0);
      snapshot = fresh;
      plan = freshPlan;
      if (plan.actions.length === 0) {
        await finish('completed', null, 'the target was already remediated when re-observed');
        return;
      }
      if (!(await decidePlan(plan, snapshot, 'the target changed since the plan was made'))) return;
    }

    const currentPlan = plan;
    await setStatus('executing');
    let current: Action | undefined;
    let results: VerifyResult[];
    try {
      for (const action of currentPlan.actions) {
        current = action;
        undoStack.unshift(action);
        const result = await applyWithinGuardrails(currentPlan, action);
        note(action.id, { status: result.changed ? 'applied' : 'already_in_effect', changed: result.changed }, result.evidence);
      }
      current = undefined;
      await setStatus('verifying');
      results = await reads.verifyActions({ runId, plan: currentPlan });
    } catch (error) {
      const info = failureInfo(error);
      const cancelled = isCancellation(error);
      // A run that waited out its window before changing anything simply expired.
      const changedSomething = journal.some((j) => j.status === 'applied' || j.status === 'already_in_effect');
      if (info.type === 'PausedTooLong' && !changedSomething) {
        await finish('expired', info);
        return;
      }
      if (cancelled && !changedSomething) {
        await finish('cancelled', { type: 'Cancelled', message: 'the run was cancelled before any change' });
        throw error;
      }
      if (current) note(current.id, { status: 'failed', error: info });
      const reason = cancelled ? 'run cancelled' : current ? `action ${current.id} failed: ${info.message}` : `verification could not run: ${info.message}`;
      const undone = await compensate(reason);
      if (undone) {
        await finish('compensated', cancelled ? { type: 'Cancelled', message: 'the run was cancelled; its changes were undone' } : { type: info.type === 'PausedTooLong' ? 'PausedTooLong' : 'ActionFailed', message: reason });
      } else {
        await finish('needs_human', { type: 'CompensationFailed', message: `${reason}; at least one undo failed` });
      }
      if (cancelled) throw error;
      return;
    }

    for (const result of results) note(result.actionId, { status: result.ok ? 'verified' : 'verification_failed' }, [result.evidence]);
    const failed = results.filter((r) => !r.ok).map((r) => r.actionId);
    if (failed.length > 0) {
      const reason = `verification failed for ${failed.join(', ')}`;
      const undone = await compensate(reason);
      await finish('needs_human', { type: 'VerificationFailed', message: undone ? `${reason}; the changes were undone` : `${reason}; at least one undo failed too` });
      return;
    }

    await openRollbackWindow();
    await finish('completed');
  };

  try {
    await remediate();
  } catch (error) {
    if (isCancellation(error)) {
      if (!isTerminal[status]) await finish('cancelled', { type: 'Cancelled', message: 'the run was cancelled before any change' });
      throw error;
    }
    await finish('failed', failureInfo(error));
  }
  // `status` changes in handlers and helpers; TypeScript cannot see that here.
  if ((status as RunStatus) === 'completed') await offerRollback();
  return await end();

  /**
   * Waits for in-flight approval handlers, then ends the execution. Runs that need a person end as a
   * failed workflow execution, so they stand out in Temporal's own views too.
   */
  async function end(): Promise<RemediationOutcome> {
    await condition(allHandlersFinished);
    const outcome: RemediationOutcome = { runId, status, error: runError };
    if (status === 'needs_human' || status === 'failed') {
      throw ApplicationFailure.create({ type: runError?.type ?? 'Internal', message: runError?.message ?? status, nonRetryable: true, details: [outcome] });
    }
    return outcome;
  }
}
