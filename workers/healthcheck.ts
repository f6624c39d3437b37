// A worker container's health check: exits 0 when a worker on this host is polling Cordon's task
// queue, for workflow tasks and for activity tasks; 1 otherwise, saying why. A worker has no HTTP
// port, so Temporal's own view of its pollers is the check.
import { hostname } from 'node:os';
import { Connection } from '@temporalio/client';
// CommonJS: its namespaces come through the default export under Node's ESM loader.
import proto from '@temporalio/proto';
import { loadConfig } from '../config/config.js';

/** Long polls last about a minute, so a live poller has been seen within this time. */
const RECENT_MS = 3 * 60_000;

const { TaskQueueType, TaskQueueKind } = proto.temporal.api.enums.v1;

/** Which of the task queue's poller kinds have no recent poller from this host (SDK identity `pid@hostname`). */
export async function missingPollers(connection: Connection, namespace: string, taskQueue: string, host: string, now = Date.now()): Promise<string[]> {
  const missing: string[] = [];
  const kinds = [
    ['workflow', TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW],
    ['activity', TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
  ] as const;
  for (const [kind, taskQueueType] of kinds) {
    const { pollers } = await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL }, taskQueueType });
    // Timestamp seconds are a Long: through its string, not Number(), which would give NaN.
    const live = pollers.some((p) => p.identity?.endsWith(`@${host}`) && now - Number(String(p.lastAccessTime?.seconds ?? 0)) * 1000 < RECENT_MS);
    if (!live) missing.push(kind);
  }
  return missing;
}

async function main(): Promise<number> {
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: 5000 });
  try {
    const missing = await missingPollers(connection, config.temporal.namespace, config.temporal.taskQueue, hostname());
    if (missing.length === 0) return 0;
    process.stderr.write(`cordon worker health: no ${missing.join(' or ')} poller from ${hostname()} on task queue ${config.temporal.taskQueue}\n`);
    return 1;
  } finally {
    await connection.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`cordon worker health: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
