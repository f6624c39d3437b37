// Entry point of a Cordon worker: builds the real clients from config and polls the task queue.
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../config/config.js';
import { createLogger } from '../config/logger.js';
import { loadDataConverter } from '../config/payload-codec.js';
import { ensureSearchAttributes } from '../config/temporal.js';
import { buildWorkerResources, createCordonWorker } from './build.js';
import { installTemporalRuntime } from './runtime.js';
import { startWorkerTelemetry } from './telemetry.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config, 'cordon-worker');
  const metricsHost = config.metrics.workerHost.includes(':') ? `[${config.metrics.workerHost}]` : config.metrics.workerHost;
  installTemporalRuntime(log, { metricsBindAddress: config.metrics.temporalPort !== undefined ? `${metricsHost}:${config.metrics.temporalPort}` : undefined });
  const dataConverter = await loadDataConverter(config);
  if (config.payloadKeysFile) log.info({ file: config.payloadKeysFile }, 'payload encryption on');
  const resources = await buildWorkerResources(config, log);
  const telemetry = await startWorkerTelemetry(config, log, resources);
  if (resources.approvalKeys.length === 0) log.warn({ file: config.approvals.verifyKeysFile }, 'no approval verify keys: every approval will be refused');
  log.info({ policies: resources.policy.policyIds, policySetHash: resources.policy.policySetHash, guardrailsHash: resources.guardrails.hash, systems: Object.keys(resources.connectors) }, 'policies and guardrails loaded');

  const admin = await Connection.connect({ address: config.temporal.address });
  await ensureSearchAttributes(admin, config.temporal.namespace);
  await admin.close();

  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await createCordonWorker({ connection, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, resources, log, dataConverter, shutdownGraceMs: config.shutdown.graceMs, ...telemetry.worker });
  // Drain, then stop: no new tasks are polled, in-flight activities get the grace period to finish
  // (then they are cancelled, and Temporal retries them elsewhere), and only then the connection and
  // the stores close. A second signal stops at once.
  let draining = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (draining) {
      log.warn({ signal }, 'second signal: stopping now');
      process.exit(1);
    }
    draining = true;
    log.info({ signal, graceMs: config.shutdown.graceMs }, 'draining the worker');
    worker.shutdown();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  log.info({ taskQueue: config.temporal.taskQueue, temporal: config.temporal.address }, 'worker polling');
  await worker.run();
  await connection.close();
  await resources.close();
  await telemetry.close();
  log.info('worker stopped');
}

main().catch((error: unknown) => {
  // Startup failures (bad config, a broken policy file) are for a person to read: no stack for known ones.
  const known = error instanceof Error && ['ConfigError', 'PolicyLoadError'].includes(error.name);
  console.error(`cordon worker: ${known ? (error as Error).message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
