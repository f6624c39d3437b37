// Finding runs: GET /v1/runs and `cordon runs list` filter by status, playbook, target, alert source,
// severity and start time, a page at a time, from Temporal visibility, on a real Temporal dev
// server, a real worker and a real scim2-server. Visibility is eventually consistent, so each
// answer is awaited up to a deadline.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Alert, RunPage } from '../../domain/index.js';
import { startApiEnv, type ApiEnv } from '../support/api-env.js';
import { alertFor } from '../support/temporal.js';

let api: ApiEnv;

interface Started {
  runId: string;
  user: { id: string; userName: string };
}

/** The runs this file starts, by name; see beforeAll. */
const runs: Record<'a1' | 'b1' | 'a2' | 'e1' | 'e2', Started> = {} as never;
/** Between b1 and a2, and between a2 and e1: the time range's edges. */
let firstEdge: string;
let secondEdge: string;

async function start(name: keyof typeof runs, alert: Partial<Alert> & Pick<Alert, 'source' | 'severity'>, groups: string[]) {
  const user = await api.env.org.user(`search-${name}`, groups);
  const response = await api.post('/v1/alerts', 'soc', alertFor({ userName: user.userName }, alert));
  expect(response.statusCode, response.body).toBe(202);
  runs[name] = { runId: response.json<{ runId: string }>().runId, user };
}

async function page(query: string): Promise<RunPage> {
  const response = await api.get(`/v1/runs?${query}`);
  expect(response.statusCode, response.body).toBe(200);
  return response.json<RunPage>();
}

/** Every run matching `query`, walking the pages. */
async function all(query: string, pageSize = 100): Promise<string[]> {
  const ids: string[] = [];
  let token: string | null = null;
  do {
    const answer: RunPage = await page(`${query}&pageSize=${pageSize}${token ? `&pageToken=${token}` : ''}`);
    ids.push(...answer.runs.map((r) => r.runId));
    token = answer.nextPageToken;
  } while (token);
  return ids;
}

