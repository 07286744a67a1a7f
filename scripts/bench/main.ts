// scripts/bench/run: bbagent against buildbot-worker 3.7, side by side against one real Buildbot 3.7 master on
// loopback, over the same protocol. Prints (or writes) the markdown table of docs/performance.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BUNDLE, REPO_ROOT } from '../harness/bbagent-worker.js';
import { BuildbotMaster, type Protocol } from '../harness/master.js';
import { masterDeflateConfig } from '../harness/master-deflate.js';
import { installCopy, resolveBbagent, type BbagentRun } from './bbagent-exe.js';
import { benchBuilds, FULL_SIZES, payloadDeflateRatio, QUICK_SIZES, type BenchBuild, type WorkerKind } from './builds.js';
import { MasterEvents } from './events.js';
import { masterProfileConfig } from './master-profile.js';
import { assertSingleProcess, clockTicksPerSecond } from './metrics.js';
import { renderReport, type BuildRuns } from './report.js';
import { builderName, PASSWORD, runOnce, workerDirs, type BenchEnv, type RunOutcome } from './runner.js';

const USAGE = `Usage: scripts/bench/run [options]

Runs every benchmark build once on buildbot-worker 3.7 and once on bbagent against a local Buildbot 3.7
master, and prints a markdown table of the medians (master CPU/MiB, worker CPU/MiB, peak RSS, bytes on the
wire, first-output latency, transfer throughput, wall time) with the ratio bbagent / buildbot-worker.

Options:
  --protocol msgpack|pb   worker protocol (default msgpack)
  --repeat N              runs per build and worker; the table shows medians (default 3)
  --only NAME[,NAME...]   run only these builds (full name like stdout-50MiB, or the family: stdout,
                          trickle, budget, steps, upload, download, dirupload, first-output,
                          quiet)
  --quick                 smoke run: --repeat 1 and smaller sizes
  --write                 write the report to docs/performance.md
  --out FILE              write the report to FILE
  --no-deflate            msgpack: skip the second pass of the log builds (bbagent only) against a master
                          that accepts permessage-deflate
  --bbagent sea|bundle|PATH  which bbagent runs: sea (the default) is the single executable users install,
                          dist/bbagent-<os>-<arch>, built first when missing or older than its sources;
                          bundle is build/bbagent.cjs on this Node; or the path of an executable
  --bbagent-env NAME=VALUE  extra environment for bbagent, e.g. BBAGENT_OUTPUT_BATCH_BYTES=524288
                          (repeatable; the report's command line shows it)
  --smaps                 also break each worker's RSS down by mapping (/proc/<pid>/smaps) at idle and at
                          its peak, and bbagent's V8 heap spaces (a preloaded probe): the sampling costs
                          the workers CPU, so CPU figures of such a run are not comparable
  --master-profile DIR    run cProfile in every thread of the master and write, for each run, where its
                          reactor and database threads spent their time to DIR/<build>-<worker>-<n>.txt
                          (profiling slows the master: CPU figures of such a run are not comparable)
  --settle SECONDS         before each build, let the freshly started worker settle: wait until SECONDS after
                          it attached, then until it has used no CPU for 1 s (both workers alike; default 0:
                          the build starts once master and worker have been idle for 0.3 s). The start-up
                          work a process finishes after attaching then stays out of the build's figures
  --keep                  keep the scratch directory (master, workers, logs)
  -h, --help              show this help`;

