import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, InvalidCredentialsError } from 'ldapts';
import { inject } from 'vitest';
import { freePort } from '../../dev/processes.js';
import { LDAP_GROUPS_DN, LDAP_PEOPLE_DN, LDAP_PLACEHOLDER_MEMBER, seedDirectory, startSlapd, type Slapd } from '../../dev/ldap/slapd.js';

/** A private slapd on 127.0.0.1 holding the demo tree of dev/ldap/seed.ldif, started for one test file. */
export interface TestSlapd {
  url: string;
  bindDN: string;
  password: string;
  baseDN: string;
  usersDN: string;
  groupsDN: string;
  /** The member every seeded group keeps (cn=nobody), so none is ever empty. */
  placeholderMember: string;
  pid: number;
  /** A client bound as the root DN, for arranging and checking the directory behind the connector's back. */
  admin(): Promise<Client>;
  /** Whether `dn` can bind with `password` (ppolicy answers invalidCredentials for a locked account). */
  canBind(dn: string, password: string): Promise<boolean>;
  /** Stops slapd by PID and removes its files. */
  stop(): Promise<void>;
}

/**
 * Starts `inject('slapdPath')` with a random root password on a free port and seeds it. A port taken
 * between freePort() and slapd's bind makes slapd exit at once; that is retried twice.
 */
export async function startTestSlapd(): Promise<TestSlapd> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-slapd-'));
  const password = randomBytes(18).toString('base64url');
  let slapd: Slapd | undefined;
  for (let attempt = 1; !slapd; attempt++) {
    try {
      slapd = await startSlapd({ slapdPath: inject('slapdPath'), port: await freePort(), stateDir: dir, password, logFile: join(dir, 'slapd.log') });
    } catch (error) {
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const running = slapd;
  await seedDirectory({ url: running.url, bindDN: running.bindDN, password });
  const clients: Client[] = [];
  return {
    url: running.url,
    bindDN: running.bindDN,
    password,
    baseDN: running.baseDN,
    usersDN: LDAP_PEOPLE_DN,
    groupsDN: LDAP_GROUPS_DN,
    placeholderMember: LDAP_PLACEHOLDER_MEMBER,
    pid: running.process.pid,
    async admin() {
      const client = new Client({ url: running.url, connectTimeout: 5000, timeout: 10_000 });
      await client.bind(running.bindDN, password);
      clients.push(client);
      return client;
    },
    async canBind(dn, password) {
      const client = new Client({ url: running.url, connectTimeout: 2000, timeout: 5000 });
      try {
        await client.bind(dn, password);
        return true;
      } catch (error) {
        if (error instanceof InvalidCredentialsError) return false;
        throw error;
      } finally {
        await client.unbind().catch(() => undefined);
      }
    },
    async stop() {
      for (const client of clients) await client.unbind().catch(() => undefined);
      await running.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
