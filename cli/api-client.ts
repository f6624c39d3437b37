import type { AlertAccepted, ApprovalResult, Decision, KillSwitchScope, KillSwitchState, LedgerVerification, Plan, RunSummary, RunView } from '../domain/index.js';

/** A run awaiting the caller's decision. */
export interface InboxItem {
  runId: string;
  playbook: string;
  alert: { source: string; kind: string; severity: string; subject: string };
  requestedBy: string;
  planDigest: string;
  actions: number;
  approvals: number;
  required: number;
  approverRoles: string[];
  stage: string | null;
  expiresAt: string | null;
}

/** What the policy simulator answers. */
export interface SimulationAnswer {
  playbook: string;
  target: { system: string; id: string; userName: string; active: boolean; groups: string[] };
  plan: Plan;
  decision: Decision;
  actions: { id: string; type: string; target: string; group: string | null; change: string; outcome: string; policies: string[] }[];
  wouldRun: 'auto' | 'approve' | 'deny' | 'dry-run';
}

/** An error answer from the API, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The HTTP API as the CLI uses it: the CLI never talks to Temporal directly. */
export class CordonApi {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  /** Sends a Cordon alert, or with `ocsf` an OCSF event that the server maps to one. */
  sendAlert(body: string, options: { ocsf?: boolean } = {}): Promise<AlertAccepted> {
    return this.request('POST', options.ocsf ? '/v1/alerts/ocsf' : '/v1/alerts', body);
  }

  listRuns(filter: { status?: string | undefined; playbook?: string | undefined; target?: string | undefined; limit?: number | undefined }): Promise<{ runs: RunSummary[] }> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) if (value !== undefined) query.set(key, String(value));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.request('GET', `/v1/runs${suffix}`);
  }

  getRun(runId: string): Promise<RunView> {
    return this.request('GET', `/v1/runs/${encodeURIComponent(runId)}`);
  }

  decide(runId: string, body: { decision: 'approve' | 'reject'; planDigest: string; comment?: string; channel: 'cli' }): Promise<ApprovalResult> {
    return this.request('POST', `/v1/runs/${encodeURIComponent(runId)}/approvals`, JSON.stringify(body));
  }

  verifyAudit(): Promise<LedgerVerification> {
    return this.request('GET', '/v1/audit/verify');
  }

  inbox(): Promise<{ runs: InboxItem[] }> {
    return this.request('GET', '/v1/inbox');
  }

  killSwitches(): Promise<{ engaged: boolean; switches: KillSwitchState[] }> {
    return this.request('GET', '/v1/kill-switch');
  }

  flipKillSwitch(body: { scope: KillSwitchScope; engaged: boolean; reason: string }): Promise<KillSwitchState> {
    return this.request('POST', '/v1/kill-switch', JSON.stringify(body));
  }

  evaluatePolicy(alertBody: string): Promise<SimulationAnswer> {
    return this.request('POST', '/v1/policy/evaluate', alertBody);
  }

  private async request<T>(method: string, path: string, body?: string): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl.replace(/\/+$/, '')}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      throw new ApiError(0, 'Unreachable', `cannot reach the Cordon API at ${this.baseUrl}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError(response.status, 'BadResponse', `the API answered ${response.status} with a body that is not JSON`);
    }
    if (!response.ok) {
      const error = (json as { error?: { type?: string; message?: string } } | undefined)?.error;
      throw new ApiError(response.status, error?.type ?? 'Error', error?.message ?? `HTTP ${response.status}`);
    }
    return json as T;
  }
}
