// One measured run: a fresh worker process (buildbot-worker or bbagent) connects, everything settles, the
// counters are sampled, the build is forced and awaited (through master events, not REST polling), the
// master goes idle, the counters are sampled again, the data is verified and the worker is stopped.
import path from 'node:path';
import { BbagentWorker } from '../harness/bbagent-worker.js';
import type { BuildbotMaster, Protocol, RestLog, RestStep } from '../harness/master.js';
import { pollUntil } from '../harness/process.js';
import { ReferenceWorker } from '../harness/reference-worker.js';
import { printedTimestamp, type BenchBuild, type BuildContext, type WorkerKind } from './builds.js';
import type { BbagentRun } from './bbagent-exe.js';
import type { MasterEvents } from './events.js';
import { readMasterProfile, toggleMasterProfile } from './master-profile.js';
import { formatBreakdown, formatProbe, memProbeEnv, PeakSampler, readProbe, smapsBreakdown, smapsOf } from './smaps.js';
import {
  assertSingleProcess,
  childrenCpuTicks,
  clockTicksPerSecond,
  cpuTotals,
  mainThreadCpuTicks,
  ownCpuTicks,
  peakRssBytes,
  wireCounters,
  type CpuTotals,
  type WireCounters,
} from './metrics.js';

export const PASSWORD = 'bench-pass';
/** How long a fresh worker may take to attach. */
const ATTACH_TIMEOUT_MS = 30_000;
/** How long a process's CPU counter must stand still for it to count as idle. */
const IDLE_QUIET_MS = 300;
/** --settle: how long the worker must have used no CPU before its build. */
const SETTLE_QUIET_MS = 1000;
/** /proc sampling interval while waiting for idle. */
const IDLE_POLL_MS = 25;
/** Give up waiting for idle after this long (a busy machine); the sample is taken anyway and noted. */
const IDLE_MAX_MS = 120_000;
/** Before a run, wait (up to QUIET_MAX_MS) for a QUIET_WINDOW_MS window in which the machine's CPUs were
 * busy less than QUIET_BUSY_SHARE of the time: other programs running alongside skew wall times. */
const QUIET_WINDOW_MS = 500;
const QUIET_BUSY_SHARE = 0.25;
const QUIET_MAX_MS = 10_000;
/** The first-output build polls the log's REST contents this often. */
const LATENCY_POLL_MS = 20;

export interface RunMetrics {
  masterCpuS: number;
  /** The part of masterCpuS spent in the master's main (reactor) thread; the rest is its database threads. */
  masterMainCpuS: number;
  workerCpuS: number;
  peakRssBytes: number;
  /** Master-side socket: bytes received from the worker plus bytes sent to it (acked). */
  wireBytes: number;
  wireInBytes: number;
  wireOutBytes: number;
  /** From forcing the build to the master's "build finished" event. */
  wallS: number;
  /** Duration of step 1 (transfer builds), from its "started" to its "finished" event. */
  stepS: number | undefined;
  /** first-output: when the line was visible in REST minus when the step printed it. */
  latencyS: number | undefined;
  /** CPU of the build step's processes (the worker's reaped children). */
  stepCpuS: number;
  /**
   * CPU used on the machine during the run by anything but the master, the worker and its build steps
   * (this benchmark's own process, other load), as a share of all CPUs: a noise indicator.
   */
  otherLoad: number;
}

export interface RunOutcome {
  worker: WorkerKind;
  repeat: number;
  ok: boolean;
  /** Verification detail, or the error that ended the run. */
  detail: string;
  metrics?: RunMetrics;
  deliveredBytes?: number;
  limited?: boolean;
  allowanceBytes?: number;
  notes: string[];
  /** --smaps: where the worker's RSS was, idle and at the peak (printed lines). */
  memory?: string[];
}

export interface BenchEnv {
  master: BuildbotMaster;
  events: MasterEvents;
  masterPid: number;
  masterDir: string;
  scratch: string;
  protocol: Protocol;
  workerDirs: Record<WorkerKind, string>;
  /** Worker name on the master for each kind. */
  workerNames: Record<WorkerKind, string>;
  /** Extra environment for bbagent (--bbagent-env). */
  bbagentEnv: Record<string, string>;
  /** Which bbagent runs (--bbagent): the single executable, the bundle or another executable. */
  bbagent: BbagentRun;
  /** --smaps: break the worker's RSS down by mapping at idle and at its peak (the sampling costs CPU). */
  smaps: boolean;
  /** --settle: seconds after the worker attached before its build, then 1 s without CPU (0: no settling). */
  settleS: number;
  /** --master-profile: profile the master's threads in each measured window, into this directory. */
  masterProfile?: string;
  /** bbagent must have negotiated permessage-deflate (the deflate section); checked in its log. */
  expectDeflate: boolean;
  /** Set once a worker kind could not even attach: its later runs fail at once with this reason. */
  broken: Partial<Record<WorkerKind, string>>;
}

