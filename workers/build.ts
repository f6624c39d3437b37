import { fileURLToPath } from 'node:url';
import { Worker, type NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import type { DataConverter } from '@temporalio/common';
import { existsSync } from 'node:fs';
import { createLimiter, rateLimited } from '../activities/connectors/rate-limit.js';
import { WebClient } from '@slack/web-api';
import { z } from 'zod';
import { createIamClient } from '../activities/connectors/aws/iam-client.js';
import { createIamConnector } from '../activities/connectors/aws/iam-connector.js';
import { createLdapConnector } from '../activities/connectors/ldap/ldap-connector.js';
import { createScimConnector } from '../activities/connectors/scim/scim-connector.js';
import { createSlackNotifier, slackLogger } from '../activities/notify/slack.js';
import type { ApprovalNotifier } from '../activities/notify/types.js';
import type { DirectoryConnector } from '../activities/connectors/types.js';
import { createRemediationActivities, type RemediationDeps } from '../activities/remediation.js';
import { loadSearchIndex, type SearchIndex } from '../config/payload-codec.js';
import { readApprovalVerifyKeys } from '../config/approval-keys.js';
import type { Config } from '../config/config.js';
import { readSecretFile } from '../config/secrets.js';
import type { ApprovalVerifyKey } from '../domain/index.js';
import type { Logger } from '../config/logger.js';
import { loadPolicyEngine, type PolicyEngine } from '../policies/engine.js';
import { loadGuardrails, noGuardrails, type Guardrails } from '../policies/guardrails.js';
import type { GuardrailState } from '../store/guardrail-state.js';
import type { Ledger } from '../store/ledger.js';
import { openStores } from '../store/open.js';
import { meteredLedger, type WorkerMetrics } from './metrics.js';
import type { WorkerTracing } from './tracing.js';

/** The workflow code a worker runs. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** An AWS credentials file: `{ "accessKeyId", "secretAccessKey", "sessionToken"? }`. */
const AwsCredentialsFile = z.strictObject({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1), sessionToken: z.string().min(1).optional() });

/** The clients a worker's activities use, built from config. */
export interface WorkerResources {
  ledger: Ledger;
  policy: PolicyEngine;
  guardrails: Guardrails;
  guardrailState: GuardrailState;
  approvalKeys: ApprovalVerifyKey[];
  notifiers: ApprovalNotifier[];
  connectors: Record<string, DirectoryConnector>;
  /** Blinds the identities in search attributes (payload encryption with a search key). */
  searchIndex?: SearchIndex;
  close(): Promise<void>;
}

/**
 * Builds the real clients from config: policy engine and guardrails (validated now: a bad file stops
 * startup), ledger and guardrail state, connectors behind their rate limits.
 */
