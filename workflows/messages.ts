import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ApprovalResult, RollbackAccepted, RunView, SignedApproval, SignedRollback } from '../domain/index.js';

/** Returns the run as operators and approvers see it. */
export const getRunQuery = defineQuery<RunView>('getRun');

/**
 * An approver's decision, signed by the API. The validator rejects (nothing recorded) a missing, bad,
 * reused or expired signature, a run not awaiting approval, a stale plan digest, the requester
 * deciding on their own run, a second decision by the same approver, and an approver without a role
 * the policy (or its escalation) allows now.
 */
export const decideApprovalUpdate = defineUpdate<ApprovalResult, [SignedApproval]>('decideApproval');

/**
 * An operator's request, signed by the API, to roll back a completed run or some of its actions. The
 * validator refuses (nothing recorded) a missing, bad or reused signature, a run that is not completed
 * or partially rolled back, a closed rollback window, a rollback already in progress, a requester
 * without the operator or admin role, and actions the run did not change or has already rolled back.
 */
export const requestRollbackUpdate = defineUpdate<RollbackAccepted, [SignedRollback]>('requestRollback');
