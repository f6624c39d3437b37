import { z } from 'zod';
import { CordonError } from '../../../domain/index.js';

const SCHEMA_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const SCHEMA_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const SCHEMA_PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const SCIM_JSON = 'application/scim+json';

/** The User attributes Cordon reads (RFC 7643 §4.1); others are ignored. */
export const ScimUser = z.object({
  id: z.string().min(1),
  userName: z.string(),
  displayName: z.string().optional(),
  name: z.object({ formatted: z.string().optional(), givenName: z.string().optional(), familyName: z.string().optional() }).partial().optional(),
  active: z.boolean().optional(),
  emails: z.array(z.object({ value: z.string(), primary: z.boolean().optional() }).partial()).optional(),
  meta: z.object({ version: z.string().optional() }).partial().optional(),
});
export type ScimUser = z.infer<typeof ScimUser>;

/** The Group attributes Cordon reads (RFC 7643 §4.2). */
export const ScimGroup = z.object({
  id: z.string().min(1),
  displayName: z.string(),
  members: z.array(z.object({ value: z.string(), display: z.string().optional(), type: z.string().optional() })).optional(),
  meta: z.object({ version: z.string().optional() }).partial().optional(),
});
export type ScimGroup = z.infer<typeof ScimGroup>;

const ListResponse = <T extends z.ZodType>(item: T) =>
  z.object({
    totalResults: z.int().min(0),
    startIndex: z.int().optional(),
    itemsPerPage: z.int().optional(),
    Resources: z.array(item).optional(),
  });

/** A PatchOp operation (RFC 7644 §3.5.2). */
export interface PatchOperation {
  op: 'add' | 'remove' | 'replace';
  path?: string;
  value?: unknown;
}

export interface ScimClientOptions {
  /** Base URL including the SCIM prefix, e.g. http://127.0.0.1:9090/v2 */
  baseUrl: string;
  bearerToken: string;
  /** Per-request timeout. */
  timeoutMs?: number;
}

/** A SCIM filter comparing an attribute to a string, with the value escaped as a JSON string (RFC 7644 §3.4.2.2). */
export function eqFilter(attribute: string, value: string): string {
  if (!/^[A-Za-z][A-Za-z0-9.$_-]*$/.test(attribute)) throw new Error(`not a SCIM attribute path: ${attribute}`);
  return `${attribute} eq ${JSON.stringify(value)}`;
}

/**
 * A thin SCIM 2.0 client over fetch: responses are parsed with zod, and HTTP failures become typed
 * CordonErrors (404 → TargetNotFound, 412 → ConcurrentModification, other 4xx → ConnectorRejected,
 * 429/5xx/network → ConnectorUnavailable).
 */
export class ScimClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: ScimClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  async getUser(id: string): Promise<ScimUser> {
    return ScimUser.parse(await this.request('GET', `/Users/${encodeURIComponent(id)}`));
  }

  async getGroup(id: string): Promise<ScimGroup> {
    return ScimGroup.parse(await this.request('GET', `/Groups/${encodeURIComponent(id)}`));
  }

  async findUsers(filter?: string): Promise<ScimUser[]> {
    return this.list('/Users', filter, ScimUser);
  }

  /** The number of users, from a zero-sized page's totalResults. */
  async countUsers(): Promise<number> {
    return ListResponse(ScimUser).parse(await this.request('GET', '/Users?count=0')).totalResults;
  }

  async findGroups(filter?: string): Promise<ScimGroup[]> {
    return this.list('/Groups', filter, ScimGroup);
  }

  async createUser(user: Omit<ScimUser, 'id' | 'meta'>): Promise<ScimUser> {
    return ScimUser.parse(await this.request('POST', '/Users', { schemas: [SCHEMA_USER], ...user }));
  }

  async createGroup(group: { displayName: string; members?: { value: string }[] }): Promise<ScimGroup> {
    return ScimGroup.parse(await this.request('POST', '/Groups', { schemas: [SCHEMA_GROUP], ...group }));
  }

  /** PATCH a resource; `ifMatch` makes the change conditional on the version read before. */
  async patch(resource: 'Users' | 'Groups', id: string, operations: PatchOperation[], ifMatch?: string): Promise<void> {
    await this.request('PATCH', `/${resource}/${encodeURIComponent(id)}`, { schemas: [SCHEMA_PATCH], Operations: operations }, ifMatch);
  }

  private async list<T extends z.ZodType>(path: string, filter: string | undefined, item: T): Promise<z.infer<T>[]> {
    const pageSize = 100;
    const found: z.infer<T>[] = [];
    // Bounded: at most 100 pages of 100.
    for (let page = 0, startIndex = 1; page < 100; page++) {
      const query = new URLSearchParams({ startIndex: String(startIndex), count: String(pageSize) });
      if (filter !== undefined) query.set('filter', filter);
      const body = ListResponse(item).parse(await this.request('GET', `${path}?${query.toString()}`));
      const resources = body.Resources ?? [];
      found.push(...resources);
      startIndex += resources.length;
      if (resources.length === 0 || found.length >= body.totalResults) return found;
    }
    throw new CordonError('ConnectorRejected', `SCIM ${path} returned more than 10000 results for ${filter ?? 'no filter'}`);
  }

  private async request(method: string, path: string, body?: unknown, ifMatch?: string): Promise<unknown> {
    const headers: Record<string, string> = { accept: SCIM_JSON, authorization: `Bearer ${this.options.bearerToken}` };
    if (body !== undefined) headers['content-type'] = SCIM_JSON;
    if (ifMatch !== undefined) headers['if-match'] = ifMatch;
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new CordonError('ConnectorUnavailable', `SCIM ${method} ${path}: ${(error as Error).message}`);
    }
    const text = await response.text();
    if (response.ok) return text.length > 0 ? (JSON.parse(text) as unknown) : undefined;
    const detail = scimErrorDetail(text);
    const what = `SCIM ${method} ${path} answered ${response.status}${detail ? `: ${detail}` : ''}`;
    if (response.status === 404) throw new CordonError('TargetNotFound', what, { status: 404 });
    if (response.status === 412) throw new CordonError('ConcurrentModification', what, { status: 412 });
    if (response.status === 429 || response.status >= 500) {
      throw new CordonError('ConnectorUnavailable', what, { status: response.status, retryAfter: response.headers.get('retry-after') });
    }
    throw new CordonError('ConnectorRejected', what, { status: response.status });
  }
}

function scimErrorDetail(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { detail?: unknown; scimType?: unknown };
    return [parsed.scimType, parsed.detail].filter((part) => typeof part === 'string').join(' ') || undefined;
  } catch {
    return text.slice(0, 200) || undefined;
  }
}
