import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/** Field paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'bearerToken',
  '*.bearerToken',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-cordon-signature"]',
  'headers.authorization',
  'headers["x-cordon-signature"]',
];

/** The root pino logger: JSON lines, secrets redacted. */
export function createLogger(config: Pick<Config, 'log'>, name: string, destination?: DestinationStream): Logger {
  const options = {
    name,
    level: config.log.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { service: name },
  };
  return destination ? pino(options, destination) : pino(options);
}
