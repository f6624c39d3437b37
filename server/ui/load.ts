// Builds the UI's options from Cordon's configuration: reads the session secret, the OIDC client
// secret, the role map and (for the dev sign-in) the dev identities. For the API's entry point.
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import type { Config } from '../../config/config.js';
import { Role } from '../../domain/index.js';
import { IdentitiesFile } from '../identities.js';
import { isLoopbackUrl, type UiConfig } from './config.js';

/** The role map file: `{ "<sub or email>": ["approver", …] }`; unknown roles are an error here (a typo, not a provider's extra). */
export const RoleMapFile = z.record(z.string().min(1).max(320), z.array(Role).max(8));

async function readText(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw new Error(`cannot read the ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function readJson<T>(path: string, schema: z.ZodType<T>, what: string): Promise<T> {
  const text = await readText(path, what);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`the ${what} ${path} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`the ${what} ${path} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`);
  }
  return parsed.data;
}

const ROLE_MAP = 'OIDC role map (CORDON_OIDC_ROLE_MAP_FILE)';

/** A role map as the UI uses it. */
export type RoleMap = Readonly<Record<string, readonly Role[]>>;

/**
 * The role map as `file` holds it now, read again whenever the file changes (size, times or inode).
 * A file that has gone or no longer parses grants no role at all until it is fixed: a mistake while
 * taking a role away must not leave the old roles in force. Each such failure is logged once.
 */
export function roleMapReader(file: string, initial: RoleMap, log: { error(obj: object, msg: string): void }): () => Promise<RoleMap> {
  let current = initial;
  let version: string | undefined;
  let loading: Promise<RoleMap> | undefined;
  const load = async (): Promise<RoleMap> => {
    let seen: string;
    try {
      const info = await stat(file);
      seen = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch (error) {
      seen = 'unreadable';
      if (version !== seen) log.error({ file, err: error }, 'the OIDC role map cannot be read: no role is granted by it until it can');
      version = seen;
      current = {};
      return current;
    }
    if (seen === version) return current;
    try {
      current = await readJson(file, RoleMapFile, ROLE_MAP);
    } catch (error) {
      log.error({ file, err: error }, 'the OIDC role map is invalid: no role is granted by it until it is fixed');
      current = {};
    }
    version = seen;
    return current;
  };
  return () => {
    // One read at a time; requests arriving meanwhile share its answer.
    loading ??= load().finally(() => {
      loading = undefined;
    });
    return loading;
  };
}

/**
 * The web UI's options, or undefined when neither an OIDC issuer nor the dev sign-in is configured
 * (no UI then). Throws naming the setting or file that is missing or invalid: the client id and
 * secret file with an issuer, a session secret of 32+ bytes, an http:// issuer that is not loopback.
 */
export async function loadUiConfig(config: Config): Promise<UiConfig | undefined> {
  const { oidc, devSignIn, sessionSecretFile } = config.ui;
  if (!oidc.issuer && !devSignIn) return undefined;
  const sessionSecret = Buffer.from(await readText(sessionSecretFile, 'UI session secret (CORDON_UI_SESSION_SECRET_FILE)'), 'utf8');
  if (sessionSecret.length < 32) throw new Error(`the UI session secret ${sessionSecretFile} must hold at least 32 bytes`);
  const ui: UiConfig = { publicUrl: config.api.publicUrl, sessionSecret, devSignIn, sessionTtlSeconds: config.ui.sessionTtlSeconds };
  if (oidc.issuer) {
    if (!oidc.clientId) throw new Error('CORDON_OIDC_CLIENT_ID is required with CORDON_OIDC_ISSUER');
    if (!oidc.clientSecretFile) throw new Error('CORDON_OIDC_CLIENT_SECRET_FILE is required with CORDON_OIDC_ISSUER');
    const issuer = new URL(oidc.issuer);
    const insecure = issuer.protocol === 'http:';
    if (insecure && !isLoopbackUrl(issuer)) throw new Error(`CORDON_OIDC_ISSUER must be https:// (http:// only for a provider on this machine): ${oidc.issuer}`);
    ui.oidc = {
      issuer: oidc.issuer,
      clientId: oidc.clientId,
      clientSecret: await readText(oidc.clientSecretFile, 'OIDC client secret (CORDON_OIDC_CLIENT_SECRET_FILE)'),
      rolesClaim: oidc.rolesClaim,
      roleMap: oidc.roleMapFile ? await readJson(oidc.roleMapFile, RoleMapFile, ROLE_MAP) : {},
      ...(oidc.roleMapFile ? { roleMapFile: oidc.roleMapFile } : {}),
      allowInsecureIssuer: insecure,
      scopes: [...oidc.scopes],
      nameClaim: oidc.nameClaim,
    };
  }
  if (devSignIn) {
    const file = await readJson(config.identitiesFile, IdentitiesFile, 'identities file');
    ui.devIdentities = Object.fromEntries(Object.entries(file).map(([name, { roles }]) => [name, roles]));
  }
  return ui;
}
