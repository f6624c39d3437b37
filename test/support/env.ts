import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { createScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import type { DirectoryConnector } from '../../activities/connectors/types.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine, type PolicyEngine } from '../../policies/engine.js';
import { openSqliteGuardrailState, type GuardrailState } from '../../store/guardrail-state.js';
import { openSqliteLedger, type Ledger } from '../../store/ledger.js';
import { startScim, TestOrg, type TestScim } from './scim.js';
import { temporalClient } from './temporal.js';

/** The real peers a remediation test file runs against. */
export interface RemediationEnv {
  scim: TestScim;
  org: TestOrg;
  connector: DirectoryConnector;
  ledger: Ledger;
  /** Kill switches and budgets, in the ledger's SQLite file as in production. */
  guardrailState: GuardrailState;
  policy: PolicyEngine;
  client: Client;
  /** A task queue of this file's own on the shared Temporal dev server. */
  taskQueue: string;
  close(): Promise<void>;
}

/** Starts a scim2-server and a ledger, loads the default policies, and connects to Temporal. */
export async function startRemediationEnv(): Promise<RemediationEnv> {
  const scim = await startScim();
  const ledgerPath = join(await mkdtemp(join(tmpdir(), 'cordon-ledger-')), 'ledger.sqlite');
  const ledger = openSqliteLedger({ path: ledgerPath });
  const guardrailState = openSqliteGuardrailState({ path: ledgerPath });
  const temporal = await temporalClient();
  return {
    scim,
    org: new TestOrg(scim.client),
    connector: createScimConnector('scim', scim.client),
    ledger,
    guardrailState,
    policy: await loadPolicyEngine(DEFAULT_POLICY_DIR),
    client: temporal.client,
    taskQueue: temporal.taskQueue,
    async close() {
      await temporal.close();
      await ledger.close();
      await guardrailState.close();
      await scim.stop();
    },
  };
}
