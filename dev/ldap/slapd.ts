// A private OpenLDAP slapd for the embedded default and the LDAP tests: generated config, the demo
// tree of seed.ldif, stopped by PID. Never the distribution's own slapd service.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, EqualityFilter, NoSuchObjectError } from 'ldapts';
import { spawnManaged, waitUntil, type ManagedProcess } from '../processes.js';
import { parseLdif } from './ldif.js';

/** The demo directory's naming context, root DN and containers (seed.ldif). */
export const LDAP_SUFFIX = 'dc=cordon,dc=test';
export const LDAP_ROOT_DN = `cn=admin,${LDAP_SUFFIX}`;
export const LDAP_PEOPLE_DN = `ou=people,${LDAP_SUFFIX}`;
export const LDAP_GROUPS_DN = `ou=groups,${LDAP_SUFFIX}`;
/** The member every seeded groupOfNames keeps, so that none is ever left without one. */
export const LDAP_PLACEHOLDER_MEMBER = `cn=nobody,${LDAP_SUFFIX}`;

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** The demo organisation as LDIF. */
export const SEED_LDIF = join(HERE, 'seed.ldif');
const TEMPLATE = join(HERE, 'slapd.conf.template');
const CORDON_SCHEMA = join(HERE, 'cordon-ad.schema');

// Debian and Ubuntu first, then Fedora/RHEL and source builds.
const SCHEMA_DIRS = ['/etc/ldap/schema', '/etc/openldap/schema', '/usr/local/etc/openldap/schema'];
const MODULE_DIRS = ['/usr/lib/ldap', '/usr/lib64/openldap', '/usr/lib/openldap', '/usr/local/libexec/openldap'];

export interface SlapdOptions {
  /** The slapd binary, e.g. /usr/sbin/slapd. */
  slapdPath: string;
  port: number;
  /** Holds `slapd.conf` and `data/` (the mdb database); created if missing, reused if present. */
  stateDir: string;
  /** The root DN's password; stored in the config only as a salted SHA-1 hash ({SSHA}). */
  password: string;
  logFile?: string;
}

/** A running slapd. */
export interface Slapd {
  /** ldap://127.0.0.1:<port> */
  url: string;
  bindDN: string;
  baseDN: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

function firstDirWith(dirs: string[], file: string, what: string): string {
  const found = dirs.find((dir) => existsSync(join(dir, file)));
  if (!found) throw new Error(`${what}: no ${file} in ${dirs.join(', ')} (apt-get install slapd ldap-utils)`);
  return found;
}

// {SSHA}: base64(SHA-1(password + salt) + salt), which slapd verifies natively.
function sshaHash(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password, 'utf8').update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** Writes slapd.conf from the template into `stateDir`; returns its path. */
export async function writeSlapdConfig(stateDir: string, password: string): Promise<string> {
  const dataDir = join(stateDir, 'data');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const values: Record<string, string> = {
    SCHEMA_DIR: firstDirWith(SCHEMA_DIRS, 'core.schema', 'OpenLDAP schema'),
    MODULE_DIR: firstDirWith(MODULE_DIRS, 'back_mdb.la', 'OpenLDAP modules'),
    CORDON_SCHEMA,
    RUN_DIR: stateDir,
    DATA_DIR: dataDir,
    ROOT_PW: sshaHash(password),
  };
  for (const [name, value] of Object.entries(values)) {
    // slapd.conf splits on whitespace; a path with spaces would need quoting we do not attempt.
    if (/\s/.test(value)) throw new Error(`slapd config: ${name} contains whitespace: ${value}`);
  }
  const text = (await readFile(TEMPLATE, 'utf8')).replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`slapd config template: unknown placeholder {{${name}}}`);
    return value;
  });
  const file = join(stateDir, 'slapd.conf');
  await writeFile(file, text, { mode: 0o600 });
  return file;
}

/** Binds as the root DN once; true when the server answers and accepts the password. */
async function canBind(url: string, bindDN: string, password: string): Promise<boolean> {
  const client = new Client({ url, connectTimeout: 1000, timeout: 2000 });
  try {
    await client.bind(bindDN, password);
    return true;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/**
 * Starts slapd in the foreground (`-d 0`, so it stays the child whose PID we stop) on 127.0.0.1 and
 * waits until the root DN can bind; stops it again if it never can.
 */
export async function startSlapd(options: SlapdOptions): Promise<Slapd> {
  const config = await writeSlapdConfig(options.stateDir, options.password);
  const url = `ldap://127.0.0.1:${options.port}`;
  const child = spawnManaged('slapd', options.slapdPath, {
    args: ['-f', config, '-h', `${url}/`, '-d', '0'],
    ...(options.logFile ? { logFile: options.logFile } : {}),
  });
  try {
    // The config holds the password's hash, so a bind that fails means "not listening yet".
    await waitUntil(`slapd at ${url}`, () => canBind(url, LDAP_ROOT_DN, options.password), { timeoutMs: 20_000, intervalMs: 100, process: child });
  } catch (error) {
    await child.stop(2000);
    throw error;
  }
  return { url, bindDN: LDAP_ROOT_DN, baseDN: LDAP_SUFFIX, process: child, stop: () => child.stop(5000) };
}

/**
 * Loads the demo tree (seed.ldif) unless the suffix entry already exists, then counts what is there.
 * The records are added in file order, parents first.
 */
export async function seedDirectory(
  connection: { url: string; bindDN: string; password: string },
  ldifPath: string = SEED_LDIF,
): Promise<{ users: number; groups: number; seeded: boolean }> {
  const client = new Client({ url: connection.url, connectTimeout: 5000, timeout: 10_000 });
  try {
    await client.bind(connection.bindDN, connection.password);
    const seeded = !(await entryExists(client, LDAP_SUFFIX));
    if (seeded) {
      for (const entry of parseLdif(await readFile(ldifPath, 'utf8'))) await client.add(entry.dn, entry.attributes);
    }
    const count = async (base: string, objectClass: string) =>
      (await client.search(base, { filter: new EqualityFilter({ attribute: 'objectClass', value: objectClass }), attributes: ['1.1'], paged: { pageSize: 500 } })).searchEntries.length;
    return { users: await count(LDAP_PEOPLE_DN, 'inetOrgPerson'), groups: await count(LDAP_GROUPS_DN, 'groupOfNames'), seeded };
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

async function entryExists(client: Client, dn: string): Promise<boolean> {
  try {
    await client.search(dn, { scope: 'base', attributes: ['1.1'] });
    return true;
  } catch (error) {
    if (error instanceof NoSuchObjectError) return false;
    throw error;
  }
}
