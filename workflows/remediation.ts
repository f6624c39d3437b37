import {
  ActivityCancellationType,
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
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
import type { ApplyResult, GuardrailBlock, RecordInput, RemediationActivities, VerifyResult } from '../activities/remediation.js';
import {
  approvalSignatureProblem,
  SignedApproval,
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
  type ErrorType,
  type Evidence,
  type FailureInfo,
  type Identity,
  type JournalEntry,
  type PauseReason,
  type Plan,
  type Role,
  type RunId,
  type RunStatus,
  type RunView,
} from '../domain/index.js';
import { decideApprovalUpdate, getRunQuery } from './messages.js';
import { CordonStatus, CordonTargets } from './search-attributes.js';

/** What starts a remediation run. */
export interface RemediationInput {
  runId: RunId;
  playbook: string;
  alert: Alert;
  requestedBy: Identity;
  receivedAt: string;
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

  const record = async (kind: string, key: string, data: RecordInput['data'] = {}, actor = 'cordon') => {
    await local.recordEvents({ events: [{ runId, kind, actor, planDigest: plan?.digest ?? null, data, idemKey: `${runId}:${key}` }] });
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

  setHandler(getRunQuery, (): RunView => ({
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
    decision: decision && {
      outcome: decision.outcome,
      policies: decision.policies,
      requiredApprovals: decision.requiredApprovals,
      policySetHash: decision.policySetHash,
      reasons: decision.reasons,
      rejectionRule: decision.rejectionRule,
      escalation: decision.escalation,
      guardrails: decision.guardrails,
      approvalExpiresAt,
      // Who may decide now (wider once escalated), and where the approval stands.
      approverRoles: approverRoles.length > 0 ? approverRoles : decision.approverRoles,
      approvalStage,
    },
    approvals: approvals.map((a) => ({ ...a })),
    voidedApprovals: voidedApprovals.map((a) => ({ ...a })),
    pausedReason,
    journal: journal.map((j) => ({ ...j, evidence: [...j.evidence] })),
    timeline: [...timeline],
    error: runError,
  }));

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
      const next: RunStatus = rejected() ? 'rejected' : quorum() ? 'executing' : 'awaiting_approval';
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
        if (status !== 'awaiting_approval' || plan === null || decision === null) {
          throw failure('RunNotAwaitingApproval', `run ${runId} is ${status}, not awaiting approval`);
        }
        // Only the API can sign: an update sent around it, altered, replayed or late is refused here.
        const forged = approvalSignatureProblem(request, approvalKeys, runId, Date.now());
        if (forged) throw failure('ForgedApproval', forged);
        if (usedNonces.has(request.nonce)) throw failure('ForgedApproval', 'this signed approval was already used');
        if (request.planDigest !== plan.digest) {
          throw failure('StalePlanDigest', `plan digest ${request.planDigest} is not the current plan ${plan.digest}`);
        }
        if (request.approver === requestedBy.name) {
          throw failure('SeparationOfDuties', `${request.approver} requested run ${runId} and cannot decide on it`);
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
      requestedBy: requestedBy.name,
      plan: {
        digest: plan.digest,
        actions: plan.actions.map((a) => ({ id: a.id, type: a.type, target: a.target.display, change: describeActionChange(a) })),
      },
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
   * Waits for a quorum, reminding approvers at 50% and 80% of the window and widening the approvers to
   * the escalation roles when the policy says so. Ends the run `rejected` or `expired` (never approved
   * by default) and answers false otherwise.
   */
  const awaitApprovals = async (current: Decision): Promise<boolean> => {
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
      const next = milestones[0];
      const remaining = Math.min(deadline, next?.at ?? deadline) - Date.now();
      const woke = remaining > 0 && (await condition(() => approvals.length > recorded || rejected() || quorum(), remaining));
      // Each decision goes to the ledger as it arrives, including those that never reach a quorum.
      for (; recorded < approvals.length; recorded++) {
        const approval = approvals[recorded]!;
        await record(
          'approval.recorded',
          `approval:${plan!.digest.slice(0, 16)}:${approval.approver}`,
          { decision: approval.decision, channel: approval.channel, comment: approval.comment ?? null, at: approval.at, approvals: approvals.slice(0, recorded + 1).filter((a) => a.decision === 'approve').length, required: current.requiredApprovals },
          approval.approver,
        );
        await notify('decision');
      }
      if (rejected() || quorum() || Date.now() >= deadline) break;
      if (woke || !next || Date.now() < next.at) continue;
      milestones.shift();
      approvalStage = next.stage;
      if (next.stage === 'escalated') {
        approverRoles = [...new Set([...approverRoles, ...(current.escalation?.roles ?? [])])].sort();
        await record('approval.escalated', `escalated:${plan!.digest.slice(0, 16)}`, { roles: approverRoles, afterMs: current.escalation?.afterMs ?? null });
        await notify('escalated');
      } else {
        await record('approval.reminder', `reminder:${plan!.digest.slice(0, 16)}:${next.percent}`, { elapsedPercent: next.percent ?? null, approvals: approveCount(), required: current.requiredApprovals });
        await notify('reminder', next.percent !== undefined ? { elapsedPercent: next.percent } : {});
      }
    }
    // Checked in this order: a rejection wins over a quorum reached at the same moment, and an
    // approval accepted just before the deadline still counts.
    if (rejected()) {
      const by = approvals.find((a) => a.decision === 'reject');
      await finish('rejected', { type: 'ApprovalRejected', message: `rejected by ${by?.approver ?? 'an approver'}${by?.comment ? `: ${by.comment}` : ''}` });
      return false;
    }
    if (!quorum()) {
      await finish('expired', { type: 'ApprovalExpired', message: `${approveCount()} of ${current.requiredApprovals} approvals by ${approvalExpiresAt}; nothing was executed` });
      return false;
    }
    approvalStage = 'approved';
    return true;
  };

  /**
   * Applies one action; when a guardrail blocks it (kill switch, spent budget) the run pauses and
   * tries again once the guardrails clear, until the run's window (its approval window) ends.
   */
  const applyWithinGuardrails = async (current: Plan, action: Action): Promise<ApplyResult> => {
    for (;;) {
      try {
        return await mutations.applyAction({ runId, playbook: current.playbook, action, planDigest: current.digest });
      } catch (error) {
        const block = guardrailBlock(error);
        if (!block) throw error;
        await pauseUntilClear(current, action, block);
      }
    }
  };

  const pauseUntilClear = async (current: Plan, action: Action, first: GuardrailBlock): Promise<void> => {
    const deadline = decidedAt + decision!.approvalTimeoutMs;
    let block: GuardrailBlock = first;
    pausedReason = block.reason;
    await setStatus('paused', `${block.reason}: ${block.detail}`);
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw failure('PausedTooLong', `paused (${block.reason}: ${block.detail}) until the run's window ended`);
      // A kill switch is looked at every few seconds; a budget when it frees (at least once a minute).
      await sleep(Math.min(Math.max(block.retryAfterMs, 1000), block.reason === 'kill-switch' ? 3000 : 60_000, remaining));
      const check = await local.checkGuardrails({ playbook: current.playbook, action });
      if (check.clear) break;
      if (check.reason !== block.reason) await record('run.paused', `paused:${timeline.length}:${check.reason}`, { reason: check.reason, detail: check.detail });
      block = check;
      pausedReason = block.reason;
    }
    pausedReason = null;
    await setStatus('executing', 'guardrails clear again');
  };

  /** The run itself: it leaves `status` terminal, or throws (cancellation, or an unexpected failure). */
  const remediate = async (): Promise<void> => {
    // observeTarget writes `run.received` (the entry into `observing`) itself.
    let snapshot: AccountSnapshot = await reads.observeTarget({ runId, alert, requestedBy });
    upsertSearchAttributes([{ key: CordonTargets, value: [snapshot.account.id, snapshot.account.userName] }]);

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
      if (decision!.outcome === 'approve' && !(await awaitApprovals(decision!))) return;
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
