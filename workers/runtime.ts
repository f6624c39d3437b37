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

/**
 * Installs the Temporal runtime with its logs (SDK and the native core) sent to pino. Must run before
 * any Worker or NativeConnection exists; later calls in the same process are no-ops.
 */
export function installTemporalRuntime(log: Logger): void {
  if (installed) return;
  installed = true;
  const temporalLog = log.child({ component: 'temporal' });
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => {
      temporalLog[PINO_LEVEL[entry.level]]({ ...entry.meta }, entry.message);
    }),
    telemetryOptions: { logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } } },
    // The entry point decides how to shut down (drain, then stop).
    shutdownSignals: [],
  });
}
