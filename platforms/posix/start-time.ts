// Process start times on POSIX: tell a live process from a later one that reuses its pid (stale pidfiles).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { USER_HZ } from './processes.js';

/** Process start time from /proc (Linux) or ps (macOS), in ms since the epoch; undefined when unknown. */
export function processStartMs(pid: number, os: 'linux' | 'darwin'): number | undefined {
  try {
    if (os === 'linux') {
      const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'))?.[1]);
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      return Number.isFinite(btime) && Number.isFinite(ticks) && btime > 0 ? btime * 1000 + (ticks * 1000) / USER_HZ : undefined;
    }
    // "Thu Nov 26 12:00:00 2026" in local time, which Date parses.
    const text = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'latin1', env: { ...process.env, LC_ALL: 'C' } }).trim();
    const ms = Date.parse(text);
    return Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}
