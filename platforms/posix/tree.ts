// Process trees on POSIX: the process group of a child plus every descendant that left the group
// (setsid, setpgid), found from /proc on Linux and from ps elsewhere.

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
}

function listLinux(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      // The command name is in parentheses and may contain spaces: parse after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z') continue; // zombies are dead already
      out.push({ pid: Number(name), ppid: Number(rest[1]), pgid: Number(rest[2]) });
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

function listPs(): ProcInfo[] {
  const text = execFileSync('ps', ['-A', '-o', 'pid=,ppid=,pgid=,stat='], { encoding: 'latin1' });
  const out: ProcInfo[] = [];
  for (const line of text.split('\n')) {
    const [pid, ppid, pgid, st] = line.trim().split(/\s+/);
    if (!pid || st?.startsWith('Z')) continue;
    out.push({ pid: Number(pid), ppid: Number(ppid), pgid: Number(pgid) });
  }
  return out;
}

/** Every live pid in the tree of `root`: its process group and all descendants (wherever their group). */
export function treePids(root: number, platformId: 'linux' | 'darwin'): number[] {
  const procs = platformId === 'linux' ? listLinux() : listPs();
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const found = new Set<number>();
  for (const p of procs) if (p.pgid === root) found.add(p.pid);
  const queue = [root, ...found];
  while (queue.length) {
    const pid = queue.pop()!;
    if (procs.some((p) => p.pid === pid)) found.add(pid);
    for (const c of children.get(pid) ?? []) {
      if (!found.has(c)) {
        found.add(c);
        queue.push(c);
      }
    }
  }
  return [...found];
}

/** USER_HZ: the unit of /proc/PID/stat's start time; 100 on every Linux architecture Node runs on. */
const USER_HZ = 100;

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
