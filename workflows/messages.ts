import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ApprovalResult, RunView, SignedApproval } from '../domain/index.js';

/** Returns the run as operators and approvers see it. */
export const getRunQuery = defineQuery<RunView>('getRun');

/**
 * An approver's decision, signed by the API. The validator rejects (nothing recorded) a missing, bad,
 * reused or expired signature, a run not awaiting approval, a stale plan digest, the requester
 * deciding on their own run, a second decision by the same approver, and an approver without a role
 * the policy (or its escalation) allows now.
 */
export const decideApprovalUpdate = defineUpdate<ApprovalResult, [SignedApproval]>('decideApproval');
