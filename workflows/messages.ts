import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ApprovalRequest, ApprovalResult, RunView } from '../domain/index.js';

/** Returns the run as operators and approvers see it. */
export const getRunQuery = defineQuery<RunView>('getRun');

/**
 * An approver's decision. The validator rejects (nothing recorded) a run not awaiting approval, a
 * stale plan digest, the requester approving their own run, a second decision by the same approver,
 * and an approver without a role the policy requires.
 */
export const decideApprovalUpdate = defineUpdate<ApprovalResult, [ApprovalRequest]>('decideApproval');
