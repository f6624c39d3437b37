// moto does not implement IAM Access Advisor (GenerateServiceLastAccessedDetails,
// GetServiceLastAccessedDetails, ListPoliciesGrantingServiceAccess: moto answers them with HTTP 500).
// This recorder sits in front of the real moto server and answers ONLY those three actions, from data
// the test sets with `record`; every other request is forwarded to moto byte for byte (method, path,
// headers, body) and moto's answer is returned unchanged. Users, roles, groups, policies, keys and
// every change to them stay real: only "when did this identity last use which service, and which of
// its policies grant which service" comes from the test.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A policy as ListPoliciesGrantingServiceAccess lists it: managed ones by ARN, inline ones by owner. */
export interface AdvisorPolicy {
  name: string;
  /** A managed policy's ARN; absent for an inline policy. */
  arn?: string;
  /** For an inline policy: the user, role or group it is embedded in. */
  entityType?: 'USER' | 'ROLE' | 'GROUP';
  entityName?: string;
}

/** What Access Advisor knows of one identity (a user, role or group ARN). */
export interface AdvisorRecord {
  /**
   * For a user or role: every service its policies allow (its own and its groups'), with when it last
   * authenticated to it; null: never within the tracking period.
   */
  lastAuthenticated?: Record<string, Date | null>;
  /** Which policies allow each service (namespace), as ListPoliciesGrantingServiceAccess reports for this ARN. */
  grants?: Record<string, AdvisorPolicy[]>;
}

/** One request the recorder saw. */
export interface SeenRequest {
  action: string;
  /** moto's account header, when the client sent one. */
  account: string | undefined;
  /** True when the recorder answered it; false when moto did. */
  answered: boolean;
}

export interface AccessAdvisorRecorder {
  /** The endpoint to give an IAM client instead of moto's. */
  url: string;
  /** Sets what Access Advisor reports for `arn` (replacing anything set before). */
  record(arn: string, data: AdvisorRecord): void;
  /** How many GetServiceLastAccessedDetails polls of each job answer IN_PROGRESS first (default 0; `Infinity`: never done). */
  pendingPolls: number;
  /** Makes every job end FAILED with this message instead (undefined: jobs complete). */
  failJobs: string | undefined;
  /** At most this many items per page, to make clients follow Marker (default: what the client asks, else 100). */
  pageSize: number | undefined;
  /** Every request seen, in order. */
  readonly requests: SeenRequest[];
  stop(): Promise<void>;
}

const ADVISOR_ACTIONS = new Set(['GenerateServiceLastAccessedDetails', 'GetServiceLastAccessedDetails', 'ListPoliciesGrantingServiceAccess']);
const NS = 'https://iam.amazonaws.com/doc/2010-05-08/';

const xmlEscape = (value: string): string => value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const element = (name: string, value: string | number | boolean | undefined): string => (value === undefined ? '' : `<${name}>${xmlEscape(String(value))}</${name}>`);

function envelope(action: string, result: string): string {
  return `<${action}Response xmlns="${NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`;
}

