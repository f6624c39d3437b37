import { proxyActivities } from '@temporalio/workflow';
import type { RemediationActivities, SimulationResult } from '../activities/remediation.js';

export type { SimulationResult } from '../activities/remediation.js';
import { nonRetryableErrorTypes, type Alert, type Identity } from '../domain/index.js';

const { simulateRemediation } = proxyActivities<RemediationActivities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '1m',
  retry: { initialInterval: '1s', maximumAttempts: 3, nonRetryableErrorTypes: [...nonRetryableErrorTypes] },
});

/** What a policy simulation is asked. */
export interface SimulationInput {
  simulationId: string;
  alert: Alert;
  requestedBy: Identity;
}

/**
 * A policy simulation: observe and plan against the live target, and decide with policy and the
 * guardrails, without starting a run. It runs on the worker, which holds the connectors' credentials;
 * the API server has none.
 */
export async function policySimulationWorkflow(input: SimulationInput): Promise<SimulationResult> {
  return simulateRemediation(input);
}
