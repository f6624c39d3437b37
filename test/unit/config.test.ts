import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, it, expect } from 'vitest';
import { ConfigError, KNOWN_ENV_VARS, loadConfig, PROJECT_ROOT } from '../../config/config.js';
import { buildWorkerResources } from '../../workers/build.js';

const cwd = '/srv/cordon';

/** Loads a configuration that must be refused and returns the ConfigError. */
function refused(env: Record<string, string>): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env, cwd);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

function isDeeplyFrozen(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  return Object.isFrozen(value) && Object.values(value).every(isDeeplyFrozen);
}

describe('loadConfig', () => {
  it('uses the documented defaults for an empty environment', () => {
    const config = loadConfig({}, cwd);
    expect(config.dataDir).toBe('/srv/cordon/.data');
    expect(config.api).toEqual({ host: '127.0.0.1', port: 8080, publicUrl: 'http://127.0.0.1:8080' });
    expect(config.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'cordon-remediation' });
    expect(config.ledger.path.startsWith('/srv/cordon/.data/')).toBe(true);
    expect(config.identitiesFile).toBe('/srv/cordon/.data/dev-credentials.json');
    expect(config.policyDir.endsWith('/policies')).toBe(true);
    expect(config.policyDir).toBe(join(PROJECT_ROOT, 'policies'));
    expect(config.log.level).toBe('info');
    expect(config.dev.temporalUiPort).toBe(8233);
  });

  it('resolves a relative CORDON_DATA_DIR against the working directory, and files inside it', () => {
    const config = loadConfig({ CORDON_DATA_DIR: 'state/cordon' }, cwd);
    expect(config.dataDir).toBe('/srv/cordon/state/cordon');
    expect(config.ledger.path.startsWith('/srv/cordon/state/cordon/')).toBe(true);
    expect(config.identitiesFile).toBe('/srv/cordon/state/cordon/dev-credentials.json');
  });

  it('keeps an absolute CORDON_DATA_DIR as it is', () => {
    expect(loadConfig({ CORDON_DATA_DIR: '/var/lib/cordon' }, cwd).dataDir).toBe('/var/lib/cordon');
  });

  it('reads explicit settings', () => {
    const config = loadConfig(
      { CORDON_API_PORT: '9000', TEMPORAL_ADDRESS: 'temporal:7233', CORDON_SCIM_URL: 'https://scim.example.com/v2', CORDON_LEDGER_PATH: 'l.sqlite' },
      cwd,
    );
    expect(config.api.port).toBe(9000);
    expect(config.api.publicUrl).toBe('http://127.0.0.1:9000');
    expect(config.temporal.address).toBe('temporal:7233');
    expect(config.scim.baseUrl).toBe('https://scim.example.com/v2');
    expect(config.ledger.path).toBe('/srv/cordon/l.sqlite');
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ CORDON_API_PORT: '' }, cwd).api.port).toBe(8080);
  });

  it('ignores variables that are not Cordon settings', () => {
    expect(loadConfig({ HOME: '/root', NODE_ENV: 'test' }, cwd).api.port).toBe(8080);
  });

  it('returns a deeply frozen object', () => {
    const config = loadConfig({}, cwd);
    expect(isDeeplyFrozen(config)).toBe(true);
    expect(() => {
      (config.api as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('refuses an unknown CORDON_ variable and names it', () => {
    const error = refused({ CORDON_APIPORT: '8081' });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^CORDON_APIPORT: not a Cordon setting/);
    expect(error.message).toContain('CORDON_APIPORT');
  });

  it.each(['abc', '70000', '-1', '80.5'])('refuses CORDON_API_PORT=%s and names the variable', (value) => {
    const error = refused({ CORDON_API_PORT: value });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^CORDON_API_PORT: /);
  });

  it('refuses a blank CORDON_API_PORT instead of reading it as port 0', () => {
    const error = refused({ CORDON_API_PORT: ' ' });
    expect(error.problems).toEqual([expect.stringMatching(/^CORDON_API_PORT: /)]);
  });

  it('refuses a blank CORDON_DATA_DIR', () => {
    expect(refused({ CORDON_DATA_DIR: '   ' }).problems).toEqual([expect.stringMatching(/^CORDON_DATA_DIR: /)]);
  });

  it('refuses a CORDON_SCIM_URL that is not a URL', () => {
    const error = refused({ CORDON_SCIM_URL: 'not-a-url' });
    expect(error.problems).toEqual([expect.stringMatching(/^CORDON_SCIM_URL: /)]);
  });

  it('turns the LDAP connector on with a URL, and then needs a bind DN and a base DN', () => {
    expect(loadConfig({}, cwd).ldap).toMatchObject({ url: undefined, system: 'ldap', passwordFile: '/srv/cordon/.data/ldap-password', disableMode: 'ppolicy', userIdAttribute: 'uid' });
    const problems = refused({ CORDON_LDAP_URL: 'ldaps://dir.example.test' }).problems.map((p) => p.split(':')[0]).sort();
    expect(problems).toEqual(['CORDON_LDAP_BASE_DN', 'CORDON_LDAP_BIND_DN']);
    const config = loadConfig(
      { CORDON_LDAP_URL: 'ldaps://dir.example.test', CORDON_LDAP_BIND_DN: 'cn=cordon,dc=example,dc=test', CORDON_LDAP_BASE_DN: 'dc=example,dc=test', CORDON_LDAP_DISABLE_MODE: 'ad-user-account-control', CORDON_LDAP_PASSWORD_FILE: 'secrets/ldap' },
      cwd,
    );
    expect(config.ldap).toMatchObject({ url: 'ldaps://dir.example.test', disableMode: 'ad-user-account-control', passwordFile: '/srv/cordon/secrets/ldap' });
  });

  it('refuses two connectors under one system name', () => {
    const problems = refused({ CORDON_SCIM_URL: 'http://127.0.0.1:9000/v2', CORDON_LDAP_URL: 'ldap://127.0.0.1:389', CORDON_LDAP_BIND_DN: 'cn=a', CORDON_LDAP_BASE_DN: 'dc=a', CORDON_LDAP_SYSTEM: 'scim' }).problems;
    expect(problems).toEqual(['CORDON_LDAP_SYSTEM: "scim" is already the system name of CORDON_SCIM_SYSTEM; each connector needs its own']);
  });

  it('refuses an LDAP URL of another scheme and an unknown disable mode', () => {
    const problems = refused({ CORDON_LDAP_URL: 'http://dir.example.test', CORDON_LDAP_DISABLE_MODE: 'delete' }).problems.join('\n');
    expect(problems).toContain('CORDON_LDAP_URL: must be an ldap:// or ldaps:// URL');
    expect(problems).toMatch(/CORDON_LDAP_DISABLE_MODE: /);
  });

  it('keeps the ledger and guardrail state in SQLite unless CORDON_STORE says postgres', () => {
    expect(loadConfig({}, cwd).ledger).toMatchObject({ store: 'sqlite', postgres: undefined });
    const config = loadConfig(
      { CORDON_STORE: 'postgres', CORDON_POSTGRES_URL: 'postgres://cordon@db:5432/cordon?sslmode=require', CORDON_POSTGRES_PASSWORD_FILE: 'secrets/pg' },
      cwd,
    );
    expect(config.ledger).toMatchObject({ store: 'postgres', postgres: { url: 'postgres://cordon@db:5432/cordon?sslmode=require', passwordFile: '/srv/cordon/secrets/pg' } });
  });

  it('refuses a PostgreSQL store without a URL, a URL carrying a password, and a URL the store would ignore', () => {
    expect(refused({ CORDON_STORE: 'postgres' }).problems).toEqual(['CORDON_POSTGRES_URL: required when CORDON_STORE is postgres']);
    const withPassword = refused({ CORDON_STORE: 'postgres', CORDON_POSTGRES_URL: 'postgresql://cordon:hunter2@db/cordon' });
    expect(withPassword.message).toMatch(/CORDON_POSTGRES_URL: must not carry a password/);
    expect(withPassword.message).not.toContain('hunter2');
    expect(refused({ CORDON_STORE: 'postgres', CORDON_POSTGRES_URL: 'mysql://db/cordon' }).message).toMatch(/CORDON_POSTGRES_URL: must be a postgres:\/\//);
    expect(refused({ CORDON_POSTGRES_URL: 'postgres://cordon@db/cordon' }).message).toMatch(/CORDON_POSTGRES_URL: set, but CORDON_STORE is not postgres/);
    expect(refused({ CORDON_STORE: 'mysql' }).message).toContain('CORDON_STORE');
  });

  it('reports every problem at once', () => {
    const error = refused({ CORDON_APIPORT: '1', CORDON_API_PORT: 'abc', CORDON_SCIM_URL: 'not-a-url', CORDON_LOG_LEVEL: 'loud' });
    const names = error.problems.map((p) => p.split(':')[0]).sort();
    expect(names).toEqual(['CORDON_APIPORT', 'CORDON_API_PORT', 'CORDON_LOG_LEVEL', 'CORDON_SCIM_URL']);
    for (const name of names) expect(error.message).toContain(name!);
  });
});

describe('KNOWN_ENV_VARS', () => {
  it('are each documented in the README', async () => {
    const readme = await readFile(join(PROJECT_ROOT, 'README.md'), 'utf8');
    expect(KNOWN_ENV_VARS.filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
  });


  it('includes CORDON_API_PORT and TEMPORAL_ADDRESS', () => {
    expect(KNOWN_ENV_VARS).toContain('CORDON_API_PORT');
    expect(KNOWN_ENV_VARS).toContain('TEMPORAL_ADDRESS');
    expect(KNOWN_ENV_VARS).not.toContain('CORDON_APIPORT');
  });
});

describe('the AWS connector and Access Advisor', () => {
  const aws = { CORDON_AWS_REGION: 'us-east-1', CORDON_AWS_ENDPOINT: 'http://127.0.0.1:1' };

  it('offers the stale-entitlement search unless CORDON_AWS_ACCESS_ADVISOR is off', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cordon-advisor-'));
    const built = async (env: Record<string, string>) => {
      const resources = await buildWorkerResources(loadConfig({ CORDON_DATA_DIR: dir, ...aws, ...env }, dir), pino({ level: 'silent' }));
      try {
        return typeof resources.connectors.aws?.staleEntitlements;
      } finally {
        await resources.close();
      }
    };
    expect(await built({})).toBe('function');
    expect(await built({ CORDON_AWS_ACCESS_ADVISOR: 'on' })).toBe('function');
    expect(await built({ CORDON_AWS_ACCESS_ADVISOR: 'off' })).toBe('undefined');
  });

  it('refuses another value for CORDON_AWS_ACCESS_ADVISOR, naming it', () => {
    expect(refused({ ...aws, CORDON_AWS_ACCESS_ADVISOR: 'maybe' }).problems.some((p) => p.startsWith('CORDON_AWS_ACCESS_ADVISOR'))).toBe(true);
  });
});
