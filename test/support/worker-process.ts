// A Cordon worker in a process of its own, for tests that kill workers. Configured by environment:
// TEMPORAL_ADDRESS, TASK_QUEUE, LEDGER_PATH, SCIM_URL, SCIM_TOKEN, BUNDLE_PATH, and optionally
// DELAY_AFTER_APPLY="<n>:<ms>" (hold the n-th apply after it reached the directory).
import { NativeConnection, Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { createScimConnector } from '../../activities/connectors/scim/scim-connector.js';
import { createRemediationActivities } from '../../activities/remediation.js';
import { DEFAULT_POLICY_DIR, loadPolicyEngine } from '../../policies/engine.js';
import { openSqliteLedger } from '../../store/ledger.js';
import { installTemporalRuntime } from '../../workers/runtime.js';
import { withFaults } from './faults.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

installTemporalRuntime(pino({ level: 'error' }));
const delay = process.env.DELAY_AFTER_APPLY?.split(':').map(Number);
const scim = createScimConnector('scim', { baseUrl: env('SCIM_URL'), bearerToken: env('SCIM_TOKEN') });
const connector = delay ? withFaults(scim, { delayAfterApply: { n: delay[0]!, ms: delay[1]! } }) : scim;
const ledger = openSqliteLedger({ path: env('LEDGER_PATH') });
const connection = await NativeConnection.connect({ address: env('TEMPORAL_ADDRESS') });
const worker = await Worker.create({
  connection,
  namespace: 'default',
  taskQueue: env('TASK_QUEUE'),
  workflowBundle: { codePath: env('BUNDLE_PATH') },
  activities: createRemediationActivities({ connectors: { scim: connector }, ledger, policy: await loadPolicyEngine(DEFAULT_POLICY_DIR) }),
});
process.once('SIGTERM', () => worker.shutdown());
process.stdout.write('worker ready\n');
await worker.run();
await ledger.close();