export function builderName(build: BenchBuild, worker: WorkerKind): string {
  return `${build.name}-${worker}`;
}

interface RunningWorker {
  pid: number;
  stop(): Promise<unknown>;
  /** The last lines the worker logged, for error messages. */
  tail(): string;
  running(): boolean;
  /** Everything the worker logged so far (bbagent: its captured output). */
  log(): string;
}

const lastLines = (text: string, n: number): string => text.trimEnd().split('\n').slice(-n).join(' | ');

async function startWorker(env: BenchEnv, kind: WorkerKind): Promise<RunningWorker> {
  const common = {
    dir: env.workerDirs[kind],
    masterPort: env.master.protocolPort,
    name: env.workerNames[kind],
    password: PASSWORD,
    protocol: env.protocol,
    env: { LANG: 'C.UTF-8' },
  };
  if (kind === 'ref') {
    const w = await ReferenceWorker.start(common);
    return { pid: w.pid, stop: () => w.stop(), tail: () => lastLines(w.logTail(8), 8), running: () => w.running, log: () => w.logTail(10_000) };
  }
  const exe = env.bbagent.executable;
  const probe = env.smaps ? memProbeEnv(env.scratch, env.workerNames[kind]).env : {};
  const w = await BbagentWorker.start({ ...common, env: { ...common.env, ...probe, ...env.bbagentEnv }, ...(exe ? { executable: exe } : {}) });
  return { pid: w.pid, stop: () => w.stop(), tail: () => lastLines(w.output, 8), running: () => w.running, log: () => w.output };
}

/**
 * --settle: a freshly started worker finishes some start-up work after it attached (bbagent: a heap compaction,
 * opening its artifact cache); this waits until `seconds` after it attached and then until the worker has used
 * no CPU for SETTLE_QUIET_MS, so that work is not counted in the build's figures.
 */
async function settle(pid: number, attachedAt: number, seconds: number): Promise<void> {
  const left = attachedAt + seconds * 1000 - performance.now();
  if (left > 0) await sleep(left);
  await waitIdle([pid], SETTLE_QUIET_MS);
}

/** Resolves once none of `pids` has used CPU for `quietMs`; returns false if that took over IDLE_MAX_MS. */
export async function waitIdle(pids: number[], quietMs = IDLE_QUIET_MS): Promise<boolean> {
  const deadline = performance.now() + IDLE_MAX_MS;
  let last = pids.map(ownCpuTicks);
  let quietSince = performance.now();
  for (;;) {
    await sleep(IDLE_POLL_MS);
    const now = pids.map(ownCpuTicks);
    const t = performance.now();
    if (now.some((v, i) => v !== last[i])) {
      last = now;
      quietSince = t;
    } else if (t - quietSince >= quietMs) return true;
    if (t > deadline) return false;
  }
}