/** Waits until visibility answers `query` with exactly `expected` (in any order). */
async function expectRuns(query: string, expected: (keyof typeof runs)[], timeoutMs = 20_000): Promise<void> {
  const want = expected.map((name) => runs[name].runId).sort();
  const deadline = Date.now() + timeoutMs;
  let got: string[] = [];
  while (Date.now() < deadline) {
    got = (await all(query)).sort();
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  const names = (ids: string[]) => ids.map((id) => Object.entries(runs).find(([, r]) => r.runId === id)?.[0] ?? id);
  expect(names(got), `GET /v1/runs?${query}`).toEqual(names(want));
}

beforeAll(async () => {
  api = await startApiEnv();
  // Two runs, an edge, one run, an edge, two runs. Each edge is taken once the runs before it are
  // visible, so every run before it started earlier, and every run after it later.
  await start('a1', { source: 'siem-a', severity: 'high' }, ['sales']);
  await start('b1', { source: 'siem-b', severity: 'critical' }, ['sales']);
  await api.waitForRun(runs.a1.runId, ['completed']);
  await api.waitForRun(runs.b1.runId, ['completed']);
  await expectRuns('status=completed', ['a1', 'b1']);
  firstEdge = new Date().toISOString();
  await start('a2', { source: 'siem-a', severity: 'low' }, ['sales']);
  await api.waitForRun(runs.a2.runId, ['awaiting_approval']);
  await expectRuns('status=awaiting_approval', ['a2']);
  secondEdge = new Date().toISOString();
  await start('e1', { source: 'edr', severity: 'medium', kind: 'entitlement.excessive', entitlements: [{ kind: 'group', name: 'jira-users' }] }, ['jira-users', 'sales']);
  await start('e2', { source: 'edr', severity: 'high', kind: 'entitlement.excessive', entitlements: [{ kind: 'group', name: 'jira-users' }] }, ['jira-users']);
  await api.waitForRun(runs.e1.runId, ['awaiting_approval']);
  await api.waitForRun(runs.e2.runId, ['completed']);
  // Every run visible with its settled status, so that no page below moves under the walk.
  await expectRuns('status=completed', ['a1', 'b1', 'e2']);
  await expectRuns('status=awaiting_approval', ['a2', 'e1']);
}, 180_000);

afterAll(async () => {
  await api?.close();
});

describe('GET /v1/runs filters', () => {
  it('filters by alert source and severity, alone and together with status, playbook and target', async () => {
    await expectRuns('source=siem-a', ['a1', 'a2']);
    await expectRuns('source=edr', ['e1', 'e2']);
    await expectRuns('severity=high', ['a1', 'e2']);
    await expectRuns('severity=critical', ['b1']);
    await expectRuns('source=edr&severity=medium', ['e1']);
    await expectRuns('source=siem-a&status=completed', ['a1']);
    await expectRuns('playbook=entitlement-cleanup', ['e1', 'e2']);
    await expectRuns('playbook=deprovision-account&severity=low', ['a2']);
    await expectRuns(`target=${runs.b1.user.userName}`, ['b1']);
    await expectRuns(`target=${runs.e1.user.id}&source=edr`, ['e1']);
    await expectRuns('source=nobody', []);
    await expectRuns('', ['a1', 'b1', 'a2', 'e1', 'e2']);
  });

  it('shows each run with its source, severity and start time', async () => {
    const listed = (await page('pageSize=100')).runs;
    const b1 = listed.find((r) => r.runId === runs.b1.runId);
    expect(b1).toMatchObject({ alertSource: 'siem-b', severity: 'critical', playbook: 'deprovision-account', status: 'completed' });
    expect(b1?.targets).toContain(runs.b1.user.id);
    expect(Date.parse(b1!.startedAt)).toBeLessThan(Date.parse(firstEdge));
  });

  it('keeps to the time range on the start time: since inclusive, until exclusive, runs outside it left out', async () => {
    const since = encodeURIComponent(firstEdge);
    const until = encodeURIComponent(secondEdge);
    await expectRuns(`until=${since}`, ['a1', 'b1']);
    await expectRuns(`since=${since}`, ['a2', 'e1', 'e2']);
    await expectRuns(`since=${since}&until=${until}`, ['a2']);
    await expectRuns(`since=${until}`, ['e1', 'e2']);
    await expectRuns(`since=${until}&severity=high`, ['e2']);
    // The same instant in another zone is the same filter.
    const shifted = new Date(Date.parse(firstEdge)).toISOString().replace('Z', '+00:00');
    await expectRuns(`since=${encodeURIComponent(shifted)}&source=siem-a`, ['a2']);
    const future = encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString());
    await expectRuns(`since=${future}`, []);
  });

  it('walks every run with pageSize 2, without duplicates or gaps, each token leading to the next page', async () => {
    const pages: RunPage[] = [];
    let token: string | null = null;
    do {
      const answer: RunPage = await page(`pageSize=2${token ? `&pageToken=${token}` : ''}`);
      pages.push(answer);
      token = answer.nextPageToken;
      expect(pages.length).toBeLessThanOrEqual(4);
    } while (token);
    const ids = pages.flatMap((p) => p.runs.map((r) => r.runId));
    expect(pages.map((p) => p.runs.length)).toEqual([2, 2, 1]);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(Object.values(runs).map((r) => r.runId).sort());
    expect(pages.slice(0, -1).every((p) => typeof p.nextPageToken === 'string')).toBe(true);
    expect(pages.at(-1)?.nextPageToken).toBeNull();
    // Newest first, page after page: the walk follows start times (runs close in their own order).
    const first = await page('pageSize=5');
    expect(first.runs.map((r) => r.runId)).toEqual(ids);

    // A filtered list pages the same way.
    const filtered = await page('source=siem-a&pageSize=1');
    expect(filtered.runs).toHaveLength(1);
    expect(filtered.nextPageToken).toEqual(expect.any(String));
    const rest = await page(`source=siem-a&pageSize=1&pageToken=${filtered.nextPageToken}`);
    expect([filtered.runs[0]?.runId, rest.runs[0]?.runId].sort()).toEqual([runs.a1.runId, runs.a2.runId].sort());
  });

  it('refuses a page token given for other filters, or altered, naming pageToken', async () => {
    const { nextPageToken } = await page('pageSize=2');
    expect(nextPageToken).toEqual(expect.any(String));
    const other = await api.get(`/v1/runs?pageSize=2&source=edr&pageToken=${nextPageToken}`);
    expect(other.statusCode).toBe(400);
    expect(other.json().error.message).toMatch(/pageToken: not a nextPageToken given for these filters/);
    // Altered past its checksum, and made up: refused at once, before Temporal sees them.
    const bytes = Buffer.from(nextPageToken!, 'base64url');
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
    const madeUp = Buffer.from('{"StartTime":"2026-01-01T00:00:00Z","RunID":"x"}').toString('base64url');
    for (const token of [bytes.toString('base64url'), madeUp]) {
      const startedAt = Date.now();
      const refused = await api.get(`/v1/runs?pageSize=2&pageToken=${token}`);
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error).toMatchObject({ type: 'InvalidRequest', message: expect.stringMatching(/^pageToken: /), issues: [{ path: 'querystring.pageToken' }] });
      expect(Date.now() - startedAt).toBeLessThan(2000);
    }
    const malformed = await api.get('/v1/runs?pageToken=not%20a%20token');
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.issues).toEqual([expect.objectContaining({ path: 'querystring.pageToken' })]);
  });

  it('refuses injection-like and malformed filters with 400 naming the field and the reason', async () => {
    const cases: [string, string, RegExp][] = [
      ["source=x'%20OR%20'1'%3D'1", 'source', /alert source/],
      ['source=a%5Cb', 'source', /alert source/],
      ["severity=high'%20OR%20CordonSeverity%3D'low", 'severity', /low|medium|high|critical/],
      ['severity=urgent', 'severity', /low|medium|high|critical/],
      ["since=2026-01-01T00:00:00Z'%20OR%20'1'%3D'1", 'since', /ISO 8601/],
      ['since=yesterday', 'since', /ISO 8601/],
      ['until=2026-01-01', 'until', /ISO 8601/],
      ['since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z', 'until', /later than since/],
      ["target=x'%20OR%20'1'%3D'1", 'target', /account id or userName/],
      ['status=done', 'status', /./],
      ['pageSize=0', 'pageSize', /./],
      ['pageSize=501', 'pageSize', /./],
      ['pageSize=2&limit=2', 'limit', /not both/],
      ['orderBy=StartTime', 'querystring', /./],
    ];
    for (const [query, field, reason] of cases) {
      const response = await api.get(`/v1/runs?${query}`);
      expect(response.statusCode, query).toBe(400);
      const { error } = response.json<{ error: { type: string; message: string; issues: { path: string; message: string }[] } }>();
      expect(error.type, query).toBe('InvalidRequest');
      expect(error.issues.some((i) => i.path.split('.').includes(field) && reason.test(i.message)) || (field === 'querystring' && error.issues.length > 0), `${query}: ${error.message}`).toBe(true);
    }
  });
  it('documents the filters and the page token in the OpenAPI document', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json<{ paths: Record<string, { get?: { parameters?: { name: string; in: string }[] } }> }>();
    const names = (doc.paths['/v1/runs']?.get?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['status', 'playbook', 'target', 'source', 'severity', 'since', 'until', 'pageSize', 'pageToken']));
  });
});

