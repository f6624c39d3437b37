import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { ScimClient } from '../../activities/connectors/scim/scim-client.js';
import { startScim2Server, type Scim2Server } from '../../dev/scim-directory.js';

/** A real scim2-server on 127.0.0.1, started for one test file. */
export interface TestScim extends Scim2Server {
  client: ScimClient;
  /** Request lines the server logged ("PATCH /v2/Groups/… HTTP/1.1" 204), in order. */
  requests(): Promise<string[]>;
}

/** Starts `scim2-server` (from PyPI) with a bearer token and waits until it answers. */
export async function startScim(): Promise<TestScim> {
  const logFile = join(await mkdtemp(join(tmpdir(), 'cordon-scim-')), 'scim.log');
  const server = await startScim2Server({ scim2ServerPath: inject('scim2ServerPath'), logFile });
  return {
    ...server,
    client: new ScimClient({ baseUrl: server.url, bearerToken: server.token }),
    async requests() {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').filter((line) => /"(GET|POST|PUT|PATCH|DELETE) /.test(line));
    },
  };
}

/** The groups test identities are put in, created once per directory. */
export class TestOrg {
  private readonly groups = new Map<string, string>();
  private counter = 0;

  constructor(readonly client: ScimClient) {}

  async groupId(name: string): Promise<string> {
    let id = this.groups.get(name);
    if (!id) {
      const existing = (await this.client.findGroups(`displayName eq ${JSON.stringify(name)}`))[0];
      id = existing?.id ?? (await this.client.createGroup({ displayName: name })).id;
      this.groups.set(name, id);
    }
    return id;
  }

  /** Creates an active user who is a member of `groups`; returns its id and userName. */
  async user(prefix: string, groups: string[]): Promise<{ id: string; userName: string }> {
    const userName = `${prefix}.${++this.counter}.${randomBytes(3).toString('hex')}`;
    const user = await this.client.createUser({ userName, displayName: `Test ${userName}`, active: true });
    for (const group of groups) {
      const groupId = await this.groupId(group);
      await this.client.patch('Groups', groupId, [{ op: 'add', path: 'members', value: [{ value: user.id }] }]);
    }
    return { id: user.id, userName };
  }
}
