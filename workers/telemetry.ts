import type { Config } from '../config/config.js';
import type { Logger } from '../config/logger.js';
import { spanProcessorFor, startTracing } from '../config/tracing.js';
import type { GuardrailState } from '../store/guardrail-state.js';
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from './metrics.js';
import { workerTracing, type WorkerTracing } from './tracing.js';

/** A worker's metrics and tracing, from config; `worker` goes into `createCordonWorker`'s options. */
export interface WorkerTelemetry {
  worker: { metrics: WorkerMetrics; tracing?: WorkerTracing };
  close(): Promise<void>;
}

/**
 * Sets up a worker's telemetry: run metrics (served on `CORDON_WORKER_METRICS_HOST`:
 * `CORDON_WORKER_METRICS_PORT` when a port is set) and, unless `CORDON_OTEL_EXPORTER` is `none`,
 * traces of workflows and activities.
 */
export async function startWorkerTelemetry(config: Config, log: Logger, resources: { guardrailState: GuardrailState }): Promise<WorkerTelemetry> {
  const metrics = createWorkerMetrics({ guardrailState: resources.guardrailState });
  const listener = config.metrics.workerPort !== undefined ? await serveMetrics(metrics.registry, { host: config.metrics.workerHost, port: config.metrics.workerPort }) : undefined;
  if (listener) log.info({ url: listener.url }, 'metrics served');
  if (config.metrics.temporalPort !== undefined) log.info({ port: config.metrics.temporalPort }, 'Temporal SDK metrics served');
  const processor = spanProcessorFor(config);
  const tracing = processor ? startTracing('cordon-worker', processor) : undefined;
  if (tracing) log.info({ exporter: config.tracing.exporter }, 'tracing on');
  return {
    worker: { metrics, ...(tracing ? { tracing: workerTracing(tracing) } : {}) },
    async close() {
      await listener?.close();
      await tracing?.shutdown();
    },
  };
}
