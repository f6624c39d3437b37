// The UI's session: an encrypted, authenticated cookie (libsodium secretbox via
// @fastify/secure-session) holding who signed in, a pending OIDC sign-in, a flash message and the
// CSRF secret. Nothing about a session is kept on the server.
import { hkdfSync } from 'node:crypto';
import csrfProtection from '@fastify/csrf-protection';
import secureSession from '@fastify/secure-session';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Identity, Role } from '../../domain/index.js';
import type { RoleSources } from './claims.js';
import type { PendingLogin } from './oidc.js';

/** A one-time message shown on the next page. */
export interface Flash {
  kind: 'ok' | 'error';
  text: string;
}

declare module '@fastify/secure-session' {
  interface SessionData {
    /** Who is signed in, with the roles they had when they signed in (shown roles are resolved again on each request). */
    identity: Identity;
    via: 'oidc' | 'dev';
    /** An OIDC sign-in's role sources: the claim's roles then, and the keys into the role map as it is now. */
    roleSources: RoleSources;
    /** When they signed in (ms since the epoch); the sign-in ends after the session TTL, however active. */
    signedInAt: number;
    login: PendingLogin;
    flash: Flash;
  }
}

export const SESSION_COOKIE = 'cordon_ui';
/** Default sign-in lifetime: a working day. */
export const DEFAULT_SESSION_TTL_SECONDS = 8 * 60 * 60;

export interface SessionOptions {
  secret: Buffer;
  /** Cookie path (the UI's base path). */
  path: string;
  secure: boolean;
  ttlSeconds: number;
}

/** Registers the encrypted session cookie and CSRF tokens (bound to the session) in the UI's scope. */
export async function registerSession(app: FastifyInstance, options: SessionOptions): Promise<void> {
  if (options.secret.length < 32) throw new Error('the UI session secret must be at least 32 bytes');
  // secretbox takes a 32-byte key; derive it so that any 32+ byte secret will do.
  const key = Buffer.from(hkdfSync('sha256', options.secret, 'cordon-ui', 'session cookie key', 32));
  await app.register(secureSession, {
    key,
    cookieName: SESSION_COOKIE,
    // The cookie's own lifetime; the sign-in's is checked against `signedInAt`.
    expiry: options.ttlSeconds,
    cookie: { path: options.path, httpOnly: true, sameSite: 'lax', secure: options.secure },
  });
  await app.register(csrfProtection, {
    sessionPlugin: '@fastify/secure-session',
    // Only the form field: a token is never read from anywhere else.
    getToken: (request: FastifyRequest) => {
      const body = request.body as Record<string, unknown> | undefined;
      return typeof body?._csrf === 'string' ? body._csrf : undefined;
    },
  });
}

const SessionRoleSources = z.strictObject({ claimRoles: z.array(Role).max(8), roleMapKeys: z.array(z.string().max(320)).max(4) });

/** Who the session says is signed in, and how, or undefined when nobody is or the sign-in has expired. */
export function sessionSignIn(
  request: FastifyRequest,
  ttlSeconds: number,
): { identity: Identity; via: 'dev' } | { identity: Identity; via: 'oidc'; sources: RoleSources } | undefined {
  // Absent only if a request failed before the session hook ran.
  if (!(request.session as typeof request.session | null)) return undefined;
  const signedInAt = request.session.get('signedInAt');
  if (typeof signedInAt !== 'number' || Date.now() - signedInAt > ttlSeconds * 1000) return undefined;
  const identity = Identity.safeParse(request.session.get('identity'));
  if (!identity.success) return undefined;
  const via = request.session.get('via');
  if (via === 'dev') return { identity: identity.data, via };
  if (via !== 'oidc') return undefined;
  const sources = SessionRoleSources.safeParse(request.session.get('roleSources'));
  return sources.success ? { identity: identity.data, via, sources: sources.data } : undefined;
}

/** Starts a fresh session for `identity`: everything before (a pending sign-in, the CSRF secret) is dropped. */
export function signIn(request: FastifyRequest, identity: Identity, via: { dev: true } | { oidc: RoleSources }): void {
  request.session.regenerate();
  request.session.set('identity', identity);
  request.session.set('via', 'dev' in via ? 'dev' : 'oidc');
  if ('oidc' in via) request.session.set('roleSources', via.oidc);
  request.session.set('signedInAt', Date.now());
}

/** Takes the flash message, if any, so that it shows once. */
export function takeFlash(request: FastifyRequest): Flash | undefined {
  const flash = request.session.get('flash');
  if (flash) request.session.set('flash', undefined);
  return flash;
}
