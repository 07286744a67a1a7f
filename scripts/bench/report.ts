// Turns the runs into the markdown of docs/performance.md: medians per build, worker and metric, the
// bbagent / buildbot-worker ratio, the issue's target and PASS / MISSED (a failed run makes a FAILURE row).
import { MiB, type BenchBuild, type Family, type WorkerKind } from './builds.js';
import { median } from './metrics.js';
import type { RunMetrics, RunOutcome } from './runner.js';

export interface BuildRuns {
  build: BenchBuild;
  /** Set when the build cannot run over this protocol. */
  unsupported?: string;
  runs: RunOutcome[];
}

export interface ReportInfo {
  date: string;
  command: string;
  protocol: string;
  repeat: number;
  quick: boolean;
  machine: string[];
  versions: string[];
  durationS: number;
  /** What zlib level 1 makes of the generated log output (the best deflate can be expected to do). */
  payloadDeflateRatio: number;
  /** Which bbagent ran (the single executable, the bundle, another executable). */
  bbagent: string;
  /** /proc/loadavg at the start and the end. */
  load: [string, string];
}

type Target =
  | { kind: 'ratio-max'; value: number } // bbagent / buildbot-worker <= value
  | { kind: 'ratio-min'; value: number } // bbagent / buildbot-worker >= value
  | { kind: 'abs-max'; value: number; unit: string } // bbagent's value <= value
  | { kind: 'payload-max'; value: number }; // bbagent's wire bytes / payload <= value

interface MetricSpec {
  label: string;
  value(m: RunMetrics, build: BenchBuild): number | undefined;
  format(v: number, build: BenchBuild): string;
  target?: Target;
  /** A note for the target column (e.g. "with deflate"). */
  targetNote?: string;
}

const perMiB = (seconds: number, build: BenchBuild): number => seconds / (build.payloadBytes / MiB);
const fmtS = (v: number): string => (v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3));
const fmtRatio = (r: number): string => `${r < 0.1 ? r.toFixed(3) : r.toFixed(2)}×`;
const fmtMiBs = (v: number): string => `${(v / MiB).toFixed(v >= 10 * MiB ? 1 : 2)} MiB`;

const masterCpuPerMiB = (target?: number): MetricSpec => ({
  label: 'master CPU / MiB',
  value: (m, b) => perMiB(m.masterCpuS, b),
  format: (v) => `${fmtS(v)} s`,
  ...(target !== undefined ? { target: { kind: 'ratio-max', value: target } as const } : {}),
});
const workerCpuPerMiB: MetricSpec = {
  label: 'worker CPU / MiB',
  value: (m, b) => perMiB(m.workerCpuS, b),
  format: (v) => `${fmtS(v)} s`,
  target: { kind: 'ratio-max', value: 0.5 },
};
const masterCpuTotal = (target?: number): MetricSpec => ({
  label: 'master CPU',
  value: (m) => m.masterCpuS,
  format: (v) => `${fmtS(v)} s`,
  ...(target !== undefined ? { target: { kind: 'ratio-max', value: target } as const } : {}),
});
const workerCpuTotal: MetricSpec = { label: 'worker CPU', value: (m) => m.workerCpuS, format: (v) => `${fmtS(v)} s` };
const peakRss: MetricSpec = {
  label: 'worker peak RSS',
  value: (m) => m.peakRssBytes,
  format: (v) => fmtMiBs(v),
  target: { kind: 'ratio-max', value: 1.0 },
};
const wire = (target?: number): MetricSpec => ({
  label: 'bytes on the wire',
  value: (m) => m.wireBytes,
  format: (v, b) => (b.payloadBytes > 0 ? `${fmtMiBs(v)} (${(v / b.payloadBytes).toFixed(3)}× payload)` : `${(v / 1024).toFixed(1)} KiB`),
  ...(target !== undefined ? { target: { kind: 'payload-max', value: target } as const, targetNote: 'with deflate' } : {}),
});
const wall = (target?: number): MetricSpec => ({
  label: 'wall time',
  value: (m) => m.wallS,
  format: (v) => `${fmtS(v)} s`,
  ...(target !== undefined ? { target: { kind: 'ratio-max', value: target } as const } : {}),
});
const throughput: MetricSpec = {
  label: 'throughput (step)',
  value: (m, b) => (m.stepS ? b.payloadBytes / MiB / m.stepS : undefined),
  format: (v) => `${v.toFixed(1)} MiB/s`,
  target: { kind: 'ratio-min', value: 1.5 },
};
const latency: MetricSpec = {
  label: 'first-output latency',
  value: (m) => m.latencyS,
  format: (v) => `${v.toFixed(3)} s`,
  target: { kind: 'abs-max', value: 0.5, unit: 's' },
};

