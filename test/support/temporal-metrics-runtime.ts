// Installs this process's Temporal runtime with the SDK's Prometheus exporter on a free port. Import
// it before anything that imports test/support/temporal.ts, which installs a runtime without one.
import { pino } from 'pino';
import { freePort } from '../../dev/processes.js';
import { installTemporalRuntime } from '../../workers/runtime.js';

/** Where the Temporal SDK serves its metrics in this test process. */
export const temporalMetricsPort = await freePort();

installTemporalRuntime(pino({ level: process.env.TEST_LOG_LEVEL ?? 'error' }), { metricsBindAddress: `127.0.0.1:${temporalMetricsPort}` });
