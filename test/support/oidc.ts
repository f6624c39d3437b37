// A real OpenID Connect provider for tests: oidc-provider 8.x in this process, on 127.0.0.1 and a
// port of its own, with one confidential client (authorization code, PKCE required), a few accounts,
// and its development login page (any password). As with many enterprise providers, `sub` is an
// opaque id; the login comes as `preferred_username`.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Account, type OidcContext } from 'oidc-provider';

/** A person the test provider knows, by login (their `preferred_username`; `sub` is `subjectOf(login)`). */
export interface TestAccount {
  email: string;
  name: string;
  /** Sent as the `roles` claim (scope `roles`); absent: no roles claim at all. */
  roles?: string[];
}

/** The test accounts: roles in a claim, except oscar and dora, whose roles come from a role map by email. */
export const TEST_ACCOUNTS: Readonly<Record<string, TestAccount>> = {
  alice: { email: 'alice@example.test', name: 'Alice Approver', roles: ['soc', 'approver'] },
  bob: { email: 'bob@example.test', name: 'Bob Approver', roles: ['approver'] },
  carol: { email: 'carol@example.test', name: 'Carol Approver', roles: ['approver', 'auditor'] },
  dora: { email: 'dora@example.test', name: 'Dora Delegate' },
  oscar: { email: 'oscar@example.test', name: 'Oscar Operator' },
  nemo: { email: 'nemo@example.test', name: 'Nemo Nobody', roles: [] },
};

/** The role map that gives oscar and dora their roles (by email: the provider sends them no roles claim). */
export const TEST_ROLE_MAP = { 'oscar@example.test': ['operator'], 'dora@example.test': ['approver'] } as const;

/** The opaque `sub` the provider gives a login (never the login itself). */
export function subjectOf(login: string): string {
  return `00u${createHash('sha256').update(login).digest('hex').slice(0, 17)}`;
}

/** The scopes Cordon asks the test provider for. */
export const TEST_SCOPES = ['openid', 'email', 'profile', 'roles'] as const;

export interface TestOidcProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close(): Promise<void>;
}

/**
 * Starts the provider with a client whose redirect URIs are `redirectUris`. Consent is pre-granted
 * for that client (a first-party application), so a sign-in is: the login page, then back to Cordon.
 */
export async function startOidcProvider(options: { redirectUris: string[]; accounts?: Readonly<Record<string, TestAccount>> }): Promise<TestOidcProvider> {
  const accounts = options.accounts ?? TEST_ACCOUNTS;
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'cordon-ui';
  const clientSecret = randomBytes(24).toString('hex');
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: options.redirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    pkce: { required: () => true, methods: ['S256'] },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], roles: ['roles'] },
    // Put the scopes' claims into the ID token too, as many enterprise providers do.
    conformIdTokenClaims: false,
    // Lifetimes of its own, so that the provider does not warn about its defaults.
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 600, Interaction: 600, Session: 3600 },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [{ ...signingKey, alg: 'RS256', use: 'sig', kid: 'test' }] },
    // The account id is the login (the dev login page's); the claims name the person by an opaque sub.
    async findAccount(_ctx: unknown, login: string): Promise<Account | undefined> {
      const account = Object.hasOwn(accounts, login) ? accounts[login] : undefined;
      if (!account) return undefined;
      return {
        accountId: login,
        async claims() {
          return {
            sub: subjectOf(login),
            email: account.email,
            email_verified: true,
            name: account.name,
            preferred_username: login,
            ...(account.roles ? { roles: account.roles } : {}),
          };
        },
      };
    },
    async loadExistingGrant(ctx: OidcContext) {
      const { client, session, result, provider: p } = ctx.oidc;
      if (!client || !session?.accountId) return undefined;
      const grantId = result?.consent?.grantId ?? session.grantIdFor(client.clientId);
      if (grantId) return p.Grant.find(grantId);
      const grant = new p.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope(TEST_SCOPES.join(' '));
      await grant.save();
      return grant;
    },
  });
  server.on('request', provider.callback());

  return {
    issuer,
    clientId,
    clientSecret,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
