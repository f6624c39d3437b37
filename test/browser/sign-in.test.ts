// How a sign-in becomes a Cordon identity (claims, role map) and how the UI's options are read from
// the configuration and its files.
import { mkdtemp, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { ConfigError } from '../../config/config.js';
import { identityFromClaims, rolesFrom } from '../../server/ui/claims.js';
import { loadUiConfig, roleMapReader } from '../../server/ui/load.js';

const mapping = { rolesClaim: 'roles', roleMap: { 'oscar@example.test': ['operator' as const], 'sub-7': ['admin' as const] } };

describe('identityFromClaims', () => {
  it('names the person by sub and takes known roles from the roles claim, ignoring unknown ones', () => {
    const result = identityFromClaims({ sub: 'bob', roles: ['approver', 'auditor', 'soc'] }, mapping);
    expect(result).toEqual({ ok: true, identity: { name: 'bob', roles: ['soc', 'approver'] }, sources: { claimRoles: ['soc', 'approver'], roleMapKeys: ['bob'] }, ignoredRoles: ['auditor'] });
  });

  it('reads a roles claim sent as one string, separated by spaces or commas, and at a dotted path', () => {
    expect(identityFromClaims({ sub: 'a', roles: 'approver, operator soc' }, mapping)).toMatchObject({ identity: { roles: ['soc', 'approver', 'operator'] } });
    expect(identityFromClaims({ sub: 'a', realm_access: { roles: ['admin'] } }, { ...mapping, rolesClaim: 'realm_access.roles' })).toMatchObject({ identity: { roles: ['admin'] } });
  });

  it('adds roles from the role map by subject, and by email unless the provider says it is unverified', () => {
    expect(identityFromClaims({ sub: 'oscar', email: 'oscar@example.test', email_verified: true }, mapping)).toMatchObject({ identity: { name: 'oscar', roles: ['operator'] } });
    expect(identityFromClaims({ sub: 'oscar', email: 'oscar@example.test' }, mapping)).toMatchObject({ identity: { roles: ['operator'] } });
    expect(identityFromClaims({ sub: 'oscar', email: 'oscar@example.test', email_verified: false }, mapping)).toMatchObject({ identity: { roles: [] } });
    expect(identityFromClaims({ sub: 'sub-7', roles: ['approver'] }, mapping)).toMatchObject({ identity: { roles: ['approver', 'admin'] } });
  });

  it('lets a person without any Cordon role sign in, with no role', () => {
    expect(identityFromClaims({ sub: 'nemo' }, mapping)).toEqual({ ok: true, identity: { name: 'nemo', roles: [] }, sources: { claimRoles: [], roleMapKeys: ['nemo'] }, ignoredRoles: [] });
  });

  it('keeps the claim roles and the role map keys apart, so that roles can be resolved again against the role map as it is later', () => {
    const result = identityFromClaims({ sub: 'u-42', email: 'oscar@example.test', roles: ['soc'] }, mapping);
    expect(result).toMatchObject({ ok: true, identity: { roles: ['soc', 'operator'] }, sources: { claimRoles: ['soc'], roleMapKeys: ['u-42', 'oscar@example.test'] } });
    const sources = result.ok ? result.sources : { claimRoles: [], roleMapKeys: [] };
    expect(rolesFrom(sources, {})).toEqual(['soc']);
    expect(rolesFrom(sources, { 'u-42': ['approver', 'admin'] })).toEqual(['soc', 'approver', 'admin']);
    // An unverified email is no key into the map at all.
    expect(identityFromClaims({ sub: 'u-42', email: 'oscar@example.test', email_verified: false }, mapping)).toMatchObject({ sources: { roleMapKeys: ['u-42'] } });
  });

  it('uses another claim for the name when told to, and refuses a missing or unusable name', () => {
    expect(identityFromClaims({ sub: '00u1x', email: 'jo@example.test' }, { ...mapping, nameClaim: 'email' })).toMatchObject({ identity: { name: 'jo@example.test' } });
    expect(identityFromClaims({ email: 'jo@example.test' }, mapping)).toEqual({ ok: false, reason: 'the provider sent no "sub" claim' });
    expect(identityFromClaims({ sub: 'Jo Smith <jo>' }, mapping)).toEqual({ ok: false, reason: 'the "sub" claim is not a plain identity name' });
    expect(identityFromClaims({ sub: 'x', roles: { toString: 'approver' } }, mapping)).toMatchObject({ identity: { roles: [] } });
  });
});

describe('loadUiConfig', () => {
  async function files() {
    const dir = await mkdtemp(join(tmpdir(), 'cordon-ui-config-'));
    await writeFile(join(dir, 'session.key'), `${'k'.repeat(43)}\n`);
    await writeFile(join(dir, 'client.secret'), 'shh\n');
    await writeFile(join(dir, 'roles.json'), JSON.stringify({ 'oscar@example.test': ['operator'] }));
    await writeFile(join(dir, 'ids.json'), JSON.stringify({ bob: { token: 't'.repeat(24), roles: ['approver'] }, oscar: { token: 'u'.repeat(24), roles: ['operator'] } }));
    const env = (extra: Record<string, string>) =>
      loadConfig({ CORDON_DATA_DIR: dir, CORDON_UI_SESSION_SECRET_FILE: join(dir, 'session.key'), CORDON_IDENTITIES_FILE: join(dir, 'ids.json'), ...extra }, dir);
    return { dir, env };
  }

  it('has no UI when neither an OIDC issuer nor the development sign-in is configured', async () => {
    const { env } = await files();
    expect(await loadUiConfig(env({}))).toBeUndefined();
  });

  it('reads the client secret and role map for OIDC, and allows http only for a provider on this machine', async () => {
    const { dir, env } = await files();
    const oidc = { CORDON_OIDC_ISSUER: 'https://idp.example.com', CORDON_OIDC_CLIENT_ID: 'cordon', CORDON_OIDC_CLIENT_SECRET_FILE: join(dir, 'client.secret'), CORDON_OIDC_ROLE_MAP_FILE: join(dir, 'roles.json') };
    const ui = await loadUiConfig(env(oidc));
    expect(ui).toMatchObject({
      publicUrl: 'http://127.0.0.1:8080',
      devSignIn: false,
      sessionTtlSeconds: 8 * 3600,
      oidc: { issuer: 'https://idp.example.com', clientId: 'cordon', clientSecret: 'shh', rolesClaim: 'roles', roleMap: { 'oscar@example.test': ['operator'] }, roleMapFile: join(dir, 'roles.json'), allowInsecureIssuer: false, scopes: ['openid', 'email', 'profile'], nameClaim: 'sub' },
    });
    expect(ui?.sessionSecret.length).toBe(43);
    expect((await loadUiConfig(env({ ...oidc, CORDON_OIDC_ISSUER: 'http://127.0.0.1:9999' })))?.oidc?.allowInsecureIssuer).toBe(true);
    await expect(loadUiConfig(env({ ...oidc, CORDON_OIDC_ISSUER: 'http://idp.example.com' }))).rejects.toThrow(/https/);
    await expect(loadUiConfig(env({ ...oidc, CORDON_OIDC_CLIENT_ID: '' }))).rejects.toThrow(/CORDON_OIDC_CLIENT_ID/);
    await writeFile(join(dir, 'roles.json'), JSON.stringify({ 'oscar@example.test': ['operater'] }));
    await expect(loadUiConfig(env(oidc))).rejects.toThrow(/role map .* invalid at oscar@example\.test\.0/);
  });

  it('takes the scopes, the name claim and the session lifetime from the environment', async () => {
    const { dir, env } = await files();
    const ui = await loadUiConfig(
      env({
        CORDON_OIDC_ISSUER: 'https://idp.example.com',
        CORDON_OIDC_CLIENT_ID: 'cordon',
        CORDON_OIDC_CLIENT_SECRET_FILE: join(dir, 'client.secret'),
        CORDON_OIDC_SCOPES: 'openid email, groups  offline_access',
        CORDON_OIDC_NAME_CLAIM: 'preferred_username',
        CORDON_UI_SESSION_TTL: '45m',
      }),
    );
    expect(ui?.oidc).toMatchObject({ scopes: ['openid', 'email', 'groups', 'offline_access'], nameClaim: 'preferred_username', roleMap: {} });
    expect(ui?.oidc?.roleMapFile).toBeUndefined();
    expect(ui?.sessionTtlSeconds).toBe(45 * 60);
  });

  it('refuses scopes without openid, an unusable name claim and a session lifetime out of bounds, naming the variable', () => {
    const refusal = (extra: Record<string, string>) => {
      try {
        loadConfig(extra, '/srv/cordon');
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
      }
      throw new Error(`accepted ${JSON.stringify(extra)}`);
    };
    expect(refusal({ CORDON_OIDC_SCOPES: 'email profile' })).toMatch(/CORDON_OIDC_SCOPES: must include openid/);
    expect(refusal({ CORDON_OIDC_SCOPES: 'openid "roles"' })).toMatch(/CORDON_OIDC_SCOPES.*printable ASCII/);
    expect(refusal({ CORDON_OIDC_SCOPES: ' , ' })).toMatch(/CORDON_OIDC_SCOPES: name at least one scope/);
    expect(refusal({ CORDON_OIDC_NAME_CLAIM: 'name with spaces' })).toMatch(/CORDON_OIDC_NAME_CLAIM: must be a claim name/);
    expect(refusal({ CORDON_OIDC_NAME_CLAIM: 'a..b' })).toMatch(/CORDON_OIDC_NAME_CLAIM/);
    expect(refusal({ CORDON_UI_SESSION_TTL: '8 hours' })).toMatch(/CORDON_UI_SESSION_TTL: must be a duration such as 30m or 8h/);
    expect(refusal({ CORDON_UI_SESSION_TTL: '2d' })).toMatch(/CORDON_UI_SESSION_TTL: must be a duration/);
    expect(refusal({ CORDON_UI_SESSION_TTL: '25h' })).toMatch(/CORDON_UI_SESSION_TTL: must be at most 24h/);
    expect(refusal({ CORDON_UI_SESSION_TTL: '60s' })).toMatch(/CORDON_UI_SESSION_TTL: must be at least 5m/);
    expect(loadConfig({ CORDON_OIDC_NAME_CLAIM: 'realm_access.username', CORDON_UI_SESSION_TTL: '300s' }, '/srv/cordon').ui).toMatchObject({ sessionTtlSeconds: 300, oidc: { nameClaim: 'realm_access.username' } });
  });

  it('offers the dev identities with their roles when the development sign-in is on', async () => {
    const { env } = await files();
    expect((await loadUiConfig(env({ CORDON_UI_DEV_SIGNIN: 'on' })))?.devIdentities).toEqual({ bob: ['approver'], oscar: ['operator'] });
  });

  it('refuses a missing or short session secret, naming the file', async () => {
    const { dir, env } = await files();
    await expect(loadUiConfig(env({ CORDON_UI_DEV_SIGNIN: 'on', CORDON_UI_SESSION_SECRET_FILE: join(dir, 'nope.key') }))).rejects.toThrow(/nope\.key/);
    await writeFile(join(dir, 'short.key'), 'too short');
    await expect(loadUiConfig(env({ CORDON_UI_DEV_SIGNIN: 'on', CORDON_UI_SESSION_SECRET_FILE: join(dir, 'short.key') }))).rejects.toThrow(/at least 32 bytes/);
  });
});

describe('roleMapReader', () => {
  it('reads the role map again when the file changes, and grants nothing while it is missing or invalid', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cordon-role-map-'));
    const file = join(dir, 'roles.json');
    await writeFile(file, JSON.stringify({ 'dora@example.test': ['approver'] }));
    const errors: string[] = [];
    const read = roleMapReader(file, {}, { error: (_obj, msg) => errors.push(msg) });
    expect(await read()).toEqual({ 'dora@example.test': ['approver'] });
    await writeFile(file, JSON.stringify({ 'dora@example.test': [], 'oscar@example.test': ['operator'] }));
    expect(await read()).toEqual({ 'dora@example.test': [], 'oscar@example.test': ['operator'] });
    await writeFile(file, JSON.stringify({ 'dora@example.test': ['aprover'] }));
    expect(await read()).toEqual({});
    expect(errors).toEqual([expect.stringContaining('invalid')]);
    await unlink(file);
    expect(await read()).toEqual({});
    expect(await read()).toEqual({});
    expect(errors).toEqual([expect.stringContaining('invalid'), expect.stringContaining('cannot be read')]);
    await writeFile(file, JSON.stringify({ 'dora@example.test': ['approver', 'soc'] }));
    expect(await read()).toEqual({ 'dora@example.test': ['approver', 'soc'] });
  });
});
