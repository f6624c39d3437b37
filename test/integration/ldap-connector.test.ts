// The LDAP connector against a real, private OpenLDAP slapd (dev/ldap): reads by uid and by entryUUID,
// idempotent disables in both modes, memberships, renames, values that cannot widen a search or a DN,
// and typed failures.
import { createServer, type Server } from 'node:net';
import { Attribute, Change, type Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLdapConnector, type LdapConnector, type LdapConnectorOptions } from '../../activities/connectors/ldap/ldap-connector.js';
import { childDn, escapeDnValue, rdn } from '../../activities/connectors/ldap/ldap-dn.js';
import { DEMO_GROUPS, DEMO_USERS } from '../../dev/demo-org.js';
import { parseLdif } from '../../dev/ldap/ldif.js';
import { freePort, waitUntil } from '../../dev/processes.js';
import { cordonErrorOf } from '../support/errors.js';
import { startTestSlapd, type TestSlapd } from '../support/slapd.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PERMANENT_LOCK = '000001010000Z';
/** A second container under the users DN, for duplicates and moves. */
const ELSEWHERE = 'ou=elsewhere,ou=people,dc=cordon,dc=test';

let slapd: TestSlapd;
let admin: Client;
let connector: LdapConnector;
let counter = 0;

function options(overrides: Partial<LdapConnectorOptions> = {}): LdapConnectorOptions {
  return {
    url: slapd.url,
    bindDN: slapd.bindDN,
    password: slapd.password,
    baseDN: slapd.baseDN,
    usersDN: slapd.usersDN,
    groupsDN: slapd.groupsDN,
    placeholderMember: slapd.placeholderMember,
    ...overrides,
  };
}

beforeAll(async () => {
  slapd = await startTestSlapd();
  admin = await slapd.admin();
  await admin.add(ELSEWHERE, { objectClass: 'organizationalUnit', ou: 'elsewhere' });
  connector = createLdapConnector('ldap', options());
});

afterAll(async () => {
  await slapd?.stop();
});


const failureType = async (promise: Promise<unknown>) => (await cordonErrorOf(promise)).type;

/** One entry's attributes, read as the root DN (operational ones included when named). */
async function readEntry(dn: string, attributes: string[]): Promise<Record<string, string[]>> {
  const [entry] = (await admin.search(dn, { scope: 'base', attributes })).searchEntries;
  if (!entry) throw new Error(`no entry ${dn}`);
  return Object.fromEntries(attributes.map((a) => [a, ([] as unknown[]).concat(entry[a] ?? []).map(String)]));
}

const entryUUIDOf = async (dn: string) => (await readEntry(dn, ['entryUUID'])).entryUUID![0]!;

/** Creates an inetOrgPerson under `parent` (people by default); returns its DN and entryUUID. */
async function createUser(uid: string, extra: Record<string, string[]> = {}, parent = slapd.usersDN): Promise<{ dn: string; id: string; uid: string }> {
  const dn = childDn(parent, 'uid', uid);
  await admin.add(dn, { objectClass: ['inetOrgPerson', ...(extra.objectClass ?? [])], uid, cn: `Test ${uid}`, sn: 'Test', ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'objectClass')) });
  return { dn, id: await entryUUIDOf(dn), uid };
}

const uniqueUid = (prefix: string) => `${prefix}.${++counter}.${Date.now().toString(36)}`;

/** Creates a groupOfNames with these member DNs; returns its DN and entryUUID. */
async function createGroup(cn: string, members: string[]): Promise<{ dn: string; id: string }> {
  const dn = childDn(slapd.groupsDN, 'cn', cn);
  await admin.add(dn, { objectClass: 'groupOfNames', cn, member: members });
  return { dn, id: await entryUUIDOf(dn) };
}

const membersOf = async (dn: string) => (await readEntry(dn, ['member'])).member!.map((m) => m.toLowerCase()).sort();

