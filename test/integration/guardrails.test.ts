// Guardrails on a real Temporal dev server and a real scim2-server: the blast-radius cap, dry runs
// (asked for, and forced by autonomy) that write nothing to the directory, budgets shared by
// concurrent runs (per playbook and per connector), runs paused on a spent budget that resume when it
// frees or end without failing when their window ends, the budget state in the decision record, a
// connector's rate limit applied by a worker built as production builds it, and drift between
// approval and execution.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { runIdFor, type BudgetUsage, type RunView } from '../../domain/index.js';
import { loadPolicyEngine, type PolicyEngine } from '../../policies/engine.js';
import { openSqliteGuardrailState, type GuardrailState } from '../../store/guardrail-state.js';
import { buildWorkerResources, createCordonWorker } from '../../workers/build.js';
import { decideApprovalUpdate, getRunQuery } from '../../workflows/messages.js';
import { signForTest } from '../support/approval-keys.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { copyDefaultPolicies, guardrailsFrom } from '../support/policy-files.js';
import { alertFor, expectReplays, quietLog, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

let env: RemediationEnv;
const workers: RunningWorker[] = [];
/** Closed once every worker has stopped. */
const closeLater: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  env = await startRemediationEnv();
});

afterAll(async () => {
  for (const worker of workers) await worker.stop();
  for (const closable of closeLater) await closable.close();
  await env?.close();
});

/** A worker of its own (own task queue) under these guardrails, and optionally other policies or guardrail state. */
async function workerWith(yaml: string, options: { policy?: PolicyEngine; guardrailState?: GuardrailState } = {}): Promise<string> {
  const taskQueue = `${env.taskQueue}-${randomBytes(4).toString('hex')}`;
  workers.push(
    await startWorker({
      taskQueue,
      connectors: { scim: env.connector },
      ledger: env.ledger,
      policy: options.policy ?? env.policy,
      guardrails: await guardrailsFrom(yaml),
      guardrailState: options.guardrailState ?? env.guardrailState,
    }),
  );
  return taskQueue;
}

/**
 * How many write requests (POST, PUT, PATCH, DELETE) the directory has logged. The server writes a
 * request's line right after answering it, so this first sends a request of its own and waits until
 * that is logged: the requests answered before it are in the log by then.
 */
