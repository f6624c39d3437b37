// The workflows a Cordon worker registers. Workflow code only: see workflows/remediation.ts.
export { remediationWorkflow } from './remediation.js';
export { policySimulationWorkflow } from './simulation.js';
