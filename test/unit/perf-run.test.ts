// `bbagent perf run` in process, measuring real child processes on this machine: it reports a CV, prints a
// PERFHERDER_DATA line equal to perfherder-data.json, and both artifacts have the fields the brief asks for. The
// Perfherder document is validated by a real JSON-schema validator (ajv) against a schema of our own, written
// from what treeherder's performance-artifact schema requires (required framework/suites, suite name/subtests,
// subtest name/value, value range ±1e12, unit 1-20 characters, extraOptions <= 8 unique items <= 100 characters,
// tags pattern), plus the replicates we add; it also forbids fields we do not mean to send (additionalProperties).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { perfRunCommand } from '../../agent/cli/perf-run.js';
import type { CliIO } from '../../agent/cli/io.js';

const number = { type: 'number', minimum: -1e12, maximum: 1e12 };
const unit = { type: 'string', minLength: 1, maxLength: 20 };
const PERFHERDER_SCHEMA = {
  type: 'object',
  required: ['framework', 'suites'],
  additionalProperties: false,
  properties: {
    framework: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
    suites: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'subtests'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 80 },
          value: number,
          unit,
          lowerIsBetter: { type: 'boolean' },
          extraOptions: { type: 'array', items: { type: 'string', maxLength: 100 }, uniqueItems: true, maxItems: 8 },
          tags: { type: 'array', items: { type: 'string', pattern: '^[a-zA-Z0-9-]{1,24}$' }, uniqueItems: true, maxItems: 14 },
          subtests: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['name', 'value'],
              additionalProperties: false,
              properties: {
                name: { type: 'string', minLength: 1, maxLength: 80 },
                value: number,
                unit,
                lowerIsBetter: { type: 'boolean' },
                replicates: { type: 'array', minItems: 1, items: number },
              },
            },
          },
        },
      },
    },
  },
};

