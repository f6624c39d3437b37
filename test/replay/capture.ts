// `npm run replay:capture`: runs every scenario of test/replay/scenarios.ts on a fresh Temporal dev
// server and a fresh scim2-server, with the workflow code of this checkout, and writes each run's
// history to test/replay/histories/<outcome>.json (overwriting it). The replay suite
// (test/replay/replay.test.ts) replays them on every `npm test`.
//
// A history is taken once the run's `getRun` query reports its outcome and the run has nothing in
// flight (no workflow task, no activity): a run that stays open after its outcome (waiting out a
// rollback window) is captured as it stands then.
//
// `npm run replay:capture -- completed expired` captures only those outcomes.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { ScimClient } from '../../activities/connectors/scim/scim-client.js';
import { createScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { createRemediationActivities } from '../../activities/remediation.js';
import { PROJECT_ROOT } from '../../config/config.js';
import { freePort } from '../../dev/processes.js';
import { ensureScimServer } from '../../dev/python-tools.js';
import { startScim2Server } from '../../dev/scim-directory.js';
import { provisionTemporalCli } from '../../dev/temporal-cli.js';
import { startTemporalDevServer } from '../../dev/temporal-server.js';
import { isTerminal, type Identity, type RunStatus, type RunView } from '../../domain/index.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine, type PolicyEngine } from '../../policies/engine.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';
import { WORKFLOWS_PATH } from '../../workers/build.js';
import { historyToJson } from '../../workers/history-json.js';
import { decideApprovalUpdate, getRunQuery, requestRollbackUpdate } from '../../workflows/messages.js';
import { signForTest, signRollbackForTest, testVerifyKeys } from '../support/approval-keys.js';
import { withFaults } from '../support/faults.js';
import { copyDefaultPolicies } from '../support/policy-files.js';
import { TestOrg } from '../support/scim.js';
// Importing the test support also installs the Temporal runtime, with its logs at error level.
import { startRun } from '../support/temporal.js';
import { scenarios, type Scenario } from './scenarios.js';

/** Where the captured histories live. */
const HISTORIES_DIR = join(PROJECT_ROOT, 'test', 'replay', 'histories');

const OUTCOME_TIMEOUT_MS = 90_000;
const soc: Identity = { name: 'soc', roles: ['soc'] };
const log = (line: string) => process.stderr.write(`[capture] ${line}\n`);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const quiet = () => undefined;

interface Peers {
  client: Client;
  nativeConnection: NativeConnection;
  bundleCode: string;
  scim: ScimClient;
  org: TestOrg;
  ledger: Ledger;
  policy: PolicyEngine;
}

/**
 * Polls the run's query until its status is one of `statuses`. Fails at once when the run is closed
 * in another status; a run open in a terminal status (a completed run that may still be rolled back)
 * is waited on.
 */
async function waitFor(handle: WorkflowHandle, statuses: RunStatus[], timeoutMs = OUTCOME_TIMEOUT_MS): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  let last: RunView | undefined;
  while (Date.now() < deadline) {
    last = await handle.query(getRunQuery).catch(() => last);
    if (last && statuses.includes(last.status)) return last;
    if (last && isTerminal[last.status] && (await handle.describe()).status.name !== 'RUNNING') {
      throw new Error(`run ${handle.workflowId} ended ${last.status}, not ${statuses.join('|')}: ${JSON.stringify(last.error)}`);
    }
    await pause(100);
  }
  throw new Error(`run ${handle.workflowId} did not reach ${statuses.join('|')} within ${timeoutMs} ms (last: ${last?.status ?? 'no answer'})`);
}

/** Waits until the run is closed, or open with no workflow task and no activity in flight. */
async function settled(handle: WorkflowHandle, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') return;
    if (!description.raw.pendingWorkflowTask && (description.raw.pendingActivities?.length ?? 0) === 0) return;
    await pause(100);
  }
  throw new Error(`run ${handle.workflowId} still had work in flight after ${timeoutMs} ms`);
}

/** Creates the scenario's account, with a fixed userName (the directory is fresh for each capture). */
async function createAccount(peers: Peers, account: Scenario['account']): Promise<{ id: string; userName: string }> {
  const user = await peers.scim.createUser({ userName: account.userName, displayName: `Replay ${account.userName}`, active: true });
  for (const group of account.groups) {
    await peers.scim.patch('Groups', await peers.org.groupId(group), [{ op: 'add', path: 'members', value: [{ value: user.id }] }]);
  }
  return { id: user.id, userName: account.userName };
}

