// Payload encryption on a real Temporal dev server, a real worker and a real scim2-server: what
// Temporal stores holds no identity in clear, the codec-enabled client still reads the run, the
// history route hands out decrypted histories that replay, a key rotation keeps old runs readable,
// and a process without a run's key fails naming it.
import { randomBytes } from 'node:crypto';
import { Client, type WorkflowHandle } from '@temporalio/client';
import type { DataConverter, Payload } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AesGcmPayloadCodec, dataConverterFor, decodeHistoryPayloads, isEncryptedPayload, KEY_ID_METADATA, searchIndexFor, type PayloadKeysFile } from '../../config/payload-codec.js';
import type { RunView } from '../../domain/index.js';
import { buildServer } from '../../server/app.js';
import { identityStore } from '../../server/identities.js';
import { historyFromJson, historyToJson } from '../../workers/history-json.js';
import { getRunQuery } from '../../workflows/messages.js';
import { startRemediationEnv, type RemediationEnv } from '../support/env.js';
import { alertFor, startRun, startWorker, waitForStatus, type RunningWorker } from '../support/temporal.js';

const keyA = randomBytes(32);
const keyB = randomBytes(32);
const searchKey = randomBytes(32);
const onlyA: PayloadKeysFile = { active: 'k-2026-a', keys: { 'k-2026-a': keyA }, searchKey };
const rotatedToB: PayloadKeysFile = { active: 'k-2026-b', keys: { 'k-2026-a': keyA, 'k-2026-b': keyB }, searchKey };
const searchIndex = searchIndexFor(onlyA)!;
const converter = (keys: PayloadKeysFile): DataConverter => dataConverterFor(new AesGcmPayloadCodec(keys));

let env: RemediationEnv;
const workers: RunningWorker[] = [];
const handles: WorkflowHandle[] = [];
/** The run made under key A, and who it was about. */
let first: { runId: string; user: { id: string; userName: string }; group: string };

beforeAll(async () => {
  env = await startRemediationEnv();
});

afterAll(async () => {
  for (const handle of handles) await handle.terminate('test over').catch(() => undefined);
  for (const worker of workers) await worker.stop();
  await env?.close();
});

/** A client on the shared connection with the given data converter (none: Temporal's raw payloads). */
const clientWith = (dataConverter?: DataConverter) => new Client({ connection: env.client.connection, namespace: 'default', ...(dataConverter ? { dataConverter } : {}) });

async function worker(dataConverter: DataConverter, taskQueue = env.taskQueue): Promise<RunningWorker> {
  const running = await startWorker({ taskQueue, connectors: { scim: env.connector }, ledger: env.ledger, policy: env.policy, dataConverter, searchIndex });
  workers.push(running);
  return running;
}

async function stopWorker(running: RunningWorker): Promise<void> {
  await running.stop();
  workers.splice(workers.indexOf(running), 1);
}

/**
 * Every string and byte field of a history with its path, bytes read as UTF-8: the JSON form shows
 * bytes in base64, which would hide a clear payload from a text search.
 */
function leaves(value: unknown, path = ''): { path: string; text: string }[] {
  if (typeof value === 'string') return [{ path, text: value }];
  if (value instanceof Uint8Array) return [{ path, text: Buffer.from(value).toString('utf8') }];
  if (typeof value !== 'object' || value === null) return [];
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  return entries.flatMap(([key, child]) => leaves(child, path ? `${path}.${key}` : key));
}

const placesOf = (history: History, needle: string) => leaves(history).filter((leaf) => leaf.text.includes(needle)).map((leaf) => leaf.path);

/** The payloads of a history (objects with byte-valued metadata), wherever they are. */
function payloadsOf(value: unknown): Payload[] {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return [];
  const { metadata } = value as Payload;
  if (metadata && typeof metadata === 'object' && Object.values(metadata).length > 0 && Object.values(metadata).every((v) => v instanceof Uint8Array)) return [value as Payload];
  return (Array.isArray(value) ? value : Object.values(value)).flatMap(payloadsOf);
}

const keyIdsOf = (history: History) => new Set(payloadsOf(history).filter(isEncryptedPayload).map((p) => Buffer.from(p.metadata![KEY_ID_METADATA]!).toString('utf8')));

const rawHistory = (runId: string) => clientWith().workflow.getHandle(runId).fetchHistory();


async function completedRun(client: Client, prefix: string) {
  const group = `${prefix}-group-${randomBytes(4).toString('hex')}`;
  const user = await env.org.user(prefix, [group]);
  const handle = await startRun(client, env.taskQueue, alertFor({ userName: user.userName }));
  handles.push(handle);
  const run = await waitForStatus(handle, ['completed', 'failed', 'needs_human']);
  return { handle, run, user, group };
}