const validate = new Ajv({ allErrors: true }).compile(PERFHERDER_SCHEMA);

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function perf(...args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } };
  return { code: await perfRunCommand(args, io), out, err };
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-perf-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const outDir = (): string => path.join(tmp, `out${n++}`);
const readJson = (dir: string, file: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
const BUSY_LOOP = ['/bin/sh', '-c', 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done'];

describe('bbagent perf run', () => {
  it('measures wall time on this machine and reports a CV, the CI and the Perfherder data', async () => {
    const out = outDir();
    const r = await perf('--name', 'sh-loop', '--repeat', '8', '--warmup', '1', '--quiet-host', 'off', '--out', out, '--', ...BUSY_LOOP);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out[0]).toMatch(/^sh-loop\/sh-loop: [\d.]+ ms \(median; median [\d.]+, 95% CI [\d.]+\.\.[\d.]+ ±[\d.]+%, CV [\d.]+%, MAD [\d.]+, n=8 of 8/);
    expect(r.err.filter((l) => l.startsWith('perf: warm-up'))).toHaveLength(1);
    const line = r.out.at(-1)!;
    expect(line.startsWith('PERFHERDER_DATA: {')).toBe(true);
    const data = readJson(out, 'perfherder-data.json');
    expect(JSON.parse(line.slice('PERFHERDER_DATA: '.length))).toEqual(data);
    expect(validate(data), JSON.stringify(validate.errors)).toBe(true);
    const stats = readJson(out, 'perf-stats.json') as {
      subtests: { replicates: number[]; stats: { cvPercent: number }; ci: { low: number; high: number } }[];
      fingerprint: Record<string, unknown>;
      gate: unknown;
    };
    const sub = stats.subtests[0]!;
    expect(sub.replicates).toHaveLength(8);
    expect(sub.stats.cvPercent).toBeGreaterThan(0);
    expect(sub.ci.low).toBeLessThanOrEqual(sub.ci.high);
    expect(Object.keys(stats.fingerprint).sort()).toEqual(['agentVersion', 'boost', 'cpuModel', 'governor', 'id', 'kernel', 'logicalCpus', 'memoryGiB', 'smt']);
    expect((data['suites'] as { extraOptions: string[] }[])[0]!.extraOptions).toEqual([`machine-${String(stats.fingerprint['id'])}`]);
    expect(stats.gate).toBeNull();
  });

  it('takes PERFMETRIC lines as subtests, filters them, and stops adaptively within its bounds', async () => {
    const out = outDir();
    const cmd = ['/bin/sh', '-c', 'echo noise; echo PERFMETRIC load 12.5 ms; echo "  PERFMETRIC paint 3e0 ms"'];
    const r = await perf(
      '--name',
      'page',
      '--filter',
      'ignore_first:1,mean',
      '--target-ci',
      '5',
      '--min',
      '6',
      '--max',
      '10',
      '--check-every',
      '1',
      '--quiet-host',
      'off',
      '--out',
      out,
      '--',
      ...cmd,
    );
    expect(r.code, r.err.join('\n')).toBe(0);
    const stats = readJson(out, 'perf-stats.json') as {
      metricSource: string;
      replicatesRun: number;
      stopReason: string;
      value: number;
      subtests: { name: string; value: number; keptIndices: number[] }[];
    };
    expect(stats.metricSource).toBe('perfmetric');
    expect(stats.stopReason).toBe('target-reached');
    // ignore_first:1 keeps 6 values (the fewest with a 95% CI of the median) after 7 replicates
    expect(stats.replicatesRun).toBe(7);
    expect(stats.subtests.map((s) => [s.name, s.value, s.keptIndices])).toEqual([
      ['load', 12.5, [1, 2, 3, 4, 5, 6]],
      ['paint', 3, [1, 2, 3, 4, 5, 6]],
    ]);
    expect(stats.value).toBeCloseTo(Math.sqrt(12.5 * 3), 12);
    const data = readJson(out, 'perfherder-data.json');
    expect(validate(data), JSON.stringify(validate.errors)).toBe(true);
  });

  it('runs a test too noisy for its target to --max, never past it, and says the target was not reached', async () => {
    const out = outDir();
    const counter = path.join(tmp, 'noisy-count');
    // deterministic noise: 1..100 from a counter kept in a file, far wider than a ±1% target
    const script = `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}; echo PERFMETRIC x $(( (n*7919) % 100 + 1 ))`;
    const r = await perf('--name', 'noisy', '--target-ci', '1', '--max', '9', '--quiet-host', 'off', '--out', out, '--', '/bin/sh', '-c', script);
    expect(r.code, r.err.join('\n')).toBe(0);
    const stats = readJson(out, 'perf-stats.json') as { replicatesRun: number; stopReason: string; adaptive: unknown; subtests: { replicates: number[] }[] };
    expect([stats.replicatesRun, stats.stopReason, stats.subtests[0]!.replicates.length]).toEqual([9, 'max-reached', 9]);
    expect(stats.adaptive).toEqual({ targetPercent: 1, min: 6, max: 9, checkEvery: 2 });
    expect(r.err.filter((l) => l.includes('NOT reached'))).toEqual([
      expect.stringMatching(/^perf: max 9 replicates reached, target ±1% NOT reached \(widest 95% CI ±\d+\.\d\d%\)$/),
    ]);
  });

  it('fails naming the replicate and its rc when the command fails, and a metric line that is not a number', async () => {
    const failed = await perf('--name', 'x', '--repeat', '3', '--quiet-host', 'off', '--out', outDir(), '--', '/bin/sh', '-c', 'echo oops >&2; exit 3');
    expect(failed.code).toBe(1);
    expect(failed.err.at(-1)).toMatch(/^replicate 1: '\/bin\/sh -c echo oops >&2; exit 3' exited with rc 3: oops$/);
    const bad = await perf('--name', 'x', '--repeat', '2', '--quiet-host', 'off', '--out', outDir(), '--', '/bin/sh', '-c', 'echo PERFMETRIC t fast');
    expect(bad.code).toBe(1);
    expect(bad.err.at(-1)).toBe("replicate 1, output line 1: 'PERFMETRIC t fast': 'fast' is not a number");
  });

  it('kills a replicate past --timeout, and a timeout past 2^31 ms does not fire at once', async () => {
    const slow = await perf(
      '--name',
      'x',
      '--repeat',
      '1',
      '--timeout',
      '0.2',
      '--quiet-host',
      'off',
      '--out',
      outDir(),
      '--',
      '/bin/sh',
      '-c',
      'exec sleep 20',
    );
    expect(slow.code).toBe(1);
    expect(slow.err.at(-1)).toBe('replicate 1: timed out after 200 ms');
    const long = await perf(
      '--name',
      'x',
      '--repeat',
      '2',
      '--timeout',
      '10000000',
      '--quiet-host',
      'off',
      '--out',
      outDir(),
      '--',
      '/bin/sh',
      '-c',
      'sleep 0.05',
    );
    expect(long.code, long.err.join('\n')).toBe(0);
  });

  it("our schema is not vacuous: it rejects what Perfherder's format forbids", () => {
    const sub = { name: 't', value: 1 };
    const suite = { name: 's', subtests: [sub] };
    expect(validate({ framework: { name: 'f' }, suites: [suite] })).toBe(true);
    expect(validate({ suites: [suite] })).toBe(false);
    expect(validate({ framework: { name: 'f' }, suites: [{ ...suite, unit: 'u'.repeat(21) }] })).toBe(false);
    expect(validate({ framework: { name: 'f' }, suites: [{ ...suite, extraOptions: ['a', 'a'] }] })).toBe(false);
    expect(validate({ framework: { name: 'f' }, suites: [{ ...suite, subtests: [{ ...sub, value: 2e12 }] }] })).toBe(false);
    expect(validate({ framework: { name: 'f' }, suites: [{ ...suite, subtests: [{ name: 't' }] }] })).toBe(false);
  });

  it.each([
    [['--name', 'x', '--filter', 'median,mean', '--', 'true'], /filter spec 'median,mean': 'mean' follows the summarizer/],
    [['--repeat', '3', '--', 'true'], /--name SUITE is required/],
    [['--name', 'x', '--min', '3', '--', 'true'], /give --target-ci too/],
    [['--name', 'x', '--quiet-host', 'sometimes', '--', 'true'], /--quiet-host must be one of wait, refuse, off/],
    [['--name', 'x', '--repeat', '0', '--', 'true'], /--repeat must be an integer in 1\.\.10000, got 0/],
    [['--name', 'x', '--target-ci', '1', '--min', '9', '--max', '4', '--', 'true'], /--max must be an integer >= --min \(9\), got 4/],
    [['--name', 'x', '--target-ci', '1', '--min', '5', '--', 'true'], /--min must be an integer >= 6 \(fewer values give no 95% CI of the median\), got 5/],
    [['--name', 'x', '--target-ci', '1', '--check-every', '0', '--', 'true'], /--check-every must be an integer >= 1, got 0/],
    [['--name', 'x', '--check-every', '2', '--', 'true'], /give --target-ci too/],
    [['--name', 'x'], /no command to measure/],
  ])('exits 2 on a bad command line: %j', async (args, why) => {
    const r = await perf(...args);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(why);
  });
});