async function directoryWrites(): Promise<number> {
  const marker = `barrier-${randomBytes(6).toString('hex')}`;
  await env.scim.client.findGroups(`displayName eq "${marker}"`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = await env.scim.requests();
    if (lines.some((line) => line.includes(marker))) return lines.filter((line) => /"(POST|PUT|PATCH|DELETE) /.test(line)).length;
    if (Date.now() > deadline) throw new Error(`the directory did not log the request ${marker} within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A signed approval by bob of the plan with this digest. */
const approveAsBob = (handle: WorkflowHandle, planDigest: string) =>
  handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, { approver: 'bob', roles: ['approver'], decision: 'approve', planDigest, channel: 'api' })] });

async function state(userId: string) {
  const snapshot = await env.connector.readAccount({ id: userId });
  return { active: snapshot.account.active, groups: snapshot.groups.map((g) => g.displayName).sort() };
}

describe('blast-radius cap', () => {
  it('denies a plan over maxTargetsPerRun before any action, with the reason in the run and the ledger', async () => {
    const queue = await workerWith('version: 1\nplaybooks:\n  deprovision-account:\n    maxTargetsPerRun:\n      count: 3\n');
    const user = await env.org.user('wide', ['engineering', 'vpn-users', 'jira-users']);
    const before = await state(user.id);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['denied', 'completed']);
    expect(run.status).toBe('denied');
    expect(run.decision?.policies).toContain('guardrail:maxTargetsPerRun');
    expect(run.decision?.guardrails).toMatchObject({ maxTargetsPerRun: { count: 3 }, targets: 4, mode: 'live' });
    expect(run.error?.message).toMatch(/changes 4 directory objects; maxTargetsPerRun for deprovision-account is 3/);
    expect(await state(user.id)).toEqual(before);
    const entries = await env.ledger.entries({ runId: handle.workflowId });
    const decided = entries.find((e) => e.kind === 'policy.decided');
    expect(decided?.data).toMatchObject({ outcome: 'deny', guardrails: { targets: 4, maxTargetsPerRun: { count: 3 } } });
    expect(entries.some((e) => e.kind.startsWith('action.'))).toBe(false);
  });

  it('denies a plan over a percentage of the observed population', async () => {
    const queue = await workerWith('version: 1\nplaybooks:\n  deprovision-account:\n    maxTargetsPerRun:\n      count: 50\n      percentOfPopulation: 1\n');
    const user = await env.org.user('share', ['sales']);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['denied', 'completed']);
    expect(run.status).toBe('denied');
    // The test directory holds far fewer than 100 accounts, so one account is more than 1% of it.
    expect(run.decision?.guardrails.population).toBeGreaterThan(0);
    expect(run.decision?.guardrails.population).toBeLessThan(100);
    expect(run.error?.message).toMatch(/allows 1%/);
  });
});

describe('dry run', () => {
  it('observes, plans, decides and records everything, ends dry_run_completed, and changes nothing', async () => {
    const queue = await workerWith('version: 1\n');
    const user = await env.org.user('dry', ['engineering', 'finance']);
    const before = await state(user.id);
    const writesBefore = await directoryWrites();
    const alert = alertFor({ userName: user.userName }, { mode: 'dry-run' });
    const handle = await startRun(env.client, queue, alert);
    expect(handle.workflowId).toBe(runIdFor(alert.source, alert.id, 'dry-run'));
    expect(handle.workflowId).not.toBe(runIdFor(alert.source, alert.id));
    const run = await waitForStatus(handle, ['dry_run_completed', 'completed', 'failed']);
    expect(run.status).toBe('dry_run_completed');
    expect(run.plan?.actions).toHaveLength(3);
    expect(run.decision).toMatchObject({ outcome: 'auto', guardrails: { mode: 'dry-run', autonomy: 'live' } });
    expect(await state(user.id)).toEqual(before);
    // Not one write reached the directory, for this account or any other.
    expect(await directoryWrites()).toBe(writesBefore);
    const kinds = (await env.ledger.entries({ runId: handle.workflowId })).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['run.received', 'run.observed', 'run.planned', 'policy.decided']));
    expect(kinds.some((k) => k.startsWith('action.'))).toBe(false);
    await expectReplays(handle);
  });

  it('is forced for every run of a playbook whose autonomy is dry-run', async () => {
    const queue = await workerWith('version: 1\nplaybooks:\n  deprovision-account:\n    autonomy: dry-run\n');
    const user = await env.org.user('newplaybook', ['sales']);
    const before = await state(user.id);
    const writesBefore = await directoryWrites();
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const run = await waitForStatus(handle, ['dry_run_completed', 'completed']);
    expect(run.status).toBe('dry_run_completed');
    expect(run.decision?.guardrails).toMatchObject({ mode: 'dry-run', autonomy: 'dry-run' });
    expect(await state(user.id)).toEqual(before);
    expect(await directoryWrites()).toBe(writesBefore);
  });
});

describe('budgets across runs', () => {
  it('lets exactly 10 of 20 concurrent runs disable an account against a budget of 10, pausing the rest', async () => {
    const queue = await workerWith(
      'version: 1\nbudgets:\n  - name: disables\n    action: DisableAccount\n    playbook: deprovision-account\n    limit: 10\n    window: 1h\n',
    );
    const users = await Promise.all(Array.from({ length: 20 }, (_, i) => env.org.user(`budget${i}`, [])));
    const handles = await Promise.all(users.map((u) => startRun(env.client, queue, alertFor({ userName: u.userName }))));
    const settled = await Promise.all(handles.map((h) => waitForStatus(h, ['completed', 'paused', 'failed', 'needs_human'], 90_000)));

    const completed = settled.filter((r) => r.status === 'completed');
    const paused = settled.filter((r) => r.status === 'paused');
    expect(completed).toHaveLength(10);
    expect(paused).toHaveLength(10);
    for (const run of paused) {
      expect(run.pausedReason).toBe('budget');
      expect(run.journal.every((j) => j.status === 'pending')).toBe(true);
    }
    const disabled = (await Promise.all(users.map((u) => state(u.id)))).filter((s) => !s.active);
    expect(disabled).toHaveLength(10);
    const usage = await env.guardrailState.usage([{ name: 'disables', limit: 10, windowMs: 3_600_000 }]);
    expect(usage[0]?.used).toBe(10);

    // A paused run that is cancelled ends cancelled: it changed nothing.
    const pausedHandles = handles.filter((_, i) => settled[i]!.status === 'paused');
    await Promise.all(pausedHandles.map((h) => h.cancel()));
    const cancelled = await Promise.all(pausedHandles.map((h) => waitForStatus(h, ['cancelled', 'compensated'])));
    expect(cancelled.every((r) => r.status === 'cancelled')).toBe(true);
    expect((await Promise.all(users.map((u) => state(u.id)))).filter((s) => !s.active)).toHaveLength(10);
    await expectReplays(pausedHandles[0]!);
  });
});

describe('a connector budget across runs', () => {
  it('pauses real runs once a per-connector budget is spent, counting every kind of change, and never spends over it', async () => {
    const limit = 5;
    const queue = await workerWith(`version: 1\nbudgets:\n  - name: connector-cap\n    connector: scim\n    limit: ${limit}\n    window: 1h\n`);
    // Four runs of two changes each (disable, leave one group): eight changes asked for, five allowed.
    const users = await Promise.all(Array.from({ length: 4 }, (_, i) => env.org.user(`conncap${i}`, ['cc-group'])));
    const handles = await Promise.all(users.map((u) => startRun(env.client, queue, alertFor({ userName: u.userName }))));
    const settled = await Promise.all(handles.map((h) => waitForStatus(h, ['completed', 'paused', 'failed', 'needs_human'], 90_000)));

    expect(settled.every((r) => r.status === 'completed' || (r.status === 'paused' && r.pausedReason === 'budget'))).toBe(true);
    expect(settled.filter((r) => r.status === 'paused').length).toBeGreaterThan(0);
    const applied = settled.flatMap((r) => r.journal.filter((j) => j.status === 'applied' || j.status === 'verified'));
    expect(applied).toHaveLength(limit);
    // Measured on the directory: five changes made, not one more.
    const changes = (await Promise.all(users.map((u) => state(u.id)))).reduce((sum, s) => sum + (s.active ? 0 : 1) + (s.groups.includes('cc-group') ? 0 : 1), 0);
    expect(changes).toBe(limit);
    const started = (await Promise.all(handles.map((h) => env.ledger.entries({ runId: h.workflowId })))).flat().filter((e) => e.kind === 'action.started');
    expect(started).toHaveLength(limit);
    expect((await env.guardrailState.usage([{ name: 'connector-cap', limit, windowMs: 3_600_000 }]))[0]?.used).toBe(limit);
    for (const run of settled.filter((r) => r.status === 'paused')) {
      const pausedAt = (await env.ledger.entries({ runId: run.runId })).find((e) => e.kind === 'run.status' && e.data.to === 'paused');
      expect(String(pausedAt?.data.reason)).toMatch(/^budget: budget connector-cap is spent \(5 of 5\)/);
    }

    const pausedHandles = handles.filter((_, i) => settled[i]!.status === 'paused');
    await Promise.all(pausedHandles.map((h) => h.cancel()));
    await Promise.all(pausedHandles.map((h) => waitForStatus(h, ['cancelled', 'compensated'])));
  });
});

describe('a run paused on a spent budget', () => {
  it('resumes by itself once the budget window rolls over, recording the budget state it decided and acted under', async () => {
    // The store's clock is the test's: the budget stays spent until the test moves time on.
    let clock = Date.now();
    const clocked = openSqliteGuardrailState({ path: join(await mkdtemp(join(tmpdir(), 'cordon-budget-clock-')), 'state.sqlite'), clock: () => clock });
    closeLater.push(clocked);
    const queue = await workerWith('version: 1\nbudgets:\n  - name: rolling\n    action: DisableAccount\n    playbook: deprovision-account\n    limit: 1\n    window: 2s\n', { guardrailState: clocked });
    const spec = { name: 'rolling', action: 'DisableAccount', playbook: 'deprovision-account', limit: 1, windowMs: 2000 };
    expect(await clocked.reserve([spec], 'an-earlier-run:act_0000000000000000')).toMatchObject({ ok: true });

    const user = await env.org.user('rolling', []);
    const handle = await startRun(env.client, queue, alertFor({ userName: user.userName }));
    const paused = await waitForStatus(handle, ['paused', 'completed', 'failed']);
    expect(paused).toMatchObject({ status: 'paused', pausedReason: 'budget' });
    const spent: BudgetUsage = { name: 'rolling', action: 'DisableAccount', playbook: 'deprovision-account', connector: null, limit: 1, windowMs: 2000, used: 1 };
    expect(paused.decision?.guardrails.budgets).toEqual([spent]);
    expect((await state(user.id)).active).toBe(true);

    clock += 2001;
    const done = await waitForStatus(handle, ['completed', 'expired', 'compensated', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.pausedReason).toBeNull();
    expect(done.timeline.map((t) => t.status)).toEqual(expect.arrayContaining(['paused', 'executing', 'verifying', 'completed']));
    expect((await state(user.id)).active).toBe(false);

    // The decision record and each mutation's entries carry the budget state: spent when decided, and
    // after this run's own reservation (in the new window, only it) when the action ran.
    const entries = await env.ledger.entries({ runId: handle.workflowId });
    expect(entries.find((e) => e.kind === 'policy.decided')?.data).toMatchObject({ guardrails: { budgets: [spent] } });
    expect(entries.find((e) => e.kind === 'action.started')?.data.budgets).toEqual([spent]);
    expect(entries.find((e) => e.kind === 'action.applied')?.data.budgets).toEqual([spent]);
    await expectReplays(handle);
  });

  it('ends without failing when its window ends first: expired when it changed nothing, compensated when it had', async () => {
    // Approval windows of 15 seconds, and a budget that never frees.
    const policy = await loadPolicyEngine(
      await copyDefaultPolicies((cedar) => cedar.replaceAll('@expires("24h")', '@expires("15s")').replace('@escalateAfter("12h")\n', '').replace('@escalateRoles("admin")\n', '')),
    );
    const queue = await workerWith('version: 1\nbudgets:\n  - name: no-removals\n    action: RemoveGroupMembership\n    limit: 0\n    window: 1h\n', { policy });
    // Already disabled: its plan only removes the membership, which the budget never allows.
    const idle = await env.org.user('neverfrees', ['nf-a']);
    await env.scim.client.patch('Users', idle.id, [{ op: 'replace', path: 'active', value: false }]);
    // Active: the disable goes through, then the removal waits.
    const halfway = await env.org.user('halfway', ['nf-b']);

    const handles = await Promise.all([idle, halfway].map((u) => startRun(env.client, queue, alertFor({ userName: u.userName }, { severity: 'medium' }))));
    for (const handle of handles) {
      const waiting = await waitForStatus(handle, ['awaiting_approval', 'denied', 'failed']);
      expect(waiting.status).toBe('awaiting_approval');
      await approveAsBob(handle, waiting.plan!.digest);
    }
    const [idleRun, halfwayRun] = await Promise.all(handles.map((h) => waitForStatus(h, ['expired', 'compensated', 'completed', 'failed', 'needs_human'])));

    expect(idleRun).toMatchObject({ status: 'expired', error: { type: 'PausedTooLong' } });
    expect(idleRun!.journal.every((j) => j.status === 'pending')).toBe(true);
    expect(await state(idle.id)).toEqual({ active: false, groups: ['nf-a'] });

    expect(halfwayRun).toMatchObject({ status: 'compensated', error: { type: 'PausedTooLong' } });
    expect(halfwayRun!.journal.find((j) => j.status === 'compensated')).toBeDefined();
    expect(await state(halfway.id)).toEqual({ active: true, groups: ['nf-b'] });

    // Neither execution failed: each ended with its outcome.
    expect(await handles[0]!.result()).toMatchObject({ status: 'expired' });
    expect(await handles[1]!.result()).toMatchObject({ status: 'compensated' });
    for (const handle of handles) {
      const statuses = (await env.ledger.entries({ runId: handle.workflowId })).filter((e) => e.kind === 'run.status').map((e) => e.data.to);
      expect(statuses).toContain('paused');
    }
    await expectReplays(handles[1]!);
  });
});

describe('connector rate limits', () => {
  /**
   * A proxy in front of the directory that counts requests and how many were in flight at once; it
   * holds each write 100 ms, so that writes from concurrent runs would overlap if nothing spaced them.
   */
  async function countingProxy(upstream: string) {
    const stats = { requests: 0, writes: 0, inFlight: 0, maxInFlight: 0, writesInFlight: 0, maxWritesInFlight: 0 };
    const origin = new URL(upstream).origin;
    const forward = async (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const write = req.method !== 'GET' && req.method !== 'HEAD';
      stats.requests++;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      if (write) {
        stats.writes++;
        stats.writesInFlight++;
        stats.maxWritesInFlight = Math.max(stats.maxWritesInFlight, stats.writesInFlight);
      }
      try {
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length', 'transfer-encoding'].includes(name))) as Record<string, string>;
        const answer = await fetch(`${origin}${req.url ?? '/'}`, { method: req.method!, headers, ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) });
        const body = Buffer.from(await answer.arrayBuffer());
        if (write) await new Promise((r) => setTimeout(r, 100));
        const passed: Record<string, string> = {};
        answer.headers.forEach((value, name) => {
          if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive'].includes(name)) passed[name] = value;
        });
        res.writeHead(answer.status, passed).end(body);
      } finally {
        stats.inFlight--;
        if (write) stats.writesInFlight--;
      }
    };
    const server = createServer((req, res) => {
      forward(req, res).catch((error: unknown) => res.writeHead(502).end(String(error)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}${new URL(upstream).pathname}`, stats, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  it('makes a worker built from config send one call at a time to a connector whose concurrency is 1', async () => {
    const proxy = await countingProxy(env.scim.url);
    closeLater.push(proxy);
    const dir = await mkdtemp(join(tmpdir(), 'cordon-rate-limit-'));
    await writeFile(join(dir, 'scim-token'), env.scim.token);
    await writeFile(join(dir, 'guardrails.yaml'), 'version: 1\nconnectors:\n  scim:\n    rateLimit:\n      callsPerSecond: 1000\n      concurrency: 1\n');
    const config = loadConfig({ CORDON_DATA_DIR: dir, CORDON_SCIM_URL: proxy.url, CORDON_GUARDRAILS_FILE: join(dir, 'guardrails.yaml') }, dir);
    const resources = await buildWorkerResources(config, quietLog);
    const taskQueue = `${env.taskQueue}-rate-${randomBytes(4).toString('hex')}`;
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const worker = await createCordonWorker({ connection, namespace: 'default', taskQueue, resources, log: quietLog, workflowBundle: { codePath: inject('workflowBundlePath') }, shutdownGraceMs: 2000 });
    const running = worker.run();
    try {
      // Six runs at once, three changes each: eighteen writes that would overlap without the limit.
      const users = await Promise.all(Array.from({ length: 6 }, (_, i) => env.org.user(`rate${i}`, ['rl-a', 'rl-b'])));
      const handles = await Promise.all(users.map((u) => startRun(env.client, taskQueue, alertFor({ userName: u.userName }))));
      const runs = await Promise.all(handles.map((h) => waitForStatus(h, ['completed', 'failed', 'needs_human', 'compensated'], 90_000)));
      expect(runs.map((r) => r.status)).toEqual(Array(6).fill('completed'));
      for (const user of users) expect(await state(user.id)).toEqual({ active: false, groups: [] });

      expect(proxy.stats.writes).toBe(18);
      expect(proxy.stats.maxWritesInFlight).toBe(1);
      // Reads wait their turn too: the limit is on every call to the connector.
      expect(proxy.stats.maxInFlight).toBe(1);
    } finally {
      worker.shutdown();
      await running;
      await connection.close();
      await resources.close();
    }
  });
});

describe('drift between approval and execution', () => {
  it('rebuilds the plan when the target changed, voids the approvals, and asks again', async () => {
    const queue = await workerWith('version: 1\n');
    const user = await env.org.user('drifter', ['admins', 'vpn-users', 'finance']);
    const alice = { name: 'alice', roles: ['soc', 'approver'] as ('soc' | 'approver')[] };
    const handle: WorkflowHandle = await startRun(env.client, queue, alertFor({ userName: user.userName }, { severity: 'critical' }), alice);
    const first = await waitForStatus(handle, ['awaiting_approval']);
    expect(first.plan?.actions).toHaveLength(4);
    const oldDigest = first.plan!.digest;

    // Someone removes the account from finance by hand while the approvers look at the plan.
    const finance = await env.org.groupId('finance');
    await env.scim.client.patch('Groups', finance, [{ op: 'remove', path: `members[value eq "${user.id}"]` }]);

    const approve = (approver: string, planDigest: string) =>
      handle.executeUpdate(decideApprovalUpdate, { args: [signForTest(handle.workflowId, { approver, roles: ['approver'], decision: 'approve', planDigest, channel: 'api' })] });
    await approve('bob', oldDigest);
    await approve('carol', oldDigest);

    // Re-observed before executing: a new plan without finance, and the approvals are void.
    const deadline = Date.now() + 30_000;
    let second: RunView;
    for (;;) {
      second = await handle.query(getRunQuery);
      if (second.status === 'awaiting_approval' && second.plan?.digest !== oldDigest) break;
      if (Date.now() > deadline) throw new Error(`no second approval round (status ${second.status})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(second.plan?.actions).toHaveLength(3);
    expect(second.plan?.actions.some((a) => a.type === 'RemoveGroupMembership' && a.group.display === 'finance')).toBe(false);
    expect(second.approvals).toEqual([]);
    expect(second.voidedApprovals.map((a) => [a.approver, a.planDigest])).toEqual([
      ['bob', oldDigest],
      ['carol', oldDigest],
    ]);
    const stale = await approve('dave', oldDigest).catch((e: WorkflowUpdateFailedError) => e);
    expect(stale).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(((stale as WorkflowUpdateFailedError).cause as ApplicationFailure).type).toBe('StalePlanDigest');

    await approve('bob', second.plan!.digest);
    await approve('carol', second.plan!.digest);
    const done = await waitForStatus(handle, ['completed', 'failed', 'needs_human']);
    expect(done.status).toBe('completed');
    expect(done.journal.map((j) => j.actionId).sort()).toEqual(second.plan!.actions.map((a) => a.id).sort());
    expect(await state(user.id)).toEqual({ active: false, groups: [] });
    const drifted = (await env.ledger.entries({ runId: handle.workflowId })).find((e) => e.kind === 'plan.drifted');
    expect(drifted?.data).toMatchObject({ from: oldDigest, to: second.plan!.digest, voidedApprovals: ['bob', 'carol'] });
    await expectReplays(handle);
  });
});