describe('LDAP DN escaping (RFC 4514) and the seed parser', () => {
  it('escapes the characters that would end or split an RDN value', () => {
    expect(escapeDnValue('plain.name')).toBe('plain.name');
    expect(escapeDnValue('a,b+c"d\\e<f>g;h=i')).toBe('a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
    expect(escapeDnValue('#lead')).toBe('\\#lead');
    expect(escapeDnValue('mid#dle')).toBe('mid#dle');
    expect(escapeDnValue(' both ')).toBe('\\ both\\ ');
    expect(escapeDnValue('in ner')).toBe('in ner');
    expect(escapeDnValue('nul\u0000byte\n')).toBe('nul\\00byte\\0a');
    expect(escapeDnValue('ünïcödé')).toBe('ünïcödé');
  });

  it('builds RDNs only from attribute types, and refuses empty values', () => {
    expect(rdn('uid', 'a,b')).toBe('uid=a\\,b');
    expect(rdn('2.5.4.3', 'x')).toBe('2.5.4.3=x');
    expect(() => rdn('uid=x,ou', 'y')).toThrow(/attribute type/);
    expect(() => rdn('uid', '')).toThrow(/needs a value/);
    expect(childDn('ou=people,dc=cordon,dc=test', 'uid', ' x')).toBe('uid=\\ x,ou=people,dc=cordon,dc=test');
  });

  it('parses content LDIF with comments, folded lines and base64 values, and refuses change records', () => {
    const entries = parseLdif('# c\nversion: 1\n\ndn: cn=a,dc=x\ncn: a\ndescription: fol\n ded\nsn:: w7xiZXI=\n\ndn: cn=b,dc=x\ncn: b\n');
    expect(entries).toEqual([
      { dn: 'cn=a,dc=x', attributes: { cn: ['a'], description: ['folded'], sn: ['über'] } },
      { dn: 'cn=b,dc=x', attributes: { cn: ['b'] } },
    ]);
    expect(() => parseLdif('dn: cn=a,dc=x\nchangetype: delete\n')).toThrow(/change records/);
  });
});

describe('LDAP connector', () => {
  it('serves the seeded demo organisation: every account with its groups, none with the placeholder', async () => {
    for (const user of DEMO_USERS) {
      const snapshot = await connector.readAccount({ userName: user.userName });
      expect(snapshot.account.userName).toBe(user.userName);
      expect(snapshot.groups.map((g) => g.displayName).sort()).toEqual([...user.groups].sort());
    }
    const groups = (await admin.search(slapd.groupsDN, { filter: new EqualityFilter({ attribute: 'objectClass', value: 'groupOfNames' }), attributes: ['cn'] })).searchEntries;
    expect(groups.map((g) => String(g.cn)).sort()).toEqual([...DEMO_GROUPS].sort());
    expect(await failureType(connector.readAccount({ userName: 'nobody' }))).toBe('TargetNotFound');
  });

  it('reads an account by uid or by entryUUID, with its DN as name and its groups by entryUUID and DN', async () => {
    const byName = await connector.readAccount({ userName: 'erin.wolfe' });
    expect(byName.system).toBe('ldap');
    expect(byName.account).toMatchObject({ userName: 'erin.wolfe', name: 'uid=erin.wolfe,ou=people,dc=cordon,dc=test', displayName: 'Erin Wolfe (contractor)', active: true });
    expect(byName.account.id).toMatch(UUID);
    expect(byName.account.version).toMatch(/^\d{14}\.\d{6}Z#/); // entryCSN
    expect(byName.groups.map((g) => g.name).sort()).toEqual(['cn=admins,ou=groups,dc=cordon,dc=test', 'cn=contractors,ou=groups,dc=cordon,dc=test', 'cn=vpn-users,ou=groups,dc=cordon,dc=test']);
    for (const group of byName.groups) expect(group.id).toBe(await entryUUIDOf(group.name!));
    expect(byName.groups.map((g) => g.id)).toEqual([...byName.groups.map((g) => g.id)].sort());

    const byId = await connector.readAccount({ id: byName.account.id });
    expect(byId.account).toEqual(byName.account);
    expect(byId.groups).toEqual(byName.groups);
    // entryUUID compares by value, not by spelling; uid compares without case.
    expect((await connector.readAccount({ id: byName.account.id.toUpperCase() })).account.id).toBe(byName.account.id);
    expect((await connector.readAccount({ userName: 'Erin.Wolfe' })).account.id).toBe(byName.account.id);
  });

  it('refuses an id and a userName that name different accounts', async () => {
    const erin = await connector.readAccount({ userName: 'erin.wolfe' });
    expect((await cordonErrorOf(connector.readAccount({ id: erin.account.id, userName: 'dana.reyes' }))).type).toBe('TargetAmbiguous');
    expect((await connector.readAccount({ id: erin.account.id, userName: 'erin.wolfe' })).account.name).toBe(erin.account.name);
  });

  it('answers TargetNotFound, non-retryable, for an unknown id or uid, and for groups or entries that are no account', async () => {
    const error = await cordonErrorOf(connector.readAccount({ userName: 'nobody.here' }));
    expect(error.type).toBe('TargetNotFound');
    expect(error.retryable).toBe(false);
    expect(await failureType(connector.readAccount({ id: '00000000-0000-4000-8000-000000000000' }))).toBe('TargetNotFound');
    const admins = await entryUUIDOf('cn=admins,ou=groups,dc=cordon,dc=test');
    expect(await failureType(connector.readAccount({ id: admins }))).toBe('TargetNotFound');
    expect(await failureType(connector.readAccount({ id: await entryUUIDOf(slapd.placeholderMember) }))).toBe('TargetNotFound');
    const erin = await connector.readAccount({ userName: 'erin.wolfe' });
    expect(await failureType(connector.isGroupMember({ id: erin.account.id }, { id: erin.account.id }))).toBe('TargetNotFound');
    expect(await failureType(connector.readAccount({}))).toBe('InvalidRequest');
  });

  it('answers TargetAmbiguous when two accounts under the users DN share a uid', async () => {
    const uid = uniqueUid('twin');
    await createUser(uid);
    await createUser(uid, {}, ELSEWHERE);
    const error = await cordonErrorOf(connector.readAccount({ userName: uid }));
    expect(error.type).toBe('TargetAmbiguous');
    expect(error.message).toContain('ou=elsewhere');
  });

  it('counts the accounts under the users DN', async () => {
    const all = await admin.search(slapd.usersDN, { filter: new EqualityFilter({ attribute: 'objectClass', value: 'inetOrgPerson' }), attributes: ['1.1'] });
    expect(await connector.countAccounts()).toBe(all.searchEntries.length);
    expect(all.searchEntries.length).toBeGreaterThanOrEqual(DEMO_USERS.length);
  });

  it('disables with a permanent password-policy lock that stops binds, and enables again, changing only when needed', async () => {
    const user = await createUser(uniqueUid('toggle'), { userPassword: ['s3cret-toggle'] });
    expect(await slapd.canBind(user.dn, 's3cret-toggle')).toBe(true);

    expect(await connector.setAccountActive({ id: user.id }, false)).toEqual({ changed: true, before: { active: true } });
    expect((await readEntry(user.dn, ['pwdAccountLockedTime'])).pwdAccountLockedTime).toEqual([PERMANENT_LOCK]);
    expect(await slapd.canBind(user.dn, 's3cret-toggle')).toBe(false);
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(false);
    expect(await connector.setAccountActive({ id: user.id }, false)).toEqual({ changed: false, before: { active: false } });

    expect(await connector.setAccountActive({ id: user.id }, true)).toEqual({ changed: true, before: { active: false } });
    expect((await readEntry(user.dn, ['pwdAccountLockedTime'])).pwdAccountLockedTime).toEqual([]);
    expect(await slapd.canBind(user.dn, 's3cret-toggle')).toBe(true);
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(true);
    expect(await connector.setAccountActive({ id: user.id }, true)).toEqual({ changed: false, before: { active: true } });
  });

  it('counts a temporary lockout after failed binds as active, and disabling makes the lock permanent', async () => {
    const user = await createUser(uniqueUid('templock'));
    const recent = `${new Date(Date.now() - 60_000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
    await admin.modify(user.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [recent] }) }));
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(true);
    expect(await connector.setAccountActive({ id: user.id }, false)).toEqual({ changed: true, before: { active: true } });
    expect((await readEntry(user.dn, ['pwdAccountLockedTime'])).pwdAccountLockedTime).toEqual([PERMANENT_LOCK]);
  });

  it('in AD mode flips only bit 0x2 of userAccountControl, changing only when needed', async () => {
    const ad = createLdapConnector('ad', options({ disableMode: 'ad-user-account-control' }));
    // NORMAL_ACCOUNT (0x200) | DONT_EXPIRE_PASSWORD (0x10000): the other flags must survive.
    const user = await createUser(uniqueUid('aduser'), { objectClass: ['cordonAdAccount'], userAccountControl: ['66048'] });
    const uac = async () => (await readEntry(user.dn, ['userAccountControl'])).userAccountControl;

    expect((await ad.readAccount({ id: user.id })).account.active).toBe(true);
    expect(await ad.setAccountActive({ id: user.id }, false)).toEqual({ changed: true, before: { active: true } });
    expect(await uac()).toEqual(['66050']);
    expect((await ad.readAccount({ id: user.id })).account.active).toBe(false);
    expect(await ad.setAccountActive({ id: user.id }, false)).toEqual({ changed: false, before: { active: false } });
    // The ppolicy view of the same entry is untouched: no lock was set.
    expect((await connector.readAccount({ id: user.id })).account.active).toBe(true);

    expect(await ad.setAccountActive({ id: user.id }, true)).toEqual({ changed: true, before: { active: false } });
    expect(await uac()).toEqual(['66048']);
    expect(await ad.setAccountActive({ id: user.id }, true)).toEqual({ changed: false, before: { active: true } });

    // A seeded account (512) and one without the attribute.
    const seeded = await ad.readAccount({ userName: 'felix.mora' });
    expect(await ad.setAccountActive(seeded.account, false)).toEqual({ changed: true, before: { active: true } });
    expect((await readEntry(seeded.account.name!, ['userAccountControl'])).userAccountControl).toEqual(['514']);
    await ad.setAccountActive(seeded.account, true);
    const bare = await createUser(uniqueUid('nouac'));
    expect(await failureType(ad.setAccountActive({ id: bare.id }, false))).toBe('ConnectorRejected');
  });

  it('removes and restores one membership, leaving the other members alone', async () => {
    const user = await createUser(uniqueUid('member'));
    const colleague = await createUser(uniqueUid('colleague'));
    const group = await createGroup(uniqueUid('finance-x'), [slapd.placeholderMember, user.dn, colleague.dn]);

    expect(await connector.isGroupMember({ id: group.id }, { id: user.id })).toBe(true);
    expect(await connector.removeGroupMember({ id: group.id }, { id: user.id })).toEqual({ changed: true, before: { member: true } });
    expect(await membersOf(group.dn)).toEqual([slapd.placeholderMember, colleague.dn].map((d) => d.toLowerCase()).sort());
    expect(await connector.isGroupMember({ id: group.id }, { id: user.id })).toBe(false);
    expect(await connector.isGroupMember({ id: group.id }, { id: colleague.id })).toBe(true);
    expect(await connector.removeGroupMember({ id: group.id }, { id: user.id })).toEqual({ changed: false, before: { member: false } });

    expect(await connector.addGroupMember({ id: group.id }, { id: user.id })).toEqual({ changed: true, before: { member: false } });
    expect(await connector.addGroupMember({ id: group.id }, { id: user.id })).toEqual({ changed: false, before: { member: true } });
    expect(await membersOf(group.dn)).toEqual([slapd.placeholderMember, user.dn, colleague.dn].map((d) => d.toLowerCase()).sort());
    expect((await connector.readAccount({ id: user.id })).groups.map((g) => g.id)).toEqual([group.id]);
  });

  it('removes the last member of a groupOfNames by putting the placeholder in its place, and refuses without one', async () => {
    const user = await createUser(uniqueUid('last'));
    const group = await createGroup(uniqueUid('solo'), [user.dn]);
    const { placeholderMember: _, ...withoutPlaceholder } = options();
    const strict = createLdapConnector('ldap', withoutPlaceholder);

    const refused = await cordonErrorOf(strict.removeGroupMember({ id: group.id }, { id: user.id }));
    expect(refused.type).toBe('ConnectorRejected');
    expect(refused.message).toMatch(/last member/);
    expect(await membersOf(group.dn)).toEqual([user.dn.toLowerCase()]);

    expect(await connector.removeGroupMember({ id: group.id }, { id: user.id })).toEqual({ changed: true, before: { member: true } });
    expect(await membersOf(group.dn)).toEqual([slapd.placeholderMember.toLowerCase()]);
    expect(await connector.addGroupMember({ id: group.id }, { id: user.id })).toEqual({ changed: true, before: { member: false } });
    expect(await membersOf(group.dn)).toEqual([slapd.placeholderMember, user.dn].map((d) => d.toLowerCase()).sort());
  });

  it('acts through the entryUUID on an account and a group renamed and moved after they were read', async () => {
    const user = await createUser(uniqueUid('mover'));
    const group = await createGroup(uniqueUid('movers'), [slapd.placeholderMember, user.dn]);
    const observed = await connector.readAccount({ id: user.id });
    const [observedGroup] = observed.groups;
    expect(observedGroup).toMatchObject({ id: group.id, name: group.dn });

    const newUid = uniqueUid('moved');
    await admin.modifyDN(user.dn, `${rdn('uid', newUid)},${ELSEWHERE}`);
    const movedDn = `uid=${newUid},${ELSEWHERE}`;
    // refint rewrites the member values just after the rename returns, in the background: the group
    // is renamed only once it has, or refint's update could go to the group's old DN and be lost.
    await waitUntil('refint to follow the rename', async () => (await connector.readAccount({ id: user.id })).groups.length === 1, { timeoutMs: 10_000, intervalMs: 50 });
    await admin.modifyDN(group.dn, rdn('cn', uniqueUid('renamed')));

    const account = { id: observed.account.id, name: observed.account.name };
    const staleGroup = { id: observedGroup!.id, name: observedGroup!.name };
    expect(await connector.setAccountActive(account, false)).toEqual({ changed: true, before: { active: true } });
    expect((await readEntry(movedDn, ['pwdAccountLockedTime'])).pwdAccountLockedTime).toEqual([PERMANENT_LOCK]);
    expect(await connector.removeGroupMember(staleGroup, account)).toEqual({ changed: true, before: { member: true } });
    expect(await connector.addGroupMember(staleGroup, account)).toEqual({ changed: true, before: { member: false } });
    const now = await connector.readAccount({ id: user.id });
    expect(now.account).toMatchObject({ name: movedDn, userName: newUid, active: false });
    expect(now.groups.map((g) => g.id)).toEqual([group.id]);
    expect(now.groups[0]!.name).not.toBe(group.dn);

    await admin.del(movedDn);
    expect(await failureType(connector.setAccountActive(account, true))).toBe('TargetNotFound');
    expect(await failureType(connector.readAccount({ id: user.id }))).toBe('TargetNotFound');
  });

  it('finds a user whose uid holds DN and filter metacharacters exactly, and no one else', async () => {
    const awkward = ['o,hara', 'a+b', 'say "hi"', 'back\\slash', '#hash', '<angle>', 'semi;colon', ' lead', 'trail ', 'star*', 'par(en)', 'eq=ual', 'ünï.cödé'];
    for (const uid of awkward) {
      const user = await createUser(uid);
      const snapshot = await connector.readAccount({ userName: uid });
      expect(snapshot.account.id).toBe(user.id);
      expect(snapshot.account.userName).toBe(uid);
      expect((await connector.readAccount({ id: user.id })).account.userName).toBe(uid);
      // The DN as the server spells it names the same entry.
      expect(await entryUUIDOf(snapshot.account.name!)).toBe(user.id);
    }
  });

  it('matches nothing for crafted user names and ids, instead of everything', async () => {
    const victim = await connector.readAccount({ userName: 'omar.aziz' });
    const crafted = [
      '*)(uid=*))(|(uid=*',
      '*',
      'omar*',
      '\\00',
      '\u0000',
      'omar.aziz\u0000',
      'admin)(|(uid=*',
      ')(objectClass=*',
      'omar.aziz)(uid=*',
      'omar\\2eaziz',
      'uid=omar.aziz,ou=people,dc=cordon,dc=test',
      'omar.aziz,ou=people',
      'omar.aziz+cn=x',
      '"omar.aziz"',
      'omar\\aziz',
      '#6f6d6172',
      '<omar.aziz>',
      'omar.aziz;x',
      ' omar.aziz',
      'omar.aziz ',
      '  omar.aziz  ',
      '',
    ];
    for (const userName of crafted) {
      expect({ userName, type: await failureType(connector.readAccount({ userName })) }).toEqual({ userName, type: 'TargetNotFound' });
    }
    const admins = await entryUUIDOf('cn=admins,ou=groups,dc=cordon,dc=test');
    const ids = [...crafted, `${victim.account.id})(entryUUID=*`, `${victim.account.id}*`, `*${victim.account.id.slice(1)}`];
    for (const id of ids) {
      expect({ id, type: await failureType(connector.readAccount({ id })) }).toEqual({ id, type: 'TargetNotFound' });
      expect(await failureType(connector.setAccountActive({ id }, false))).toBe('TargetNotFound');
      expect(await failureType(connector.isGroupMember({ id }, victim.account))).toBe('TargetNotFound');
      expect(await failureType(connector.removeGroupMember({ id: admins }, { id }))).toBe('TargetNotFound');
    }
    const after = await connector.readAccount({ id: victim.account.id });
    expect(after.account.active).toBe(true);
    expect(after.groups).toEqual(victim.groups);
  });

  it('answers ConnectorRejected for a wrong password, and ConnectorUnavailable (retryable) for a server down or silent', async () => {
    const wrong = await cordonErrorOf(createLdapConnector('ldap', options({ password: 'not-the-password' })).readAccount({ userName: 'omar.aziz' }));
    expect(wrong.type).toBe('ConnectorRejected');
    expect(wrong.retryable).toBe(false);
    expect(wrong.message).not.toContain(slapd.password);

    const down = await cordonErrorOf(createLdapConnector('ldap', options({ url: `ldap://127.0.0.1:${await freePort()}`, connectTimeoutMs: 2000 })).readAccount({ userName: 'omar.aziz' }));
    expect(down.type).toBe('ConnectorUnavailable');
    expect(down.retryable).toBe(true);

    // A server that accepts the connection and never answers: the operation timeout ends the call.
    const silent: Server = createServer(() => undefined);
    const port = await freePort();
    await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const timedOut = await cordonErrorOf(createLdapConnector('ldap', options({ url: `ldap://127.0.0.1:${port}`, timeoutMs: 300 })).countAccounts());
      expect(timedOut.type).toBe('ConnectorUnavailable');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      silent.close();
    }
  });

  it('refuses malformed options when the connector is created', () => {
    expect(() => createLdapConnector('ldap', options({ url: 'http://127.0.0.1:389' }))).toThrow(/ldap:\/\//);
    expect(() => createLdapConnector('ldap', options({ userIdAttribute: 'uid)(x' }))).toThrow(/userIdAttribute/);
    expect(() => createLdapConnector('ldap', options({ disableMode: 'delete' as never }))).toThrow(/disableMode/);
  });
});
