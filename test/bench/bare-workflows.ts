// The baseline the benchmark compares Cordon with: a workflow that only schedules no-op activities,
// in the same order and with the same kinds (regular or local) as a real deprovision run. Workflow
// code only, like workflows/: no Node built-ins, no I/O, activity types imported as types.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { BareActivities } from './bare-activities.js';

/** One step of a run: a regular activity (a server round trip) or a local activity (a marker). */
export type BareStep = 'activity' | 'local';

// The same timeouts as Cordon's reads and ledger writes; no-ops never come near them.
const activities = proxyActivities<BareActivities>({ startToCloseTimeout: '30s', retry: { maximumAttempts: 3 } });
const locals = proxyLocalActivities<BareActivities>({ startToCloseTimeout: '15s', retry: { maximumAttempts: 3 } });

/** Runs `steps` one after the other, each awaited before the next, as Cordon's workflow does. */
export async function bareWorkflow(steps: BareStep[]): Promise<number> {
  for (const step of steps) {
    if (step === 'activity') await activities.noop();
    else await locals.noop();
  }
  return steps.length;
}
