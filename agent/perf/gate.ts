// The quiet-host gate, run before a perf run: sample the host over a short window and refuse (or wait for) a noisy
// one. Noisy means any of: other work using >= 3% of the machine's CPU (all CPUs together, the agent's own process
// excluded), >= 1% stolen by a hypervisor, thermal throttling during the window, a 1-minute load average at or
// above the number of CPUs. A frequency governor other than `performance` and an enabled boost are not noise but
// set-up: they are reported as warnings (and in the machine fingerprint), since waiting does not change them.

import { AgentError } from '../errors.js';
import type { ProcessCpuTime, QuietHostProbe } from '../../platforms/common/quiet-host.js';

export type GateMode = 'wait' | 'refuse' | 'off';
export const GATE_MODES: readonly GateMode[] = ['wait', 'refuse', 'off'];

/** Background CPU (percent of the whole machine) from which a host is noisy: the issue's 3%. */
export const MAX_BACKGROUND_PERCENT = 3;
/** Stolen CPU (percent) from which a VM's neighbours are too loud. */
export const MAX_STEAL_PERCENT = 1;
/** A sample's window: long enough for a periodic daemon to show, short enough to run before every run. */
export const GATE_WINDOW_MS = 2000;
/** `wait` gives up (and refuses) after this long without a quiet window. */
export const GATE_WAIT_MAX_MS = 300_000;
/** Processes using at least this much of one CPU are named in the report. */
const NAMED_PROCESS_PERCENT = 1;

export interface BusyProcess {
  pid: number;
  name: string;
  /** Percent of one CPU during the window. */
  cpuPercent: number;
}

export interface GateReport {
  quiet: boolean;
  mode: GateMode;
  /** What made the host noisy, one phrase each (empty when quiet). */
  problems: string[];
  /** Set-up that adds noise but that waiting does not change (governor, boost). */
  warnings: string[];
  windowMs: number;
  /** Percent of the whole machine's CPU used by others during the window. */
  backgroundPercent: number;
  stealPercent: number | undefined;
  loadAverage: [number, number, number] | undefined;
  throttleEvents: number | undefined;
  /** Other processes using >= 1% of one CPU, busiest first. */
  busyProcesses: BusyProcess[];
  governor: string | undefined;
  boost: boolean | undefined;
  source: string;
  /** Windows sampled (more than one in `wait` mode). */
  samples: number;
}

export interface GateDeps {
  probe: QuietHostProbe;
  /** Resolves after `ms` (injectable so a test can run the wait loop without waiting). */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** This process's own CPU seconds so far (excluded from the background). */
  ownCpuSeconds?: () => number;
  /** The pids whose CPU is the measurement's own (this process; excluded). */
  ownPids?: readonly number[];
}

export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

type ProcessTimes = Map<number, ProcessCpuTime> | undefined;

function busiest(before: ProcessTimes, after: ProcessTimes, seconds: number, own: readonly number[]): BusyProcess[] {
  if (!before || !after) return [];
  const out: BusyProcess[] = [];
  for (const [pid, p] of after) {
    const b = before.get(pid);
    if (!b || own.includes(pid) || b.name !== p.name) continue;
    const cpuPercent = (100 * (p.seconds - b.seconds)) / seconds;
    if (cpuPercent >= NAMED_PROCESS_PERCENT) out.push({ pid, name: p.name, cpuPercent: Math.round(cpuPercent * 10) / 10 });
  }
  return out.sort((a, b) => b.cpuPercent - a.cpuPercent).slice(0, 10);
}