export async function buildWorkerResources(config: Config, log: Logger): Promise<WorkerResources> {
  const policy = await loadPolicyEngine(config.policyDir);
  const guardrails = existsSync(config.guardrailsFile) ? await loadGuardrails(config.guardrailsFile) : noGuardrails();
  const connectors: Record<string, DirectoryConnector> = {};
  if (config.scim.baseUrl) {
    const bearerToken = await readSecretFile(config.scim.tokenFile, 'CORDON_SCIM_TOKEN_FILE');
    connectors[config.scim.system] = createScimConnector(config.scim.system, { baseUrl: config.scim.baseUrl, bearerToken });
  }
  if (config.ldap.url) {
    const { ldap } = config;
    const password = await readSecretFile(ldap.passwordFile, 'CORDON_LDAP_PASSWORD_FILE');
    connectors[ldap.system] = createLdapConnector(ldap.system, {
      url: ldap.url!,
      bindDN: ldap.bindDN!,
      password,
      baseDN: ldap.baseDN!,
      disableMode: ldap.disableMode,
      userIdAttribute: ldap.userIdAttribute,
      ...(ldap.usersDN ? { usersDN: ldap.usersDN } : {}),
      ...(ldap.groupsDN ? { groupsDN: ldap.groupsDN } : {}),
      ...(ldap.placeholderMember ? { placeholderMember: ldap.placeholderMember } : {}),
    });
  }
  if (config.aws.region) {
    const file = config.aws.credentialsFile ? AwsCredentialsFile.parse(JSON.parse(await readSecretFile(config.aws.credentialsFile, 'CORDON_AWS_CREDENTIALS_FILE'))) : undefined;
    const credentials = file && { accessKeyId: file.accessKeyId, secretAccessKey: file.secretAccessKey, ...(file.sessionToken ? { sessionToken: file.sessionToken } : {}) };
    const client = createIamClient({ region: config.aws.region, ...(config.aws.endpoint ? { endpoint: config.aws.endpoint } : {}), ...(credentials ? { credentials } : {}) });
    const iam = createIamConnector(config.aws.system, { client });
    if (config.aws.accessAdvisor) connectors[config.aws.system] = iam;
    else {
      // Without Access Advisor the connector offers no stale search: an alert naming no entitlements is refused at observe.
      const { staleEntitlements: _unavailable, ...withoutAdvisor } = iam;
      connectors[config.aws.system] = withoutAdvisor;
    }
  }
  for (const [system, connector] of Object.entries(connectors)) {
    const limit = guardrails.rateLimit(system);
    if (limit) connectors[system] = rateLimited(connector, createLimiter(limit));
  }
  const approvalKeys = await readApprovalVerifyKeys(config.approvals.verifyKeysFile);
  const notifiers: ApprovalNotifier[] = [];
  if (config.slack.botTokenFile && config.slack.channel) {
    const token = await readSecretFile(config.slack.botTokenFile, 'CORDON_SLACK_BOT_TOKEN_FILE');
    const client = new WebClient(token, {
      // The SDK appends the method name to this URL.
      ...(config.slack.apiUrl ? { slackApiUrl: config.slack.apiUrl.replace(/\/?$/, '/') } : {}),
      // A notification activity has 15 s per attempt.
      retryConfig: { retries: 2, maxTimeout: 2000 },
      timeout: 5000,
      logger: slackLogger(log.child({ component: 'slack' })),
    });
    notifiers.push(createSlackNotifier({ client, channel: config.slack.channel, publicUrl: config.api.publicUrl }));
  }
  const { ledger, guardrailState } = await openStores(config);
  const searchIndex = await loadSearchIndex(config);
  if (config.payloadKeysFile && !searchIndex) log.warn({ file: config.payloadKeysFile }, 'payload encryption without a searchKey: runs are found by account ids and names kept in clear in search attributes');
  return {
    ledger,
    ...(searchIndex ? { searchIndex } : {}),
    approvalKeys,
    notifiers,
    policy,
    guardrails,
    guardrailState,
    connectors,
    async close() {
      await ledger.close();
      await guardrailState.close();
    },
  };
}

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  resources: RemediationDeps;
  log: Logger;
  /** A prebuilt bundle (tests build one per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  /** How long in-flight activities may run on once the worker is asked to stop (default 10 s). */
  shutdownGraceMs?: number;
  /** The payload codec when payloads are encrypted (config/payload-codec.ts `loadDataConverter`). */
  dataConverter?: DataConverter;
  /** Run metrics: the ledger's writes update them (workers/metrics.ts). */
  metrics?: WorkerMetrics;
  /**
   * Traces workflows and activities (workers/tracing.ts). A prebuilt `workflowBundle` must then have
   * been bundled with `WORKFLOW_TRACING_MODULES` as workflow interceptor modules.
   */
  tracing?: WorkerTracing;
}

/** Creates a worker polling Cordon's task queue with the remediation workflow and its activities. */
export async function createCordonWorker(options: CreateWorkerOptions): Promise<Worker> {
  const resources = options.metrics ? { ...options.resources, ledger: meteredLedger(options.resources.ledger, options.metrics, options.log) } : options.resources;
  const activities = createRemediationActivities(resources);
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    ...(options.dataConverter ? { dataConverter: options.dataConverter } : {}),
    ...(options.tracing ? { interceptors: options.tracing.interceptors, sinks: options.tracing.sinks } : {}),
    // In-flight activities get this long to finish when the worker is asked to stop; then they are cancelled.
    shutdownGraceTime: options.shutdownGraceMs ?? 10_000,
  });
}
