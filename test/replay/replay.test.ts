// The replay suite: every captured history (test/replay/histories/, written by `npm run
// replay:capture`) replays against the current workflow code, so a change that would break runs in
// flight fails here. And the suite is shown to catch such a change: the same histories fail with a
// nondeterminism error against a copy of the workflow code with two activity calls swapped.
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { describe, expect, inject, it } from 'vitest';
import { historyFromJson, type HistoryJson } from '../../workers/history-json.js';
import { CordonStatus } from '../../workflows/search-attributes.js';
// Installs the Temporal runtime with quiet logs before any replay worker exists.
import '../support/temporal.js';
import { bundleReorderedWorkflows, reorderActivities } from './reordered-bundle.js';
import { requiredOutcomes } from './scenarios.js';

const HISTORIES_DIR = fileURLToPath(new URL('histories/', import.meta.url));
const fileOf = (outcome: string) => join(HISTORIES_DIR, `${outcome}.json`);

/** Every history file there is, and one for each required outcome whether it is there or not. */
const names = [...new Set([...requiredOutcomes, ...(existsSync(HISTORIES_DIR) ? readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json')).map((f) => basename(f, '.json')) : [])])].sort();

async function readHistory(name: string): Promise<HistoryJson> {
  return JSON.parse(await readFile(fileOf(name), 'utf8')) as HistoryJson;
}

/** The run statuses a history records, in order (the run's `CordonStatus` search attribute). */
function statusesOf(history: HistoryJson): string[] {
  const statuses: string[] = [];
  for (const event of history.events) {
    const attributes = (event.upsertWorkflowSearchAttributesEventAttributes ?? event.workflowExecutionStartedEventAttributes) as
      | { searchAttributes?: { indexedFields?: Record<string, { data?: string }> } }
      | undefined;
    const data = attributes?.searchAttributes?.indexedFields?.[CordonStatus.name]?.data;
    if (data) statuses.push(JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as string);
  }
  return statuses;
}

describe('captured histories', () => {
  it('has a history for every required outcome, each recording the run reaching that outcome', async () => {
    const missing = requiredOutcomes.filter((outcome) => !existsSync(fileOf(outcome)));
    expect(missing, `missing histories in test/replay/histories/ (run \`npm run replay:capture -- ${missing.join(' ')}\`)`).toEqual([]);
    for (const outcome of requiredOutcomes) {
      expect(statusesOf(await readHistory(outcome)), `${outcome}.json`).toContain(outcome);
    }
  });

  for (const name of names) {
    it(`replays the ${name} history against the current workflow code`, async () => {
      const history = historyFromJson(await readHistory(name));
      await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') }, replayName: `replay-${name}` }, history, name)).resolves.toBeUndefined();
    });
  }
});

describe('the replay suite against changed workflow code', () => {
  it('fails with a nondeterminism error for every history that planned, once two activity calls are swapped', async () => {
    const bundle = await bundleReorderedWorkflows();
    const histories: { workflowId: string; history: History }[] = [];
    const planned: string[] = [];
    for (const name of names) {
      const json = await readHistory(name);
      histories.push({ workflowId: name, history: historyFromJson(json) });
      if (statusesOf(json).includes('planning')) planned.push(name);
    }
    expect(planned).toEqual(expect.arrayContaining([...requiredOutcomes]));

    const failures = new Map<string, unknown>();
    for await (const result of Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'replay-reordered' }, histories)) {
      failures.set(result.workflowId, result.error);
    }
    for (const name of planned) {
      const error = failures.get(name);
      expect(error, `${name}.json replayed against the reordered code`).toBeInstanceOf(DeterminismViolationError);
      expect((error as Error).message).toMatch(/nondeterminism/i);
    }
  });

  it('refuses to build the changed code when the calls it swaps are no longer in the workflow', async () => {
    const source = await readFile(fileURLToPath(new URL('../../workflows/remediation.ts', import.meta.url)), 'utf8');
    expect(reorderActivities(source)).not.toBe(source);
    expect(() => reorderActivities(source.replace("await setStatus('planning');", "await setStatus('planning', 'moved');"))).toThrow(/RECORD_THEN_PLAN/);
  });
});