/** One window's sample of the host, judged. */
export async function sampleHost(deps: GateDeps, mode: GateMode, windowMs = GATE_WINDOW_MS, signal?: AbortSignal): Promise<GateReport> {
  const { probe } = deps;
  const own = deps.ownCpuSeconds ?? processCpuSeconds;
  const ownPids = deps.ownPids ?? [process.pid];
  const cpu0 = probe.cpuTimes();
  const procs0 = probe.processCpu();
  const throttle0 = probe.throttleEvents();
  const own0 = own();
  const t0 = performance.now();
  await deps.sleep(windowMs, signal);
  const cpu1 = probe.cpuTimes();
  const procs1 = probe.processCpu();
  const throttle1 = probe.throttleEvents();
  const ownUsed = own() - own0;
  const elapsedS = Math.max(1e-3, (performance.now() - t0) / 1000);
  const total = cpu1.total - cpu0.total;
  const backgroundPercent = total > 0 ? Math.max(0, (100 * (cpu1.busy - cpu0.busy - ownUsed)) / total) : 0;
  const stealPercent = cpu0.steal !== undefined && cpu1.steal !== undefined && total > 0 ? (100 * (cpu1.steal - cpu0.steal)) / total : undefined;
  const throttleEvents = throttle0 !== undefined && throttle1 !== undefined ? throttle1 - throttle0 : undefined;
  const loadAverage = probe.loadAverage();
  const policy = probe.cpuPolicy();
  const problems: string[] = [];
  if (backgroundPercent >= MAX_BACKGROUND_PERCENT)
    problems.push(`background CPU ${backgroundPercent.toFixed(1)}% of the machine (limit ${MAX_BACKGROUND_PERCENT}%)`);
  if (stealPercent !== undefined && stealPercent >= MAX_STEAL_PERCENT) problems.push(`CPU steal ${stealPercent.toFixed(1)}% (limit ${MAX_STEAL_PERCENT}%)`);
  if (throttleEvents !== undefined && throttleEvents > 0) problems.push(`${throttleEvents} thermal throttling event(s)`);
  if (loadAverage && loadAverage[0] >= probe.logicalCpus()) problems.push(`1-minute load average ${loadAverage[0]} >= ${probe.logicalCpus()} CPUs`);
  const warnings: string[] = [];
  if (policy.governor !== undefined && policy.governor !== 'performance') warnings.push(`CPU frequency governor is '${policy.governor}', not 'performance'`);
  if (policy.boost === true) warnings.push('CPU boost (turbo) is on');
  return {
    quiet: problems.length === 0,
    mode,
    problems,
    warnings,
    windowMs,
    backgroundPercent: Math.round(backgroundPercent * 100) / 100,
    stealPercent: stealPercent === undefined ? undefined : Math.round(stealPercent * 100) / 100,
    loadAverage,
    throttleEvents,
    busyProcesses: busiest(procs0, procs1, elapsedS, ownPids),
    governor: policy.governor,
    boost: policy.boost,
    source: probe.source,
    samples: 1,
  };
}

function describeNoise(r: GateReport): string {
  const who = r.busyProcesses.length
    ? `; busiest: ${r.busyProcesses
        .slice(0, 3)
        .map((p) => `${p.name} (pid ${p.pid}) ${p.cpuPercent}%`)
        .join(', ')}`
    : '';
  return `${r.problems.join(', ')}${who}`;
}

export interface GateOptions {
  mode: GateMode;
  windowMs?: number;
  waitMaxMs?: number;
  signal?: AbortSignal;
  /** Told about each noisy window while waiting. */
  onNoisy?: (report: GateReport) => void;
}

/**
 * The gate: `off` samples nothing and passes; `refuse` samples one window and throws E_PERF_NOISY_HOST when noisy;
 * `wait` samples until a window is quiet, up to waitMaxMs, then refuses. Resolves with the report of the last window.
 */
export async function quietHostGate(deps: GateDeps, options: GateOptions): Promise<GateReport | undefined> {
  if (options.mode === 'off') return undefined;
  const windowMs = options.windowMs ?? GATE_WINDOW_MS;
  const waitMax = options.waitMaxMs ?? GATE_WAIT_MAX_MS;
  const started = performance.now();
  for (let samples = 1; ; samples++) {
    const report = { ...(await sampleHost(deps, options.mode, windowMs, options.signal)), samples };
    if (report.quiet) return report;
    const waited = performance.now() - started;
    if (options.mode === 'refuse' || waited + windowMs > waitMax) {
      const after = options.mode === 'wait' ? ` after waiting ${Math.round(waited / 1000)} s for a quiet window` : '';
      throw Object.assign(new AgentError('E_PERF_NOISY_HOST', `the host is not quiet enough for a perf run${after}: ${describeNoise(report)}`), { report });
    }
    options.onNoisy?.(report);
  }
}
