// Entry point of a Cordon worker: builds the real clients from config and polls the task queue.
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../config/config.js';
import { createLogger } from '../config/logger.js';
import { ensureSearchAttributes } from '../config/temporal.js';
import { buildWorkerResources, createCordonWorker } from './build.js';
import { installTemporalRuntime } from './runtime.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config, 'cordon-worker');
  installTemporalRuntime(log);
  const resources = await buildWorkerResources(config, log);
  if (resources.approvalKeys.length === 0) log.warn({ file: config.approvals.verifyKeysFile }, 'no approval verify keys: every approval will be refused');
  log.info({ policies: resources.policy.policyIds, policySetHash: resources.policy.policySetHash, guardrailsHash: resources.guardrails.hash, systems: Object.keys(resources.connectors) }, 'policies and guardrails loaded');

  const admin = await Connection.connect({ address: config.temporal.address });
  await ensureSearchAttributes(admin, config.temporal.namespace);
  await admin.close();

  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await createCordonWorker({ connection, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, resources, log });
  const stop = (signal: string) => {
    log.info({ signal }, 'draining the worker');
    worker.shutdown();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  log.info({ taskQueue: config.temporal.taskQueue, temporal: config.temporal.address }, 'worker polling');
  await worker.run();
  await connection.close();
  await resources.close();
  log.info('worker stopped');
}

main().catch((error: unknown) => {
  // Startup failures (bad config, a broken policy file) are for a person to read: no stack for known ones.
  const known = error instanceof Error && ['ConfigError', 'PolicyLoadError'].includes(error.name);
  console.error(`cordon worker: ${known ? (error as Error).message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
