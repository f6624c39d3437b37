// `npm start` end to end, as a person uses it: the embedded default comes up (Temporal dev server
// with its SQLite file, the demo SCIM directory, the demo LDAP directory and AWS account, worker,
// API), the CLI sends every example alert, approvals go through with separation of duties, an
// approver rejects a run, Ctrl-C stops every child by PID, and a second start on the same data
// directory, without slapd and without moto, says which playbooks it cannot offer and finds the run
// that was waiting for approval still waiting.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eqFilter, ScimClient } from '../../activities/connectors/scim/scim-client.js';
import { PROJECT_ROOT } from '../../config/config.js';
import { freePort, isAlive, spawnManaged, waitUntil, type ManagedProcess } from '../../dev/processes.js';
import { describeActionChange, type RunView } from '../../domain/index.js';

let dataDir: string;
let env: NodeJS.ProcessEnv;
let apiUrl: string;
let uiPort: number;
let ldapPort: number;
let awsPort: number;
let scimPort: number;
let current: ManagedProcess | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'cordon-embedded-'));
  const [temporalPort, api, ui, scim, ldap, aws] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  ldapPort = ldap;
  awsPort = aws;
  scimPort = scim;
  uiPort = ui;
  apiUrl = `http://127.0.0.1:${api}`;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CORDON_') && !name.startsWith('TEMPORAL_')));
  env = {
    ...inherited,
    CORDON_DATA_DIR: dataDir,
    TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
    CORDON_API_PORT: String(api),
    CORDON_TEMPORAL_UI_PORT: String(ui),
    CORDON_SCIM_PORT: String(scim),
    CORDON_LDAP_PORT: String(ldap),
    CORDON_AWS_DEMO_PORT: String(aws),
    TEMPORAL_CLI_PATH: inject('temporalCliPath'),
    NO_COLOR: '1',
  };
});

afterAll(async () => {
  await current?.stop(15_000);
});

/** Starts `npm start`'s program and waits for its banner. */
async function start(): Promise<ManagedProcess> {
  const child = spawnManaged('npm start', process.execPath, { args: ['--import', 'tsx', join(PROJECT_ROOT, 'dev/start.ts')], env, cwd: PROJECT_ROOT });
  current = child;
  await waitUntil('npm start', async () => child.tail().includes('Ctrl-C stops everything.'), { timeoutMs: 240_000, intervalMs: 250, process: child });
  return child;
}

/** Ctrl-C: SIGINT to the start process only; it must stop every child it recorded. */
async function interrupt(child: ManagedProcess): Promise<{ code: number | null; pids: number[] }> {
  const recorded = JSON.parse(await readFile(join(dataDir, 'processes.json'), 'utf8')) as { pid: number }[];
  process.kill(child.pid, 'SIGINT');
  const exit = await Promise.race([child.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('npm start did not stop within 60 s')), 60_000))]);
  current = undefined;
  return { code: exit.code, pids: recorded.map((r) => r.pid) };
}

type CliResult = { code: number; stdout: string; stderr: string };

