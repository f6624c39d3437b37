import { ApplicationFailure } from '@temporalio/activity';
import {
  CordonError,
  planDigest,
  scopeAffects,
  type AccountSnapshot,
  type Action,
  type Alert,
  type ApprovalVerifyKey,
  type BudgetUsage,
  type Decision,
  type Evidence,
  type Identity,
  type KillSwitchState,
  type PauseReason,
  type Plan,
  type RunMode,
} from '../domain/index.js';
import { playbookForKind, playbookNamed } from '../playbooks/registry.js';
import { objectOf, observedState } from '../playbooks/actions.js';
import { accountTarget } from '../playbooks/types.js';
import type { PolicyEngine } from '../policies/engine.js';
import { decideRun, noGuardrails, planConnectors, type Guardrails } from '../policies/guardrails.js';
import type { GuardrailState } from '../store/guardrail-state.js';
import type { Ledger, LedgerData } from '../store/ledger.js';
import type { AccountHandle, AccountRef, ChangeResult, DirectoryConnector } from './connectors/types.js';
import type { ApprovalNotice, ApprovalNotifier } from './notify/types.js';
import { heartbeatIfActivity, withTypedFailures } from './failures.js';

/** What the remediation activities are built from. Tests pass real peers or wrapped ones. */
export interface RemediationDeps {
  connectors: Readonly<Record<string, DirectoryConnector>>;
  ledger: Ledger;
  policy: PolicyEngine;
  /** Caps, budgets, autonomy and rate limits; none when absent. */
  guardrails?: Guardrails;
  /** Kill switches and budget reservations; required when guardrails define budgets. */
  guardrailState?: GuardrailState;
  /** Public keys that verify the API's signature on approvals; none means no approval can be accepted. */
  approvalKeys?: readonly ApprovalVerifyKey[];
  /** Channels that tell approvers (Slack); the ledger records every stage whatever they do. */
  notifiers?: readonly ApprovalNotifier[];
  /** Blinds the identities runs are found by (with payload encryption); in clear when absent. */
  searchIndex?: (value: string) => string;
}

/** Why a mutation may not start now, as GuardrailBlocked failures carry it. */
export interface GuardrailBlock {
  reason: PauseReason;
  detail: string;
  /** When to look again; budgets know when they free. */
  retryAfterMs: number;
}

/** Whether the guardrails let a run's next mutation start. */
export type GuardrailCheck = { clear: true } | ({ clear: false } & GuardrailBlock);

/** What a policy simulation shows: the plan against the live target and what would be decided. */
export interface SimulationResult {
  playbook: string;
  target: { system: string; id: string; userName: string; active: boolean; groups: string[] };
  plan: Plan;
  decision: Decision;
}

/** The result of applying one action. */
export interface ApplyResult {
  actionId: string;
  /** False when the target was already in the post-state and this run did not change it. */
  changed: boolean;
  evidence: Evidence[];
}

/** The result of verifying one action against a fresh read. */
export interface VerifyResult {
  actionId: string;
  ok: boolean;
  evidence: Evidence;
}

/** What the drift check before a rollback found for one action. */
export interface RollbackCheck {
  actionId: string;
  /** Whether the target is still as the run left it; false when someone changed it since. */
  inPlace: boolean;
  evidence: Evidence;
}

/**
 * Why an undo is made: a failed run compensating, or an operator rolling back a completed run. A
 * rollback names the run's playbook, whose kill switch stops it (absent in requests of runs started
 * before it was sent: every playbook's switch then stops it).
 */
export type UndoPurpose = { kind: 'compensation' } | { kind: 'rollback'; rollbackId: string; requestedBy: string; playbook?: string };

/** Policies whose re-attachment restores administrator-level access. */
const isPrivilegedPolicy = (name: string): boolean => name === 'AdministratorAccess' || name.endsWith('FullAccess');

/** The result of undoing one action. */
export interface UndoResult {
  actionId: string;
  status: 'compensated' | 'compensation_skipped' | 'not_started' | 'rolled_back';
  changed: boolean;
  reason: string;
  evidence: Evidence[];
}

/** A transition or event the workflow asks to have written to the ledger. */
export interface RecordInput {
  runId: string;
  kind: string;
  actor: string;
  planDigest?: string | null;
  data?: LedgerData;
  /** Makes the write idempotent across activity retries and workflow replays. */
  idemKey: string;
}

