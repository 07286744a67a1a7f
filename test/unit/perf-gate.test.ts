// The quiet-host gate. On this machine, with the real /proc and /sys probe: a synthetic background load (a busy
// child process) makes the gate refuse, and the report names the child among the busiest processes, so the
// refusal is caused by the load we made, not only by whatever else the host runs; `bbagent perf run` then exits 1
// without running the command. With a scripted probe: a quiet host passes, `wait` waits through noisy windows
// (without real waiting) and gives up after its limit, the governor and boost are warnings. The Linux probe's
// parsing on a fabricated /proc and /sys tree.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietHostGate, type GateReport } from '../../agent/perf/gate.js';
import { currentQuietHostProbe, type QuietHostProbe } from '../../platforms/common/quiet-host.js';
import { linuxQuietHostProbe, parseProcessStat } from '../../platforms/linux/perf-host.js';
import { machineFingerprint } from '../../agent/perf/fingerprint.js';
import { perfRunCommand } from '../../agent/cli/perf-run.js';
import { AgentError } from '../../agent/errors.js';
import { runPerf } from '../../agent/perf/run.js';
import { currentPlatform } from '../../platforms/index.js';
import type { CliIO } from '../../agent/cli/io.js';

const linux = existsSync('/proc/stat');
const noSleep = async (): Promise<void> => {};

