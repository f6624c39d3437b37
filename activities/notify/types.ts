import type { Approval, RunStatus } from '../../domain/index.js';

/** Where a run's approval stands, as told to approvers. */
export type ApprovalEvent = 'requested' | 'decision' | 'reminder' | 'escalated' | 'finished';

/** What approvers are told about a run: enough to decide, and a link to the full run page. */
export interface ApprovalNotice {
  event: ApprovalEvent;
  runId: string;
  playbook: string;
  status: RunStatus;
  alert: { source: string; kind: string; severity: string; subject: string; summary: string | null };
  requestedBy: string;
  plan: { digest: string; actions: { id: string; type: string; target: string; change: string }[] };
  requiredApprovals: number;
  approverRoles: string[];
  approvals: Approval[];
  expiresAt: string | null;
  /** For `reminder`: how much of the window has passed. */
  elapsedPercent?: number;
  /** What a previous notice of this run returned, so that a channel can update its message. */
  messageRef?: string;
}

/** A channel that tells approvers (Slack, later others). Failures are reported, never fatal to a run. */
export interface ApprovalNotifier {
  readonly channel: string;
  notify(notice: ApprovalNotice): Promise<{ messageRef?: string }>;
}
