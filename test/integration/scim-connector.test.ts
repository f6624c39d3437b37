// The SCIM connector against a real scim2-server: reads, idempotent changes, conditional writes,
// typed failures, and filter values that cannot widen a search.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScimClient } from '../../activities/connectors/scim/scim-client.js';
import { createScimConnector, type ScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import { CordonError } from '../../domain/index.js';
import { freePort } from '../../dev/processes.js';
import { cordonErrorOf } from '../support/errors.js';
import { startScim, TestOrg, type TestScim } from '../support/scim.js';

let scim: TestScim;
let org: TestOrg;
let connector: ScimConnector;

beforeAll(async () => {
  scim = await startScim();
  org = new TestOrg(scim.client);
  connector = createScimConnector('scim', scim.client);
});

afterAll(async () => {
  await scim?.stop();
});

async function failureType(promise: Promise<unknown>): Promise<string> {
  return (await cordonErrorOf(promise)).type;
}

describe('SCIM connector', () => {
  it('reads an account by userName or by id, with its groups', async () => {
    const user = await org.user('reader', ['engineering', 'vpn-users']);
    const byName = await connector.readAccount({ userName: user.userName });
    const byId = await connector.readAccount({ id: user.id });
    expect(byName.account).toMatchObject({ id: user.id, userName: user.userName, active: true });
    expect(byName.account.version).toMatch(/^W\/"\d+"$/);
    expect(byName.groups.map((g) => g.displayName).sort()).toEqual(['engineering', 'vpn-users']);
    expect(byId.groups).toEqual(byName.groups);
    expect(byName.system).toBe('scim');
  });

  it('refuses an id and a userName that name different accounts', async () => {
    const a = await org.user('a', []);
    const b = await org.user('b', []);
    expect(await failureType(connector.readAccount({ id: a.id, userName: b.userName }))).toBe('TargetAmbiguous');
  });

  it('answers TargetNotFound, non-retryable, for an unknown id or userName', async () => {
    expect(await failureType(connector.readAccount({ id: 'does-not-exist' }))).toBe('TargetNotFound');
    expect(await failureType(connector.readAccount({ userName: 'nobody.here' }))).toBe('TargetNotFound');
    const error = await connector.readAccount({ userName: 'nobody.here' }).catch((e: CordonError) => e);
    expect((error as CordonError).retryable).toBe(false);
  });

  it('escapes filter values, so a crafted userName matches nothing instead of everything', async () => {
    await org.user('victim', []);
    for (const crafted of ['" or userName pr or "', 'x" or "1" eq "1', '\\" or userName pr or \\"', '*']) {
      expect(await failureType(connector.readAccount({ userName: crafted }))).toBe('TargetNotFound');
    }
  });

  it('disables and re-enables an account, changing it only when needed', async () => {
    const user = await org.user('toggle', []);
    expect(await connector.setAccountActive({ id: user.id }, false)).toEqual({ changed: true, before: { active: true } });
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(false);
    expect(await connector.setAccountActive({ id: user.id }, false)).toEqual({ changed: false, before: { active: false } });
    expect(await connector.setAccountActive({ id: user.id }, true)).toEqual({ changed: true, before: { active: false } });
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(true);
    expect(await connector.setAccountActive({ id: user.id }, true)).toEqual({ changed: false, before: { active: true } });
  });

  it('removes and restores one group membership, leaving other members alone', async () => {
    const user = await org.user('member', ['finance']);
    const other = await org.user('colleague', ['finance']);
    const finance = await org.groupId('finance');
    expect(await connector.removeGroupMember({ id: finance }, { id: user.id })).toEqual({ changed: true, before: { member: true } });
    expect(await connector.isGroupMember({ id: finance }, { id: user.id })).toBe(false);
    expect(await connector.isGroupMember({ id: finance }, { id: other.id })).toBe(true);
    expect(await connector.removeGroupMember({ id: finance }, { id: user.id })).toEqual({ changed: false, before: { member: false } });
    expect(await connector.addGroupMember({ id: finance }, { id: user.id })).toEqual({ changed: true, before: { member: false } });
    expect(await connector.addGroupMember({ id: finance }, { id: user.id })).toEqual({ changed: false, before: { member: true } });
    expect(await connector.isGroupMember({ id: finance }, { id: user.id })).toBe(true);
  });

  it('sends writes conditionally: a stale version is refused as ConcurrentModification (retryable)', async () => {
    const user = await org.user('racer', []);
    const read = await scim.client.getUser(user.id);
    await scim.client.patch('Users', user.id, [{ op: 'replace', path: 'displayName', value: 'changed meanwhile' }]);
    const error = await scim.client.patch('Users', user.id, [{ op: 'replace', path: 'active', value: false }], read.meta?.version).catch((e: CordonError) => e);
    expect(error).toBeInstanceOf(CordonError);
    expect((error as CordonError).type).toBe('ConcurrentModification');
    expect((error as CordonError).retryable).toBe(true);
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(true);
  });

  it('answers ConnectorRejected for a wrong token and ConnectorUnavailable for a server that is down', async () => {
    const wrongToken = createScimConnector('scim', new ScimClient({ baseUrl: scim.url, bearerToken: 'not-the-token' }));
    expect(await failureType(wrongToken.readAccount({ userName: 'x' }))).toBe('ConnectorRejected');
    const down = createScimConnector('scim', new ScimClient({ baseUrl: `http://127.0.0.1:${await freePort()}/v2`, bearerToken: 't', timeoutMs: 2000 }));
    const error = await down.readAccount({ userName: 'x' }).catch((e: CordonError) => e);
    expect((error as CordonError).type).toBe('ConnectorUnavailable');
    expect((error as CordonError).retryable).toBe(true);
  });
});
