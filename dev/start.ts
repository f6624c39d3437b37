// `npm start`: Cordon's embedded default on one machine. Starts the Temporal dev server (SQLite in the
// data directory, UI on 8233), the demo SCIM directory, the demo LDAP directory and AWS account where
// slapd and moto are available, the worker and the API, prints where they are and which playbooks it
// cannot offer, and stops every child it started, by PID, on Ctrl-C.
import { constants, existsSync, readFileSync } from 'node:fs';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Connection } from '@temporalio/client';
import { ScimClient } from '../activities/connectors/scim/scim-client.js';
import { ConfigError, loadConfig, PROJECT_ROOT, type Config } from '../config/config.js';
import { loadPayloadCodec } from '../config/payload-codec.js';
import { seedDemoOrganisation } from './demo-org.js';
import { DEV_IDENTITIES, ensureApprovalKeys, ensureDevCredentials, ensureSecretFile } from './dev-credentials.js';
import { isAlive, spawnManaged, waitUntil, type ManagedProcess } from './processes.js';
import { ensureMotoServer, ensureScimServer } from './python-tools.js';
import { startAwsDemo } from './aws-demo.js';
import { LDAP_GROUPS_DN, LDAP_PEOPLE_DN, LDAP_PLACEHOLDER_MEMBER, LDAP_ROOT_DN, LDAP_SUFFIX, seedDirectory, startSlapd } from './ldap/slapd.js';
import { startScimDirectory } from './scim-directory.js';
import { provisionTemporalCli, TemporalCliNotFound } from './temporal-cli.js';
import { startTemporalDevServer } from './temporal-server.js';

/** Where `npm start` records the PIDs of its children. */
export const PROCESS_FILE = 'processes.json';

interface RecordedProcess {
  name: string;
  pid: number;
  command: string;
}

const say = (line = '') => process.stdout.write(`${line}\n`);