const SYSTEM_ACTOR = 'cordon';

/** The handle a connector needs for a target: its immutable id, the system's name for it, its kind. */
function handleOf(target: { id: string; name?: string | undefined; kind?: AccountHandle['kind'] }): AccountHandle {
  return { id: target.id, ...(target.name !== undefined ? { name: target.name } : {}), ...(target.kind !== undefined ? { kind: target.kind } : {}) };
}

/** How to read a target's account again: by its immutable id, with its kind (IAM users and roles differ). */
function refOf(target: { id: string; kind?: AccountRef['kind'] }): AccountRef {
  return { id: target.id, ...(target.kind !== undefined ? { kind: target.kind } : {}) };
}

/** A connector operation a playbook needs; refused (not retryable) when the connector does not offer it. */
function operation<K extends keyof DirectoryConnector>(connector: DirectoryConnector, name: K): NonNullable<DirectoryConnector[K]> {
  const fn = connector[name];
  if (typeof fn !== 'function') throw new CordonError('UnsupportedOperation', `the ${connector.system} connector cannot ${String(name)}`);
  return (fn as (...args: unknown[]) => unknown).bind(connector) as NonNullable<DirectoryConnector[K]>;
}

/** The idempotency key of an action within a run and a plan. */
export function actionKey(runId: string, actionId: string, digest: string): string {
  return `${runId}:${actionId}:${digest.slice(0, 16)}`;
}

/**
 * Builds the activities of the remediation workflow. Reads and writes go through the connectors;
 * every step is written to the ledger under an idempotency key, so retries add nothing.
 */