/** Runs one scenario on a worker of its own and returns the run's history in Temporal's JSON form. */
async function capture(peers: Peers, scenario: Scenario, connector: DirectoryConnector): Promise<string> {
  const policy = scenario.policy ? await loadPolicyEngine(await copyDefaultPolicies(scenario.policy)) : peers.policy;
  const taskQueue = `replay-capture-${scenario.outcome}`;
  const worker = await Worker.create({
    connection: peers.nativeConnection,
    namespace: 'default',
    taskQueue,
    workflowBundle: { code: peers.bundleCode },
    activities: createRemediationActivities({
      connectors: { scim: scenario.faults ? withFaults(connector, scenario.faults) : connector },
      ledger: peers.ledger,
      policy,
      approvalKeys: testVerifyKeys,
    }),
    shutdownGraceTime: '2s',
  });
  return worker.runUntil(async () => {
    const user = await createAccount(peers, scenario.account);
    const alert = { source: 'cordon-replay-capture', id: `replay-${scenario.outcome}`, kind: 'account.orphaned', severity: 'high' as const, ...scenario.alert, subject: { system: 'scim', userName: user.userName } };
    const handle = await startRun(peers.client, taskQueue, alert, scenario.requestedBy ?? soc);
    await scenario.drive?.({
      handle,
      client: peers.client,
      scim: peers.scim,
      user,
      waitFor: (statuses) => waitFor(handle, statuses),
      decide: async (approver, decision, comment) => {
        const digest = (await handle.query(getRunQuery)).openApproval?.digest;
        if (!digest) throw new Error(`run ${handle.workflowId} has nothing awaiting approval`);
        const request = { approver, roles: ['approver' as const], decision, planDigest: digest, channel: 'api' as const, ...(comment !== undefined ? { comment } : {}) };
        return handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, request)] });
      },
      rollBack: (requester, reason, actions) =>
        handle.executeUpdate(requestRollbackUpdate, { args: [signRollbackForTest(handle.workflowId, { requester, roles: ['operator'], reason, ...(actions ? { actions } : {}) })] }),
    });
    await waitFor(handle, [scenario.outcome]);
    await settled(handle);
    return `${JSON.stringify(historyToJson(await handle.fetchHistory()), null, 2)}\n`;
  });
}

/** Captures the scenarios named in `only` (all when empty) and writes their files. */
async function main(only: string[]): Promise<void> {
  const unknown = only.filter((name) => !scenarios.some((s) => s.outcome === name));
  if (unknown.length > 0) throw new Error(`no scenario for ${unknown.join(', ')} (known: ${scenarios.map((s) => s.outcome).join(', ')})`);
  const chosen = scenarios.filter((s) => only.length === 0 || only.includes(s.outcome));

  const cli = await provisionTemporalCli({ projectRoot: PROJECT_ROOT, log });
  const tools = await ensureScimServer(PROJECT_ROOT, 'python3', log);
  const dir = await mkdtemp(join(tmpdir(), 'cordon-replay-capture-'));
  const server = await startTemporalDevServer({ cliPath: cli.path, port: await freePort(), logFile: join(dir, 'temporal.log') });
  const scimServer = await startScim2Server({ scim2ServerPath: tools.scim2Server, logFile: join(dir, 'scim.log') });
  const ledger = openSqliteLedger({ path: join(dir, 'ledger.sqlite') });
  const connection = await Connection.connect({ address: server.address });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  try {
    log(`Temporal dev server at ${server.address}, scim2-server at ${scimServer.url}; bundling ${WORKFLOWS_PATH}`);
    const bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { trace: quiet, debug: quiet, info: quiet, warn: log, error: log, log: quiet } });
    const scim = new ScimClient({ baseUrl: scimServer.url, bearerToken: scimServer.token });
    const peers: Peers = {
      client: new Client({ connection, namespace: 'default' }),
      nativeConnection,
      bundleCode: bundle.code,
      scim,
      org: new TestOrg(scim),
      ledger,
      policy: await loadPolicyEngine(DEFAULT_POLICY_DIR),
    };
    const connector = createScimConnector('scim', scim);
    await mkdir(HISTORIES_DIR, { recursive: true });
    for (const scenario of chosen) {
      const history = await capture(peers, scenario, connector);
      const file = join(HISTORIES_DIR, `${scenario.outcome}.json`);
      await writeFile(file, history);
      log(`${scenario.outcome}: ${(JSON.parse(history) as { events: unknown[] }).events.length} events → ${file}`);
    }
  } finally {
    await nativeConnection.close();
    await connection.close();
    await ledger.close();
    await scimServer.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2).filter((arg) => arg !== '--')).then(
  () => process.exit(0),
  (error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