describe('payload encryption', () => {
  it('completes a run whose stored history names no user, user id or group in clear, while the codec-enabled client reads its run view', async () => {
    await worker(converter(onlyA));
    const { handle, run, user, group } = await completedRun(clientWith(converter(onlyA)), 'enc');
    first = { runId: handle.workflowId, user, group };
    expect(run.status).toBe('completed');
    expect(run.plan?.actions.map((a) => a.type)).toEqual(['DisableAccount', 'RemoveGroupMembership']);
    expect(run.plan?.actions.every((a) => a.target.id === user.id)).toBe(true);

    const raw = await rawHistory(handle.workflowId);
    const json = JSON.stringify(historyToJson(raw));
    // Nowhere: not in payloads (encrypted), not in the search attributes Temporal indexes (blinded).
    for (const needle of [user.userName, user.id, group]) {
      expect(json).not.toContain(needle);
      expect(placesOf(raw, needle)).toEqual([]);
    }
    const indexed = placesOf(raw, searchIndex(user.userName));
    expect(indexed.length).toBeGreaterThan(0);
    expect(indexed.every((path) => /searchAttributes\.indexedFields\.CordonTargets/.test(path))).toBe(true);
    expect(payloadsOf(raw).filter(isEncryptedPayload).length).toBeGreaterThan(5);
    expect([...keyIdsOf(raw)]).toEqual(['k-2026-a']);

    // The same search finds them once the payloads are decrypted: it is the encryption that hides them.
    const decrypted = await decodeHistoryPayloads(await rawHistory(handle.workflowId), [new AesGcmPayloadCodec(onlyA)]);
    for (const needle of [user.userName, user.id, group]) expect(placesOf(decrypted, needle).length).toBeGreaterThan(0);

    // A client without the codec gets ciphertext it cannot read, not a run view.
    await expect(clientWith().workflow.getHandle(handle.workflowId).query(getRunQuery)).rejects.toThrow(/binary\/encrypted/);
  });

  it("hands out the run's history decrypted on GET /v1/runs/:runId/history, and it replays without the keys", async () => {
    const token = `tok_oscar_${randomBytes(16).toString('hex')}`;
    const app = await buildServer({
      temporal: clientWith(converter(onlyA)),
      taskQueue: env.taskQueue,
      ledger: env.ledger,
      guardrailState: env.guardrailState,
      identities: identityStore({ oscar: { token, roles: ['operator'] } }),
      log: pino({ level: 'silent' }),
      searchIndex,
    });
    try {
      // The run is found by its target's name: the API blinds the filter as the worker blinded the run.
      const found = await app.inject({ method: 'GET', url: `/v1/runs?target=${encodeURIComponent(first.user.userName)}`, headers: { authorization: `Bearer ${token}` } });
      expect(found.json<{ runs: { runId: string }[] }>().runs.map((r) => r.runId)).toEqual([first.runId]);
      const response = await app.inject({ method: 'GET', url: `/v1/runs/${first.runId}/history`, headers: { authorization: `Bearer ${token}` } });
      expect(response.statusCode).toBe(200);
      const history = historyFromJson(response.json());
      expect(keyIdsOf(history).size).toBe(0);
      expect(placesOf(history, first.user.userName).length).toBeGreaterThan(0);
      await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, first.runId)).resolves.toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it('keeps the old run readable after the active key rotates, encrypts new runs with the new key, and a client without it fails naming it', async () => {
    await stopWorker(workers[0]!);
    // A fresh worker has nothing cached: answering the query replays the old run's history, under key A.
    await worker(converter(rotatedToB));
    const client = clientWith(converter(rotatedToB));
    const old = await client.workflow.getHandle(first.runId).query(getRunQuery);
    expect(old).toMatchObject({ runId: first.runId, status: 'completed' } satisfies Partial<RunView>);

    const { handle, run } = await completedRun(client, 'rot');
    expect(run.status).toBe('completed');
    expect([...keyIdsOf(await rawHistory(handle.workflowId))]).toEqual(['k-2026-b']);
    expect([...keyIdsOf(await rawHistory(first.runId))]).toEqual(['k-2026-a']);

    const stale = clientWith(converter(onlyA)).workflow.getHandle(handle.workflowId).query(getRunQuery);
    await expect(stale).rejects.toThrow(/payload encrypted with key "k-2026-b", which is not in/);
  });

  it('fails the workflow task, naming the key, on a worker that lacks the key of the run', async () => {
    const taskQueue = `${env.taskQueue}-without-b`;
    await worker(converter(onlyA), taskQueue);
    const user = await env.org.user('nokey', ['nokey-group']);
    const handle = await startRun(clientWith(converter(rotatedToB)), taskQueue, alertFor({ userName: user.userName }));
    handles.push(handle);
    const deadline = Date.now() + 30_000;
    let message: string | undefined;
    while (!message && Date.now() < deadline) {
      const events = (await rawHistory(handle.workflowId)).events ?? [];
      message = events.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure?.message ?? undefined;
      if (!message) await new Promise((r) => setTimeout(r, 200));
    }
    expect(message).toMatch(/payload encrypted with key "k-2026-b", which is not in .*known: k-2026-a/);
    // Nothing ran: the workflow never got past its first task.
    const events = (await rawHistory(handle.workflowId)).events ?? [];
    expect(events.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
  });
});