describe.runIf(linux)('the gate on this machine under a synthetic background load', () => {
  // One busy child per 16 CPUs (at least one): >= 6% of the machine when each gets a CPU, whatever its size.
  const busy: ChildProcess[] = [];
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-perf-gate-'));
  beforeAll(async () => {
    const count = Math.max(1, Math.ceil(os.availableParallelism() / 16));
    for (let i = 0; i < count; i++)
      busy.push(spawn(process.execPath, ['-e', 'process.stdout.write("go\\n"); for (;;) {}'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    await Promise.all(busy.map((c) => new Promise((resolve) => c.stdout!.once('data', resolve))));
  });
  afterAll(() => {
    for (const c of busy) c.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses, and names a busy child among the busiest processes', async () => {
    const probe = currentQuietHostProbe();
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const err = await quietHostGate({ probe, sleep }, { mode: 'refuse', windowMs: 1000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('E_PERF_NOISY_HOST');
    const report = (err as { report: GateReport }).report;
    expect(report.backgroundPercent).toBeGreaterThanOrEqual(3);
    expect(report.problems[0]).toMatch(/^background CPU [\d.]+% of the machine \(limit 3%\)$/);
    const child = report.busyProcesses.find((p) => busy.some((c) => c.pid === p.pid));
    expect(child, JSON.stringify(report.busyProcesses)).toBeDefined();
    // on an idle host it has a whole CPU; on a shared one (this machine) a share of one, still well above 3%
    expect(child!.cpuPercent).toBeGreaterThan(3);
  });

  it('makes bbagent perf run exit 1 before it runs the command', async () => {
    const err: string[] = [];
    const io: CliIO = { out: () => {}, err: (l) => err.push(l), env: { PATH: process.env['PATH'] ?? '' } };
    const marker = path.join(tmp, 'ran');
    const code = await perfRunCommand(['--name', 'x', '--repeat', '2', '--quiet-host', 'refuse', '--out', tmp, '--', '/bin/sh', '-c', `touch ${marker}`], io);
    expect(code).toBe(1);
    expect(err.at(-1)).toMatch(/^the host is not quiet enough for a perf run: background CPU/);
    expect(existsSync(marker)).toBe(false);
  });
});

/** A probe whose CPU counters advance by the given busy fractions, one per window (of 2 CPUs). */
function scripted(busyFractions: number[], policy = { governor: 'performance' as string | undefined, boost: false as boolean | undefined }): QuietHostProbe {
  let busy = 0;
  let total = 0;
  let reads = 0;
  return {
    source: 'test',
    cpuTimes() {
      // each window is two reads (before and after): advance on the second
      if (reads++ % 2 === 1) {
        const f = busyFractions.shift() ?? 0;
        busy += 4 * f;
        total += 4;
      }
      return { busy, total, steal: 0 };
    },
    processCpu: () => undefined,
    loadAverage: () => [0.1, 0.1, 0.1],
    cpuPolicy: () => ({ ...policy, smt: false }),
    throttleEvents: () => 0,
    cpuModel: () => 'Test CPU',
    logicalCpus: () => 2,
    memoryBytes: () => 8 * 2 ** 30,
    kernel: () => 'Linux 6.1',
  };
}

describe('the gate with a scripted host', () => {
  const deps = (probe: QuietHostProbe): Parameters<typeof quietHostGate>[0] => ({ probe, sleep: noSleep, ownCpuSeconds: () => 0 });

  it('passes a quiet host and is off when asked', async () => {
    const r = await quietHostGate(deps(scripted([0.01])), { mode: 'refuse' });
    expect(r?.quiet).toBe(true);
    expect(r?.backgroundPercent).toBe(1);
    expect(await quietHostGate(deps(scripted([0.9])), { mode: 'off' })).toBeUndefined();
  });

  it('refuses at 3% background load', async () => {
    await expect(quietHostGate(deps(scripted([0.03])), { mode: 'refuse' })).rejects.toThrow(/background CPU 3\.0% of the machine \(limit 3%\)/);
  });

  it('waits through noisy windows in wait mode, and gives up after its limit', async () => {
    const noisy: number[] = [];
    const r = await quietHostGate(deps(scripted([0.5, 0.2, 0.0])), { mode: 'wait', windowMs: 0, onNoisy: (rep) => noisy.push(rep.backgroundPercent) });
    expect(noisy).toEqual([50, 20]);
    expect(r?.samples).toBe(3);
    await expect(quietHostGate(deps(scripted([0.5, 0.5])), { mode: 'wait', windowMs: 10, waitMaxMs: 5 })).rejects.toThrow(
      /after waiting 0 s for a quiet window/,
    );
  });

  it('reports the governor and boost as warnings, and in the fingerprint', async () => {
    const probe = scripted([0], { governor: 'powersave', boost: true });
    const r = await quietHostGate(deps(probe), { mode: 'refuse' });
    expect(r?.warnings).toEqual(["CPU frequency governor is 'powersave', not 'performance'", 'CPU boost (turbo) is on']);
    const fp = machineFingerprint(probe, '1.2.3');
    expect(fp).toMatchObject({ cpuModel: 'Test CPU', governor: 'powersave', boost: true, smt: false, memoryGiB: 8, agentVersion: '1.2.3' });
    expect(fp.id).toMatch(/^[0-9a-f]{12}$/);
    expect(machineFingerprint(scripted([0]), '1.2.3').id).not.toBe(fp.id);
  });
});

describe('rechecking the host between replicates (--recheck-every)', () => {
  const run = (probe: QuietHostProbe, mode: 'refuse' | 'wait', progress: string[] = []): ReturnType<typeof runPerf> =>
    runPerf(
      {
        name: 'recheck',
        argv: ['true'],
        cwd: os.tmpdir(),
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
        repeat: 6,
        warmup: 0,
        filter: 'median',
        quietHost: mode,
        recheckEvery: 2,
        framework: 'test',
        onProgress: (l) => progress.push(l),
      },
      { processControl: currentPlatform(), probe, agentVersion: 'test', sleep: noSleep },
    );

  it('refuse: a host that turns busy mid-run fails the run, naming the replicates it may have spoiled', async () => {
    // windows: the gate (quiet), after replicate 2 (quiet), after replicate 4 (busy)
    const err = await run(scripted([0, 0, 0.5]), 'refuse').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as AgentError).code).toBe('E_PERF_NOISY_HOST');
    expect((err as AgentError).message).toMatch(
      /^after replicate 4 \(replicates 3\.\.4 may be affected\), the host is not quiet enough for a perf run: background CPU 50\.0%/,
    );
    // the gate subtracts the test process's own CPU over the window: about, not exactly, 50
    expect((err as { report: GateReport }).report.backgroundPercent).toBeCloseTo(50, 0);
  });

  it('wait: waits for quiet, goes on, and lists the replicates measured while it was busy as suspect', async () => {
    const progress: string[] = [];
    const result = await run(scripted([0, 0, 0.5, 0.2, 0]), 'wait', progress);
    expect(result.replicatesRun).toBe(6);
    expect(result.gateRechecks.map((r) => [r.afterReplicate, r.quiet, r.samples, Math.round(r.backgroundPercent), r.suspect])).toEqual([
      [2, true, 1, 0, []],
      [4, false, 3, 50, [2, 3]],
    ]);
    expect(progress).toContain('quiet-host recheck after replicate 4: was noisy (background CPU 50.0% of the machine (limit 3%)); replicates 3..4 are suspect');
  });

  it('is refused with --quiet-host off', async () => {
    const progress: string[] = [];
    const r = await perfRunCommand(['--name', 'x', '--quiet-host', 'off', '--recheck-every', '2', '--', 'true'], {
      out: () => {},
      err: (l) => progress.push(l),
      env: {},
    });
    expect(r).toBe(2);
    expect(progress[0]).toMatch(/--recheck-every samples the host between replicates: not with --quiet-host off/);
  });
});

describe('the Linux probe on a fabricated /proc and /sys', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'bbagent-perf-root-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const put = (file: string, text: string): void => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  };

  it('reads the counters, the policy, throttling and processes', () => {
    put('proc/stat', 'cpu  100 20 30 800 10 5 5 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n');
    put('proc/loadavg', '0.50 0.40 0.30 1/200 1234\n');
    put('proc/42/stat', '42 (my (odd) proc) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0\n');
    put('proc/self/stat', 'not a process');
    put('proc/cpuinfo', 'processor\t: 0\nmodel name\t: Fancy CPU 9000\n');
    put('proc/meminfo', 'MemTotal:       16384000 kB\n');
    put('sys/devices/system/cpu/cpu0/cpufreq/scaling_governor', 'performance\n');
    put('sys/devices/system/cpu/cpu1/cpufreq/scaling_governor', 'powersave\n');
    put('sys/devices/system/cpu/intel_pstate/no_turbo', '1\n');
    put('sys/devices/system/cpu/smt/active', '1\n');
    put('sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count', '3\n');
    put('sys/devices/system/cpu/cpu1/thermal_throttle/package_throttle_count', '4\n');
    const p = linuxQuietHostProbe(root);
    expect(p.cpuTimes()).toEqual({ busy: 1.6, total: 10, steal: 0.3 });
    expect(p.loadAverage()).toEqual([0.5, 0.4, 0.3]);
    expect(p.cpuPolicy()).toEqual({ governor: 'performance/powersave', boost: false, smt: true });
    expect(p.throttleEvents()).toBe(7);
    expect([...p.processCpu()!.entries()]).toEqual([[42, { name: 'my (odd) proc', seconds: 3 }]]);
    expect(p.cpuModel()).toBe('Fancy CPU 9000');
    expect(p.memoryBytes()).toBe(16384000 * 1024);
    expect(parseProcessStat('garbage')).toBeUndefined();
  });
});
