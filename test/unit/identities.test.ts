// The identities file followed while the API runs: a role or a token taken out of it stops counting
// without a restart, and a file that breaks fails closed.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { IdentitiesFile } from '../../server/identities.js';
import { watchIdentities, type WatchedIdentityStore } from '../../server/identities.js';

const token = (name: string) => `${name}-token-0123456789abcdefghij`;
const quiet = { info() {}, error() {} };
let store: WatchedIdentityStore | undefined;

afterEach(() => store?.close());

/** Waits (at most 10 s) until `check` holds. */
async function eventually(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the identities file change was not picked up within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function identitiesFile(content: IdentitiesFile | string): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'cordon-identities-')), 'identities.json');
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('watchIdentities', () => {
  it('refuses a bad file at startup, naming the file and the field', async () => {
    const file = await identitiesFile({ bob: { token: 'short', roles: ['approver'] } });
    await expect(watchIdentities(file, quiet, 20)).rejects.toThrow(new RegExp(`${file}.*bob\\.token`));
  });

  it('takes a removed role and a removed person out of use without a restart', async () => {
    const file = await identitiesFile({ bob: { token: token('bob'), roles: ['approver'] }, carol: { token: token('carol'), roles: ['approver'] } });
    store = await watchIdentities(file, quiet, 20);
    expect(store.authenticate(token('bob'))).toEqual({ name: 'bob', roles: ['approver'] });
    expect(store.identity('carol')?.roles).toEqual(['approver']);

    await writeFile(file, JSON.stringify({ bob: { token: token('bob'), roles: ['operator'] } }));
    await eventually(() => store!.identity('bob')?.roles[0] === 'operator');
    expect(store.authenticate(token('bob'))).toEqual({ name: 'bob', roles: ['operator'] });
    expect(store.authenticate(token('carol'))).toBeUndefined();
    expect(store.identity('carol')).toBeUndefined();
  });

  it('accepts no token while the file is broken, and recovers when it is fixed', async () => {
    const good = { bob: { token: token('bob'), roles: ['approver' as const] } };
    const file = await identitiesFile(good);
    const errors: unknown[] = [];
    store = await watchIdentities(file, { info() {}, error: (obj) => errors.push(obj) }, 20);
    await writeFile(file, '{ "bob": { "token": ');
    await eventually(() => store!.authenticate(token('bob')) === undefined);
    expect(store.names()).toEqual([]);
    expect(errors.length).toBeGreaterThan(0);

    await writeFile(file, JSON.stringify({ ...good, dora: { token: token('dora'), roles: ['soc'] } }));
    await eventually(() => store!.authenticate(token('dora')) !== undefined);
    expect(store.authenticate(token('bob'))).toEqual({ name: 'bob', roles: ['approver'] });
  });
});
