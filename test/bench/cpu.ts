// Where the CPU went during a phase: this process (workers, API, client), and each child by PID.
// Reads /proc, so it is Linux only; elsewhere the children's figures are absent.
import { readFileSync } from 'node:fs';

// USER_HZ, the unit of /proc/<pid>/stat times, is 100 on every Linux ABI Node runs on.
const TICKS_PER_SECOND = 100;

/** CPU time in ms, by process name. */
export type CpuTimes = Record<string, number>;

function childCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? ((utime + stime) * 1000) / TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}

/** The CPU used so far by this process and by each of `children`. */
export function cpuTimes(children: Record<string, number>): CpuTimes {
  const usage = process.cpuUsage();
  const times: CpuTimes = { node: (usage.user + usage.system) / 1000 };
  for (const [name, pid] of Object.entries(children)) {
    const ms = childCpuMs(pid);
    if (ms !== undefined) times[name] = ms;
  }
  return times;
}

/** The CPU used between two readings, rounded to ms. */
export function cpuSpent(before: CpuTimes, after: CpuTimes): CpuTimes {
  const spent: CpuTimes = {};
  for (const [name, ms] of Object.entries(after)) {
    const start = before[name];
    if (start !== undefined) spent[name] = Math.round(ms - start);
  }
  return spent;
}
