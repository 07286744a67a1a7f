// The host facts a perf run needs (the quiet-host gate and the machine fingerprint), behind one interface:
// CPU time counters, other processes' CPU time, load average, the CPU frequency policy (governor, boost), SMT,
// thermal throttling. Linux reads /proc and /sys directly (platforms/linux/perf-host.ts: a few hundred small reads,
// a few ms, no child process). Elsewhere the portable probe below reports what Node itself knows (os.cpus() time
// counters, os.loadavg(), the CPU model, memory) and leaves the rest undefined, which the gate reports as unknown.

import os from 'node:os';
import { linuxQuietHostProbe } from '../linux/perf-host.js';
import type { QuietHostProbe } from './quiet-host-types.js';

export type { CpuPolicy, CpuTimes, ProcessCpuTime, QuietHostProbe } from './quiet-host-types.js';

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
