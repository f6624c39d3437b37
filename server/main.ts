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
import { openSqliteGuardrailState } from '../store/guardrail-state.js';
import { openSqliteLedger } from '../store/ledger.js';
import { buildServer } from './app.js';
import { loadIdentities } from './identities.js';

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
  const identities = await loadIdentities(config.identitiesFile);
  const alertHmacSecret = await readOptionalSecret(config.alertHmacSecretFile);
  if (!alertHmacSecret) log.warn({ file: config.alertHmacSecretFile }, 'no alert HMAC secret: only bearer tokens can send alerts');
  const approvalSigner = await readApprovalSigningKey(config.approvals.signingKeyFile);
  if (!approvalSigner) log.warn({ file: config.approvals.signingKeyFile }, 'no approval signing key: every approval will be refused');
  const slack = config.slack.signingSecretFile ? await slackConfig(config, identities) : undefined;
  const ui = await loadUiConfig(config);
  if (ui) log.info({ url: `${config.api.publicUrl}/ui/`, oidc: ui.oidc?.issuer ?? null, devSignIn: ui.devSignIn }, 'web UI on');
  const ledger = openSqliteLedger({ path: config.ledger.path });
  const guardrailState = openSqliteGuardrailState({ path: config.ledger.path });
  // Lazy: the API starts (and /healthz says so) even while Temporal is still coming up.
  const connection = Connection.lazy({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const app = await buildServer({ temporal, taskQueue: config.temporal.taskQueue, ledger, guardrailState, identities, alertHmacSecret, approvalSigner, slack, ui, log });
  await app.listen({ host: config.api.host, port: config.api.port });
  const stop = async (signal: string) => {
    log.info({ signal }, 'closing the API');
    await app.close();
    await connection.close();
    await ledger.close();
    await guardrailState.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  const known = error instanceof Error && error.name === 'ConfigError';
  console.error(`cordon api: ${known ? (error as Error).message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
