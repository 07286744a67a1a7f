// The host facts a perf run needs (the quiet-host gate and the machine fingerprint), behind one interface:
// CPU time counters, other processes' CPU time, load average, the CPU frequency policy (governor, boost), SMT,
// thermal throttling. Linux reads /proc and /sys directly (platforms/linux/perf-host.ts: a few hundred small reads,
// a few ms, no child process). Elsewhere the portable probe below reports what Node itself knows (os.cpus() time
// counters, os.loadavg(), the CPU model, memory) and leaves the rest undefined, which the gate reports as unknown.

import os from 'node:os';
import { linuxQuietHostProbe } from '../linux/perf-host.js';

/** CPU time counters summed over every CPU, in seconds since boot. */
export interface CpuTimes {
  /** Time the CPUs ran anything (user, nice, system, irq, softirq; steal not included). */
  busy: number;
  /** Every state, idle included. */
  total: number;
  /** Time a hypervisor gave this VM's CPUs to someone else; undefined where the OS does not say. */
  steal: number | undefined;
}

/** One process's CPU time (user + system, seconds) and its short name. */
export interface ProcessCpuTime {
  name: string;
  seconds: number;
}

/** The frequency policy and SMT state; undefined fields are unknown on this host (a VM often has no cpufreq). */
export interface CpuPolicy {
  /** The scaling governor(s) of the CPUs, e.g. 'performance', 'powersave' ('a/b' when they differ). */
  governor: string | undefined;
  /** Turbo/boost enabled. */
  boost: boolean | undefined;
  /** Simultaneous multithreading active. */
  smt: boolean | undefined;
}

export interface QuietHostProbe {
  /** Where the facts come from, for the report ('/proc and /sys', 'node:os'). */
  readonly source: string;
  cpuTimes(): CpuTimes;
  /** CPU time of every process that could be read, by pid; undefined where processes cannot be listed cheaply. */
  processCpu(): Map<number, ProcessCpuTime> | undefined;
  /** 1, 5 and 15 minute load averages; undefined where the OS has none (Windows). */
  loadAverage(): [number, number, number] | undefined;
  cpuPolicy(): CpuPolicy;
  /** Thermal throttling events so far (all CPUs and packages); undefined when the OS does not count them. */
  throttleEvents(): number | undefined;
  cpuModel(): string;
  logicalCpus(): number;
  memoryBytes(): number;
  kernel(): string;
}

/** What Node knows on any OS: os.cpus() counters (ms), os.loadavg(), model, memory, release. */
export function portableQuietHostProbe(): QuietHostProbe {
  return {
    source: 'node:os',
    cpuTimes() {
      let busy = 0;
      let total = 0;
      for (const c of os.cpus()) {
        const t = c.times;
        busy += t.user + t.nice + t.sys + t.irq;
        total += t.user + t.nice + t.sys + t.irq + t.idle;
      }
      return { busy: busy / 1000, total: total / 1000, steal: undefined };
    },
    processCpu: () => undefined,
    loadAverage() {
      const [a = 0, b = 0, c = 0] = os.loadavg();
      // Windows reports [0, 0, 0]: it has no load average.
      return a === 0 && b === 0 && c === 0 ? undefined : [a, b, c];
    },
    cpuPolicy: () => ({ governor: undefined, boost: undefined, smt: undefined }),
    throttleEvents: () => undefined,
    cpuModel: () => os.cpus()[0]?.model.trim() ?? 'unknown',
    logicalCpus: () => Math.max(1, os.availableParallelism()),
    memoryBytes: () => os.totalmem(),
    kernel: () => `${os.type()} ${os.release()}`,
  };
}

/** The probe of this OS, chosen once by the caller. */
export function currentQuietHostProbe(): QuietHostProbe {
  return process.platform === 'linux' ? linuxQuietHostProbe() : portableQuietHostProbe();
}
