// The vocabulary of the quiet-host probe (quiet-host.ts chooses one; platforms/linux/perf-host.ts is Linux's).

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