describe('cordon runs list', () => {
  it('takes the same filters, prints the next page token, and follows it to the end', async () => {
    const first = await api.cli('oscar', ['runs', 'list', '--source', 'siem-a', '--page-size', '1']);
    expect(first.code, first.err.join('\n')).toBe(0);
    const text = first.out.join('\n');
    expect(text).toContain('siem-a');
    const token = /more runs: add --page-token (\S+)/.exec(text)?.[1];
    expect(token).toBeTruthy();
    const second = await api.cli('oscar', ['runs', 'list', '--source', 'siem-a', '--page-size', '1', '--page-token', token!]);
    expect(second.code).toBe(0);
    const shown = [first, second].map((r) => Object.values(runs).find((run) => r.out.join('\n').includes(run.runId))?.runId);
    expect(shown.sort()).toEqual([runs.a1.runId, runs.a2.runId].sort());

    const json = await api.cli('oscar', ['--json', 'runs', 'list', '--severity', 'high', '--since', firstEdge]);
    expect(json.code).toBe(0);
    const answer = JSON.parse(json.out.join('\n')) as RunPage;
    expect(answer).toEqual({ runs: [expect.objectContaining({ runId: runs.e2.runId, severity: 'high', alertSource: 'edr' })], nextPageToken: null });

    // A relative time: every run of this file started within the last hour, none before it.
    const recent = JSON.parse((await api.cli('oscar', ['--json', 'runs', 'list', '--since', '1h', '--source', 'edr'])).out.join('\n')) as RunPage;
    expect(recent.runs.map((r) => r.runId).sort()).toEqual([runs.e1.runId, runs.e2.runId].sort());
    const older = JSON.parse((await api.cli('oscar', ['--json', 'runs', 'list', '--until', '1h'])).out.join('\n')) as RunPage;
    expect(older.runs).toEqual([]);
  });

  it('exits 6 with the field and the reason when the API refuses a filter', async () => {
    const bad = await api.cli('oscar', ['runs', 'list', '--source', "x' OR '1'='1"]);
    expect(bad.code).toBe(6);
    expect(bad.err.join('\n')).toMatch(/InvalidRequest: .*source: must be an alert source/);
    const since = await api.cli('oscar', ['runs', 'list', '--since', 'last tuesday']);
    expect(since.code).toBe(6);
    expect(since.err.join('\n')).toMatch(/since: must be an ISO 8601 timestamp/);
  });
});