/** Waits for a quiet machine; returns how long it waited and whether it got quiet. */
async function waitQuietMachine(): Promise<{ waitedS: number; quiet: boolean }> {
  const start = performance.now();
  for (;;) {
    const a = cpuTotals();
    await sleep(QUIET_WINDOW_MS);
    const b = cpuTotals();
    const share = b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
    const waitedS = (performance.now() - start) / 1000;
    if (share < QUIET_BUSY_SHARE) return { waitedS, quiet: true };
    if (performance.now() - start > QUIET_MAX_MS) return { waitedS, quiet: false };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  masterTicks: number;
  masterMainTicks: number;
  workerTicks: number;
  stepTicks: number;
  machine: CpuTotals;
  wire: WireCounters;
}

function sample(env: BenchEnv, workerPid: number): Sample {
  return {
    masterTicks: ownCpuTicks(env.masterPid),
    masterMainTicks: mainThreadCpuTicks(env.masterPid),
    workerTicks: ownCpuTicks(workerPid),
    stepTicks: childrenCpuTicks(workerPid),
    machine: cpuTotals(),
    wire: wireCounters(env.master.protocolPort, workerPid),
  };
}

export async function runOnce(env: BenchEnv, build: BenchBuild, kind: WorkerKind, repeat: number): Promise<RunOutcome> {
  const builder = builderName(build, kind);
  const ctx: BuildContext = {
    master: env.master,
    masterDir: env.masterDir,
    scratch: env.scratch,
    worker: kind,
    workerDir: env.workerDirs[kind],
    builder,
    protocol: env.protocol,
  };
  const notes: string[] = [];
  const broken = env.broken[kind];
  if (broken) return { worker: kind, repeat, ok: false, detail: `not run: ${broken}`, notes };
  let worker: RunningWorker | undefined;
  try {
    const quiet = await waitQuietMachine();
    if (!quiet.quiet)
      notes.push(`other programs kept the machine over ${QUIET_BUSY_SHARE * 100}% busy for ${QUIET_MAX_MS / 1000} s before the run; it ran anyway`);
    worker = await startWorker(env, kind);
    const workerPid = worker.pid;
    const running = worker;
    const name = env.workerNames[kind];
    await pollUntil(async () => ((await env.master.worker(name))?.connected_to.length ? true : undefined), {
      timeoutMs: ATTACH_TIMEOUT_MS,
      what: `worker ${name} to attach`,
      failFast: () => (running.running() ? undefined : 'the worker process exited'),
    }).catch((err: unknown) => {
      const reason = `it did not attach over ${env.protocol} (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); its log: ${running.tail()}`;
      env.broken[kind] = reason;
      throw new Error(reason);
    });
    const attachedAt = performance.now();
    // the CPU counters must be the worker's own process: twistd (python) runs in the buildbot-worker
    // process itself, bbagent in node or its single executable; neither may hand its work to a child
    assertSingleProcess(workerPid, kind === 'ref' ? /^python3/ : env.bbagent.exeName, kind === 'ref' ? 'buildbot-worker' : 'bbagent');
    if (kind === 'bb' && env.expectDeflate && !/websocket extensions: permessage-deflate/.test(running.log())) {
      throw new Error('bbagent did not negotiate permessage-deflate with the deflate-enabled master');
    }
    build.prepare?.(ctx);
    if (env.settleS > 0) await settle(workerPid, attachedAt, env.settleS);
    if (!(await waitIdle([env.masterPid, workerPid]))) notes.push('master or worker not idle before the build');
    const exeFile = assertSingleProcess(workerPid, /./, 'worker');
    const idleSmaps = env.smaps ? smapsBreakdown(smapsOf(workerPid), exeFile) : undefined;
    const sampler = env.smaps ? new PeakSampler(workerPid) : undefined;

    const profileLabel = `${build.name}-${kind}-${repeat}${env.expectDeflate ? '-deflate' : ''}`;
    if (env.masterProfile) toggleMasterProfile(env.masterProfile, env.masterPid, profileLabel);
    const before = sample(env, workerPid);
    const t0 = performance.now();
    const brid = await env.master.forceBuild(builder);
    const latency =
      build.family === 'first-output'
        ? pollFirstOutput(env, brid, build.timeoutMs).catch((err: unknown) => {
            notes.push(`latency probe failed: ${err instanceof Error ? err.message : String(err)}`);
            return undefined;
          })
        : undefined;
    const timing = await env.events.waitForBuild(brid, build.timeoutMs);
    const wallS = (timing.finishedMs! - t0) / 1000;
    const latencyS = latency ? await latency : undefined;
    if (!(await waitIdle([env.masterPid, workerPid]))) notes.push('master or worker still busy 120 s after the build');
    const after = sample(env, workerPid);
    if (env.masterProfile) {
      toggleMasterProfile(env.masterProfile, env.masterPid, profileLabel);
      if ((await readMasterProfile(env.masterProfile, profileLabel)) === undefined) notes.push('the master wrote no profile');
    }
    const rss = peakRssBytes(workerPid);
    let memory: string[] | undefined;
    if (sampler && idleSmaps) {
      sampler.stop();
      memory = [`    VmHWM ${(rss / 1048576).toFixed(1)} MiB; largest sampled RSS ${(sampler.peakKiB / 1024).toFixed(1)} MiB`];
      memory.push(...formatBreakdown(idleSmaps, smapsBreakdown(sampler.peak, exeFile)));
      const probe = kind === 'bb' ? await readProbe(workerPid, memProbeEnv(env.scratch, env.workerNames[kind]).out) : undefined;
      if (probe) memory.push(formatProbe(probe.peak, 'at the RSS peak'), formatProbe(probe.now, 'after the build'));
    }
    if (after.wire.workerPort !== before.wire.workerPort) throw new Error('the worker reconnected during the build: wire bytes would be wrong');

    const hz = clockTicksPerSecond();
    const step1 = timing.steps.get(1);
    const metrics: RunMetrics = {
      masterCpuS: (after.masterTicks - before.masterTicks) / hz,
      masterMainCpuS: (after.masterMainTicks - before.masterMainTicks) / hz,
      workerCpuS: (after.workerTicks - before.workerTicks) / hz,
      peakRssBytes: rss,
      wireInBytes: after.wire.received - before.wire.received,
      wireOutBytes: after.wire.acked - before.wire.acked,
      wireBytes: after.wire.received - before.wire.received + (after.wire.acked - before.wire.acked),
      wallS,
      stepS: step1?.startedMs !== undefined && step1.finishedMs !== undefined ? (step1.finishedMs - step1.startedMs) / 1000 : undefined,
      latencyS,
      stepCpuS: (after.stepTicks - before.stepTicks) / hz,
      otherLoad: otherLoad(before, after),
    };
    if (timing.results !== 0) {
      return { worker: kind, repeat, ok: false, detail: `build ${timing.buildid} ended with results ${String(timing.results)}`, metrics, notes };
    }
    if (build.family === 'first-output' && latencyS === undefined) {
      return { worker: kind, repeat, ok: false, detail: 'the timestamp line never showed up while the build ran', metrics, notes };
    }
    const verdict = await build.verify(ctx, timing.buildid, { stepS: metrics.stepS });
    return {
      worker: kind,
      repeat,
      ok: verdict.ok,
      detail: verdict.detail,
      metrics,
      ...(verdict.deliveredBytes !== undefined ? { deliveredBytes: verdict.deliveredBytes } : {}),
      ...(verdict.limited !== undefined ? { limited: verdict.limited } : {}),
      ...(verdict.allowanceBytes !== undefined ? { allowanceBytes: verdict.allowanceBytes } : {}),
      ...(memory ? { memory } : {}),
      notes,
    };
  } catch (err) {
    return { worker: kind, repeat, ok: false, detail: err instanceof Error ? err.message.split('\n').slice(0, 6).join(' | ') : String(err), notes };
  } finally {
    if (worker) {
      await worker.stop();
      await env.master.waitForWorker(env.workerNames[kind], false).catch(() => undefined);
    }
  }
}

function otherLoad(before: Sample, after: Sample): number {
  const total = after.machine.total - before.machine.total;
  if (total <= 0) return 0;
  const ours = after.masterTicks - before.masterTicks + (after.workerTicks - before.workerTicks) + (after.stepTicks - before.stepTicks);
  return Math.max(0, after.machine.busy - before.machine.busy - ours) / total;
}

/**
 * Polls the stdio log of step 1 of request `brid` every LATENCY_POLL_MS until the printed timestamp line
 * is there; returns (time it was first seen) - (timestamp), in seconds, or undefined if the build finished
 * without it.
 */
async function pollFirstOutput(env: BenchEnv, brid: number, timeoutMs: number): Promise<number | undefined> {
  const { master, events } = env;
  const deadline = performance.now() + timeoutMs;
  let stepid: number | undefined;
  let log: RestLog | undefined;
  while (performance.now() < deadline) {
    const buildid = events.buildOf(brid);
    if (buildid !== undefined) {
      if (stepid === undefined) {
        const { steps } = await master.get<{ steps: RestStep[] }>(`/builds/${buildid}/steps`);
        stepid = steps.find((s) => s.number === 1)?.stepid;
      }
      if (stepid !== undefined && log === undefined) {
        const { logs } = await master.get<{ logs: RestLog[] }>(`/steps/${stepid}/logs`);
        log = logs.find((l) => l.name === 'stdio');
      }
      if (log !== undefined) {
        const asked = Date.now();
        const { logchunks } = await master.get<{ logchunks: { content: string }[] }>(`/logs/${log.logid}/contents`);
        // the master read its database somewhere between the request and the answer: take the middle
        const seenAt = (asked + Date.now()) / 2000;
        const printed = printedTimestamp(logchunks.map((c) => c.content).join(''));
        if (printed !== undefined) return seenAt - printed;
      }
      const { builds } = await master.get<{ builds: { complete: boolean }[] }>(`/builds/${buildid}`);
      if (builds[0]?.complete) return undefined;
    }
    await sleep(LATENCY_POLL_MS);
  }
  return undefined;
}

export function workerDirs(scratch: string): Record<WorkerKind, string> {
  return { ref: path.join(scratch, 'buildbot-worker'), bb: path.join(scratch, 'bbagent') };
}
