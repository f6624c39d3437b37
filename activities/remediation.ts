import {
  CordonError,
  planDigest,
  type AccountSnapshot,
  type Action,
  type Alert,
  type Decision,
  type Evidence,
  type Identity,
  type Plan,
} from '../domain/index.js';
import { playbookForKind, playbookNamed } from '../playbooks/registry.js';
import { accountTarget } from '../playbooks/types.js';
import type { PolicyEngine } from '../policies/engine.js';
import type { Ledger, LedgerData } from '../store/ledger.js';
import type { DirectoryConnector } from './connectors/types.js';
import { heartbeatIfActivity, withTypedFailures } from './failures.js';

/** What the remediation activities are built from. Tests pass real peers or wrapped ones. */
export interface RemediationDeps {
  connectors: Readonly<Record<string, DirectoryConnector>>;
  ledger: Ledger;
  policy: PolicyEngine;
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

/** The result of undoing one action. */
export interface UndoResult {
  actionId: string;
  status: 'compensated' | 'compensation_skipped' | 'not_started';
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

  const connectorFor = (system: string): DirectoryConnector => {
    const connector = deps.connectors[system];
    if (!connector) {
      throw new CordonError('UnknownSystem', `no connector is configured for system "${system}" (configured: ${Object.keys(deps.connectors).join(', ') || 'none'})`);
    }
    return connector;
  };

  /** The ids an action's evidence is about. */
  const objectOf = (action: Action): Record<string, string> =>
    action.type === 'DisableAccount' ? { account: action.target.id } : { account: action.target.id, group: action.group.id };

  const accountEvidence = (kind: Evidence['kind'], snapshot: AccountSnapshot, action: Action): Evidence => {
    const observed: Evidence['observed'] =
      action.type === 'DisableAccount'
        ? { ...objectOf(action), active: snapshot.account.active }
        : { ...objectOf(action), member: snapshot.groups.some((g) => g.id === action.group.id) };
    return { kind, at: snapshot.observedAt, observed };
  };

  const apply = async (connector: DirectoryConnector, action: Action, restore: boolean) => {
    switch (action.type) {
      case 'DisableAccount':
        return connector.setAccountActive(action.target.id, restore);
      case 'RemoveGroupMembership':
        return restore
          ? connector.addGroupMember(action.group.id, action.target.id)
          : connector.removeGroupMember(action.group.id, action.target.id);
    }
  };

  return withTypedFailures({
    /** Reads the alert's subject from its system of record. */
    async observeTarget(input: { runId: string; alert: Alert; requestedBy: Identity }): Promise<AccountSnapshot> {
      const { runId, alert, requestedBy } = input;
      await ledger.appendOnce({
        idemKey: `${runId}:received`,
        kind: 'run.received',
        actor: requestedBy.name,
        runId,
        data: { alert, requestedBy: requestedBy.name },
      });
      const snapshot = await connectorFor(alert.subject.system).readAccount(alert.subject);
      await ledger.appendOnce({
        idemKey: `${runId}:observed`,
        kind: 'run.observed',
        actor: SYSTEM_ACTOR,
        runId,
        data: {
          account: { id: snapshot.account.id, userName: snapshot.account.userName, active: snapshot.account.active },
          groups: snapshot.groups.map((g) => g.displayName),
        },
      });
      return snapshot;
    },

    /** Turns a snapshot into the exact actions of the alert's playbook. */
    async planRemediation(input: { runId: string; alert: Alert; snapshot: AccountSnapshot }): Promise<Plan> {
      const { runId, alert, snapshot } = input;
      const playbook = playbookForKind(alert.kind);
      if (!playbook) throw new CordonError('UnknownPlaybook', `no playbook handles alert kind ${alert.kind}`);
      const actions = playbook.plan(alert, snapshot);
      const plan: Plan = {
        playbook: playbook.name,
        targets: [accountTarget(snapshot)],
        actions,
        digest: planDigest(actions),
        observedAt: snapshot.observedAt,
      };
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

    /** Asks the policy engine what may happen to each action. */
    async decidePolicy(input: { runId: string; alert: Alert; plan: Plan; snapshot: AccountSnapshot; requestedBy: Identity }): Promise<Decision> {
      const decision = policy.decide(input);
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
        },
      });
      return decision;
    },

    /**
     * Applies one action, idempotently: the connector checks the current state before acting, and
     * the ledger remembers that this run started the action, so a retry after a crash recognises its
     * own earlier change instead of acting twice.
     */
    async applyAction(input: { runId: string; action: Action; planDigest: string }): Promise<ApplyResult> {
      const { runId, action, planDigest: digest } = input;
      const key = actionKey(runId, action.id, digest);
      const connector = connectorFor(action.target.system);
      const started = await ledger.appendOnce({
        idemKey: `${key}:started`,
        kind: 'action.started',
        actor: SYSTEM_ACTOR,
        runId,
        planDigest: digest,
        data: { actionId: action.id, type: action.type, target: action.target.id },
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
        data: { actionId: action.id, type: action.type, target: action.target.id, changed, before: evidence[0]!.observed },
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
          snapshot = await connectorFor(action.target.system).readAccount({ id: action.target.id });
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
     * Undoes one action, if this run changed the target: an action never started, or one that found
     * its change already in effect, is left alone.
     */
    async undoAction(input: { runId: string; action: Action; planDigest: string; reason: string }): Promise<UndoResult> {
      const { runId, action, planDigest: digest, reason } = input;
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
      heartbeatIfActivity();
      const result = await apply(connector, action, true);
      const after = await connector.readAccount({ id: action.target.id });
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