export function createRemediationActivities(deps: RemediationDeps) {
  const { ledger, policy } = deps;
  const guardrails = deps.guardrails ?? noGuardrails();
  const state = deps.guardrailState;
  if (!state && guardrails.file.budgets.length > 0) throw new Error('guardrail budgets need a guardrail state store');

  /**
   * The engaged kill switches that cover this playbook on these connectors. Without a playbook (an undo
   * requested before requests named it) every playbook's switch covers it: fail closed.
   */
  const killSwitchesFor = async (playbook: string | undefined, connectors: readonly string[]): Promise<KillSwitchState[]> =>
    state
      ? (await state.killSwitches()).filter((k) => k.engaged && ((playbook === undefined && k.scope.kind === 'playbook') || scopeAffects(k.scope, { playbook: playbook ?? '', connectors })))
      : [];

  /** Why an engaged kill switch stops a mutation of this playbook on this connector, if one does. */
  const killSwitchBlock = async (playbook: string | undefined, connector: string): Promise<GuardrailBlock | undefined> => {
    const first = (await killSwitchesFor(playbook, [connector]))[0];
    if (!first) return undefined;
    return { reason: 'kill-switch', detail: `kill switch ${first.scope.kind}${first.scope.kind === 'global' ? '' : ` ${first.scope.name}`} engaged by ${first.actor}: ${first.reason}`, retryAfterMs: 3000 };
  };

  /**
   * Checks, and with `reserveKey` reserves, what one mutation needs: no engaged kill switch, budget
   * left. A reservation answers with the budgets' usage including it, for the decision record.
   */
  const checkMutation = async (playbook: string, action: Action, reserveKey?: string): Promise<{ clear: true; budgets: BudgetUsage[] } | ({ clear: false } & GuardrailBlock)> => {
    const stopped = await killSwitchBlock(playbook, action.target.system);
    if (stopped) return { clear: false, ...stopped };
    const budgets = guardrails.budgetsFor(action.type, playbook, action.target.system);
    if (budgets.length === 0 || !state) return { clear: true, budgets: [] };
    if (reserveKey === undefined) {
      const usage = await state.usage(budgets);
      const full = usage.find((u) => u.used >= u.limit);
      return full ? { clear: false, reason: 'budget', detail: `budget ${full.name} is spent (${full.used} of ${full.limit})`, retryAfterMs: 5000 } : { clear: true, budgets: usage };
    }
    const reservation = await state.reserve(budgets, reserveKey);
    if (reservation.ok) return { clear: true, budgets: reservation.budgets };
    return { clear: false, reason: 'budget', detail: `budget ${reservation.budget} is spent (${reservation.used} of ${reservation.limit})`, retryAfterMs: reservation.retryAfterMs };
  };

  /** The decision for a plan, with the live guardrail state it was made under. */
  const decide = async (request: { alert: Alert; plan: Plan; snapshot: AccountSnapshot; requestedBy: Identity; mode: RunMode }): Promise<Decision> => {
    const budgets: BudgetUsage[] = state ? await state.usage(guardrails.budgetsForPlan(request.plan)) : [];
    const killSwitches = await killSwitchesFor(request.plan.playbook, planConnectors(request.plan));
    return decideRun(policy, guardrails, request, { mode: request.mode, budgets, killSwitches });
  };

  const playbookOf = (alert: Alert) => {
    const playbook = playbookForKind(alert.kind);
    if (!playbook) throw new CordonError('UnknownPlaybook', `no playbook handles alert kind ${alert.kind}`);
    return playbook;
  };

  /**
   * Reads what the playbook needs: the subject (or, first, the owner of a leaked credential, found by
   * the credential itself), plus the quarantine policy, stale entitlements and the population when
   * they are needed. Only reads: a dry run, or a plan that is never approved, changes nothing.
   * `subject` overrides the alert's (re-observation by immutable id).
   */
  const observe = async (alert: Alert, subject?: AccountRef): Promise<AccountSnapshot> => {
    const connector = connectorFor(alert.subject.system);
    const playbook = playbookOf(alert);
    let ref: AccountRef = subject ?? alert.subject;
    const request = playbook.observe?.(alert) ?? { kind: 'subject' };
    if (subject === undefined && request.kind === 'credential-owner') {
      ref = (await operation(connector, 'findCredential')(request.credentialId)).owner;
    }
    let snapshot = await connector.readAccount(ref);
    const account = handleOf(snapshot.account);
    // A directory (LDAP, SCIM) has no permission policies: its playbooks quarantine by other means.
    if (playbook.needsQuarantinePolicy && connector.quarantinePolicy) {
      const policy = await connector.quarantinePolicy(account);
      snapshot = { ...snapshot, quarantinePolicy: { id: policy.id, displayName: policy.displayName } };
    }
    const unusedForDays = playbook.staleAfterDays?.(alert);
    if (unusedForDays !== undefined) {
      if (typeof connector.staleEntitlements !== 'function') {
        throw new CordonError(
          'AlertIncomplete',
          `the ${connector.system} connector records no use of entitlements, so an ${alert.kind} alert for it needs entitlements: [{ kind: "group" | "policy", name }]`,
          { field: 'entitlements' },
        );
      }
      snapshot = { ...snapshot, stale: { unusedForDays, entitlements: await connector.staleEntitlements(account, unusedForDays) } };
    }
    if (guardrails.forPlaybook(playbook.name).maxTargetsPerRun?.percentOfPopulation !== undefined) {
      snapshot = { ...snapshot, population: await operation(connector, 'countAccounts')() };
    }
    return snapshot;
  };

  const planFor = (alert: Alert, snapshot: AccountSnapshot): Plan => {
    const playbook = playbookOf(alert);
    const actions = playbook.plan(alert, snapshot, { privilegedGroups: guardrails.forPlaybook(playbook.name).privilegedGroups });
    return { playbook: playbook.name, targets: [accountTarget(snapshot)], actions, digest: planDigest(actions), observedAt: snapshot.observedAt };
  };

  const connectorFor = (system: string): DirectoryConnector => {
    const connector = deps.connectors[system];
    if (!connector) {
      throw new CordonError('UnknownSystem', `no connector is configured for system "${system}" (configured: ${Object.keys(deps.connectors).join(', ') || 'none'})`);
    }
    return connector;
  };

  const accountEvidence = (kind: Evidence['kind'], snapshot: AccountSnapshot, action: Action): Evidence => ({ kind, at: snapshot.observedAt, observed: observedState(action, snapshot) });

  /** Makes an action's change (`restore` false) or undoes it (`restore` true). */
  const apply = async (connector: DirectoryConnector, action: Action, restore: boolean): Promise<ChangeResult> => {
    const account = handleOf(action.target);
    switch (action.type) {
      case 'DisableAccount':
        return operation(connector, 'setAccountActive')(account, restore);
      case 'RemoveGroupMembership':
        return restore
          ? operation(connector, 'addGroupMember')(handleOf(action.group), account)
          : operation(connector, 'removeGroupMember')(handleOf(action.group), account);
      case 'DeactivateCredential':
        return operation(connector, 'setCredentialActive')(account, action.credential.id, restore);
      case 'AttachQuarantinePolicy':
        return restore ? operation(connector, 'detachPolicy')(account, handleOf(action.policy)) : operation(connector, 'attachPolicy')(account, handleOf(action.policy));
      case 'DetachPolicy':
        return restore ? operation(connector, 'attachPolicy')(account, handleOf(action.policy)) : operation(connector, 'detachPolicy')(account, handleOf(action.policy));
    }
  };

  return withTypedFailures({
    /** Reads the alert's subject from its system of record. */
    /**
     * Reads the alert's subject from its system of record. A re-observation (`attempt` > 1) reads the
     * account by the immutable id the plan was built on, never by a name that may now mean someone else.
     */
    async observeTarget(input: { runId: string; alert: Alert; requestedBy: Identity; account?: { id: string; kind?: AccountRef['kind'] }; attempt?: number }): Promise<AccountSnapshot> {
      const { runId, alert, requestedBy } = input;
      const attempt = input.attempt ?? 1;
      await ledger.appendOnce({
        idemKey: `${runId}:received`,
        kind: 'run.received',
        actor: requestedBy.name,
        runId,
        data: { alert, requestedBy: requestedBy.name },
      });
      const observed = await observe(alert, input.account);
      const searchTargets = [observed.account.id, observed.account.userName].map((value) => deps.searchIndex?.(value) ?? value);
      const snapshot: AccountSnapshot = { ...observed, searchTargets };
      await ledger.appendOnce({
        idemKey: attempt === 1 ? `${runId}:observed` : `${runId}:observed:${attempt}`,
        kind: 'run.observed',
        actor: SYSTEM_ACTOR,
        runId,
        data: {
          attempt,
          account: { id: snapshot.account.id, userName: snapshot.account.userName, active: snapshot.account.active },
          groups: snapshot.groups.map((g) => g.displayName),
          ...(snapshot.population !== undefined ? { population: snapshot.population } : {}),
        },
      });
      return snapshot;
    },

    /** Turns a snapshot into the exact actions of the alert's playbook. */
    async planRemediation(input: { runId: string; alert: Alert; snapshot: AccountSnapshot }): Promise<Plan> {
      const { runId, alert, snapshot } = input;
      const plan = planFor(alert, snapshot);
      const actions = plan.actions;
      await ledger.appendOnce({
        idemKey: `${runId}:planned:${plan.digest}`,
        kind: 'run.planned',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: plan.digest,
        data: { playbook: plan.playbook, actions: actions.map((a) => ({ id: a.id, type: a.type, target: a.target.id, group: a.type === 'RemoveGroupMembership' ? a.group.display : null })) },
      });
      return plan;
    },

    /** Asks policy and the guardrails what may happen to each action, and records why. */
    async decidePolicy(input: { runId: string; alert: Alert; plan: Plan; snapshot: AccountSnapshot; requestedBy: Identity; mode: RunMode }): Promise<Decision> {
      const decision = await decide(input);
      await ledger.appendOnce({
        idemKey: `${input.runId}:decided:${input.plan.digest}`,
        kind: 'policy.decided',
        actor: SYSTEM_ACTOR,
        runId: input.runId,
        planDigest: input.plan.digest,
        data: {
          outcome: decision.outcome,
          policies: decision.policies,
          requiredApprovals: decision.requiredApprovals,
          approverRoles: decision.approverRoles,
          policySetHash: decision.policySetHash,
          reasons: decision.reasons,
          perAction: decision.perAction.map((d) => ({ actionId: d.actionId, outcome: d.outcome, policies: d.policies })),
          guardrails: decision.guardrails,
        },
      });
      return decision;
    },

    /** The keys that verify approvals now (read when a run starts waiting, so keys can rotate). */
    async approvalVerifyKeys(): Promise<ApprovalVerifyKey[]> {
      return [...(deps.approvalKeys ?? [])];
    },

    /**
     * Tells approvers where a run's approval stands, on every configured channel. Returns each
     * channel's message reference; a channel that fails is reported in `failed`, not thrown.
     */
    async notifyApprovers(input: { notice: ApprovalNotice; refs: Record<string, string> }): Promise<{ refs: Record<string, string>; failed: string[] }> {
      const refs: Record<string, string> = { ...input.refs };
      const failed: string[] = [];
      for (const notifier of deps.notifiers ?? []) {
        heartbeatIfActivity();
        try {
          const ref = input.refs[notifier.channel];
          const answer = await notifier.notify(ref !== undefined ? { ...input.notice, messageRef: ref } : input.notice);
          if (answer.messageRef !== undefined) refs[notifier.channel] = answer.messageRef;
        } catch (error) {
          failed.push(`${notifier.channel}: ${(error as Error).message}`);
        }
      }
      return { refs, failed };
    },

    /**
     * Whether the next mutation of a paused run may start: kill switches released and budget left; for
     * an undo of a rollback (`undo`), kill switches only (undoing spends no budget).
     */
    async checkGuardrails(input: { playbook: string; action: Action; undo?: boolean }): Promise<GuardrailCheck> {
      if (input.undo === true) {
        const stopped = await killSwitchBlock(input.playbook, input.action.target.system);
        return stopped ? { clear: false, ...stopped } : { clear: true };
      }
      const check = await checkMutation(input.playbook, input.action);
      return check.clear ? { clear: true } : check;
    },

    /**
     * Applies one action, idempotently: the connector checks the current state before acting, and
     * the ledger remembers that this run started the action, so a retry after a crash recognises its
     * own earlier change instead of acting twice.
     */
    async applyAction(input: { runId: string; playbook: string; action: Action; planDigest: string }): Promise<ApplyResult> {
      const { runId, action, planDigest: digest } = input;
      const key = actionKey(runId, action.id, digest);
      const connector = connectorFor(action.target.system);
      // Guardrails, right before the call: an engaged kill switch or a spent budget stops it here.
      const check = await checkMutation(input.playbook, action, key);
      if (!check.clear) {
        const block: GuardrailBlock = { reason: check.reason, detail: check.detail, retryAfterMs: check.retryAfterMs };
        throw ApplicationFailure.create({ type: 'GuardrailBlocked', message: check.detail, nonRetryable: true, details: [block] });
      }
      // The budgets' usage once this mutation's reservation is made: what the run acted within.
      const budgets = check.budgets;
      const started = await ledger.appendOnce({
        idemKey: `${key}:started`,
        kind: 'action.started',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: digest,
        data: { actionId: action.id, type: action.type, target: action.target.id, budgets },
      });
      heartbeatIfActivity();
      const at = new Date().toISOString();
      const result = await apply(connector, action, false);
      // Already in the post-state: ours if an earlier attempt of this very action got that far.
      const changed = result.changed || !started.created;
      // The connector's own check read is the "before" evidence; verification re-reads for the "after".
      const evidence: Evidence[] = [{ kind: 'before', at, observed: { ...objectOf(action), ...result.before } }];
      await ledger.appendOnce({
        idemKey: `${key}:applied`,
        kind: 'action.applied',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: digest,
        data: { actionId: action.id, type: action.type, target: action.target.id, changed, before: evidence[0]!.observed, budgets },
      });
      return { actionId: action.id, changed, evidence };
    },

    /** Re-reads the target and checks every action's post-state. */
    async verifyActions(input: { runId: string; plan: Plan }): Promise<VerifyResult[]> {
      const { runId, plan } = input;
      const playbook = playbookNamed(plan.playbook);
      const results: VerifyResult[] = [];
      const fresh = new Map<string, AccountSnapshot>();
      for (const action of plan.actions) {
        let snapshot = fresh.get(action.target.id);
        if (!snapshot) {
          snapshot = await connectorFor(action.target.system).readAccount(refOf(action.target));
          fresh.set(action.target.id, snapshot);
        }
        const verdict = playbook.verify(action, snapshot);
        const evidence: Evidence = { kind: 'verification', at: snapshot.observedAt, observed: verdict.observed };
        results.push({ actionId: action.id, ok: verdict.ok, evidence });
        await ledger.appendOnce({
          idemKey: `${actionKey(runId, action.id, plan.digest)}:verified`,
          kind: verdict.ok ? 'action.verified' : 'action.verification_failed',
          actor: SYSTEM_ACTOR,
          runId,
          planDigest: plan.digest,
          data: { actionId: action.id, observed: verdict.observed },
        });
      }
      return results;
    },

    /**
     * Before a rollback: re-reads each target and checks that every action's change still holds, that
     * is, the target is as the run left it. An action whose target changed since has drifted and must
     * not be undone over someone else's change.
     */
    async checkRollback(input: { runId: string; rollbackId: string; plan: Plan; actionIds: string[] }): Promise<{ checks: RollbackCheck[]; snapshot: AccountSnapshot }> {
      const { runId, rollbackId, plan } = input;
      const playbook = playbookNamed(plan.playbook);
      const actions = plan.actions.filter((a) => input.actionIds.includes(a.id));
      const fresh = new Map<string, AccountSnapshot>();
      const checks: RollbackCheck[] = [];
      for (const action of actions) {
        let snapshot = fresh.get(action.target.id);
        if (!snapshot) {
          snapshot = await connectorFor(action.target.system).readAccount(refOf(action.target));
          fresh.set(action.target.id, snapshot);
        }
        const verdict = playbook.verify(action, snapshot);
        checks.push({ actionId: action.id, inPlace: verdict.ok, evidence: { kind: 'drift', at: snapshot.observedAt, observed: verdict.observed } });
      }
      const snapshot = fresh.get(plan.targets[0]?.id ?? '') ?? [...fresh.values()][0];
      if (!snapshot) throw new CordonError('UnknownAction', `rollback ${rollbackId} names no action of run ${runId}`);
      await ledger.appendOnce({
        idemKey: `${runId}:${rollbackId}:checked`,
        kind: 'rollback.checked',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: plan.digest,
        data: {
          rollbackId,
          inPlace: checks.filter((c) => c.inPlace).map((c) => c.actionId),
          drifted: checks.filter((c) => !c.inPlace).map((c) => ({ actionId: c.actionId, observed: c.evidence.observed })),
        },
      });
      return { checks, snapshot };
    },

    /**
     * Asks policy whether the operator may undo these actions: each is decided as a `Rollback`, marked
     * privileged when undoing it restores privileged access (a privileged group, an administrator or
     * full-access policy, or anything on the account of someone who held a privileged group).
     */
    async decideRollback(input: { runId: string; rollbackId: string; digest: string; alert: Alert; plan: Plan; actionIds: string[]; snapshot: AccountSnapshot; requestedBy: Identity }): Promise<Decision> {
      const { runId, rollbackId, plan } = input;
      const privilegedGroups = guardrails.forPlaybook(plan.playbook).privilegedGroups;
      const heldPrivilege = new Set(
        plan.actions.filter((a) => (a.type === 'RemoveGroupMembership' && privilegedGroups.includes(a.group.display)) || (a.type === 'DetachPolicy' && isPrivilegedPolicy(a.policy.display))).map((a) => a.target.id),
      );
      const actions = plan.actions.filter((a) => input.actionIds.includes(a.id));
      const privileged = actions.filter((a) => heldPrivilege.has(a.target.id)).map((a) => a.id);
      const rollbackPlan: Plan = { ...plan, actions, digest: input.digest };
      const killSwitches = await killSwitchesFor(plan.playbook, planConnectors(rollbackPlan));
      const decision = decideRun(policy, guardrails, { alert: input.alert, plan: rollbackPlan, snapshot: input.snapshot, requestedBy: input.requestedBy, rollback: { privileged } }, { mode: 'live', budgets: [], killSwitches });
      await ledger.appendOnce({
        idemKey: `${runId}:${rollbackId}:decided`,
        kind: 'rollback.decided',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: input.digest,
        data: {
          rollbackId,
          requestedBy: input.requestedBy.name,
          outcome: decision.outcome,
          policies: decision.policies,
          requiredApprovals: decision.requiredApprovals,
          approverRoles: decision.approverRoles,
          policySetHash: decision.policySetHash,
          reasons: decision.reasons,
          privileged,
          perAction: decision.perAction.map((d) => ({ actionId: d.actionId, outcome: d.outcome, policies: d.policies })),
          guardrails: decision.guardrails,
        },
      });
      return decision;
    },

    /**
     * Undoes one action, if this run changed the target: an action never started, or one that found
     * its change already in effect, is left alone. A rollback's undo is recorded as such, with the
     * operator who asked for it, and is a mutation like any other: an engaged kill switch stops it
     * right before the call (GuardrailBlocked). Compensation is not stopped: it restores the state a
     * failed run found, and leaving a run half done is the greater harm.
     */
    async undoAction(input: { runId: string; action: Action; planDigest: string; reason: string; purpose?: UndoPurpose }): Promise<UndoResult> {
      const { runId, action, planDigest: digest, reason } = input;
      const purpose: UndoPurpose = input.purpose ?? { kind: 'compensation' };
      const key = actionKey(runId, action.id, digest);
      const started = await ledger.findByIdemKey(`${key}:started`);
      if (!started) return { actionId: action.id, status: 'not_started', changed: false, reason: 'the action never started', evidence: [] };
      const applied = await ledger.findByIdemKey(`${key}:applied`);
      if (applied && applied.data.changed === false) {
        await ledger.appendOnce({
          idemKey: `${key}:compensated`,
          kind: 'action.compensation_skipped',
          actor: SYSTEM_ACTOR,
          runId,
          planDigest: digest,
          data: { actionId: action.id, reason: 'the change was already in effect before this run' },
        });
        return { actionId: action.id, status: 'compensation_skipped', changed: false, reason: 'the change was already in effect before this run', evidence: [] };
      }
      const connector = connectorFor(action.target.system);
      if (purpose.kind === 'rollback') {
        const stopped = await killSwitchBlock(purpose.playbook, action.target.system);
        if (stopped) throw ApplicationFailure.create({ type: 'GuardrailBlocked', message: stopped.detail, nonRetryable: true, details: [stopped] });
      }
      heartbeatIfActivity();
      const result = await apply(connector, action, true);
      const after = await connector.readAccount(refOf(action.target));
      if (purpose.kind === 'rollback') {
        const evidence = accountEvidence('rollback', after, action);
        await ledger.appendOnce({
          idemKey: `${key}:${purpose.rollbackId}:rolled_back`,
          kind: 'action.rolled_back',
          actor: purpose.requestedBy,
          runId,
          planDigest: digest,
          data: { actionId: action.id, type: action.type, rollbackId: purpose.rollbackId, changed: result.changed, reason, after: evidence.observed },
        });
        return { actionId: action.id, status: 'rolled_back', changed: result.changed, reason, evidence: [evidence] };
      }
      const evidence = accountEvidence('compensation', after, action);
      await ledger.appendOnce({
        idemKey: `${key}:compensated`,
        kind: 'action.compensated',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: digest,
        data: { actionId: action.id, type: action.type, changed: result.changed, reason, after: evidence.observed },
      });
      return { actionId: action.id, status: 'compensated', changed: result.changed, reason, evidence: [evidence] };
    },

    /**
     * Observes the target, plans and decides as a run would, without starting one and without
     * changing anything; the ledger records who simulated what.
     */
    async simulateRemediation(input: { alert: Alert; requestedBy: Identity; simulationId: string }): Promise<SimulationResult> {
      const { alert, requestedBy } = input;
      const snapshot = await observe(alert, alert.subject);
      const plan = planFor(alert, snapshot);
      const decision = await decide({ alert, plan, snapshot, requestedBy, mode: alert.mode ?? 'live' });
      await ledger.appendOnce({
        idemKey: `${input.simulationId}:simulated`,
        kind: 'policy.simulated',
        actor: requestedBy.name,
        runId: null,
        planDigest: plan.digest,
        data: {
          simulationId: input.simulationId,
          alert,
          outcome: decision.outcome,
          policies: decision.policies,
          perAction: decision.perAction.map((d) => ({ actionId: d.actionId, outcome: d.outcome, policies: d.policies })),
          policySetHash: decision.policySetHash,
          guardrailsHash: decision.guardrails.guardrailsHash,
          guardrails: decision.guardrails,
        },
      });
      return {
        playbook: plan.playbook,
        target: { system: snapshot.system, id: snapshot.account.id, userName: snapshot.account.userName, active: snapshot.account.active, groups: snapshot.groups.map((g) => g.displayName) },
        plan,
        decision,
      };
    },

    /** Writes workflow transitions and approvals to the ledger (idempotent by key). */
    async recordEvents(input: { events: RecordInput[] }): Promise<void> {
      for (const event of input.events) {
        await ledger.appendOnce({
          idemKey: event.idemKey,
          kind: event.kind,
          actor: event.actor,
          runId: event.runId,
          planDigest: event.planDigest ?? null,
          data: event.data ?? {},
        });
      }
    },
  });
}

/** The activity functions, as the workflow sees them. */
export type RemediationActivities = ReturnType<typeof createRemediationActivities>;