/** Stops children a previous, killed `npm start` left behind: by recorded PID, only if the PID still runs the recorded command. */
async function stopLeftovers(file: string): Promise<void> {
  if (!existsSync(file)) return;
  let recorded: RecordedProcess[];
  try {
    recorded = JSON.parse(readFileSync(file, 'utf8')) as RecordedProcess[];
  } catch {
    return;
  }
  for (const child of recorded) {
    if (!isAlive(child.pid)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (!cmdline.includes(child.command)) continue;
    say(`Stopping ${child.name} (pid ${child.pid}) left over from a previous start`);
    process.kill(child.pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (isAlive(child.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
  }
}

function splitAddress(address: string): { ip: string; port: number } {
  const match = /^([^:]+):(\d+)$/.exec(address);
  if (!match) throw new ConfigError([`TEMPORAL_ADDRESS: ${address} is not host:port`]);
  const ip = match[1] === 'localhost' ? '127.0.0.1' : match[1]!;
  return { ip, port: Number(match[2]) };
}

async function waitForWorker(config: Config, worker: ManagedProcess): Promise<void> {
  const connection = await Connection.connect({ address: config.temporal.address });
  try {
    await waitUntil(
      'worker',
      async () => {
        const answer = await connection.workflowService.describeTaskQueue({
          namespace: config.temporal.namespace,
          taskQueue: { name: config.temporal.taskQueue },
          taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
        });
        return (answer.pollers ?? []).length > 0;
      },
      // The first start bundles the workflow code, which takes a while on a small machine.
      { timeoutMs: 180_000, intervalMs: 500, process: worker },
    );
  } finally {
    await connection.close();
  }
}

/**
 * moto's server: the configured one (CORDON_MOTO_SERVER_PATH), which must exist, or the project's
 * own, installed into `.tools` when missing. Throws when there is none, naming where it looked.
 */
async function motoServer(configured: string | undefined): Promise<string> {
  if (configured === undefined) return ensureMotoServer(PROJECT_ROOT, 'python3', say);
  const found = await access(configured, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (!found) throw new Error(`no moto server at ${configured} (CORDON_MOTO_SERVER_PATH)`);
  return configured;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  const logs = join(config.dataDir, 'logs');
  await mkdir(logs, { recursive: true, mode: 0o700 });
  const processFile = join(config.dataDir, PROCESS_FILE);
  await stopLeftovers(processFile);

  const children: ManagedProcess[] = [];
  const commands = new Map<ManagedProcess, string>();
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    for (const child of [...children].reverse()) {
      await child.stop(10_000);
    }
  };
  const record = async (child: ManagedProcess, command: string) => {
    children.push(child);
    commands.set(child, command);
    const entries: RecordedProcess[] = children.map((c) => ({ name: c.name, pid: c.pid, command: commands.get(c) ?? '' }));
    await writeFile(processFile, `${JSON.stringify(entries, null, 2)}\n`, { mode: 0o600 });
    void child.exited.then(async ({ code, signal }) => {
      if (stopping) return;
      say(`\n${child.name} (pid ${child.pid}) exited unexpectedly (${signal ?? `code ${code}`}):\n${child.tail()}\nStopping everything.`);
      await stopAll();
      process.exit(1);
    });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    say(`\n${signal}: stopping ${children.map((c) => `${c.name} (pid ${c.pid})`).join(', ')}`);
    void stopAll().then(() => {
      say('Stopped.');
      process.exit(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const credentials = await ensureDevCredentials(config.identitiesFile);
    await ensureSecretFile(config.alertHmacSecretFile);
    await ensureApprovalKeys(config.approvals.signingKeyFile, config.approvals.verifyKeysFile);
    // A bad payload keys file stops the start here, before any process is started.
    await loadPayloadCodec(config);
    await ensureSecretFile(config.ui.sessionSecretFile);
    const scimToken = await ensureSecretFile(config.scim.tokenFile);

    const cli = await provisionTemporalCli({ projectRoot: PROJECT_ROOT, env: { TEMPORAL_CLI_PATH: config.dev.temporalCliPath, PATH: process.env.PATH }, log: say });
    const tools = await ensureScimServer(PROJECT_ROOT, 'python3', say);

    const { ip, port } = splitAddress(config.temporal.address);
    const temporal = await startTemporalDevServer({
      cliPath: cli.path,
      ip,
      port,
      namespace: config.temporal.namespace,
      uiPort: config.dev.temporalUiPort,
      dbFile: join(config.dataDir, 'temporal.db'),
      logFile: join(logs, 'temporal.log'),
    });
    await record(temporal.process, cli.path);

    const directory = await startScimDirectory({
      python: tools.python,
      port: config.dev.scimPort,
      stateFile: join(config.dataDir, 'directory.json'),
      tokenFile: config.scim.tokenFile,
      logFile: join(logs, 'directory.log'),
    });
    await record(directory.process, 'scim-directory.py');
    const seeded = await seedDemoOrganisation(new ScimClient({ baseUrl: directory.url, bearerToken: scimToken }));

    // The LDAP and AWS demos are optional: without slapd or moto, their playbooks are unavailable.
    const optionalEnv: Record<string, string> = {};
    const unavailable: string[] = [];
    let ldapLine: string;
    const slapdCandidates = config.dev.slapdPath ? [config.dev.slapdPath] : ['/usr/sbin/slapd', '/usr/local/sbin/slapd'];
    const slapdPath = slapdCandidates.find((p) => existsSync(p));
    if (slapdPath) {
      const ldapPassword = await ensureSecretFile(config.ldap.passwordFile);
      const stateDir = join(config.dataDir, 'ldap');
      const ldap = await startSlapd({ slapdPath, port: config.dev.ldapPort, stateDir, password: ldapPassword, logFile: join(logs, 'slapd.log') });
      await record(ldap.process, join(stateDir, 'slapd.conf'));
      const ldapSeed = await seedDirectory({ url: ldap.url, bindDN: ldap.bindDN, password: ldapPassword });
      Object.assign(optionalEnv, {
        CORDON_LDAP_URL: ldap.url,
        CORDON_LDAP_BIND_DN: LDAP_ROOT_DN,
        CORDON_LDAP_PASSWORD_FILE: config.ldap.passwordFile,
        CORDON_LDAP_BASE_DN: LDAP_SUFFIX,
        CORDON_LDAP_USERS_DN: LDAP_PEOPLE_DN,
        CORDON_LDAP_GROUPS_DN: LDAP_GROUPS_DN,
        CORDON_LDAP_PLACEHOLDER_MEMBER: LDAP_PLACEHOLDER_MEMBER,
      });
      ldapLine = `${ldap.url}  (OpenLDAP, ${ldapSeed.users} users, ${ldapSeed.groups} groups, base ${LDAP_SUFFIX})`;
    } else {
      unavailable.push(`deprovision-account and entitlement-cleanup on LDAP: no slapd at ${slapdCandidates.join(' or ')} (apt-get install slapd ldap-utils)`);
      ldapLine = 'not started: slapd is not installed';
    }
    let awsLine: string;
    try {
      const motoPath = await motoServer(config.dev.motoServerPath);
      const aws = await startAwsDemo({ motoPath, port: config.dev.awsDemoPort, logFile: join(logs, 'aws.log') });
      await record(aws.process, motoPath);
      const credentialsFile = join(config.dataDir, 'aws-demo-credentials.json');
      await writeFile(credentialsFile, `${JSON.stringify({ accessKeyId: 'demo', secretAccessKey: 'demo' })}\n`, { mode: 0o600 });
      Object.assign(optionalEnv, { CORDON_AWS_REGION: 'us-east-1', CORDON_AWS_ENDPOINT: aws.url, CORDON_AWS_CREDENTIALS_FILE: credentialsFile, CORDON_AWS_ACCESS_ADVISOR: 'off' });
      awsLine = `${aws.url}  (moto, in memory: seeded again at each start; leaked key ${aws.leakedKeyId})`;
    } catch (error) {
      unavailable.push(`revoke-credential, quarantine-agent and entitlement-cleanup on AWS: ${(error as Error).message.split('\n')[0]}`);
      awsLine = 'not started: moto is not available';
    }

    const childEnv = {
      ...process.env,
      CORDON_DATA_DIR: config.dataDir,
      TEMPORAL_ADDRESS: config.temporal.address,
      TEMPORAL_NAMESPACE: config.temporal.namespace,
      CORDON_SCIM_URL: directory.url,
      CORDON_SCIM_TOKEN_FILE: config.scim.tokenFile,
      // Absolute: the children run in the project root, not where `npm start` was run.
      ...(config.payloadKeysFile ? { CORDON_PAYLOAD_KEYS_FILE: config.payloadKeysFile } : {}),
      // The development sign-in of the web UI: the embedded default only (loopback).
      CORDON_UI_DEV_SIGNIN: 'on',
      ...optionalEnv,
    };
    const tsx = ['--import', 'tsx'];
    const worker = spawnManaged('worker', process.execPath, { args: [...tsx, join(PROJECT_ROOT, 'workers/main.ts')], env: childEnv, cwd: PROJECT_ROOT, logFile: join(logs, 'worker.log') });
    await record(worker, 'workers/main.ts');
    const api = spawnManaged('api', process.execPath, { args: [...tsx, join(PROJECT_ROOT, 'server/main.ts')], env: childEnv, cwd: PROJECT_ROOT, logFile: join(logs, 'api.log') });
    await record(api, 'server/main.ts');

    const apiUrl = `http://${config.api.host}:${config.api.port}`;
    await waitUntil('API', async () => (await fetch(`${apiUrl}/healthz`, { signal: AbortSignal.timeout(2000) })).ok, { timeoutMs: 60_000, process: api });
    await waitForWorker(config, worker);

    const names = credentials.names.filter((n) => n in DEV_IDENTITIES);
    say('');
    say('Cordon is running (embedded default).');
    say(`  API              ${apiUrl}   (OpenAPI ${apiUrl}/openapi.json, health ${apiUrl}/healthz)`);
    say(`  Temporal UI      ${temporal.uiUrl ?? '(headless)'}`);
    say(`  Temporal         ${temporal.address}  namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue}`);
    say(`  Web UI           ${apiUrl}/ui/   (development sign-in as ${names.join(', ')})`);
    say(`  Demo directory   ${directory.url}  (SCIM 2.0, ${seeded.users} users, ${seeded.groups} groups${seeded.seeded ? ', seeded now' : ''}; token in ${rel(config.scim.tokenFile)})`);
    say(`  Demo LDAP        ${ldapLine}`);
    say(`  Demo AWS IAM     ${awsLine}`);
    say(`  Dev credentials  ${rel(config.identitiesFile)}  (${names.join(', ')}${credentials.created ? '; generated now' : ''})`);
    say(`  Alert HMAC key   ${rel(config.alertHmacSecretFile)}`);
    say(`  Ledger           ${rel(config.ledger.path)}`);
    say(`  Logs             ${rel(logs)}/  (PIDs in ${rel(processFile)})`);
    say('');
    say('From another terminal:');
    say('  npx cordon --as soc alert send examples/alerts/orphaned-account.json');
    say('  npx cordon --as alice alert send examples/alerts/orphaned-admin.json');
    say('  npx cordon --as bob approve <runId>     (then --as carol)');
    say('  npx cordon --as oscar runs list');
    say('  (every example alert: ls examples/alerts/)');
    if (unavailable.length > 0) {
      say('');
      for (const line of unavailable) say(`Unavailable here: ${line}`);
    }
    say('');
    say('Ctrl-C stops everything.');
  } catch (error) {
    await stopAll();
    throw error;
  }
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof TemporalCliNotFound;
  console.error(`\ncordon start: ${known || !(error instanceof Error) ? String((error as Error).message ?? error) : (error.stack ?? error.message)}`);
  process.exit(1);
});
