// Option values as operators type them on the command line: durations (`90s`, `10m`, `7d`),
// instants (an ISO timestamp, or a duration ago) and counts. A value that does not parse is a usage
// error naming the option.
import { InvalidArgumentError } from 'commander';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/** A duration in milliseconds from `500ms`, `30s`, `10m`, `2h`, `7d` or a number of seconds; undefined when it is none of these. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? 's') as keyof typeof UNIT_MS;
  return Math.round(Number(match[1]) * UNIT_MS[unit]);
}

/** A commander parser for a duration option of at least `minMs`. */
export function durationArg(option: string, minMs: number): (value: string) => number {
  return (value) => {
    const parsed = parseDuration(value);
    if (parsed === undefined || parsed < minMs) throw new InvalidArgumentError(`${option} takes a duration such as 500ms, 30s, 10m or 1h, of at least ${minMs} ms`);
    return parsed;
  };
}

/**
 * A commander parser for a time filter: a duration (`30m`, `7d`) means that long before now; anything
 * else is passed on as given, for the API to check as an ISO timestamp.
 */
export function instantArg(now: () => Date = () => new Date()): (value: string) => string {
  return (value) => {
    const ago = parseDuration(value);
    return ago === undefined ? value.trim() : new Date(now().getTime() - ago).toISOString();
  };
}

/** A commander parser for a whole number of at least 1. */
export function countArg(option: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new InvalidArgumentError(`${option} takes a whole number of at least 1`);
    return Number(value);
  };
}
