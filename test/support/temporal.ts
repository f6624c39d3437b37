import { randomBytes } from 'node:crypto';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { expect, inject } from 'vitest';
import { createRemediationActivities, type RemediationDeps } from '../../activities/remediation.js';
import { runIdFor, type Alert, type Identity, type RunStatus, type RunView } from '../../domain/index.js';
import { playbookForKind } from '../../playbooks/registry.js';
import { installTemporalRuntime } from '../../workers/runtime.js';
import { signForTest, testVerifyKeys } from './approval-keys.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import type { RemediationInput } from '../../workflows/remediation.js';

/** A logger that only speaks up about errors, for tests. */
export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'error' });

installTemporalRuntime(quietLog);

/** A Temporal client on the shared dev server, and a task queue of this test file's own. */
export async function temporalClient(): Promise<{ client: Client; taskQueue: string; close(): Promise<void> }> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  return {
    client: new Client({ connection, namespace: 'default' }),
    taskQueue: `test-${randomBytes(6).toString('hex')}`,
    close: () => connection.close(),
  };
}

export interface RunningWorker {
  worker: Worker;
  stop(): Promise<void>;
}

/** Runs a worker in this process with the real activities over the given peers. */
export async function startWorker(options: RemediationDeps & { taskQueue: string; dataConverter?: DataConverter }): Promise<RunningWorker> {
  const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue: options.taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    activities: createRemediationActivities({ approvalKeys: testVerifyKeys, ...options }),
    ...(options.dataConverter ? { dataConverter: options.dataConverter } : {}),
    shutdownGraceTime: '2s',
  });
  const running = worker.run();
  return {
    worker,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

let alertCounter = 0;

/** An alert for a SCIM user, unique per call. */
export function alertFor(subject: { userName?: string; id?: string }, overrides: Partial<Alert> = {}): Alert {
  return {
    source: 'test-siem',
    id: `alert-${Date.now()}-${++alertCounter}-${randomBytes(3).toString('hex')}`,
    kind: 'account.orphaned',
    severity: 'high',
    subject: { system: 'scim', ...subject },
    ...overrides,
  };
}

/** Starts a remediation run directly on Temporal, as the API does. */
export async function startRun(client: Client, taskQueue: string, alert: Alert, requestedBy: Identity = { name: 'soc', roles: ['soc'] }) {
  const runId = runIdFor(alert.source, alert.id, alert.mode ?? 'live');
  const input: RemediationInput = { runId, playbook: playbookForKind(alert.kind)?.name ?? 'unknown', alert, requestedBy, receivedAt: new Date().toISOString() };
  return client.workflow.start('remediationWorkflow', { workflowId: runId, taskQueue, args: [input] });
}

/** Polls the run's query until its status is one of `statuses`. */
export async function waitForStatus(handle: WorkflowHandle, statuses: RunStatus[], timeoutMs = 60_000): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  let last: RunView | undefined;
  while (Date.now() < deadline) {
    try {
      last = await handle.query(getRunQuery);
      if (statuses.includes(last.status)) return last;
    } catch {
      // not started yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`run ${handle.workflowId} did not reach ${statuses.join('|')} in ${timeoutMs} ms (last: ${last?.status ?? 'none'}, error: ${JSON.stringify(last?.error)})`);
}

/**
 * Approves the open decision as each approver in turn (role `approver`, channel `api`), signed as the
 * API signs: the plan's, or with `digest` a rollback's. Answers the workflow's replies.
 */
export async function approveAll(handle: WorkflowHandle, run: RunView, approvers: string[], digest = run.plan!.digest) {
  const answers = [];
  for (const approver of approvers) {
    answers.push(await handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, { approver, roles: ['approver'], decision: 'approve', planDigest: digest, channel: 'api' })] }));
  }
  return answers;
}

/** Replays the run's full history against the current workflow code: fails on any nondeterminism. */
export async function expectReplays(handle: WorkflowHandle): Promise<void> {
  const history = await handle.fetchHistory();
  await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, handle.workflowId)).resolves.toBeUndefined();
}
