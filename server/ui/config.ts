import type { Role } from '../../domain/index.js';

/** How people sign in to the web UI. */
export interface UiConfig {
  /** The URL people reach the API at (links, OIDC redirect URI). */
  publicUrl: string;
  /** 32+ bytes that encrypt and sign the session cookie. */
  sessionSecret: Buffer;
  /** OpenID Connect provider (authorization code + PKCE); absent when only the dev sign-in is on. */
  oidc?: {
    issuer: string;
    clientId: string;
    clientSecret: string;
    /** The claim carrying Cordon roles (default `roles`). */
    rolesClaim: string;
    /** Roles by subject or email, for providers that carry no roles claim. */
    roleMap: Readonly<Record<string, Role[]>>;
    /**
     * The file `roleMap` was read from: read again whenever it changes, so that a role taken away
     * there is gone on the person's next request (sign-in or not). Without it, `roleMap` is fixed.
     */
    roleMapFile?: string;
    /** Allow http:// issuers (tests and the embedded default only). */
    allowInsecureIssuer: boolean;
    /**
     * The claim that names the person in Cordon (approvals, the ledger, separation of duties): `sub`
     * by default, or e.g. `email` or `preferred_username` where API identities are named that way.
     */
    nameClaim?: string;
    /** Scopes to ask for (default `openid email profile`); add the one that carries the roles claim if the provider needs it. */
    scopes?: readonly string[];
  };
  /** The embedded default's sign-in as one of the dev identities: never on elsewhere. */
  devSignIn: boolean;
  /** The identities the dev sign-in offers, with their roles (from the dev identities file); required when `devSignIn`. */
  devIdentities?: Readonly<Record<string, readonly Role[]>>;
  /** How long a sign-in lasts, in seconds (default 8 hours): it bounds how long roles from the provider's claim may be stale. */
  sessionTtlSeconds?: number;
}

/** Whether a URL points at this machine (127.0.0.1, localhost, ::1): where http:// and the dev sign-in are allowed. */
export function isLoopbackUrl(url: URL): boolean {
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}
