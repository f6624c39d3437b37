// A plain in-memory scim2-server for the benchmark, and the users the runs deprovision.
import { ScimClient } from '../../activities/connectors/scim/scim-client.js';
import { startScim2Server, type Scim2Server } from '../../dev/scim-directory.js';
import { pool } from './stats.js';

/** A running scim2-server on 127.0.0.1, with a client. */
export interface BenchScim extends Scim2Server {
  client: ScimClient;
}

/** Starts `scim2-server` with a fresh bearer token; throws with its last output if it does not answer in 30 s. */
export async function startBenchScim(scim2ServerPath: string, logFile: string): Promise<BenchScim> {
  const server = await startScim2Server({ scim2ServerPath, logFile });
  return { ...server, client: new ScimClient({ baseUrl: server.url, bearerToken: server.token }) };
}

/** A seeded user: active, in three ordinary groups of its own. */
export interface BenchUser {
  id: string;
  userName: string;
}

const GROUPS_PER_USER = ['eng', 'vpn', 'jira'] as const;

/**
 * Creates `count` active users `bench.user.<i>`, each in three ordinary groups of its own. Groups are
 * not shared, so concurrent runs never race on one group's version (a 412 and its 1 s retry would
 * measure the directory's contention, not Cordon).
 */
export async function seedBenchUsers(client: ScimClient, count: number, concurrency = 8): Promise<BenchUser[]> {
  return pool(count, concurrency, async (i) => {
    const userName = `bench.user.${i}`;
    const user = await client.createUser({ userName, displayName: `Bench User ${i}`, active: true });
    for (const suffix of GROUPS_PER_USER) await client.createGroup({ displayName: `bench-${i}-${suffix}`, members: [{ value: user.id }] });
    return { id: user.id, userName };
  });
}
