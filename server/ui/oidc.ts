// Sign-in with OpenID Connect: authorization code flow with PKCE (S256), state and nonce, as a
// confidential client (client_secret_basic). The provider's metadata is discovered on first use and
// kept; a failed discovery is retried on the next sign-in.
import * as client from 'openid-client';
import type { FastifyBaseLogger } from 'fastify';
import { identityFromClaims, type ClaimsIdentity, type ClaimsMapping } from './claims.js';
import type { UiConfig } from './config.js';

/** What a sign-in in progress keeps in the session until the provider redirects back. */
export interface PendingLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** The UI path to go to once signed in. */
  returnTo: string;
  /** When the sign-in started (ms since the epoch); pending sign-ins expire after PENDING_LOGIN_TTL_MS. */
  startedAt: number;
}

/** How long the provider may take to send the person back. */
export const PENDING_LOGIN_TTL_MS = 10 * 60_000;

export interface OidcSignIn {
  /** Where to send the browser, and what to keep in the session for the way back. */
  start(returnTo: string): Promise<{ url: URL; pending: PendingLogin }>;
  /** Completes the sign-in from the callback URL; throws on a provider error or a failed check. */
  finish(callbackUrl: URL, pending: PendingLogin): Promise<ClaimsIdentity>;
}

type OidcOptions = NonNullable<UiConfig['oidc']>;

/**
 * An OIDC relying party for the UI; `redirectUri` is the public URL of `/ui/auth/callback`, and
 * `roleMap` answers the role map as it is now.
 */
export function createOidcSignIn(options: OidcOptions, redirectUri: string, roleMap: () => Promise<ClaimsMapping['roleMap']>, log: FastifyBaseLogger): OidcSignIn {
  let discovered: Promise<client.Configuration> | undefined;
  const configuration = () => {
    discovered ??= client
      .discovery(new URL(options.issuer), options.clientId, undefined, client.ClientSecretBasic(options.clientSecret), {
        execute: options.allowInsecureIssuer ? [client.allowInsecureRequests] : [],
        timeout: 10,
      })
      .catch((error: unknown) => {
        discovered = undefined;
        throw error;
      });
    return discovered;
  };
  const scope = (options.scopes ?? ['openid', 'email', 'profile']).join(' ');

  return {
    async start(returnTo) {
      const config = await configuration();
      const pending: PendingLogin = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier: client.randomPKCECodeVerifier(),
        returnTo,
        startedAt: Date.now(),
      };
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        response_type: 'code',
        scope,
        state: pending.state,
        nonce: pending.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(pending.codeVerifier),
        code_challenge_method: 'S256',
      });
      return { url, pending };
    },

    async finish(callbackUrl, pending) {
      const config = await configuration();
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      const idClaims: Record<string, unknown> = { ...tokens.claims() };
      let claims = idClaims;
      // Providers differ in what they put into the ID token; ask userinfo for what is missing.
      const missing = [options.rolesClaim.split('.')[0]!, options.nameClaim ?? 'sub', 'email'].some((c) => !Object.hasOwn(idClaims, c));
      if (missing && config.serverMetadata().userinfo_endpoint && typeof idClaims.sub === 'string') {
        try {
          const info = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);
          claims = { ...info, ...idClaims };
        } catch (error) {
          log.warn({ err: error }, 'OIDC userinfo failed; using the ID token claims only');
        }
      }
      const result = identityFromClaims(claims, { rolesClaim: options.rolesClaim, roleMap: await roleMap(), nameClaim: options.nameClaim });
      if (result.ok && result.ignoredRoles.length > 0) log.info({ user: result.identity.name, ignoredRoles: result.ignoredRoles }, 'OIDC roles Cordon does not know were ignored');
      return result;
    },
  };
}

/** A message for a failed sign-in that is safe and useful to show. */
export function describeOidcError(error: unknown): string {
  if (error instanceof client.AuthorizationResponseError) return `the provider answered ${error.error}${error.error_description ? `: ${error.error_description}` : ''}`;
  if (error instanceof client.ResponseBodyError) return `the provider refused the token request: ${error.error}${error.error_description ? `: ${error.error_description}` : ''}`;
  if (error instanceof client.ClientError) return `the provider's answer did not pass the checks: ${error.message}`;
  return 'the identity provider could not be reached';
}