interface Options {
  protocol: Protocol;
  repeat: number;
  only: string[];
  quick: boolean;
  out: string | undefined;
  keep: boolean;
  /** msgpack: also measure the log builds with a master that accepts permessage-deflate. */
  deflate: boolean;
  /** Extra environment for bbagent (its BBAGENT_* settings), for tuning experiments. */
  bbagentEnv: Record<string, string>;
  /** --bbagent: sea, bundle or a path. */
  bbagent: string;
  smaps: boolean;
  /** --settle: seconds after attaching before a build (0: none). */
  settleS: number;
  /** --master-profile: the directory the master's per-run profiles go to. */
  masterProfile: string | undefined;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Options | 'help' {
  const opts: Options = {
    protocol: 'msgpack',
    repeat: 3,
    only: [],
    quick: false,
    out: undefined,
    keep: false,
    deflate: true,
    bbagentEnv: {},
    bbagent: 'sea',
    smaps: false,
    settleS: 0,
    masterProfile: undefined,
  };
  let repeatSet = false;
  let write = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--protocol': {
        const p = value();
        if (p !== 'msgpack' && p !== 'pb') throw new UsageError(`--protocol must be msgpack or pb, not ${JSON.stringify(p)}`);
        opts.protocol = p;
        break;
      }
      case '--repeat': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1) throw new UsageError('--repeat must be a positive integer');
        opts.repeat = n;
        repeatSet = true;
        break;
      }
      case '--only':
        opts.only.push(...value().split(',').filter(Boolean));
        break;
      case '--quick':
        opts.quick = true;
        break;
      case '--write':
        write = true;
        break;
      case '--out':
        opts.out = value();
        break;
      case '--keep':
        opts.keep = true;
        break;
      case '--bbagent-env': {
        const v = value();
        const eq = v.indexOf('=');
        if (eq <= 0) throw new UsageError(`--bbagent-env takes NAME=VALUE, not ${JSON.stringify(v)}`);
        opts.bbagentEnv[v.slice(0, eq)] = v.slice(eq + 1);
        break;
      }
      case '--smaps':
        opts.smaps = true;
        break;
      case '--settle': {
        const v = Number(value());
        if (!Number.isFinite(v) || v < 0 || v > 600) throw new UsageError(`--settle takes seconds from 0 to 600`);
        opts.settleS = v;
        break;
      }
      case '--master-profile':
        opts.masterProfile = path.resolve(value());
        break;
      case '--bbagent':
        opts.bbagent = value();
        break;
      case '--no-deflate':
        opts.deflate = false;
        break;
      default:
        throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (opts.quick && !repeatSet) opts.repeat = 1;
  if (write && opts.out === undefined) opts.out = path.join(REPO_ROOT, 'docs', 'performance.md');
  return opts;
}

function selectBuilds(all: BenchBuild[], only: string[]): BenchBuild[] {
  if (only.length === 0) return all;
  const unknown = only.filter((o) => !all.some((b) => b.name === o || b.family === o));
  if (unknown.length) throw new UsageError(`unknown build(s) ${unknown.join(', ')}; builds: ${all.map((b) => b.name).join(', ')}`);
  return all.filter((b) => only.includes(b.name) || only.includes(b.family));
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .trim()
        .split('\n')[0] ?? '?'
    );
  } catch {
    return '?';
  }
}

function machineInfo(): string[] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown CPU';
  const memGiB = (os.totalmem() / 1024 ** 3).toFixed(1);
  return [`${os.availableParallelism()} CPUs (nproc), ${model}`, `${memGiB} GiB RAM`, `Linux ${os.release()}`, `CLK_TCK ${clockTicksPerSecond()}`];
}

function versions(bbagent: BbagentRun): string[] {
  const buildbot = execFileSync('buildbot', ['--version'], { encoding: 'utf8' });
  const worker = execFileSync('buildbot-worker', ['--version'], { encoding: 'utf8' });
  const pick = (text: string, re: RegExp): string => re.exec(text)?.[1] ?? '?';
  return [
    bbagent.executable ? firstLine(bbagent.executable, ['--version']) : `${firstLine(process.execPath, [BUNDLE, '--version'])} (node ${process.version})`,
    `Buildbot master ${pick(buildbot, /Buildbot version: (\S+)/)}`,
    `buildbot-worker ${pick(worker, /worker version: (\S+)/)}`,
    `Twisted ${pick(buildbot, /Twisted version: (\S+)/)}`,
    firstLine('/usr/bin/python3', ['--version']),
    firstLine('ss', ['-V']),
  ];
}

const WORKER_LABEL: Record<WorkerKind, string> = { ref: 'buildbot-worker', bb: 'bbagent' };

