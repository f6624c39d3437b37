import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** The repository root (config/ sits one level below it). */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The Temporal task queue every Cordon worker polls. */
export const DEFAULT_TASK_QUEUE = 'cordon-remediation';

// Digits only: z.coerce.number would read ' ' as 0 and '0x1F90' as 8080.
const Port = z
  .string()
  .trim()
  .regex(/^\d{1,5}$/, 'must be a port number (digits only)')
  .transform(Number)
  .pipe(z.int().min(0).max(65535));
const NonEmpty = z.string().trim().min(1);
// The password goes in a file (CORDON_POSTGRES_PASSWORD_FILE): in the URL it would sit in every process's environment.
const PostgresUrl = z
  .string()
  .trim()
  .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL')
  .refine((url) => URL.canParse(url), 'must be a valid URL')
  .refine((url) => !URL.canParse(url) || new URL(url).password === '', 'must not carry a password (put it in the file named by CORDON_POSTGRES_PASSWORD_FILE)');

// Scopes for the UI's OIDC sign-in, separated by spaces or commas (RFC 6749 scope-tokens); openid is required.
const OidcScopes = z
  .string()
  .transform((raw) => raw.split(/[\s,]+/).filter(Boolean))
  .pipe(
    z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'each scope must be printable ASCII without quotes or backslashes'))
      .min(1, 'name at least one scope')
      .max(32)
      .refine((scopes) => scopes.includes('openid'), 'must include openid (the sign-in needs an ID token)'),
  );
// How long a UI sign-in lasts (and so how long roles taken from the provider's claims can be stale): 5m to 24h.
const SessionTtl = z
  .string()
  .trim()
  .regex(/^\d{1,6}(s|m|h)$/, 'must be a duration such as 30m or 8h (s, m or h)')
  .transform((raw) => Number(raw.slice(0, -1)) * { s: 1, m: 60, h: 3600 }[raw.slice(-1) as 's' | 'm' | 'h'])
  .pipe(z.int().min(300, 'must be at least 5m').max(86_400, 'must be at most 24h'));

/**
 * Every environment variable Cordon reads, with its default. Unknown `CORDON_*` variables are
 * refused, so a misspelt setting fails at startup instead of being silently ignored.
 */
