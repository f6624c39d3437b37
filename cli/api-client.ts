import type { AlertAccepted, ApprovalResult, Decision, KillSwitchScope, KillSwitchState, LedgerVerification, Plan, RerunAccepted, RollbackAccepted, RunSummary, RunView } from '../domain/index.js';

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

/** A Temporal event history in Temporal's JSON form (what `historyFromJSON` takes). */
export interface HistoryJson {
  events: unknown[];
}

/** One line of `GET /v1/histories`: a run's history, or why it could not be read. */
export type HistoryLine = { runId: string; history: HistoryJson } | { runId: string; error: { type: string; message: string } };

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

  /** One page of runs; pass the answer's `nextPageToken` back as `pageToken` for the next one. */
  listRuns(filter: {
    status?: string | undefined;
    playbook?: string | undefined;
    target?: string | undefined;
    source?: string | undefined;
    severity?: string | undefined;
    since?: string | undefined;
    until?: string | undefined;
    pageSize?: number | undefined;
    pageToken?: string | undefined;
  }): Promise<{ runs: RunSummary[]; nextPageToken: string | null }> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) if (value !== undefined) query.set(key, String(value));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.request('GET', `/v1/runs${suffix}`);
  }

  getRun(runId: string): Promise<RunView> {
    return this.request('GET', `/v1/runs/${encodeURIComponent(runId)}`);
  }

  rollBack(runId: string, body: { reason: string; actions?: string[] }): Promise<RollbackAccepted> {
    return this.request('POST', `/v1/runs/${encodeURIComponent(runId)}/rollback`, JSON.stringify(body));
  }

  rerun(runId: string, body: { mode: 'live' | 'dry-run' }): Promise<RerunAccepted> {
    return this.request('POST', `/v1/runs/${encodeURIComponent(runId)}/rerun`, JSON.stringify(body));
  }

  decide(runId: string, body: { decision: 'approve' | 'reject'; planDigest: string; comment?: string; channel: 'cli' }): Promise<ApprovalResult> {
    return this.request('POST', `/v1/runs/${encodeURIComponent(runId)}/approvals`, JSON.stringify(body));
  }

  verifyAudit(): Promise<LedgerVerification> {
    return this.request('GET', '/v1/audit/verify');
  }

  /**
   * Streams the ledger export (JSON Lines) as text, piece by piece, never holding the whole of it.
   * Throws ApiError when the API refuses it, and ApiError status 0 when the stream breaks off.
   */
  async *exportAudit(query: { since?: string | undefined; until?: string | undefined; after?: number | undefined }): AsyncGenerator<string> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const suffix = params.size > 0 ? `?${params.toString()}` : '';
    const headers: Record<string, string> = { accept: 'application/x-ndjson' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // The 30 s limit is for the answer to begin; a long export may take longer to arrive.
    const started = new AbortController();
    const timer = setTimeout(() => started.abort(new Error('no answer within 30 s')), 30_000);
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl.replace(/\/+$/, '')}/v1/audit${suffix}`, { headers, signal: started.signal });
    } catch (error) {
      throw new ApiError(0, 'Unreachable', `cannot reach the Cordon API at ${this.baseUrl}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok || !response.body) {
      const text = await response.text();
      let error: { type?: string; message?: string } | undefined;
      try {
        error = (JSON.parse(text) as { error?: { type?: string; message?: string } }).error;
      } catch {
        error = undefined;
      }
      throw new ApiError(response.status, error?.type ?? 'Error', error?.message ?? `HTTP ${response.status}`);
    }
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) yield decoder.decode(chunk, { stream: true });
    } catch (error) {
      throw new ApiError(0, 'Interrupted', `the export from ${this.baseUrl} broke off: ${(error as Error).message}`);
    }
    const rest = decoder.decode();
    if (rest) yield rest;
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

  /** A run's Temporal event history, in Temporal's JSON form. */
  runHistory(runId: string): Promise<HistoryJson> {
    return this.request('GET', `/v1/runs/${encodeURIComponent(runId)}/history`);
  }

  /**
   * The histories of the runs started since `since` (a duration such as `7d`, or an ISO date or
   * date-time), newest first, each as it arrives; `truncated` says that more runs started than `limit`.
   */
  async histories(query: { since: string; limit?: number | undefined }): Promise<{ truncated: boolean; lines: AsyncGenerator<HistoryLine> }> {
    const params = new URLSearchParams({ since: query.since, ...(query.limit !== undefined ? { limit: String(query.limit) } : {}) });
    const headers: Record<string, string> = { accept: 'application/x-ndjson' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // The 30 s limit is for the answer to begin; many histories may take longer to arrive.
    const started = new AbortController();
    const timer = setTimeout(() => started.abort(new Error('no answer within 30 s')), 30_000);
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl.replace(/\/+$/, '')}/v1/histories?${params.toString()}`, { headers, signal: started.signal });
    } catch (error) {
      throw new ApiError(0, 'Unreachable', `cannot reach the Cordon API at ${this.baseUrl}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok || !response.body) {
      let error: { type?: string; message?: string } | undefined;
      try {
        error = (JSON.parse(await response.text()) as { error?: { type?: string; message?: string } }).error;
      } catch {
        error = undefined;
      }
      throw new ApiError(response.status, error?.type ?? 'Error', error?.message ?? `HTTP ${response.status}`);
    }
    const body = response.body;
    const baseUrl = this.baseUrl;
    const lines = async function* (): AsyncGenerator<HistoryLine> {
      const decoder = new TextDecoder();
      let buffered = '';
      try {
        for await (const chunk of body) {
          buffered += decoder.decode(chunk, { stream: true });
          for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
            const line = buffered.slice(0, end).trim();
            buffered = buffered.slice(end + 1);
            if (line) yield JSON.parse(line) as HistoryLine;
          }
        }
      } catch (error) {
        if (error instanceof SyntaxError) throw new ApiError(0, 'BadResponse', `a history line from ${baseUrl} is not JSON: ${error.message}`);
        throw new ApiError(0, 'Interrupted', `the histories from ${baseUrl} broke off: ${(error as Error).message}`);
      }
      const rest = (buffered + decoder.decode()).trim();
      if (rest) throw new ApiError(0, 'Interrupted', `the histories from ${baseUrl} broke off in the middle of a line`);
    };
    return { truncated: response.headers.get('x-cordon-truncated') === 'true', lines: lines() };
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
