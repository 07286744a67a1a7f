// `scripts/bench/run suite-parse [--tests N] [--runs R]`: report parsing throughput (results/s) and peak memory
// on generated reports of N tests (default 100k) in JUnit XML (Surefire-shaped, with system-out), mozlog raw lines
// and TAP. Each measurement runs in a fresh child (its peak RSS is its own): once streaming (results counted,
// not kept, as `bbagent suite parse` does) and once keeping every result (what parseReports returns).
// Prints a markdown table: the median of R runs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseReport } from '../../agent/suites/parse/index.js';
import { writeJunit, writeMozlog, writeTap, type GeneratedCounts } from './suites-parse-gen.js';

interface Sample {
  seconds: number;
  /** CPU seconds of the parse (user + system): what the parse costs on a loaded machine. */
  cpuSeconds: number;
  results: number;
  maxRssMiB: number;
  /** Peak RSS before the parse: node and the parser loaded. */
  baselineMiB: number;
}

async function child(file: string, keep: boolean): Promise<void> {
  const baseline = process.resourceUsage().maxRSS;
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const r = await parseReport(file, { keepTests: keep });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const sample: Sample = {
    seconds,
    cpuSeconds,
    results: r.total,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    baselineMiB: baseline / 1024,
  };
  process.stdout.write(`${JSON.stringify(sample)}\n`);
}

function measure(self: string, file: string, keep: boolean, runs: number, expected: number): Sample {
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(process.execPath, [self, '--child', file, keep ? 'keep' : 'stream'], { encoding: 'utf8' });
    const s = JSON.parse(out) as Sample;
    if (s.results !== expected) throw new Error(`${file}: parsed ${s.results} results, generated ${expected}`);
    samples.push(s);
  }
  samples.sort((a, b) => a.seconds - b.seconds);
  return samples[Math.floor(samples.length / 2)]!;
}

function option(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs an integer >= 1`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--child') return child(argv[1]!, argv[2] === 'keep');
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('Usage: scripts/bench/run suite-parse [--tests N] [--runs R]\n');
    return;
  }
  const n = option(argv, '--tests', 100_000);
  const runs = option(argv, '--runs', 3);
  const self = fileURLToPath(import.meta.url);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-bench-parse-'));
  try {
    const inputs: [string, string, (f: string, n: number) => Promise<GeneratedCounts>][] = [
      ['JUnit XML', 'report.xml', (f, k) => writeJunit(f, k)],
      ['mozlog', 'raw.log', writeMozlog],
      ['TAP 13', 'report.tap', writeTap],
    ];
    const baselines: number[] = [];
    const rows = [
      '| format | tests | file MiB | streaming: results/s (wall) | results per CPU-s | MiB/s | peak RSS MiB | keeping results: results/s | peak RSS MiB |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ];
    for (const [label, name, write] of inputs) {
      const file = path.join(dir, name);
      const counts = await write(file, n);
      const mib = statSync(file).size / 2 ** 20;
      const stream = measure(self, file, false, runs, counts.total);
      const keep = measure(self, file, true, runs, counts.total);
      baselines.push(stream.baselineMiB, keep.baselineMiB);
      const rate = (s: Sample): string => Math.round(s.results / s.seconds).toLocaleString('en-US');
      rows.push(
        `| ${label} | ${n.toLocaleString('en-US')} | ${mib.toFixed(1)} | ${rate(stream)} | ${Math.round(stream.results / stream.cpuSeconds).toLocaleString('en-US')} | ${(mib / stream.seconds).toFixed(0)} | ${stream.maxRssMiB.toFixed(0)} | ${rate(keep)} | ${keep.maxRssMiB.toFixed(0)} |`,
      );
    }
    const load = os.loadavg()[0]!.toFixed(2);
    process.stdout.write(
      `${rows.join('\n')}\n\nnode ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${load}; median of ${runs} runs, each in a fresh process (whose RSS before parsing was ${Math.min(...baselines).toFixed(0)}-${Math.max(...baselines).toFixed(0)} MiB).\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`bench suite-parse: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