export const EnvSchema = z.object({
  CORDON_DATA_DIR: NonEmpty.default('.data'),
  CORDON_API_HOST: NonEmpty.default('127.0.0.1'),
  CORDON_API_PORT: Port.default(8080),
  // How long a stopping API or worker lets in-flight requests and activities finish.
  CORDON_SHUTDOWN_GRACE_MS: z.string().trim().regex(/^\d{1,9}$/, 'must be a number of milliseconds (digits only)').transform(Number).default(10_000),
  CORDON_PUBLIC_URL: z.url().optional(),
  TEMPORAL_ADDRESS: NonEmpty.default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: NonEmpty.default('default'),
  CORDON_TASK_QUEUE: NonEmpty.default(DEFAULT_TASK_QUEUE),
  CORDON_LEDGER_PATH: NonEmpty.optional(),
  // Where the ledger and guardrail state live: the SQLite file above, or PostgreSQL (password by file).
  CORDON_STORE: z.enum(['sqlite', 'postgres']).default('sqlite'),
  CORDON_POSTGRES_URL: PostgresUrl.optional(),
  CORDON_POSTGRES_PASSWORD_FILE: NonEmpty.optional(),
  CORDON_IDENTITIES_FILE: NonEmpty.optional(),
  CORDON_ALERT_HMAC_SECRET_FILE: NonEmpty.optional(),
  CORDON_APPROVAL_SIGNING_KEY_FILE: NonEmpty.optional(),
  CORDON_APPROVAL_VERIFY_KEYS_FILE: NonEmpty.optional(),
  // Payload encryption (config/payload-codec.ts): off unless set.
  CORDON_PAYLOAD_KEYS_FILE: NonEmpty.optional(),
  CORDON_POLICY_DIR: NonEmpty.optional(),
  CORDON_GUARDRAILS_FILE: NonEmpty.optional(),
  CORDON_SCIM_SYSTEM: z.string().regex(/^[a-z][a-z0-9-]*$/).default('scim'),
  CORDON_SCIM_URL: z.url().optional(),
  CORDON_SCIM_TOKEN_FILE: NonEmpty.optional(),
  // LDAP / AD-style directory: the connector is on when a URL is set.
  CORDON_LDAP_SYSTEM: z.string().regex(/^[a-z][a-z0-9-]*$/).default('ldap'),
  CORDON_LDAP_URL: z.string().regex(/^ldaps?:\/\/[^\s]+$/, 'must be an ldap:// or ldaps:// URL').optional(),
  CORDON_LDAP_BIND_DN: NonEmpty.optional(),
  CORDON_LDAP_PASSWORD_FILE: NonEmpty.optional(),
  CORDON_LDAP_BASE_DN: NonEmpty.optional(),
  CORDON_LDAP_USERS_DN: NonEmpty.optional(),
  CORDON_LDAP_GROUPS_DN: NonEmpty.optional(),
  CORDON_LDAP_USER_ID_ATTRIBUTE: NonEmpty.default('uid'),
  CORDON_LDAP_DISABLE_MODE: z.enum(['ppolicy', 'ad-user-account-control']).default('ppolicy'),
  CORDON_LDAP_PLACEHOLDER_MEMBER: NonEmpty.optional(),
  CORDON_LDAP_PORT: Port.default(3389),
  CORDON_AWS_DEMO_PORT: Port.default(5050),
  // AWS IAM: the connector is on when a region is set; credentials by reference (a file), else the SDK's chain.
  CORDON_AWS_SYSTEM: z.string().regex(/^[a-z][a-z0-9-]*$/).default('aws'),
  CORDON_AWS_REGION: NonEmpty.optional(),
  CORDON_AWS_ENDPOINT: z.url().optional(),
  CORDON_AWS_CREDENTIALS_FILE: NonEmpty.optional(),
  // Access Advisor finds stale entitlements; off for an endpoint that does not offer it (moto, LocalStack).
  CORDON_AWS_ACCESS_ADVISOR: z.enum(['on', 'off']).default('on'),
  // The web UI: OIDC sign-in, sessions; the dev sign-in is for the embedded default only.
  CORDON_OIDC_ISSUER: z.url().optional(),
  CORDON_OIDC_CLIENT_ID: NonEmpty.optional(),
  CORDON_OIDC_CLIENT_SECRET_FILE: NonEmpty.optional(),
  CORDON_OIDC_ROLES_CLAIM: NonEmpty.default('roles'),
  CORDON_OIDC_ROLE_MAP_FILE: NonEmpty.optional(),
  CORDON_OIDC_SCOPES: OidcScopes.default(['openid', 'email', 'profile']),
  CORDON_OIDC_NAME_CLAIM: z
    .string()
    .trim()
    .regex(/^[A-Za-z_][A-Za-z0-9_:-]*(\.[A-Za-z_][A-Za-z0-9_:-]*)*$/, 'must be a claim name such as sub, email or preferred_username (a dotted path reaches into an object)')
    .max(100)
    .default('sub'),
  CORDON_UI_SESSION_SECRET_FILE: NonEmpty.optional(),
  CORDON_UI_SESSION_TTL: SessionTtl.default(8 * 60 * 60),
  CORDON_UI_DEV_SIGNIN: z.enum(['on', 'off']).default('off'),
  // Slack: notifications (worker) and button clicks (API).
  CORDON_SLACK_BOT_TOKEN_FILE: NonEmpty.optional(),
  CORDON_SLACK_SIGNING_SECRET_FILE: NonEmpty.optional(),
  CORDON_SLACK_CHANNEL: NonEmpty.optional(),
  CORDON_SLACK_USER_MAP_FILE: NonEmpty.optional(),
  CORDON_SLACK_API_URL: z.url().optional(),
  CORDON_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  // Metrics and traces: the worker's Prometheus listeners are off unless a port is set.
  CORDON_WORKER_METRICS_HOST: NonEmpty.default('127.0.0.1'),
  CORDON_WORKER_METRICS_PORT: Port.optional(),
  CORDON_TEMPORAL_METRICS_PORT: Port.optional(),
  CORDON_OTEL_EXPORTER: z.enum(['none', 'otlp', 'console']).default('none'),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  // The embedded default (npm start) only.
  TEMPORAL_CLI_PATH: NonEmpty.optional(),
  CORDON_TEMPORAL_UI_PORT: Port.default(8233),
  CORDON_SCIM_PORT: Port.default(9090),
  // `npm start`: the slapd binary of the demo LDAP directory (default: /usr/sbin/slapd or /usr/local/sbin/slapd).
  CORDON_SLAPD_PATH: NonEmpty.optional(),
  // `npm start`: moto's server for the demo AWS account (default: .tools/bin/moto_server, installed from PyPI when missing).
  CORDON_MOTO_SERVER_PATH: NonEmpty.optional(),
  // The CLI's (config/cli-env.ts); listed so that they are known names.
  CORDON_API: z.url().optional(),
  CORDON_TOKEN: z.string().optional(),
});
export type Env = z.infer<typeof EnvSchema>;

