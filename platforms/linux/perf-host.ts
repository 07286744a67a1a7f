// The quiet-host facts on Linux, read straight from /proc and /sys (the whole sample is a few hundred small reads,
// a few ms; systeminformation would read the same files, and shells out for some facts). `root` moves every path
// under a directory, so a test can hand it a fabricated /proc and /sys.

import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CpuPolicy, CpuTimes, ProcessCpuTime, QuietHostProbe } from '../common/quiet-host-types.js';

/** USER_HZ: the unit of /proc's CPU times. 100 on every Linux architecture bbagent runs on. */
const CLOCK_TICKS = 100;
/** Processes read per sample at most (a host with more is reported from the first ones found). */
const MAX_PROCESSES = 8192;

function read(root: string, file: string): string | undefined {
  try {
    return readFileSync(path.join(root, file), 'utf8');
  } catch {
    return undefined;
  }
}

/** The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal (guest is in user). */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return undefined;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq;
  return { busy: busy / CLOCK_TICKS, total: (busy + idle + iowait + steal) / CLOCK_TICKS, steal: steal / CLOCK_TICKS };
}

/** utime + stime (fields 14 and 15) and the name of /proc/PID/stat; the name may hold spaces and parentheses. */
export function parseProcessStat(text: string): ProcessCpuTime | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime field 15
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { name: text.slice(open + 1, close), seconds: (utime + stime) / CLOCK_TICKS };
}

function cpuDirs(root: string): string[] {
  try {
    return readdirSync(path.join(root, 'sys/devices/system/cpu')).filter((d) => /^cpu\d+$/.test(d));
  } catch {
    return [];
  }
}

function policy(root: string): CpuPolicy {
  const governors = new Set<string>();
  for (const cpu of cpuDirs(root)) {
    const g = read(root, `sys/devices/system/cpu/${cpu}/cpufreq/scaling_governor`)?.trim();
    if (g) governors.add(g);
  }
  const boostFile = read(root, 'sys/devices/system/cpu/cpufreq/boost')?.trim();
  const noTurbo = read(root, 'sys/devices/system/cpu/intel_pstate/no_turbo')?.trim();
  const boost = boostFile !== undefined ? boostFile === '1' : noTurbo !== undefined ? noTurbo === '0' : undefined;
  const smtFile = read(root, 'sys/devices/system/cpu/smt/active')?.trim();
  return {
    governor: governors.size ? [...governors].sort().join('/') : undefined,
    boost,
    smt: smtFile === undefined ? undefined : smtFile === '1',
  };
}

function throttleEvents(root: string): number | undefined {
  let total: number | undefined;
  for (const cpu of cpuDirs(root)) {
    for (const kind of ['core_throttle_count', 'package_throttle_count']) {
      const n = Number(read(root, `sys/devices/system/cpu/${cpu}/thermal_throttle/${kind}`)?.trim() ?? NaN);
      if (Number.isFinite(n)) total = (total ?? 0) + n;
    }
  }
  return total;
}

function processCpu(root: string): Map<number, ProcessCpuTime> {
  const out = new Map<number, ProcessCpuTime>();
  let names: string[] = [];
  try {
    names = readdirSync(path.join(root, 'proc'));
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    if (out.size >= MAX_PROCESSES) break;
    const text = read(root, `proc/${name}/stat`);
    const p = text === undefined ? undefined : parseProcessStat(text);
    if (p) out.set(Number(name), p);
  }
  return out;
}

export function linuxQuietHostProbe(root = '/'): QuietHostProbe {
  return {
    source: '/proc and /sys',
    cpuTimes: () => parseProcStat(read(root, 'proc/stat') ?? '') ?? { busy: 0, total: 0, steal: undefined },
    processCpu: () => processCpu(root),
    loadAverage() {
      const f = (read(root, 'proc/loadavg') ?? '').trim().split(/\s+/).slice(0, 3).map(Number);
      return f.length === 3 && f.every(Number.isFinite) ? (f as [number, number, number]) : undefined;
    },
    cpuPolicy: () => policy(root),
    throttleEvents: () => throttleEvents(root),
    cpuModel() {
      const m = /^model name\s*:\s*(.+)$/m.exec(read(root, 'proc/cpuinfo') ?? '');
      return m?.[1]?.trim() ?? os.cpus()[0]?.model.trim() ?? 'unknown';
    },
    logicalCpus: () => Math.max(1, os.availableParallelism()),
    memoryBytes() {
      const m = /^MemTotal:\s*(\d+)\s*kB/m.exec(read(root, 'proc/meminfo') ?? '');
      return m ? Number(m[1]) * 1024 : os.totalmem();
    },
    kernel: () => `Linux ${read(root, 'proc/sys/kernel/osrelease')?.trim() ?? os.release()}`,
  };
}
