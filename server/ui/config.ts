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
    /** Allow http:// issuers (tests and the embedded default only). */
    allowInsecureIssuer: boolean;
  };
  /** The embedded default's sign-in as one of the dev identities: never on elsewhere. */
  devSignIn: boolean;
}
