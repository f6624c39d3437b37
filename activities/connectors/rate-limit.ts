import type { DirectoryConnector } from './types.js';
import { wrapConnector } from './wrap.js';

/** Calls per second and calls in flight allowed towards one connector, from one worker. */
export interface RateLimitOptions {
  callsPerSecond: number;
  concurrency: number;
  /** For tests: the clock and the sleep the limiter uses. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** A limiter: `run` waits for a slot and a token, then calls `fn`. */
export interface Limiter {
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** How many calls are in flight now, and the most ever seen at once. */
  stats(): { inFlight: number; maxInFlight: number; calls: number };
}

/**
 * A token bucket (`callsPerSecond`, bursting up to one second's worth) and a concurrency cap. Calls
 * are served in arrival order, so a burst cannot starve earlier callers.
 */
export function createLimiter(options: RateLimitOptions): Limiter {
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const capacity = Math.max(1, options.callsPerSecond);
  let tokens = capacity;
  let refilledAt = now();
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  const queue: (() => void)[] = [];
  let pumping = false;

  const refill = () => {
    const at = now();
    tokens = Math.min(capacity, tokens + ((at - refilledAt) / 1000) * options.callsPerSecond);
    refilledAt = at;
  };

  // One pump hands out slots in order: it waits for a free slot and a whole token for the head.
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0 && inFlight < options.concurrency) {
        refill();
        if (tokens < 1) {
          await sleep(Math.ceil(((1 - tokens) / options.callsPerSecond) * 1000));
          continue;
        }
        tokens -= 1;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        calls++;
        queue.shift()!();
      }
    } finally {
      pumping = false;
    }
  };

  return {
    async run(fn) {
      await new Promise<void>((resolve) => {
        queue.push(resolve);
        void pump();
      });
      try {
        return await fn();
      } finally {
        inFlight--;
        void pump();
      }
    },
    stats: () => ({ inFlight, maxInFlight, calls }),
  };
}

/** Wraps every call of a connector in a limiter. */
export function rateLimited(connector: DirectoryConnector, limiter: Limiter): DirectoryConnector {
  return wrapConnector(connector, (_operation, _args, call) => limiter.run(call));
}
