import { Client, ResultCodeError, type Entry } from 'ldapts';
import { CordonError, type ErrorType } from '../../../domain/index.js';

export interface LdapClientOptions {
  /** ldap://host:port or ldaps://host:port */
  url: string;
  /** The service account Cordon binds as (simple bind). */
  bindDN: string;
  /** Its password: the secret itself; the caller resolves a secret reference before. */
  password: string;
  /** How long one LDAP operation may take (default 10 s). */
  timeoutMs?: number;
  /** How long opening the TCP (and TLS) connection may take (default 5 s). */
  connectTimeoutMs?: number;
}

// LDAP result codes (RFC 4511 §4.1.9, Appendix A) that name a passing condition of the server: a retry
// can succeed. Every other code is the server refusing this request.
const TRANSIENT_RESULT_CODES: ReadonlySet<number> = new Set([
  3, // timeLimitExceeded
  51, // busy
  52, // unavailable
  80, // other (OpenLDAP: an internal error, e.g. a database failure)
]);

/** The LDAP result codes the connector treats specially. */
export const ResultCode = {
  sizeLimitExceeded: 4,
  noSuchAttribute: 16,
  typeOrValueExists: 20,
  noSuchObject: 32,
  objectClassViolation: 65,
} as const;

/** The LDAP result code of a failed operation, or undefined for a failure below LDAP (network, timeout). */
export function resultCodeOf(error: unknown): number | undefined {
  return error instanceof ResultCodeError ? error.code : undefined;
}

/**
 * Maps an ldapts failure to the catalogue: noSuchObject → TargetNotFound; busy, unavailable, time
 * limit, `other` and every failure below LDAP (refused connection, timeout, closed socket) →
 * ConnectorUnavailable (retryable); every other result code (invalid credentials, insufficient
 * access, constraint or schema violation, ...) → ConnectorRejected. A CordonError passes unchanged.
 */
export function ldapFailure(error: unknown, what: string): CordonError {
  if (error instanceof CordonError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = resultCodeOf(error);
  if (code === undefined) return new CordonError('ConnectorUnavailable', `LDAP ${what}: ${message}`);
  const type: ErrorType = code === ResultCode.noSuchObject ? 'TargetNotFound' : TRANSIENT_RESULT_CODES.has(code) ? 'ConnectorUnavailable' : 'ConnectorRejected';
  return new CordonError(type, `LDAP ${what} failed with result ${code} (${(error as Error).name}): ${message}`, { ldapResultCode: code });
}

/** The values of an attribute of a search entry, whatever case the server spelt its name in. */
export function valuesOf(entry: Entry, attribute: string): string[] {
  const wanted = attribute.toLowerCase();
  for (const [name, value] of Object.entries(entry)) {
    if (name === 'dn' || name.toLowerCase() !== wanted) continue;
    const list = Array.isArray(value) ? value : [value];
    return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
  }
  return [];
}

/**
 * Opens one connection per call, binds, runs `work`, and always unbinds: no connection outlives a
 * call, so a server restart or a dropped idle connection never leaves a stale one behind.
 */
export class LdapClient {
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;

  constructor(private readonly options: LdapClientOptions) {
    let scheme: string;
    try {
      scheme = new URL(options.url).protocol;
    } catch {
      throw new Error(`LDAP url: ${JSON.stringify(options.url)} is not a URL`);
    }
    if (scheme !== 'ldap:' && scheme !== 'ldaps:') throw new Error(`LDAP url: ${options.url} must start with ldap:// or ldaps://`);
    if (options.bindDN.trim() === '') throw new Error('LDAP bindDN: must not be empty');
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  }

  /** Runs `work` on a freshly bound connection; failures become CordonErrors (see ldapFailure), `what` names the call. */
  async run<T>(what: string, work: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({ url: this.options.url, timeout: this.timeoutMs, connectTimeout: this.connectTimeoutMs });
    try {
      await client.bind(this.options.bindDN, this.options.password);
      return await work(client);
    } catch (error) {
      throw ldapFailure(error, what);
    } finally {
      // Unbind closes the socket; after a timeout ldapts has already destroyed it.
      await client.unbind().catch(() => undefined);
    }
  }
}