const METRICS: Record<Family, MetricSpec[]> = {
  stdout: [masterCpuPerMiB(0.6), workerCpuPerMiB, peakRss, wire(0.3), wall(1.0)],
  trickle: [masterCpuPerMiB(0.5), workerCpuPerMiB, peakRss, wire(0.3), wall()],
  budget: [masterCpuTotal(0.05), workerCpuPerMiB, peakRss, wire(), wall()],
  steps: [masterCpuTotal(), workerCpuTotal, peakRss, wire(), wall(0.9)],
  upload: [throughput, masterCpuPerMiB(0.6), workerCpuPerMiB, peakRss, wire(), wall()],
  download: [throughput, masterCpuPerMiB(0.6), workerCpuPerMiB, peakRss, wire(), wall()],
  dirupload: [throughput, masterCpuPerMiB(0.6), workerCpuPerMiB, peakRss, wire(), wall()],
  'first-output': [latency, wall()],
  quiet: [masterCpuTotal(), workerCpuTotal, wall()],
};

const WORKER_LABEL: Record<WorkerKind, string> = { ref: 'buildbot-worker', bb: 'bbagent' };

function targetText(t: Target | undefined, note?: string): string {
  if (!t) return '—';
  const text =
    t.kind === 'ratio-max'
      ? `≤ ${t.value}×`
      : t.kind === 'ratio-min'
        ? `≥ ${t.value}×`
        : t.kind === 'abs-max'
          ? `≤ ${t.value} ${t.unit}`
          : `≤ ${t.value}× payload`;
  return note ? `${text} (${note})` : text;
}

function judge(t: Target | undefined, ref: number, bb: number, build: BenchBuild, note?: string): string {
  if (!t) return '—';
  // the wire target holds with permessage-deflate: a run without it (PB, or msgpack's first pass) is not judged
  if (note === 'with deflate' && !build.name.endsWith(' +deflate')) return 'n/a';
  const ratio = bb / ref;
  const pass =
    t.kind === 'ratio-max'
      ? ratio <= t.value
      : t.kind === 'ratio-min'
        ? ratio >= t.value
        : t.kind === 'abs-max'
          ? bb <= t.value
          : bb / build.payloadBytes <= t.value;
  return pass ? 'PASS' : 'MISSED';
}

function medianOf(runs: RunOutcome[], spec: MetricSpec, build: BenchBuild): number | undefined {
  const values = runs.map((r) => (r.metrics ? spec.value(r.metrics, build) : undefined)).filter((v): v is number => v !== undefined && Number.isFinite(v));
  return values.length ? median(values) : undefined;
}

