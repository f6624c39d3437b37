// A worker process is killed (SIGKILL) after an action reached the directory but before its activity
// completed; a new worker finishes the run, and every action is applied exactly once: one PATCH per
// target in the directory's own request log, one `action.applied` per action in the ledger.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import { PROJECT_ROOT } from '../../config/config.js';
import { spawnManaged, waitUntil, type ManagedProcess } from '../../dev/processes.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';
import { startScim, TestOrg, type TestScim } from '../support/scim.js';
import { alertFor, expectReplays, startRun, temporalClient, waitForStatus } from '../support/temporal.js';

let scim: TestScim;
let ledgerPath: string;
let ledger: Ledger;
let temporal: Awaited<ReturnType<typeof temporalClient>>;
const workers: ManagedProcess[] = [];

beforeAll(async () => {
  scim = await startScim();
  ledgerPath = join(await mkdtemp(join(tmpdir(), 'cordon-ledger-')), 'ledger.sqlite');
  ledger = openSqliteLedger({ path: ledgerPath });
  temporal = await temporalClient();
});

afterAll(async () => {
  for (const worker of workers) await worker.stop(2000);
  await temporal?.close();
  await ledger?.close();
  await scim?.stop();
});

async function startWorkerProcess(extraEnv: Record<string, string> = {}): Promise<ManagedProcess> {
  const child = spawnManaged('worker', process.execPath, {
    args: ['--import', 'tsx', join(PROJECT_ROOT, 'test/support/worker-process.ts')],
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TASK_QUEUE: temporal.taskQueue,
      LEDGER_PATH: ledgerPath,
      SCIM_URL: scim.url,
      SCIM_TOKEN: scim.token,
      BUNDLE_PATH: inject('workflowBundlePath'),
      ...extraEnv,
    },
  });
  workers.push(child);
  await waitUntil('worker process', async () => child.tail().includes('worker ready'), { timeoutMs: 60_000, process: child });
  return child;
}

describe('worker crash', () => {
  it('finishes a run whose worker was SIGKILLed mid-execution, applying every action exactly once', async () => {
    const org = new TestOrg(scim.client);
    const user = await org.user('crash', ['engineering', 'jira-users', 'vpn-users']);
    const connector = createScimConnector('scim', scim.client);
    const engineering = await org.groupId('engineering');

    // Worker A holds the second apply (leaving engineering) for a minute after the directory took it.
    const first = await startWorkerProcess({ DELAY_AFTER_APPLY: '2:60000' });
    const handle = await startRun(temporal.client, temporal.taskQueue, alertFor({ userName: user.userName }));
    await waitUntil('second action applied', async () => !(await connector.readAccount({ id: user.id })).groups.some((g) => g.id === engineering), { timeoutMs: 30_000 });
    process.kill(first.pid, 'SIGKILL');
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');

    await startWorkerProcess();
    const run = await waitForStatus(handle, ['completed', 'compensated', 'needs_human', 'failed'], 90_000);
    expect(run.status).toBe('completed');
    expect(run.journal.map((j) => j.status)).toEqual(['verified', 'verified', 'verified', 'verified']);
    expect(run.journal.every((j) => j.changed === true)).toBe(true);

    const final = await connector.readAccount({ id: user.id });
    expect(final.account.active).toBe(false);
    expect(final.groups).toEqual([]);

    // The directory's own log, whole: one write per target during the run, on top of the one PATCH per
    // membership the setup added (this file's directory serves no one else). Counted over the whole log
    // rather than from a mark taken after the setup: the server writes a request's line only after
    // answering it, so a mark could miss the setup's last PATCH. The wait covers the run's last line.
    const groupIds = await Promise.all(['engineering', 'jira-users', 'vpn-users'].map((g) => org.groupId(g)));
    const expected = 1 + 2 * groupIds.length;
    const patchLines = async () => (await scim.requests()).filter((line) => line.includes('"PATCH '));
    await waitUntil('every PATCH in the directory log', async () => (await patchLines()).length >= expected, { timeoutMs: 30_000 });
    const patches = await patchLines();
    expect(patches.filter((line) => line.includes(`/Users/${user.id}`))).toHaveLength(1);
    for (const id of groupIds) expect(patches.filter((line) => line.includes(`/Groups/${id}`))).toHaveLength(2);
    expect(patches).toHaveLength(expected);

    // The ledger: one start and one application per action, and the chain holds.
    const entries = await ledger.entries({ runId: handle.workflowId });
    for (const action of run.plan!.actions) {
      expect(entries.filter((e) => e.kind === 'action.started' && e.data.actionId === action.id)).toHaveLength(1);
      expect(entries.filter((e) => e.kind === 'action.applied' && e.data.actionId === action.id)).toHaveLength(1);
    }
    expect((await ledger.verify()).ok).toBe(true);

    // The killed action really was retried by the second worker.
    const history = await handle.fetchHistory();
    const retried = history.events?.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1) ?? [];
    expect(retried.length).toBeGreaterThanOrEqual(1);
    await expectReplays(handle);
  });
});
