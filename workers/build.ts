import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker, type NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import { createScimConnector } from '../activities/connectors/scim/scim-connector.js';
import type { DirectoryConnector } from '../activities/connectors/types.js';
import { createRemediationActivities } from '../activities/remediation.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../config/logger.js';
import { loadPolicyEngine, type PolicyEngine } from '../policies/engine.js';
import { openSqliteLedger, type Ledger } from '../store/ledger.js';

/** The workflow code a worker runs. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** Reads a secret from a file, trimmed; throws naming the file and the setting. */
export async function readSecretFile(path: string, setting: string): Promise<string> {
  let value: string;
  try {
    value = (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw new Error(`${setting}: cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (value.length === 0) throw new Error(`${setting}: ${path} is empty`);
  return value;
}

/** The clients a worker's activities use, built from config. */
export interface WorkerResources {
  ledger: Ledger;
  policy: PolicyEngine;
  connectors: Record<string, DirectoryConnector>;
}

/** Builds the real clients from config: ledger, policy engine (validated now), connectors. */
export async function buildWorkerResources(config: Config): Promise<WorkerResources> {
  const policy = await loadPolicyEngine(config.policyDir);
  const connectors: Record<string, DirectoryConnector> = {};
  if (config.scim.baseUrl) {
    const bearerToken = await readSecretFile(config.scim.tokenFile, 'CORDON_SCIM_TOKEN_FILE');
    connectors[config.scim.system] = createScimConnector(config.scim.system, { baseUrl: config.scim.baseUrl, bearerToken });
  }
  const ledger = openSqliteLedger({ path: config.ledger.path });
  return { ledger, policy, connectors };
}

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  resources: WorkerResources;
  log: Logger;
  /** A prebuilt bundle (tests build one per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
}

/** Creates a worker polling Cordon's task queue with the remediation workflow and its activities. */
export async function createCordonWorker(options: CreateWorkerOptions): Promise<Worker> {
  const activities = createRemediationActivities(options.resources);
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    // In-flight activities get this long to finish when the worker is asked to stop.
    shutdownGraceTime: '10s',
  });
}