/** Runs `npx cordon …` (bin/cordon.js) against this stack, with `stdin` on its standard input and `extraEnv` on top of the stack's environment. */
function cordonWith(options: { stdin?: string; extraEnv?: NodeJS.ProcessEnv }, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [join(PROJECT_ROOT, 'bin/cordon.js'), ...args],
      { cwd: PROJECT_ROOT, env: { ...env, CORDON_API: apiUrl, ...options.extraEnv }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}

const cordon = (...args: string[]): Promise<CliResult> => cordonWith({}, ...args);

/** A dev identity's token, as `npm start` generated it. */
async function tokenOf(name: string): Promise<string> {
  const credentials = JSON.parse(await readFile(join(dataDir, 'dev-credentials.json'), 'utf8')) as Record<string, { token: string }>;
  return credentials[name]!.token;
}

async function showRun(runId: string, as = 'oscar'): Promise<RunView> {
  const result = await cordon('--as', as, '--json', 'runs', 'show', runId);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as RunView;
}

async function waitForRun(runId: string, statuses: string[]): Promise<RunView> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const run = await showRun(runId);
    if (statuses.includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} stayed ${run.status}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

describe('npm start (the embedded default)', () => {
  let adminRun: string;
  let accountRun: string;

  it('comes up and prints where everything is', async () => {
    const child = await start();
    const banner = child.tail(40);
    expect(banner).toContain(apiUrl);
    expect(banner).toContain(`http://127.0.0.1:${uiPort}`);
    expect(banner).toContain('dev-credentials.json');
    expect(banner).toMatch(/Demo directory .*24 users, 8 groups/);
    expect(banner).toContain(`Web UI           ${apiUrl}/ui/`);
    expect(banner).toMatch(new RegExp(`Demo LDAP +ldap://127\\.0\\.0\\.1:${ldapPort} .*24 users, 8 groups`));
    // The example alert names the leaked key: the demo account must create that same key at every start.
    const leaked = (JSON.parse(await readFile(join(PROJECT_ROOT, 'examples/alerts/credential-leaked.json'), 'utf8')) as { credential: { id: string } }).credential.id;
    expect(banner).toContain(`Demo AWS IAM     http://127.0.0.1:${awsPort}`);
    expect(banner).toContain(`leaked key ${leaked}`);
    expect(banner).not.toContain('Unavailable here');

    const credentials = JSON.parse(await readFile(join(dataDir, 'dev-credentials.json'), 'utf8')) as Record<string, { token: string; roles: string[] }>;
    expect(Object.fromEntries(Object.entries(credentials).map(([name, c]) => [name, c.roles]))).toEqual({
      soc: ['soc'],
      alice: ['soc', 'approver'],
      bob: ['approver'],
      carol: ['approver'],
      oscar: ['operator'],
      admin: ['admin'],
    });
    expect((await stat(join(dataDir, 'dev-credentials.json'))).mode & 0o777).toBe(0o600);
    expect((await fetch(`${apiUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${uiPort}/`)).status).toBe(200);
    expect((await stat(join(dataDir, 'temporal.db'))).size).toBeGreaterThan(0);
  });

  it('deprovisions the orphaned contractor automatically: disable and leave 3 groups, verified', async () => {
    const sent = await cordon('--as', 'soc', '--json', 'alert', 'send', 'examples/alerts/orphaned-account.json');
    expect(sent.code, sent.stderr).toBe(0);
    accountRun = (JSON.parse(sent.stdout) as { runId: string }).runId;
    const run = await waitForRun(accountRun, ['completed', 'failed', 'needs_human', 'compensated']);
    expect(run.status).toBe('completed');
    expect(run.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type))).toEqual(['DisableAccount', 'engineering', 'jira-users', 'vpn-users']);
    expect(run.decision).toMatchObject({ outcome: 'auto', policies: ['auto-deprovision-on-high-severity'] });
    expect(run.journal.map((j) => j.status)).toEqual(['verified', 'verified', 'verified', 'verified']);

    const human = await cordon('--as', 'oscar', 'runs', 'show', accountRun);
    expect(human.code).toBe(0);
    for (const heading of ['completed', 'Plan', 'Decision', 'Journal', 'Timeline', 'auto-deprovision-on-high-severity']) expect(human.stdout).toContain(heading);

    const again = await cordon('--as', 'soc', 'alert', 'send', 'examples/alerts/orphaned-account.json');
    expect(again.stdout).toContain(`duplicate alert: attached to ${accountRun}`);
  });

  it("stops the admin's alert at awaiting_approval; the requester cannot approve, bob can", async () => {
    const sent = await cordon('--as', 'alice', '--json', 'alert', 'send', 'examples/alerts/orphaned-admin.json');
    expect(sent.code, sent.stderr).toBe(0);
    adminRun = (JSON.parse(sent.stdout) as { runId: string }).runId;
    const waiting = await waitForRun(adminRun, ['awaiting_approval', 'completed', 'denied']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.decision).toMatchObject({ outcome: 'approve', requiredApprovals: 2 });

    const bobInbox = await cordon('--as', 'bob', '--json', 'inbox');
    expect((JSON.parse(bobInbox.stdout) as { runs: { runId: string }[] }).runs.map((r) => r.runId)).toContain(adminRun);
    const aliceInbox = await cordon('--as', 'alice', 'inbox');
    expect(aliceInbox.stdout).toContain('nothing awaits your decision');

    const self = await cordon('--as', 'alice', 'approve', adminRun);
    expect(self.code).toBe(3);
    expect(self.stderr).toContain('SeparationOfDuties');
    const bob = await cordon('--as', 'bob', 'approve', adminRun, '--comment', 'sponsor left');
    expect(bob.code, bob.stderr).toBe(0);
    expect(bob.stdout).toContain('1 of 2');
    const twice = await cordon('--as', 'bob', 'approve', adminRun);
    expect(twice.code).toBe(5);
  });

  it('reads an alert from standard input with the token in CORDON_TOKEN, and one approver rejects it with a comment, changing nothing', async () => {
    // Another administrator, flagged as orphaned by mistake: a fresh alert that needs two approvers.
    const template = JSON.parse(await readFile(join(PROJECT_ROOT, 'examples/alerts/orphaned-admin.json'), 'utf8')) as Record<string, unknown>;
    const alert = JSON.stringify({ ...template, id: 'orphan-2026-0099', subject: { system: 'scim', userName: 'priya.raman' }, summary: 'Administrator flagged as orphaned.' });

    // Neither --token nor --as: the token is CORDON_TOKEN's, and without it the API refuses.
    const anonymous = await cordonWith({ stdin: alert }, 'alert', 'send', '-');
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toContain('cordon: Unauthenticated');
    const sent = await cordonWith({ stdin: alert, extraEnv: { CORDON_TOKEN: await tokenOf('alice') } }, '--json', 'alert', 'send', '-');
    expect(sent.code, sent.stderr).toBe(0);
    const runId = (JSON.parse(sent.stdout) as { runId: string }).runId;
    const waiting = await waitForRun(runId, ['awaiting_approval', 'completed', 'denied', 'failed']);
    expect(waiting.status).toBe('awaiting_approval');
    expect(waiting.requestedBy).toBe('alice');
    expect(waiting.alert).toMatchObject({ source: 'demo-siem', id: 'orphan-2026-0099', subject: { system: 'scim', userName: 'priya.raman' } });
    expect(waiting.decision).toMatchObject({ outcome: 'approve', requiredApprovals: 2 });
    expect(waiting.plan?.actions.map((a) => (a.type === 'RemoveGroupMembership' ? a.group.display : a.type))).toEqual(['DisableAccount', 'admins', 'vpn-users']);

    // --as wins over CORDON_TOKEN: alice's token in the environment, bob's decision on the run.
    const rejected = await cordonWith({ extraEnv: { CORDON_TOKEN: await tokenOf('alice') } }, '--as', 'bob', 'reject', runId, '--comment', 'still employed: a false positive');
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(rejected.stdout).toContain(`rejected ${runId}: 0 of 2 approval(s); status rejected`);
    const run = await waitForRun(runId, ['rejected', 'completed', 'failed', 'needs_human', 'compensated']);
    expect(run.status).toBe('rejected');
    expect(run.approvals).toEqual([expect.objectContaining({ approver: 'bob', decision: 'reject', channel: 'cli', comment: 'still employed: a false positive' })]);
    expect(run.journal.map((j) => j.status)).toEqual(['pending', 'pending', 'pending']);
    const human = await cordon('--as', 'oscar', 'runs', 'show', runId);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain('rejected by bob via cli');
    expect(human.stdout).toContain('still employed: a false positive');
    // Once rejected, there is nothing left to decide.
    const late = await cordon('--as', 'carol', 'reject', runId);
    expect(late.code).toBe(5);
    expect(late.stderr).toContain('RunNotAwaitingApproval');

    // The directory: priya.raman is still active and still in both groups.
    const scim = new ScimClient({ baseUrl: `http://127.0.0.1:${scimPort}/v2`, bearerToken: (await readFile(join(dataDir, 'scim-token'), 'utf8')).trim() });
    const [priya] = await scim.findUsers(eqFilter('userName', 'priya.raman'));
    expect(priya?.active).toBe(true);
    for (const group of ['admins', 'vpn-users']) {
      const [found] = await scim.findGroups(eqFilter('displayName', group));
      expect((found?.members ?? []).map((m) => m.value), group).toContain(priya!.id);
    }
  });

  it('runs every other example alert to its end: LDAP, AWS, SCIM entitlements and OCSF intake', async () => {
    const send = async (file: string, ...flags: string[]) => {
      const sent = await cordon('--as', 'soc', '--json', 'alert', 'send', ...flags, `examples/alerts/${file}`);
      expect(sent.code, `${file}: ${sent.stderr}`).toBe(0);
      return (JSON.parse(sent.stdout) as { runId: string }).runId;
    };
    const finished = ['completed', 'failed', 'needs_human', 'compensated', 'denied'];
    const expectCompleted = (run: RunView, playbook: string, changes: string[]) => {
      expect(run.status, run.runId).toBe('completed');
      expect(run.playbook).toBe(playbook);
      expect(run.plan?.actions.map((a) => describeActionChange(a))).toEqual(changes);
      expect(run.journal.map((j) => j.status)).toEqual(changes.map(() => 'verified'));
    };
    const runs = {
      leaver: await send('leaver-ldap.json'),
      credential: await send('credential-leaked.json'),
      agent: await send('agent-anomalous.json'),
      ocsf: await send('ocsf-detection-finding.json', '--ocsf'),
      entitlement: await send('entitlement-excessive.json'),
      entitlementAws: await send('entitlement-excessive-aws.json'),
    };

    expectCompleted(await waitForRun(runs.leaver, finished), 'deprovision-account', ['active: true → false', 'member of engineering: true → false', 'member of jira-users: true → false', 'member of vpn-users: true → false']);
    expectCompleted(await waitForRun(runs.credential, finished), 'revoke-credential', [expect.stringMatching(/^credential AKIA\w+ active: true → false$/) as unknown as string]);
    expectCompleted(await waitForRun(runs.agent, finished), 'quarantine-agent', ['CordonQuarantineDenyAll attached: false → true']);
    const ocsf = await waitForRun(runs.ocsf, finished);
    expect(ocsf.alert).toMatchObject({ source: 'demo-itdr', id: 'itdr-finding-2211', kind: 'account.orphaned', subject: { system: 'scim', userName: 'tom.baker' } });
    expectCompleted(ocsf, 'deprovision-account', ['active: true → false', 'member of engineering: true → false', 'member of jira-users: true → false']);

    // A medium alert and a privileged policy wait for a person; one approver each.
    for (const [runId, approver] of [[runs.entitlement, 'bob'], [runs.entitlementAws, 'carol']] as const) {
      const waiting = await waitForRun(runId, ['awaiting_approval', ...finished]);
      expect(waiting.status, runId).toBe('awaiting_approval');
      const approved = await cordon('--as', approver, 'approve', runId);
      expect(approved.code, approved.stderr).toBe(0);
    }
    expectCompleted(await waitForRun(runs.entitlement, finished), 'entitlement-cleanup', ['member of jira-users: true → false']);
    const aws = await waitForRun(runs.entitlementAws, finished);
    expect(aws.decision?.policies).toContain('privileged-entitlement-needs-approval');
    expectCompleted(aws, 'entitlement-cleanup', ['ProdDatabaseFullAccess attached: true → false']);

    // Every example in the folder is exercised by this file.
    const covered = ['orphaned-account.json', 'orphaned-admin.json', 'leaver-ldap.json', 'credential-leaked.json', 'agent-anomalous.json', 'ocsf-detection-finding.json', 'entitlement-excessive.json', 'entitlement-excessive-aws.json'];
    expect((await readdir(join(PROJECT_ROOT, 'examples/alerts'))).sort()).toEqual(covered.sort());
  });

  it('stops every child by PID on Ctrl-C', async () => {
    const { code, pids } = await interrupt(current!);
    expect(code).toBe(0);
    // temporal, SCIM directory, slapd, moto, worker, API
    expect(pids).toHaveLength(6);
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
  });

  it('starts again without slapd or moto, naming the playbooks it cannot offer; the run awaiting approval still waits, carol completes it, and the first run rolls back', async () => {
    // This time without slapd and without moto: the start goes on and says which playbooks it cannot offer.
    env.CORDON_SLAPD_PATH = join(dataDir, 'no-such-slapd');
    env.CORDON_MOTO_SERVER_PATH = join(dataDir, 'no-such-moto_server');
    const child = await start();
    const banner = child.tail(40);
    expect(banner).toContain(`Demo LDAP        not started: slapd is not installed`);
    expect(banner).toContain(`Unavailable here: deprovision-account and entitlement-cleanup on LDAP: no slapd at ${env.CORDON_SLAPD_PATH}`);
    expect(banner).toContain(`Demo AWS IAM     not started: moto is not available`);
    expect(banner).toContain(`Unavailable here: revoke-credential, quarantine-agent and entitlement-cleanup on AWS: no moto server at ${env.CORDON_MOTO_SERVER_PATH} (CORDON_MOTO_SERVER_PATH)`);
    expect(banner).not.toContain(`127.0.0.1:${awsPort}`);
    // The SCIM playbooks are all still there.
    const still = await showRun(adminRun);
    expect(still.status).toBe('awaiting_approval');
    expect(still.approvals.map((a) => a.approver)).toEqual(['bob']);

    const carol = await cordon('--as', 'carol', 'approve', adminRun);
    expect(carol.code, carol.stderr).toBe(0);
    expect(carol.stdout).toContain('2 of 2');
    const done = await waitForRun(adminRun, ['completed', 'failed', 'needs_human', 'compensated']);
    expect(done.status).toBe('completed');
    expect(done.journal.every((j) => j.status === 'verified')).toBe(true);

    const list = await cordon('--as', 'oscar', '--json', 'runs', 'list', '--status', 'completed');
    expect((JSON.parse(list.stdout) as { runs: { runId: string }[] }).runs.map((r) => r.runId)).toEqual(expect.arrayContaining([accountRun, adminRun]));
    // Every process has restarted since the contractor's run completed: it can still be rolled back.
    const rollback = await cordon('--as', 'oscar', 'rollback', accountRun, '--reason', 'contract extended');
    expect(rollback.code, rollback.stderr).toBe(0);
    const restored = await waitForRun(accountRun, ['rolled_back', 'partially_rolled_back']);
    expect(restored.status).toBe('rolled_back');
    expect(restored.journal.every((j) => j.status === 'rolled_back')).toBe(true);
    // An LDAP alert and an AWS alert now fail at observe, each naming its missing connector; nothing was planned.
    for (const [example, system, subject] of [
      ['leaver-ldap.json', 'ldap', { system: 'ldap', userName: 'ben.cohen' }],
      ['entitlement-excessive-aws.json', 'aws', { system: 'aws', userName: 'data-analyst' }],
    ] as const) {
      const alert = JSON.parse(await readFile(join(PROJECT_ROOT, 'examples/alerts', example), 'utf8')) as Record<string, unknown>;
      const file = join(dataDir, `without-${system}.json`);
      await writeFile(file, JSON.stringify({ ...alert, id: `without-${system}`, subject }));
      const sent = await cordon('--as', 'soc', '--json', 'alert', 'send', file);
      expect(sent.code, sent.stderr).toBe(0);
      const failed = await waitForRun((JSON.parse(sent.stdout) as { runId: string }).runId, ['completed', 'failed', 'needs_human', 'compensated', 'awaiting_approval']);
      expect(failed.status, example).toBe('failed');
      expect(failed.error).toMatchObject({ type: 'UnknownSystem', message: expect.stringContaining(`no connector is configured for system "${system}"`) as unknown as string });
      expect(failed.plan).toBeFalsy();
    }
    const audit = await cordon('--as', 'oscar', 'audit', 'verify');
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/ledger intact: \d+ entries/);

    const { code, pids } = await interrupt(current!);
    expect(code).toBe(0);
    // temporal, SCIM directory, worker, API: neither slapd nor moto was started.
    expect(pids).toHaveLength(4);
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
  });
});