/** The names of every variable Cordon knows. */
export const KNOWN_ENV_VARS: readonly string[] = Object.keys(EnvSchema.shape);

/** A configuration that cannot be used; the message names each variable and why. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Cordon's configuration, parsed once and frozen. */
export interface Config {
  dataDir: string;
  api: { host: string; port: number; publicUrl: string };
  /** Drain before stopping: in-flight requests and activities get this long. */
  shutdown: { graceMs: number };
  temporal: { address: string; namespace: string; taskQueue: string };
  /** The ledger and guardrail state: the SQLite file at `path`, or PostgreSQL at `postgres.url` when `store` is `postgres`. */
  ledger: { store: Env['CORDON_STORE']; path: string; postgres: { url: string; passwordFile: string | undefined } | undefined };
  identitiesFile: string;
  alertHmacSecretFile: string;
  /** The API signs approvals with this key; workers verify them with the public keys. */
  approvals: { signingKeyFile: string; verifyKeysFile: string };
  /** The keys Temporal payloads are encrypted with; undefined: payloads are stored in clear. */
  payloadKeysFile: string | undefined;
  policyDir: string;
  guardrailsFile: string;
  scim: { system: string; baseUrl: string | undefined; tokenFile: string };
  aws: { system: string; region: string | undefined; endpoint: string | undefined; credentialsFile: string | undefined; accessAdvisor: boolean };
  ldap: {
    system: string;
    url: string | undefined;
    bindDN: string | undefined;
    passwordFile: string;
    baseDN: string | undefined;
    usersDN: string | undefined;
    groupsDN: string | undefined;
    userIdAttribute: string;
    disableMode: 'ppolicy' | 'ad-user-account-control';
    placeholderMember: string | undefined;
  };
  ui: {
    sessionSecretFile: string;
    /** How long a sign-in lasts, in seconds. */
    sessionTtlSeconds: number;
    devSignIn: boolean;
    oidc: {
      issuer: string | undefined;
      clientId: string | undefined;
      clientSecretFile: string | undefined;
      rolesClaim: string;
      roleMapFile: string | undefined;
      /** Asked for at sign-in; always includes `openid`. */
      scopes: string[];
      /** The claim that names the person in Cordon. */
      nameClaim: string;
    };
  };
  slack: { botTokenFile: string | undefined; signingSecretFile: string | undefined; channel: string | undefined; userMapFile: string | undefined; apiUrl: string | undefined };
  log: { level: Env['CORDON_LOG_LEVEL'] };
  /** Prometheus listeners of a worker (Cordon's and the Temporal SDK's); undefined ports are off. */
  metrics: { workerHost: string; workerPort: number | undefined; temporalPort: number | undefined };
  /** Where spans go: nowhere, an OTLP/HTTP collector, or the console. */
  tracing: { exporter: Env['CORDON_OTEL_EXPORTER']; otlpEndpoint: string | undefined };
  dev: { temporalCliPath: string | undefined; temporalUiPort: number; scimPort: number; ldapPort: number; awsDemoPort: number; slapdPath: string | undefined; motoServerPath: string | undefined };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Parses the environment into a frozen Config; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (name.startsWith('CORDON_') && !KNOWN_ENV_VARS.includes(name)) {
      problems.push(`${name}: not a Cordon setting (known: ${KNOWN_ENV_VARS.filter((n) => n.startsWith('CORDON_')).join(', ')})`);
    }
  }
  const parsed = EnvSchema.safeParse(Object.fromEntries(KNOWN_ENV_VARS.filter((n) => env[n] !== undefined && env[n] !== '').map((n) => [n, env[n]])));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  if (parsed.success && parsed.data.CORDON_STORE === 'postgres' && !parsed.data.CORDON_POSTGRES_URL) problems.push('CORDON_POSTGRES_URL: required when CORDON_STORE is postgres');
  // A URL the store ignores would leave each machine counting budgets in its own SQLite file.
  if (parsed.success && parsed.data.CORDON_STORE !== 'postgres' && parsed.data.CORDON_POSTGRES_URL) problems.push('CORDON_POSTGRES_URL: set, but CORDON_STORE is not postgres (set CORDON_STORE=postgres to use it)');
  if (parsed.success && parsed.data.CORDON_LDAP_URL) {
    for (const name of ['CORDON_LDAP_BIND_DN', 'CORDON_LDAP_BASE_DN'] as const) if (!parsed.data[name]) problems.push(`${name}: required when CORDON_LDAP_URL is set`);
  }
  if (parsed.success) {
    // Alerts name a system; two connectors under one name would make which one acts a matter of chance.
    const e = parsed.data;
    const systems = [
      ['CORDON_SCIM_SYSTEM', e.CORDON_SCIM_URL ? e.CORDON_SCIM_SYSTEM : undefined],
      ['CORDON_LDAP_SYSTEM', e.CORDON_LDAP_URL ? e.CORDON_LDAP_SYSTEM : undefined],
      ['CORDON_AWS_SYSTEM', e.CORDON_AWS_REGION ? e.CORDON_AWS_SYSTEM : undefined],
    ].filter((entry): entry is [string, string] => entry[1] !== undefined);
    for (const [i, [name, system]] of systems.entries()) {
      const earlier = systems.slice(0, i).find(([, other]) => other === system);
      if (earlier) problems.push(`${name}: "${system}" is already the system name of ${earlier[0]}; each connector needs its own`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  const path = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const dataDir = path(e.CORDON_DATA_DIR);
  const inData = (name: string) => resolve(dataDir, name);
  const policyDir = e.CORDON_POLICY_DIR ? path(e.CORDON_POLICY_DIR) : resolve(PROJECT_ROOT, 'policies');
  return deepFreeze({
    dataDir,
    api: { host: e.CORDON_API_HOST, port: e.CORDON_API_PORT, publicUrl: e.CORDON_PUBLIC_URL ?? `http://${e.CORDON_API_HOST}:${e.CORDON_API_PORT}` },
    shutdown: { graceMs: e.CORDON_SHUTDOWN_GRACE_MS },
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, taskQueue: e.CORDON_TASK_QUEUE },
    ledger: {
      store: e.CORDON_STORE,
      path: e.CORDON_LEDGER_PATH ? path(e.CORDON_LEDGER_PATH) : inData('ledger.sqlite'),
      postgres: e.CORDON_POSTGRES_URL ? { url: e.CORDON_POSTGRES_URL, passwordFile: e.CORDON_POSTGRES_PASSWORD_FILE ? path(e.CORDON_POSTGRES_PASSWORD_FILE) : undefined } : undefined,
    },
    identitiesFile: e.CORDON_IDENTITIES_FILE ? path(e.CORDON_IDENTITIES_FILE) : inData('dev-credentials.json'),
    alertHmacSecretFile: e.CORDON_ALERT_HMAC_SECRET_FILE ? path(e.CORDON_ALERT_HMAC_SECRET_FILE) : inData('alert-hmac.key'),
    approvals: {
      signingKeyFile: e.CORDON_APPROVAL_SIGNING_KEY_FILE ? path(e.CORDON_APPROVAL_SIGNING_KEY_FILE) : inData('approval-signing-key.json'),
      verifyKeysFile: e.CORDON_APPROVAL_VERIFY_KEYS_FILE ? path(e.CORDON_APPROVAL_VERIFY_KEYS_FILE) : inData('approval-verify-keys.json'),
    },
    payloadKeysFile: e.CORDON_PAYLOAD_KEYS_FILE ? path(e.CORDON_PAYLOAD_KEYS_FILE) : undefined,
    policyDir,
    guardrailsFile: e.CORDON_GUARDRAILS_FILE ? path(e.CORDON_GUARDRAILS_FILE) : resolve(policyDir, 'guardrails.yaml'),
    scim: {
      system: e.CORDON_SCIM_SYSTEM,
      baseUrl: e.CORDON_SCIM_URL,
      tokenFile: e.CORDON_SCIM_TOKEN_FILE ? path(e.CORDON_SCIM_TOKEN_FILE) : inData('scim-token'),
    },
    ui: {
      sessionSecretFile: e.CORDON_UI_SESSION_SECRET_FILE ? path(e.CORDON_UI_SESSION_SECRET_FILE) : inData('ui-session.key'),
      sessionTtlSeconds: e.CORDON_UI_SESSION_TTL,
      devSignIn: e.CORDON_UI_DEV_SIGNIN === 'on',
      oidc: {
        issuer: e.CORDON_OIDC_ISSUER,
        clientId: e.CORDON_OIDC_CLIENT_ID,
        clientSecretFile: e.CORDON_OIDC_CLIENT_SECRET_FILE ? path(e.CORDON_OIDC_CLIENT_SECRET_FILE) : undefined,
        rolesClaim: e.CORDON_OIDC_ROLES_CLAIM,
        roleMapFile: e.CORDON_OIDC_ROLE_MAP_FILE ? path(e.CORDON_OIDC_ROLE_MAP_FILE) : undefined,
        scopes: e.CORDON_OIDC_SCOPES,
        nameClaim: e.CORDON_OIDC_NAME_CLAIM,
      },
    },
    slack: {
      botTokenFile: e.CORDON_SLACK_BOT_TOKEN_FILE ? path(e.CORDON_SLACK_BOT_TOKEN_FILE) : undefined,
      signingSecretFile: e.CORDON_SLACK_SIGNING_SECRET_FILE ? path(e.CORDON_SLACK_SIGNING_SECRET_FILE) : undefined,
      channel: e.CORDON_SLACK_CHANNEL,
      userMapFile: e.CORDON_SLACK_USER_MAP_FILE ? path(e.CORDON_SLACK_USER_MAP_FILE) : undefined,
      apiUrl: e.CORDON_SLACK_API_URL,
    },
    aws: {
      system: e.CORDON_AWS_SYSTEM,
      region: e.CORDON_AWS_REGION,
      endpoint: e.CORDON_AWS_ENDPOINT,
      credentialsFile: e.CORDON_AWS_CREDENTIALS_FILE ? path(e.CORDON_AWS_CREDENTIALS_FILE) : undefined,
      accessAdvisor: e.CORDON_AWS_ACCESS_ADVISOR === 'on',
    },
    ldap: {
      system: e.CORDON_LDAP_SYSTEM,
      url: e.CORDON_LDAP_URL,
      bindDN: e.CORDON_LDAP_BIND_DN,
      passwordFile: e.CORDON_LDAP_PASSWORD_FILE ? path(e.CORDON_LDAP_PASSWORD_FILE) : inData('ldap-password'),
      baseDN: e.CORDON_LDAP_BASE_DN,
      usersDN: e.CORDON_LDAP_USERS_DN,
      groupsDN: e.CORDON_LDAP_GROUPS_DN,
      userIdAttribute: e.CORDON_LDAP_USER_ID_ATTRIBUTE,
      disableMode: e.CORDON_LDAP_DISABLE_MODE,
      placeholderMember: e.CORDON_LDAP_PLACEHOLDER_MEMBER,
    },
    log: { level: e.CORDON_LOG_LEVEL },
    metrics: { workerHost: e.CORDON_WORKER_METRICS_HOST, workerPort: e.CORDON_WORKER_METRICS_PORT, temporalPort: e.CORDON_TEMPORAL_METRICS_PORT },
    tracing: { exporter: e.CORDON_OTEL_EXPORTER, otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT },
    dev: {
      temporalCliPath: e.TEMPORAL_CLI_PATH,
      temporalUiPort: e.CORDON_TEMPORAL_UI_PORT,
      scimPort: e.CORDON_SCIM_PORT,
      ldapPort: e.CORDON_LDAP_PORT,
      awsDemoPort: e.CORDON_AWS_DEMO_PORT,
      slapdPath: e.CORDON_SLAPD_PATH ? path(e.CORDON_SLAPD_PATH) : undefined,
      motoServerPath: e.CORDON_MOTO_SERVER_PATH ? path(e.CORDON_MOTO_SERVER_PATH) : undefined,
    },
  });
}
