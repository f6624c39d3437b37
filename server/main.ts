// Entry point of the Cordon API server.
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { readApprovalSigningKey } from '../config/approval-keys.js';
import { z } from 'zod';
import { loadConfig, type Config } from '../config/config.js';
import { IdentityName } from '../domain/index.js';
import { readSecretFile } from '../config/secrets.js';
import type { SlackConfig } from './chat/slack-config.js';
import type { IdentityStore } from './identities.js';
import { loadUiConfig } from './ui/load.js';
import { createLogger } from '../config/logger.js';
import { loadDataConverter, loadSearchIndex } from '../config/payload-codec.js';
import { clientTracingInterceptors, spanProcessorFor, startTracing } from '../config/tracing.js';
import { openStores } from '../store/open.js';
import { buildServer } from './app.js';
import { watchIdentities } from './identities.js';

async function readOptionalSecret(path: string): Promise<Buffer | undefined> {
  try {
    const value = (await readFile(path, 'utf8')).trim();
    return value.length > 0 ? Buffer.from(value, 'utf8') : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Slack interactivity from config: the signing secret, the optional bot token and the user map. */
async function slackConfig(config: Config, identities: IdentityStore): Promise<SlackConfig> {
  const signingSecret = await readSecretFile(config.slack.signingSecretFile!, 'CORDON_SLACK_SIGNING_SECRET_FILE');
  const botToken = config.slack.botTokenFile ? await readSecretFile(config.slack.botTokenFile, 'CORDON_SLACK_BOT_TOKEN_FILE') : undefined;
  let userMap: Record<string, string> = {};
  if (config.slack.userMapFile) {
    const parsed = z.record(z.string(), IdentityName).safeParse(JSON.parse(await readFile(config.slack.userMapFile, 'utf8')));
    if (!parsed.success) throw new Error(`CORDON_SLACK_USER_MAP_FILE ${config.slack.userMapFile} is invalid: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
    userMap = parsed.data;
  }
  return {
    signingSecret,
    userMap,
    ...(botToken !== undefined ? { botToken } : {}),
    ...(config.slack.apiUrl !== undefined ? { apiUrl: config.slack.apiUrl } : {}),
    identityOf: (name) => identities.identity(name),
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config, 'cordon-api');
  const identities = await watchIdentities(config.identitiesFile, log);
  const alertHmacSecret = await readOptionalSecret(config.alertHmacSecretFile);
  if (!alertHmacSecret) log.warn({ file: config.alertHmacSecretFile }, 'no alert HMAC secret: only bearer tokens can send alerts');
  const approvalSigner = await readApprovalSigningKey(config.approvals.signingKeyFile);
  if (!approvalSigner) log.warn({ file: config.approvals.signingKeyFile }, 'no approval signing key: every approval will be refused');
  const slack = config.slack.signingSecretFile ? await slackConfig(config, identities) : undefined;
  const ui = await loadUiConfig(config);
  if (ui) log.info({ url: `${config.api.publicUrl}/ui/`, oidc: ui.oidc?.issuer ?? null, nameClaim: ui.oidc?.nameClaim ?? null, sessionTtlSeconds: ui.sessionTtlSeconds, devSignIn: ui.devSignIn }, 'web UI on');
  const { ledger, guardrailState } = await openStores(config);
  // Lazy: the API starts (and /healthz says so) even while Temporal is still coming up.
  const connection = Connection.lazy({ address: config.temporal.address });
  // The same codec as the workers': run views, queries and updates are encrypted in Temporal.
  // Traced, the workflow a request starts is a child of the request's span (config/tracing.ts).
  const spanProcessor = spanProcessorFor(config);
  const tracing = spanProcessor ? startTracing('cordon-api', spanProcessor) : undefined;
  const temporal = new Client({ connection, namespace: config.temporal.namespace, dataConverter: await loadDataConverter(config), ...(tracing ? { interceptors: clientTracingInterceptors() } : {}) });
  let draining = false;
  const searchIndex = await loadSearchIndex(config);
  const app = await buildServer({ temporal, taskQueue: config.temporal.taskQueue, ledger, guardrailState, identities, alertHmacSecret, approvalSigner, slack, ui, log, draining: () => draining, ...(searchIndex ? { searchIndex } : {}) });
  await app.listen({ host: config.api.host, port: config.api.port });
  // Drain, then stop: /readyz turns 503, the listener closes, in-flight requests finish within the
  // grace period (then their connections are cut), and only then Temporal and the stores close.
  const stop = async (signal: string) => {
    draining = true;
    const { graceMs } = config.shutdown;
    log.info({ signal, graceMs }, 'draining the API');
    let cut = false;
    const grace = setTimeout(() => {
      cut = true;
      log.warn({ graceMs }, 'grace period over: closing the connections still open');
      app.server.closeAllConnections();
    }, graceMs);
    try {
      await app.close();
      clearTimeout(grace);
      identities.close();
      await connection.close();
      await ledger.close();
      await guardrailState.close();
      await tracing?.shutdown();
    } catch (error) {
      log.error({ err: error }, 'stopping the API failed');
      process.exit(1);
    }
    log.info({ cut }, 'API stopped');
    process.exit(cut ? 1 : 0);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (!draining) return void stop(signal);
    log.warn({ signal }, 'second signal: stopping now');
    process.exit(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

main().catch((error: unknown) => {
  const known = error instanceof Error && error.name === 'ConfigError';
  console.error(`cordon api: ${known ? (error as Error).message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
