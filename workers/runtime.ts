import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../config/logger.js';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let installed = false;

export interface TemporalRuntimeOptions {
  /** `host:port` where the Temporal SDK serves its Prometheus metrics (`/metrics`); off when absent. */
  metricsBindAddress?: string | undefined;
}

/**
 * Installs the Temporal runtime with its logs (SDK and the native core) sent to pino. Must run before
 * any Worker or NativeConnection exists; later calls in the same process are no-ops.
 */
export function installTemporalRuntime(log: Logger, options: TemporalRuntimeOptions = {}): void {
  if (installed) return;
  installed = true;
  const temporalLog = log.child({ component: 'temporal' });
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => {
      temporalLog[PINO_LEVEL[entry.level]]({ ...entry.meta }, entry.message);
    }),
    telemetryOptions: {
      logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } },
      // The SDK's own metrics (task latencies, slots, polls, failures), served by the native core.
      ...(options.metricsBindAddress ? { metrics: { prometheus: { bindAddress: options.metricsBindAddress, countersTotalSuffix: true, useSecondsForDurations: true } } } : {}),
    },
    // The entry point decides how to shut down (drain, then stop).
    shutdownSignals: [],
  });
}
