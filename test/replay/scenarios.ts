// The runs whose Temporal histories are kept in test/replay/histories/: one per outcome, each written
// by `npm run replay:capture` (test/replay/capture.ts) and replayed by test/replay/replay.test.ts.
// Adding an outcome is one entry here and a capture; the replay test then requires its file.
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { ScimClient } from '../../activities/connectors/scim/scim-client.js';
import type { Alert, ApprovalResult, Identity, RollbackAccepted, RunStatus, RunView } from '../../domain/index.js';
import type { FaultPlan } from '../support/faults.js';

/** What a scenario's `drive` may do with its run while it goes. */
export interface ScenarioRun {
  handle: WorkflowHandle;
  client: Client;
  scim: ScimClient;
  /** The run's account in the directory. */
  user: { id: string; userName: string };
  /** Polls the run's `getRun` query until its status is one of `statuses`. */
  waitFor(statuses: RunStatus[]): Promise<RunView>;
  /** Sends an approver's decision on what awaits approval (the plan or a rollback), signed as the API signs it. */
  decide(approver: string, decision: 'approve' | 'reject', comment?: string): Promise<ApprovalResult>;
  /** Asks, as an operator and signed as the API signs it, to roll the run back (only `actions` when given). */
  rollBack(requester: string, reason: string, actions?: string[]): Promise<RollbackAccepted>;
}

/** A run that ends in `outcome`; its history is written to `histories/<outcome>.json`. */
export interface Scenario {
  outcome: RunStatus;
  /** The account the alert is about: created in a fresh directory, in these groups. */
  account: { userName: string; groups: string[] };
  /** Alert fields other than the subject (kind `account.orphaned`, severity `high` unless set here). */
  alert?: Partial<Omit<Alert, 'subject'>>;
  requestedBy?: Identity;
  /** Rewrites the default policies' `default.cedar` for this run's worker. */
  policy?: (cedar: string) => string;
  /** Faults injected into this run's directory connector. */
  faults?: FaultPlan;
  /** Acts on the run after it starts (approvals, later a rollback); the capture then waits for `outcome`. */
  drive?: (run: ScenarioRun) => Promise<void>;
}

const alice: Identity = { name: 'alice', roles: ['soc', 'approver'] };

export const scenarios: readonly Scenario[] = [
  {
    // High severity, ordinary groups: policy runs it automatically.
    outcome: 'completed',
    account: { userName: 'replay.completed', groups: ['engineering', 'vpn-users'] },
  },
  {
    // Medium severity needs one approver, who rejects.
    outcome: 'rejected',
    account: { userName: 'replay.rejected', groups: ['sales'] },
    alert: { severity: 'medium' },
    drive: async (run) => {
      await run.waitFor(['awaiting_approval']);
      await run.decide('bob', 'reject', 'still employed');
    },
  },
  {
    // A member of admins needs two approvers; one approves, and the 2-second window passes.
    outcome: 'expired',
    account: { userName: 'replay.expired', groups: ['admins', 'finance'] },
    requestedBy: alice,
    policy: (cedar) => cedar.replaceAll('@expires("24h")', '@expires("2s")').replace('@escalateAfter("12h")\n', '').replace('@escalateRoles("admin")\n', ''),
    drive: async (run) => {
      await run.waitFor(['awaiting_approval']);
      await run.decide('bob', 'approve');
    },
  },
  {
    // Disabling the account works, removing it from its first group fails: the disable is undone.
    outcome: 'compensated',
    account: { userName: 'replay.compensated', groups: ['engineering', 'vpn-users'] },
    faults: { failApplyBefore: 2 },
  },
  {
    // break-glass members are never touched.
    outcome: 'denied',
    account: { userName: 'replay.denied', groups: ['break-glass', 'admins'] },
    alert: { severity: 'critical' },
  },
  {
    // An administrator deprovisioned with two approvals, then rolled back by an operator: restoring
    // privileged access asks one approver first.
    outcome: 'rolled_back',
    account: { userName: 'replay.rolled-back', groups: ['admins', 'finance'] },
    alert: { severity: 'critical' },
    drive: async (run) => {
      await run.waitFor(['awaiting_approval']);
      await run.decide('bob', 'approve');
      await run.decide('carol', 'approve');
      await run.waitFor(['completed']);
      await run.rollBack('oscar', 'not a leaver after all');
      await run.waitFor(['awaiting_approval']);
      await run.decide('bob', 'approve');
    },
  },
  {
    // Someone re-enabled the account by hand after the run: the rollback leaves it (drifted) and puts
    // the account back in its groups.
    outcome: 'partially_rolled_back',
    account: { userName: 'replay.partially-rolled-back', groups: ['engineering', 'vpn-users'] },
    drive: async (run) => {
      await run.waitFor(['completed']);
      await run.scim.patch('Users', run.user.id, [{ op: 'replace', path: 'active', value: true }]);
      await run.rollBack('oscar', 'restore the groups');
    },
  },
  {
    outcome: 'dry_run_completed',
    account: { userName: 'replay.dry-run', groups: ['engineering'] },
    alert: { mode: 'dry-run' },
  },
];

/** The outcomes the replay suite requires a captured history for. */
export const requiredOutcomes: readonly RunStatus[] = scenarios.map((s) => s.outcome);