function row(cells: string[]): string {
  return `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
}

/** The result table: one row per build × metric. Also returns notes (failures, n/a, budget behaviour). */
export function resultTable(results: BuildRuns[]): { table: string; notes: string[] } {
  const lines = [
    row(['build', 'metric', 'buildbot-worker', 'bbagent', 'ratio', 'target', 'result']),
    row(['---', '---', '---:', '---:', '---:', '---', '---']),
  ];
  const notes: string[] = [];
  for (const { build, unsupported, runs } of results) {
    if (unsupported) {
      lines.push(row([build.name, 'all', 'n/a', 'n/a', '—', '—', 'n/a']));
      notes.push(`**${build.name}**: not run: ${unsupported}.`);
      continue;
    }
    const byWorker = (w: WorkerKind): RunOutcome[] => runs.filter((r) => r.worker === w);
    const failed = runs.filter((r) => !r.ok);
    if (failed.length > 0) {
      lines.push(
        row([
          build.name,
          'data arrived',
          byWorker('ref').every((r) => r.ok) ? 'yes' : 'NO',
          byWorker('bb').every((r) => r.ok) ? 'yes' : 'NO',
          '—',
          'all data',
          'FAILURE',
        ]),
      );
      for (const f of failed) notes.push(`**${build.name}** FAILURE (${WORKER_LABEL[f.worker]}, run ${f.repeat}): ${f.detail}`);
      if (failed.length === runs.length) continue;
    }
    const ok = (w: WorkerKind): RunOutcome[] => byWorker(w).filter((r) => r.ok);
    for (const spec of METRICS[build.family]) {
      const ref = medianOf(ok('ref'), spec, build);
      const bb = medianOf(ok('bb'), spec, build);
      const refText = ref === undefined ? '—' : spec.format(ref, build);
      const bbText = bb === undefined ? '—' : spec.format(bb, build);
      const ratio = ref !== undefined && bb !== undefined && ref > 0 ? fmtRatio(bb / ref) : '—';
      // a build with a failed run shows its numbers, but cannot pass anything
      const verdict =
        failed.length > 0
          ? 'FAILURE'
          : ref !== undefined && bb !== undefined
            ? judge(spec.target, ref, bb, build, spec.targetNote)
            : spec.target
              ? 'MISSED'
              : '—';
      lines.push(row([build.name, spec.label, refText, bbText, ratio, targetText(spec.target, spec.targetNote), verdict]));
    }
    if (build.family === 'budget') {
      const delivered = (w: WorkerKind): number | undefined => {
        const v = ok(w)
          .map((r) => r.deliveredBytes)
          .filter((x): x is number => x !== undefined);
        return v.length ? median(v) : undefined;
      };
      const refD = delivered('ref');
      const bbD = delivered('bb');
      // limited: every bbagent run stayed within burst + rate x its step time (+ one batch)
      const limited = ok('bb').length > 0 && ok('bb').every((r) => r.limited === true);
      lines.push(
        row([
          build.name,
          'live output stored on the master (without markers and their tails)',
          refD === undefined ? '—' : fmtMiBs(refD),
          bbD === undefined ? '—' : fmtMiBs(bbD),
          refD && bbD !== undefined ? fmtRatio(bbD / refD) : '—',
          '≤ 10 MiB burst + 64 KiB/s × step time (~11 MiB) + markers',
          failed.length > 0 ? 'FAILURE' : limited ? 'PASS' : 'MISSED',
        ]),
      );
      const bbDetails = ok('bb').map((r) => r.detail);
      if (!limited && ok('bb').length > 0)
        notes.push(
          `**${build.name}**: bbagent did not keep the live output within the budget (per-step budgets, issue 4): ${[...new Set(bbDetails)].join('; ')}.`,
        );
      else if (bbDetails.length) {
        const more = bbDetails.length > 1 ? ` (run 1; every run is in the table at the end)` : '';
        notes.push(`**${build.name}**: bbagent limited the live log in all ${bbDetails.length} run(s): ${bbDetails[0]!.replace(/^limited: /, '')}${more}.`);
      }
    }
    if (build.maxRefRuns !== undefined && byWorker('ref').length < byWorker('bb').length) {
      notes.push(
        `**${build.name}**: buildbot-worker ran ${byWorker('ref').length} time(s), bbagent ${byWorker('bb').length}: a full-size buildbot-worker run takes minutes and is long enough to be its own average.`,
      );
    }
    // the same note from several runs is listed once, with the runs it came from
    const grouped = new Map<string, string[]>();
    for (const r of runs) for (const n of r.notes) grouped.set(n, [...(grouped.get(n) ?? []), `${WORKER_LABEL[r.worker]} run ${r.repeat}`]);
    for (const [n, where] of grouped) notes.push(`${build.name}: ${n} (${where.join(', ')})`);
  }
  return { table: lines.join('\n'), notes };
}

/** Every run, for judging the spread behind the medians. */
export function runsTable(results: BuildRuns[]): string {
  const lines = [
    row([
      'build',
      'worker',
      'run',
      'master CPU',
      'of it reactor',
      'worker CPU',
      'step CPU',
      'peak RSS',
      'wire',
      'wall',
      'step / latency',
      'other load',
      'verified',
    ]),
    row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---']),
  ];
  for (const { build, runs } of results) {
    for (const r of runs) {
      const m = r.metrics;
      lines.push(
        row([
          build.name,
          WORKER_LABEL[r.worker],
          String(r.repeat),
          m ? `${fmtS(m.masterCpuS)} s` : '—',
          m ? `${m.masterCpuS > 0 ? Math.round((m.masterMainCpuS / m.masterCpuS) * 100) : 0}%` : '—',
          m ? `${fmtS(m.workerCpuS)} s` : '—',
          m ? `${fmtS(m.stepCpuS)} s` : '—',
          m ? fmtMiBs(m.peakRssBytes) : '—',
          m ? fmtMiBs(m.wireBytes) : '—',
          m ? `${fmtS(m.wallS)} s` : '—',
          m?.latencyS !== undefined ? `${m.latencyS.toFixed(3)} s` : m?.stepS !== undefined ? `${fmtS(m.stepS)} s` : '—',
          m ? `${(m.otherLoad * 100).toFixed(0)}%` : '—',
          `${r.ok ? 'ok' : 'FAILED'}: ${r.detail}`,
        ]),
      );
    }
  }
  return lines.join('\n');
}

const METHOD = (payloadRatio: number): string => `## Method

\`scripts/bench/run\` starts one real Buildbot 3.7 master (Debian's package) on loopback and runs every build
once on buildbot-worker 3.7 and once on bbagent, over the same protocol, one after the other (never at the
same time), \`--repeat\` times, alternating which worker goes first; the table shows medians. Before each run
the benchmark waits (up to 10 s) for the machine's CPUs to be less than 25% busy. Each run starts a fresh
worker process, waits until it is attached and until master and worker have been idle for
300 ms, samples the counters, forces the build, waits for the master's "build finished" event (pushed over
the master's www WebSocket, so no REST polling loads the master while it is measured), waits until the
master and the worker are idle again (their CPU counters stand still for 300 ms), samples again, and only
then checks the data and stops the worker.

- **master CPU**: utime + stime of the master's twistd process (\`/proc/<pid>/stat\`, clock ticks /
  \`getconf CLK_TCK\`), from just before the build is forced until it finished and the master is idle again,
  so the log compression and database work after the last byte counts too. Divided by the payload in MiB.
  The all-runs table splits it: "of it reactor" is the share of the master's main thread (Twisted's
  reactor: protocol decoding, line splitting, events); the rest is its database threads (log chunk
  compression and inserts).
- **worker CPU**: utime + stime of the worker process itself (the python process running twistd for
  buildbot-worker, the single executable or node for bbagent; checked to be the process's executable, with no helper children),
  not of its children: the build step's processes are the same for both.
- **worker peak RSS**: \`VmHWM\` from \`/proc/<pid>/status\` at the end of the run (a fresh process per run).
- **bytes on the wire**: the kernel's counters of the master-side TCP socket of the worker connection,
  from \`ss -tinp\`: \`bytes_received\` (worker → master) + \`bytes_acked\` (master → worker), before and
  after the build; shown with the ratio to the payload.
- **throughput**: payload / duration of the transfer step, timed by the master's step "started" and
  "finished" events.
- **first-output latency**: the step prints \`date +%s.%N\` then sleeps; the log's REST contents are polled
  every 20 ms and the latency is the midpoint of the first request that returned the line minus the printed
  time (the polling adds ~10 ms on average).
- **wall time**: from forcing the build to the master's "build finished" event.
- **quiet** (a 10 s step that prints one line): what a build with one step and one log costs the master
  whatever the worker sends, the fixed part of every per-MiB figure (the trickle's 2 MiB pay it too).
- **Verification**: every log build's stdout is read back from REST (\`/logs/<id>/contents\`, paged,
  channel prefixes stripped) and its line count and sha256 compared with the generated text; uploads and
  downloads by sha256 of the file, the directory upload by the count and sha256 of every file. A run whose
  data did not arrive is a FAILURE row. The budget build sets \`BBAGENT_OUTPUT_RATE=65536\`,
  \`BBAGENT_OUTPUT_BURST=10485760\`, \`BBAGENT_OUTPUT_POLICY=spool\` in the step's environment (buildbot-worker
  ignores them and streams everything); for bbagent the live output the master stored (the stdout lines that
  are not the 20-line tails re-sent after each \`[bbagent] latest N lines:\` marker) may be at most the 10 MiB
  burst plus 64 KiB/s for as long as the step ran, plus one 64 KiB batch.
- **other load** (all runs table): CPU used on the machine during a run by anything but the master, the
  worker and its build steps (this benchmark's own process, other programs), as a share of all CPUs. CPU
  times are little affected by it; wall times, throughput and latency are.
- **Output** is distinct lines of 128 bytes (the 50 MiB stdout build also of 80 and 40 bytes: \`stdout-50MiB-80B\`,
  \`stdout-50MiB-40B\`) that compress like a real build log: words of a 64-word build-log
  vocabulary and small numbers in 256 message bodies picked by a minimal-standard LCG (\`awk\`, or
  \`/usr/bin/python3\` for the trickle: ~20 KiB every 100 ms; the verifier generates the same in
  TypeScript). zlib level 1 makes ${(payloadRatio * 100).toFixed(0)}% of it (apt's term.log on this machine:
  16%). Upload sources are random bytes (incompressible), made before the measured window.
`;

/**
 * The deflate pass ran bbagent only (buildbot-worker offers no permessage-deflate, so a deflate-accepting
 * master changes nothing for it): its runs are paired with buildbot-worker's from the main pass.
 */
function deflateRuns(main: BuildRuns[], deflate: BuildRuns[]): BuildRuns[] {
  return deflate.map((d) => {
    const refRuns = main.find((m) => m.build.name === d.build.name)?.runs.filter((r) => r.worker === 'ref') ?? [];
    return { build: { ...d.build, name: `${d.build.name} +deflate` }, runs: [...refRuns, ...d.runs.filter((r) => r.worker === 'bb')] };
  });
}

/** Where the master's CPU went in the full-fidelity log build: its reactor thread or its database threads. */
function masterSplit(results: BuildRuns[]): string {
  const stdout = results.find((r) => r.build.family === 'stdout' && r.runs.some((x) => x.ok));
  if (!stdout) return '';
  const share = (w: WorkerKind): string => {
    const runs = stdout.runs.filter((r) => r.worker === w && r.ok && r.metrics && r.metrics.masterCpuS > 0);
    if (!runs.length) return '—';
    return `${Math.round(median(runs.map((r) => 1 - r.metrics!.masterMainCpuS / r.metrics!.masterCpuS)) * 100)}%`;
  };
  return `
Where the master's CPU goes: in ${stdout.build.name}, ${share('ref')} (buildbot-worker) and ${share('bb')} (bbagent) of it was
spent outside the master's reactor thread, in its database threads, which store every update the worker
sends as compressed log chunks in SQLite; the reactor thread (protocol decoding, line splitting, events)
used the rest. Per-run numbers are in the table at the end ("of it reactor").
`;
}

export function renderReport(info: ReportInfo, results: BuildRuns[], deflate?: BuildRuns[]): string {
  const { table, notes } = resultTable(results);
  const withDeflate = deflate?.length ? deflateRuns(results, deflate) : undefined;
  const deflateTable = withDeflate ? resultTable(withDeflate) : undefined;
  const deflateSection = deflateTable
    ? `
## With permessage-deflate (msgpack)

Buildbot 3.7's msgpack port accepts no WebSocket extension unless master.cfg patches it (the snippet in
[output.md](output.md), \`scripts/harness/master-deflate.py\`). The log builds ran again, bbagent only, against a
second master with that snippet; buildbot-worker offers no compression, so its column repeats the runs
above. For scale: zlib level 1 over the whole output in one stream gives ${info.payloadDeflateRatio.toFixed(3)}× of the payload.

${deflateTable.table}
${deflateTable.notes.length ? `\n${deflateTable.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`
    : '';
  return `# Performance: bbagent vs buildbot-worker 3.7

Generated by \`scripts/bench/run\` on ${info.date} (${info.protocol}, median of ${info.repeat} run${info.repeat === 1 ? '' : 's'}${info.quick ? ', --quick sizes' : ''}; the whole run took ${Math.round(info.durationS / 60)} min).

Command: \`${info.command}\`

bbagent ran as ${info.bbagent}.

Machine: ${info.machine.join('; ')}; load average ${info.load[0]} at the start, ${info.load[1]} at the end.
Versions: ${info.versions.join('; ')}.

Ratios are bbagent / buildbot-worker. Targets are those of the performance issue; a missed target stays
listed as MISSED.

${table}
${notes.length ? `\nNotes:\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${masterSplit(results)}${deflateSection}
${METHOD(info.payloadDeflateRatio)}
## All runs

${runsTable([...results, ...(withDeflate?.map((d) => ({ ...d, runs: d.runs.filter((r) => r.worker === 'bb') })) ?? [])])}
`;
}
