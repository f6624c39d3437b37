import { z } from 'zod';
import { IdentityName, Role } from './identity.js';
import { PlanDigest } from './plan.js';

/** Where an approver decided. */
export const Channel = z.enum(['api', 'cli', 'web', 'slack']);
export type Channel = z.infer<typeof Channel>;

export const ApprovalVerdict = z.enum(['approve', 'reject']);
export type ApprovalVerdict = z.infer<typeof ApprovalVerdict>;

/**
 * An approver's decision as sent to a run. The API fills `approver` and `roles` from the caller's
 * authenticated identity at the moment of the decision; the workflow re-checks every field.
 */
export const ApprovalRequest = z.strictObject({
  approver: IdentityName,
  roles: z.array(Role).max(8),
  decision: ApprovalVerdict,
  planDigest: PlanDigest,
  comment: z.string().max(2000).optional(),
  channel: Channel,
});
export type ApprovalRequest = z.infer<typeof ApprovalRequest>;

/** A decision the run accepted. */
export const Approval = z.strictObject({
  approver: IdentityName,
  decision: ApprovalVerdict,
  at: z.iso.datetime(),
  channel: Channel,
  comment: z.string().max(2000).optional(),
});
export type Approval = z.infer<typeof Approval>;
