import type { DirectoryConnector } from './types.js';

type Method = (...args: never[]) => Promise<unknown>;

/**
 * A connector whose every operation goes through `around(name, call)`; operations the inner
 * connector lacks stay absent. For rate limits, and for tests that record or break calls.
 */
export function wrapConnector(
  inner: DirectoryConnector,
  around: (operation: string, args: readonly unknown[], call: () => Promise<unknown>) => Promise<unknown>,
): DirectoryConnector {
  const wrapped: Record<string, unknown> = { system: inner.system };
  for (const [operation, value] of Object.entries(inner)) {
    if (typeof value !== 'function') continue;
    const method = value as Method;
    wrapped[operation] = (...args: never[]) => around(operation, args, () => method.apply(inner, args));
  }
  return wrapped as unknown as DirectoryConnector;
}