function describeRun(build: BenchBuild, r: RunOutcome, deflate: boolean): string {
  const m = r.metrics;
  const parts = [`${build.name.padEnd(16)} ${(WORKER_LABEL[r.worker] + (deflate ? '+deflate' : '')).padEnd(15)} run ${r.repeat}`];
  if (m) {
    parts.push(
      `master ${m.masterCpuS.toFixed(2)} s (reactor ${m.masterMainCpuS.toFixed(2)} s)`,
      `worker ${m.workerCpuS.toFixed(2)} s`,
      `rss ${(m.peakRssBytes / 1024 ** 2).toFixed(0)} MiB`,
    );
    parts.push(`wire ${(m.wireBytes / 1024 ** 2).toFixed(2)} MiB`, `wall ${m.wallS.toFixed(2)} s`);
    if (m.stepS !== undefined) parts.push(`step ${m.stepS.toFixed(2)} s`);
    if (m.latencyS !== undefined) parts.push(`latency ${m.latencyS.toFixed(3)} s`);
    parts.push(`other load ${(m.otherLoad * 100).toFixed(0)}%`);
  }
  parts.push(`${r.ok ? 'ok' : 'FAILED'}: ${r.detail}`);
  return parts.join('  ');
}

/** Builds whose wire bytes are measured again with permessage-deflate (log output compresses; random files do not). */
// quiet: the deflate master's own fixed cost of a build, for bbagent (the other figures are compared with it)
const DEFLATE_FAMILIES = new Set<BenchBuild['family']>(['stdout', 'trickle', 'quiet']);
const WORKER_NAMES: Record<WorkerKind, string> = { ref: 'buildbot-worker', bb: 'bbagent' };

interface Suite {
  /** Name of the master's directory under the scratch directory. */
  label: string;
  builds: BenchBuild[];
  kinds: WorkerKind[];
  /** The master accepts permessage-deflate (msgpack), and bbagent must use it. */
  deflate: boolean;
}

function masterExtraConfig(deflate: boolean, profileDir: string | undefined): string {
  const parts = [deflate ? masterDeflateConfig() : '', profileDir ? masterProfileConfig(profileDir) : ''];
  return parts.filter(Boolean).join('\n');
}

