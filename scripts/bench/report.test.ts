import { describe, expect, it } from 'vitest';
import { benchBuilds, FULL_SIZES, type BenchBuild } from './builds.js';
import { resultTable } from './report.js';
import type { RunMetrics, RunOutcome } from './runner.js';

const MiB = 1024 * 1024;

function run(worker: 'ref' | 'bb', m: Partial<RunMetrics>): RunOutcome {
  const metrics: RunMetrics = {
    masterCpuS: 1,
    masterMainCpuS: 0.3,
    workerCpuS: 1,
    peakRssBytes: 50 * MiB,
    wireBytes: 50 * MiB,
    wireInBytes: 50 * MiB,
    wireOutBytes: 0,
    wallS: 10,
    stepS: undefined,
    latencyS: undefined,
    stepCpuS: 0,
    otherLoad: 0,
    ...m,
  } as RunMetrics;
  return { worker, repeat: 1, ok: true, detail: 'ok', metrics, notes: [] };
}

const stdout = (): BenchBuild => benchBuilds(FULL_SIZES).find((b) => b.name === 'stdout-50MiB')!;
const rowOf = (table: string, metric: string): string[] =>
  table
    .split('\n')
    .find((l) => l.includes(`| ${metric} |`))!
    .split('|')
    .map((c) => c.trim());

describe('bench report verdicts', () => {
  it('judges the wire target only on a run with permessage-deflate', () => {
    const runs = [run('ref', { wireBytes: 55 * MiB }), run('bb', { wireBytes: 9 * MiB })];
    const plain = resultTable([{ build: stdout(), runs }]).table;
    expect(rowOf(plain, 'bytes on the wire').at(-2)).toBe('n/a');
    const deflated = resultTable([{ build: { ...stdout(), name: 'stdout-50MiB +deflate' }, runs }]).table;
    expect(rowOf(deflated, 'bytes on the wire').at(-2)).toBe('PASS');
    const big = [run('ref', { wireBytes: 55 * MiB }), run('bb', { wireBytes: 20 * MiB })];
    expect(rowOf(resultTable([{ build: { ...stdout(), name: 'stdout-50MiB +deflate' }, runs: big }]).table, 'bytes on the wire').at(-2)).toBe('MISSED');
  });

  it('holds the 50 MiB step to the wall-time target of the issue (≤ 1.0×)', () => {
    const fast = resultTable([{ build: stdout(), runs: [run('ref', { wallS: 9 }), run('bb', { wallS: 4 })] }]).table;
    expect(rowOf(fast, 'wall time').slice(-3, -1)).toEqual(['≤ 1×', 'PASS']);
    const slow = resultTable([{ build: stdout(), runs: [run('ref', { wallS: 9 }), run('bb', { wallS: 10 })] }]).table;
    expect(rowOf(slow, 'wall time').at(-2)).toBe('MISSED');
  });
});