function errorBody(code: string, message: string): string {
  return `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
}

/** `items` from the position `marker` names, at most `size` of them, and the marker of what follows. */
function page<T>(items: readonly T[], marker: string | null, size: number): { items: T[]; next: string | undefined } {
  const start = marker === null ? 0 : Number(marker);
  const end = start + size;
  return { items: items.slice(start, end), next: end < items.length ? String(end) : undefined };
}

/** Starts the recorder on 127.0.0.1, in front of the moto server at `motoUrl`. */
export async function startAccessAdvisor(motoUrl: string): Promise<AccessAdvisorRecorder> {
  const moto = new URL(motoUrl);
  const records = new Map<string, AdvisorRecord>();
  const jobs = new Map<string, { arn: string; polls: number; createdAt: Date }>();
  const requests: SeenRequest[] = [];

  const forward = (incoming: IncomingMessage, body: Buffer, response: ServerResponse) => {
    const outgoing = httpRequest(
      { host: moto.hostname, port: moto.port, method: incoming.method, path: incoming.url, headers: incoming.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    outgoing.on('error', (error) => {
      response.writeHead(502, { 'content-type': 'text/plain' });
      response.end(`moto unreachable: ${error.message}`);
    });
    outgoing.end(body);
  };

  const answer = (action: string, params: URLSearchParams, recorder: AccessAdvisorRecorder): { status: number; body: string } => {
    const size = Math.min(recorder.pageSize ?? Number.POSITIVE_INFINITY, Number(params.get('MaxItems') ?? 100));
    switch (action) {
      case 'GenerateServiceLastAccessedDetails': {
        const arn = params.get('Arn') ?? '';
        const jobId = randomUUID();
        jobs.set(jobId, { arn, polls: 0, createdAt: new Date() });
        return { status: 200, body: envelope(action, element('JobId', jobId)) };
      }
      case 'GetServiceLastAccessedDetails': {
        const job = jobs.get(params.get('JobId') ?? '');
        if (!job) return { status: 404, body: errorBody('NoSuchEntity', `no job ${params.get('JobId')}`) };
        const created = element('JobCreationDate', job.createdAt.toISOString());
        if (job.polls++ < recorder.pendingPolls) {
          return { status: 200, body: envelope(action, `${element('JobStatus', 'IN_PROGRESS')}${element('JobType', 'SERVICE_LEVEL')}${created}<ServicesLastAccessed/>`) };
        }
        if (recorder.failJobs !== undefined) {
          const error = `<Error>${element('Message', recorder.failJobs)}${element('Code', 'InternalFailure')}</Error>`;
          return { status: 200, body: envelope(action, `${element('JobStatus', 'FAILED')}${created}${element('JobCompletionDate', new Date().toISOString())}<ServicesLastAccessed/>${error}`) };
        }
        const services = Object.entries(records.get(job.arn)?.lastAuthenticated ?? {}).sort(([a], [b]) => a.localeCompare(b));
        const { items, next } = page(services, params.get('Marker'), size);
        const members = items
          .map(
            ([namespace, at]) =>
              `<member>${element('ServiceName', `Service ${namespace}`)}${element('ServiceNamespace', namespace)}${element('TotalAuthenticatedEntities', at ? 1 : 0)}${at ? `${element('LastAuthenticated', at.toISOString())}${element('LastAuthenticatedEntity', job.arn)}${element('LastAuthenticatedRegion', 'us-east-1')}` : ''}</member>`,
          )
          .join('');
        return {
          status: 200,
          body: envelope(
            action,
            `${element('JobStatus', 'COMPLETED')}${element('JobType', 'SERVICE_LEVEL')}${created}${element('JobCompletionDate', new Date().toISOString())}<ServicesLastAccessed>${members}</ServicesLastAccessed>${element('IsTruncated', next !== undefined)}${element('Marker', next)}`,
          ),
        };
      }
      case 'ListPoliciesGrantingServiceAccess': {
        const arn = params.get('Arn') ?? '';
        const asked = [...params.entries()].filter(([key]) => key.startsWith('ServiceNamespaces.member.')).map(([, value]) => value);
        if (asked.length === 0) return { status: 400, body: errorBody('ValidationError', 'ServiceNamespaces must name at least one service') };
        const grants = records.get(arn)?.grants ?? {};
        const entries = asked.map((namespace) => [namespace, grants[namespace] ?? []] as const);
        const { items, next } = page(entries, params.get('Marker'), recorder.pageSize ?? 100);
        const members = items
          .map(
            ([namespace, policies]) =>
              `<member>${element('ServiceNamespace', namespace)}<Policies>${policies
                .map((p) => `<member>${element('PolicyName', p.name)}${element('PolicyType', p.arn ? 'MANAGED' : 'INLINE')}${element('PolicyArn', p.arn)}${element('EntityType', p.entityType)}${element('EntityName', p.entityName)}</member>`)
                .join('')}</Policies></member>`,
          )
          .join('');
        return { status: 200, body: envelope(action, `<PoliciesGrantingServiceAccess>${members}</PoliciesGrantingServiceAccess>${element('IsTruncated', next !== undefined)}${element('Marker', next)}`) };
      }
      default:
        throw new Error(`not an Access Advisor action: ${action}`);
    }
  };

  const recorder: AccessAdvisorRecorder = {
    url: '',
    record: (arn, data) => void records.set(arn, data),
    pendingPolls: 0,
    failJobs: undefined,
    pageSize: undefined,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      // IAM speaks the query protocol: the action is a form field of the POST body.
      const params = new URLSearchParams(incoming.method === 'POST' ? body.toString('utf8') : (incoming.url ?? '').split('?')[1] ?? '');
      const action = params.get('Action') ?? `${incoming.method} ${incoming.url}`;
      const header = incoming.headers['x-moto-account-id'];
      const account = typeof header === 'string' ? header : undefined;
      if (!ADVISOR_ACTIONS.has(action)) {
        requests.push({ action, account, answered: false });
        forward(incoming, body, response);
        return;
      }
      requests.push({ action, account, answered: true });
      const { status, body: xml } = answer(action, params, recorder);
      response.writeHead(status, { 'content-type': 'text/xml' });
      response.end(xml);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  recorder.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return recorder;
}
