import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createMetricsRegistry, registerKillSwitchGauge } from '../config/metrics.js';
import type { Logger } from '../config/logger.js';
import { RunStatus } from '../domain/index.js';
import { playbookForKind } from '../playbooks/registry.js';
import type { GuardrailState } from '../store/guardrail-state.js';
import type { Ledger, LedgerEntry } from '../store/ledger.js';

/** Cordon's run metrics on a worker. */
export interface WorkerMetrics {
  registry: Registry;
  runs: Counter<'status' | 'playbook'>;
  timeToApprove: Histogram<'playbook'>;
  alertToFirstAction: Histogram<'playbook'>;
  compensations: Counter<'playbook'>;
  verificationFailures: Counter<'playbook'>;
}

/** The registry of a worker: run metrics, the kill-switch gauge and Node's process metrics. */
export function createWorkerMetrics(deps: { guardrailState?: Pick<GuardrailState, 'killSwitches'> | undefined } = {}): WorkerMetrics {
  const registry = createMetricsRegistry();
  if (deps.guardrailState) registerKillSwitchGauge(registry, deps.guardrailState);
  return {
    registry,
    runs: new Counter({
      name: 'cordon_runs_total',
      help: "Runs that entered a status, by status and playbook ('observing' counts runs started); each transition is counted once across all workers",
      labelNames: ['status', 'playbook'] as const,
      registers: [registry],
    }),
    timeToApprove: new Histogram({
      name: 'cordon_time_to_approve_seconds',
      help: 'From a run awaiting approval to its quorum of approvals, by playbook',
      labelNames: ['playbook'] as const,
      buckets: [10, 30, 60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400],
      registers: [registry],
    }),
    alertToFirstAction: new Histogram({
      name: 'cordon_alert_to_first_action_seconds',
      help: "From an alert's run receiving it to the run's first action starting, by playbook",
      labelNames: ['playbook'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86_400],
      registers: [registry],
    }),
    compensations: new Counter({
      name: 'cordon_compensations_total',
      help: 'Actions undone because their run failed or was cancelled, by playbook',
      labelNames: ['playbook'] as const,
      registers: [registry],
    }),
    verificationFailures: new Counter({
      name: 'cordon_verification_failures_total',
      help: 'Actions whose post-state did not verify, by playbook',
      labelNames: ['playbook'] as const,
      registers: [registry],
    }),
  };
}

const seconds = (from: string, to: string): number => Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);

/** The playbook of an alert written in a `run.received` entry; 'unknown' when none handles it. */
function playbookOfReceived(entry: LedgerEntry | undefined): string {
  const kind = (entry?.data.alert as { kind?: unknown } | undefined)?.kind;
  return (typeof kind === 'string' ? playbookForKind(kind)?.name : undefined) ?? 'unknown';
}

/**
 * Wraps a ledger so that each entry it actually creates updates the run metrics. Ledger writes are
 * idempotent (`appendOnce`), so a retried activity, a replayed workflow or a second worker adds
 * nothing: every transition is counted exactly once, by the worker that wrote it. A metrics failure
 * never fails the write.
 */
export function meteredLedger(ledger: Ledger, metrics: WorkerMetrics, log?: Logger): Ledger {
  // Runs' playbooks, most recent last; bounded so that a long-lived worker does not grow without end.
  const playbooks = new Map<string, string>();
  const playbookOf = async (runId: string): Promise<string> => {
    const known = playbooks.get(runId);
    if (known !== undefined) return known;
    const playbook = playbookOfReceived(await ledger.findByIdemKey(`${runId}:received`));
    playbooks.set(runId, playbook);
    if (playbooks.size > 10_000) playbooks.delete(playbooks.keys().next().value!);
    return playbook;
  };

  const observe = async (entry: LedgerEntry): Promise<void> => {
    const runId = entry.runId;
    if (!runId) return;
    switch (entry.kind) {
      case 'run.received': {
        const playbook = playbookOfReceived(entry);
        playbooks.set(runId, playbook);
        metrics.runs.inc({ status: 'observing', playbook });
        return;
      }
      case 'run.status': {
        const status = RunStatus.safeParse(entry.data.to);
        if (status.success) metrics.runs.inc({ status: status.data, playbook: await playbookOf(runId) });
        return;
      }
      case 'approval.recorded': {
        // The approval that completes the quorum ends the wait.
        const { decision, approvals, required } = entry.data;
        if (decision !== 'approve' || typeof approvals !== 'number' || approvals !== required) return;
        const waiting = (await ledger.entries({ runId, throughSeq: entry.seq })).filter((e) => e.kind === 'run.status' && e.data.to === 'awaiting_approval').at(-1);
        if (waiting) metrics.timeToApprove.observe({ playbook: await playbookOf(runId) }, seconds(waiting.at, entry.at));
        return;
      }
      case 'action.started': {
        const started = (await ledger.entries({ runId, throughSeq: entry.seq })).filter((e) => e.kind === 'action.started');
        if (started.length !== 1) return;
        const received = await ledger.findByIdemKey(`${runId}:received`);
        if (received) metrics.alertToFirstAction.observe({ playbook: await playbookOf(runId) }, seconds(received.at, entry.at));
        return;
      }
      case 'action.compensated':
        metrics.compensations.inc({ playbook: await playbookOf(runId) });
        return;
      case 'action.verification_failed':
        metrics.verificationFailures.inc({ playbook: await playbookOf(runId) });
        return;
      default:
        return;
    }
  };

  const appendOnce: Ledger['appendOnce'] = async (input) => {
    const result = await ledger.appendOnce(input);
    if (result.created) {
      try {
        await observe(result.entry);
      } catch (error) {
        log?.warn({ err: error, kind: result.entry.kind }, 'a run metric was not recorded');
      }
    }
    return result;
  };
  return new Proxy(ledger, {
    get(target, property) {
      if (property === 'appendOnce') return appendOnce;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A listening metrics endpoint. */
export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

/** Serves `registry` at `GET /metrics` on host:port (port 0 picks a free one). */
export async function serveMetrics(registry: Registry, options: { host: string; port: number }): Promise<MetricsListener> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}
