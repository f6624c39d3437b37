import { z } from 'zod';
import { GuardrailRecord } from './guardrails.js';
import { Role } from './identity.js';
import { ActionId } from './plan.js';

/** What policy allows for an action: act now, act after approval, or never. */
export const Outcome = z.enum(['auto', 'approve', 'deny']);
export type Outcome = z.infer<typeof Outcome>;

/** How restrictive an outcome is; a run takes the most restrictive outcome of its actions. */
export const outcomeRank: Record<Outcome, number> = { auto: 0, approve: 1, deny: 2 };

/** Policy's answer for one action, with the ids of the policies that decided it. */
export const ActionDecision = z.strictObject({
  actionId: ActionId,
  outcome: Outcome,
  policies: z.array(z.string()).max(100),
  approvers: z.int().min(0).max(10),
  roles: z.array(Role).max(4),
  approvalTimeoutMs: z.int().positive().optional(),
  /** How rejections count; reject-wins when absent. */
  rejection: z.enum(['reject-wins', 'majority']).optional(),
  escalation: z.strictObject({ afterMs: z.int().positive(), roles: z.array(Role).min(1).max(4) }).optional(),
});
export type ActionDecision = z.infer<typeof ActionDecision>;

/**
 * How rejections count. `reject-wins`: one rejection by an eligible approver rejects the run.
 * `majority`: the run executes when approvals reach the quorum and outnumber rejections; it is
 * rejected when rejections reach the quorum.
 */
export const RejectionRule = z.enum(['reject-wins', 'majority']);
export type RejectionRule = z.infer<typeof RejectionRule>;

/** Who else may decide, and when, if the first approvers have not decided in time. */
export const Escalation = z.strictObject({ afterMs: z.int().positive(), roles: z.array(Role).min(1).max(4) });
export type Escalation = z.infer<typeof Escalation>;

/** Policy's answer for a whole plan. `requiredApprovals` is 0 unless the outcome is `approve`. */
export const Decision = z.strictObject({
  outcome: Outcome,
  policies: z.array(z.string()).max(200),
  perAction: z.array(ActionDecision).max(500),
  requiredApprovals: z.int().min(0).max(10),
  approverRoles: z.array(Role).max(4),
  approvalTimeoutMs: z.int().positive(),
  policySetHash: z.string().regex(/^[0-9a-f]{64}$/),
  reasons: z.array(z.string().max(500)).max(100),
  rejectionRule: RejectionRule,
  escalation: Escalation.nullable(),
  guardrails: GuardrailRecord,
});
export type Decision = z.infer<typeof Decision>;

/** Default approval window when no policy sets one (GCP PAM's 24 h). */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** Combines per-action decisions: deny beats approve beats auto; quorum and roles come from the strictest. */
export function combineDecisions(
  perAction: ActionDecision[],
  policySetHash: string,
  guardrails: GuardrailRecord,
  reasons: string[] = [],
): Decision {
  let outcome: Outcome = perAction.length === 0 ? 'deny' : 'auto';
  for (const d of perAction) if (outcomeRank[d.outcome] > outcomeRank[outcome]) outcome = d.outcome;
  const approving = perAction.filter((d) => d.outcome === 'approve');
  const requiredApprovals = outcome === 'approve' ? Math.max(1, ...approving.map((d) => d.approvers)) : 0;
  const roles = new Set<Role>();
  for (const d of approving) for (const r of d.roles) roles.add(r);
  const timeouts = approving.map((d) => d.approvalTimeoutMs).filter((t): t is number => t !== undefined);
  const policies = [...new Set(perAction.flatMap((d) => d.policies))].sort();
  // Majority only when every approving action allows it: one rejection wins otherwise (the safer rule).
  const rejectionRule: RejectionRule = approving.length > 0 && approving.every((d) => d.rejection === 'majority') ? 'majority' : 'reject-wins';
  const escalations = approving.map((d) => d.escalation).filter((e): e is Escalation => e !== undefined);
  const escalation: Escalation | null =
    outcome === 'approve' && escalations.length > 0
      ? { afterMs: Math.min(...escalations.map((e) => e.afterMs)), roles: [...new Set(escalations.flatMap((e) => e.roles))].sort() }
      : null;
  return {
    outcome,
    policies,
    perAction,
    requiredApprovals,
    approverRoles: outcome === 'approve' ? (roles.size > 0 ? [...roles].sort() : ['approver']) : [],
    approvalTimeoutMs: timeouts.length > 0 ? Math.min(...timeouts) : DEFAULT_APPROVAL_TIMEOUT_MS,
    policySetHash,
    reasons: perAction.length === 0 ? [...reasons, 'the plan has no actions'] : reasons,
    rejectionRule,
    escalation,
    guardrails,
  };
}
