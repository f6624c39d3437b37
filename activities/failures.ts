import { ApplicationFailure, asyncLocalStorage, heartbeat } from '@temporalio/activity';
import { ZodError } from 'zod';
import { CordonError } from '../domain/index.js';

/** Converts a thrown CordonError into an ApplicationFailure carrying its catalogue type and retryability. */
export function toApplicationFailure(error: unknown): unknown {
  if (error instanceof CordonError) {
    return ApplicationFailure.create({
      type: error.type,
      message: error.message,
      nonRetryable: !error.retryable,
      ...(error.details ? { details: [error.details] } : {}),
    });
  }
  // A response that does not parse will not parse on the next attempt either.
  if (error instanceof ZodError) {
    return ApplicationFailure.create({ type: 'ConnectorRejected', message: `unexpected response: ${error.message}`, nonRetryable: true });
  }
  return error;
}

/** Wraps every function of an activity object so that catalogue errors keep their type across Temporal. */
export function withTypedFailures<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (error) {
        throw toApplicationFailure(error);
      }
    };
  }
  return wrapped as T;
}

/** Heartbeats when running as a Temporal activity; a no-op when called directly (unit tests). */
export function heartbeatIfActivity(details?: unknown): void {
  if (asyncLocalStorage.getStore() !== undefined) heartbeat(details);
}