/** Starts a master for `suite`, runs each build `--repeat` times per worker kind, stops the master. */
async function runSuite(opts: Options, bbagent: BbagentRun, scratch: string, suite: Suite): Promise<BuildRuns[]> {
  const masterDir = path.join(scratch, suite.label);
  const names = WORKER_NAMES;
  const runnable = suite.builds.filter((b) => !b.unsupported?.(opts.protocol));
  const results: BuildRuns[] = [];
  let master: BuildbotMaster | undefined;
  let events: MasterEvents | undefined;
  try {
    master = await BuildbotMaster.start({
      dir: masterDir,
      protocol: opts.protocol,
      workers: suite.kinds.map((w) => ({ name: names[w], password: PASSWORD })),
      builders: runnable.flatMap((b) =>
        suite.kinds.map((w) => ({ name: builderName(b, w), workernames: [names[w]], steps: b.steps(masterDir, builderName(b, w)) })),
      ),
      ...(suite.deflate || opts.masterProfile ? { extraConfig: masterExtraConfig(suite.deflate, opts.masterProfile) } : {}),
    });
    const masterPid = master.pid;
    if (masterPid === undefined) throw new Error('the master is not running');
    assertSingleProcess(masterPid, /^python3/, 'the Buildbot master');
    events = await MasterEvents.connect(master.wwwPort);
    const env: BenchEnv = {
      master,
      events,
      masterPid,
      masterDir,
      scratch,
      protocol: opts.protocol,
      workerDirs: workerDirs(scratch),
      workerNames: names,
      expectDeflate: suite.deflate,
      bbagentEnv: opts.bbagentEnv,
      bbagent,
      smaps: opts.smaps,
      settleS: opts.settleS,
      ...(opts.masterProfile ? { masterProfile: opts.masterProfile } : {}),
      broken: {},
    };
    for (const build of suite.builds) {
      const unsupported = build.unsupported?.(opts.protocol);
      if (unsupported) {
        console.log(`${build.name.padEnd(16)} n/a over ${opts.protocol}: ${unsupported}`);
        results.push({ build, unsupported, runs: [] });
        continue;
      }
      const runs: RunOutcome[] = [];
      for (let repeat = 1; repeat <= opts.repeat; repeat++) {
        // alternate who goes first, so a drift of the master (its database grows) hits both alike
        const order = repeat % 2 === 1 ? suite.kinds : [...suite.kinds].reverse();
        for (const kind of order) {
          if (kind === 'ref' && repeat > (build.maxRefRuns ?? Infinity)) continue;
          const outcome = await runOnce(env, build, kind, repeat);
          runs.push(outcome);
          console.log(describeRun(build, outcome, suite.deflate));
          if (outcome.memory) console.log(outcome.memory.join('\n'));
          if (!master.running) throw new Error(`the master exited\n${master.logTail(30)}`);
        }
      }
      results.push({ build, runs });
    }
  } finally {
    events?.close();
    await master?.stop();
  }
  return results;
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv);
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const opts = parsed;
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run node scripts/build.mjs (scripts/bench/run does)`);
  const bbagent = resolveBbagent(opts.bbagent, REPO_ROOT, BUNDLE, (s) => console.log(s));
  const sizes = opts.quick ? QUICK_SIZES : FULL_SIZES;
  const builds = selectBuilds(benchBuilds(sizes), opts.only);
  const started = performance.now();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const command = ['scripts/bench/run', ...argv].join(' ');
  const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const loadAtStart = loadavg();

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-bench-'));
  if (bbagent.kind === 'sea' && bbagent.executable) {
    // run it as installed, not as the build wrote it (installCopy: the page cache's folios change its RSS)
    const installed = path.join(scratch, path.basename(bbagent.executable));
    installCopy(bbagent.executable, installed);
    bbagent.executable = installed;
    bbagent.label += ', copied as installed (64 KiB writes)';
  }
  const cleanup = (): void => {
    if (!opts.keep) rmSync(scratch, { recursive: true, force: true });
  };
  // the master and the workers run in their own process groups: Ctrl-C reaches only us, and exiting runs
  // the harness's exit hook, which kills their groups
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\nbench: ${sig}, stopping everything`);
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  // asked now: the installed copy goes with the scratch directory
  const versionLines = versions(bbagent);
  const runnable = builds.filter((b) => !b.unsupported?.(opts.protocol));
  const deflateBuilds = opts.deflate && opts.protocol === 'msgpack' ? runnable.filter((b) => DEFLATE_FAMILIES.has(b.family)) : [];
  let results: BuildRuns[];
  let deflateResults: BuildRuns[] | undefined;
  try {
    console.log(
      `== bench: ${builds.map((b) => b.name).join(', ')} over ${opts.protocol}, ${opts.repeat} run(s) each; bbagent is ${bbagent.label}; scratch ${scratch}`,
    );
    results = await runSuite(opts, bbagent, scratch, { label: 'master', builds, kinds: ['ref', 'bb'], deflate: false });
    if (deflateBuilds.length > 0) {
      // buildbot-worker offers no permessage-deflate, so only bbagent changes: its runs are compared with
      // buildbot-worker's from the stock master above
      console.log('== again with a master that accepts permessage-deflate (docs/output.md), bbagent only');
      deflateResults = await runSuite(opts, bbagent, scratch, { label: 'master-deflate', builds: deflateBuilds, kinds: ['bb'], deflate: true });
    }
  } finally {
    cleanup();
  }

  const report = renderReport(
    {
      date,
      command,
      protocol: opts.protocol,
      repeat: opts.repeat,
      quick: opts.quick,
      machine: machineInfo(),
      versions: versionLines,
      bbagent: bbagent.label,
      durationS: (performance.now() - started) / 1000,
      load: [loadAtStart, loadavg()],
      payloadDeflateRatio: payloadDeflateRatio(),
    },
    results,
    deflateResults,
  );
  if (opts.out) {
    mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
    writeFileSync(opts.out, report);
    console.log(`\n== wrote ${opts.out}`);
  } else console.log(`\n${report}`);
  const failures = [...results, ...(deflateResults ?? [])].flatMap((r) => r.runs).filter((r) => !r.ok).length;
  return failures > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`bench: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
