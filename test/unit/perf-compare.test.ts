// Comparing results. Parity of agent/perf/ttest.ts with Perfherder's detect_changes: both our TypeScript and a
// separate Python transcription of the published algorithm (windows 12/24/12, linear weights, t > 7, local
// maximum; written in this test, run by /usr/bin/python3) analyse the same replayed series of 150 pushes with two
// known steps, and must agree on every point's t and on every change point; the change points must be the steps.
// (Parity means agreement with that transcription of treeherder's algorithm, not a run of treeherder's own code.)
// Mann-Whitney U against a Python computation using math.erfc. Then `bbagent perf compare` end to end on files.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../agent/perf/bootstrap.js';
import { detectChanges } from '../../agent/perf/ttest.js';
import { erfc, mannWhitneyU } from '../../agent/perf/mann-whitney.js';
import { perfCompareCommand } from '../../agent/cli/perf-compare.js';
import type { CliIO } from '../../agent/cli/io.js';

function py(code: string, arg: unknown): unknown {
  const script = `import json, sys, math\narg = json.loads(sys.stdin.read())\n${code}`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(arg), encoding: 'utf8' }));
}

const DETECT_PY = `
def weights_linear(i, n):
    return 0.0 if i >= n else (n - i) / n

def stats(window, wf):
    ws = [wf(i, len(window)) for i in range(len(window))]
    num = sum(v * ws[i] for i, p in enumerate(window) for v in p)
    den = sum(ws[i] * len(p) for i, p in enumerate(window))
    avg = num / den if window else 0.0
    vals = [v for p in window for v in p]
    var = sum((v - avg) ** 2 for v in vals) / (len(vals) - 1) if len(vals) > 1 else 0.0
    return avg, len(vals), var

def t_of(back, fore):
    if not back or not fore:
        return 0.0
    a1, n1, v1 = stats(back, weights_linear)
    a2, n2, v2 = stats(fore, weights_linear)
    if a2 - a1 == 0:
        return 0.0
    if v1 == 0 and v2 == 0:
        return float('inf')
    return (a2 - a1) / math.sqrt(v1 / n1 + v2 / n2)

def detect(series, min_back=12, max_back=24, fore_n=12, thr=7):
    t = [0.0] * len(series); nb = [0] * len(series); nf = [0] * len(series)
    since = 0
    for i in range(1, len(series)):
        back = []; j = i - 1
        while nb[i] < max_back and j >= 0 and i - j <= min(max(since, min_back), max_back):
            back.append(series[j]); nb[i] += len(series[j]); j -= 1
        fore = []; j = i
        while nf[i] < fore_n and j < len(series):
            fore.append(series[j]); nf[i] += len(series[j]); j += 1
        t[i] = abs(t_of(back, fore))
        since = 0 if t[i] > thr else since + 1
    changes = []
    for i in range(1, len(series)):
        if nb[i] < min_back or nf[i] < fore_n or t[i] <= thr: continue
        if t[i - 1] > t[i]: continue
        if i + 1 < len(series) and t[i + 1] > t[i]: continue
        changes.append(i)
    return t, changes

t, changes = detect(arg)
print(json.dumps({'t': [x if math.isfinite(x) else 'inf' for x in t], 'changes': changes}))
`;

/** A replayed history: 150 pushes of 1 to 3 replicates, ~1% noise, +8% at push 50 and −5% at push 100. */
function replayedSeries(): number[][] {
  const r = mulberry32(2026);
  return Array.from({ length: 150 }, (_, i) => {
    const level = i < 50 ? 100 : i < 100 ? 108 : 102.6;
    return Array.from({ length: 1 + Math.floor(r() * 3) }, () => level * (1 + 0.02 * (r() - 0.5)));
  });
}

describe("Perfherder's detect_changes", () => {
  it('agrees with the Python transcription on every point of a replayed series', () => {
    const series = replayedSeries();
    const ours = detectChanges(series.map((values) => ({ values })));
    const theirs = py(DETECT_PY, series) as { t: (number | 'inf')[]; changes: number[] };
    ours.forEach((p, i) => {
      const e = theirs.t[i]!;
      if (e === 'inf') expect(p.t).toBe(Infinity);
      else expect(Math.abs(p.t - e)).toBeLessThanOrEqual(1e-9 * Math.max(1, e));
    });
    const changes = ours.flatMap((p, i) => (p.changeDetected ? [i] : []));
    expect(changes).toEqual(theirs.changes);
    expect(changes).toEqual([50, 100]);
  });

  it('finds nothing in a flat series', () => {
    const r = mulberry32(3);
    const flat = Array.from({ length: 80 }, () => ({ values: [100 + r()] }));
    expect(detectChanges(flat).some((p) => p.changeDetected)).toBe(false);
  });
});

describe('Mann-Whitney U', () => {
  const cases: [number[], number[]][] = [
    [
      [1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.3],
      [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29],
    ],
    [
      [1, 2, 2, 3, 3, 3, 4],
      [3, 4, 4, 5, 5, 6, 6, 7],
    ],
    [Array.from({ length: 25 }, (_, i) => 100 + (i % 5)), Array.from({ length: 25 }, (_, i) => 103 + (i % 5))],
  ];
  const expected = py(
    `out = []
for a, b in arg:
    allv = sorted((v, k) for k, v in enumerate(a + b))
    ranks = [0.0] * len(allv); tie = 0; s = 0
    while s < len(allv):
        e = s
        while e + 1 < len(allv) and allv[e + 1][0] == allv[s][0]: e += 1
        for k in range(s, e + 1): ranks[allv[k][1]] = (s + e) / 2 + 1
        tie += (e - s + 1) ** 3 - (e - s + 1); s = e + 1
    n1, n2 = len(a), len(b); n = n1 + n2
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie / (n * (n - 1))))
    z = max(0, abs(u - n1 * n2 / 2) - 0.5) / sigma
    out.append([u, math.erfc(z / math.sqrt(2))])
print(json.dumps(out))`,
    cases,
  ) as [number, number][];

  it.each(cases.map((c, i) => [i, c] as const))('case %i: U and p as Python computes them', (i, [a, b]) => {
    const r = mannWhitneyU(a, b);
    expect(r.u).toBe(expected[i]![0]);
    expect(Math.abs(r.p - expected[i]![1]) / expected[i]![1]).toBeLessThan(1e-6);
  });

  it('erfc is within 1.2e-7 relative of Python math.erfc', () => {
    const xs = [-3, -1, -0.2, 0, 0.1, 0.5, 1, 1.96, 2.5, 4, 6];
    const e = py('print(json.dumps([math.erfc(x) for x in arg]))', xs) as number[];
    xs.forEach((x, i) => expect(Math.abs(erfc(x) - e[i]!) / e[i]!).toBeLessThan(1.2e-7));
  });
});

describe('bbagent perf compare', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-perf-compare-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const fingerprint = { cpuModel: 'X', logicalCpus: 2, kernel: 'Linux 6.1', governor: null, boost: null, smt: null, memoryGiB: 8, agentVersion: '1', id: 'a' };
  const r = mulberry32(11);
  const sample = (level: number): number[] => Array.from({ length: 25 }, () => level * (1 + 0.01 * (r() - 0.5)));
  const stats = (name: string, level: number, fp = fingerprint): string => {
    const file = path.join(tmp, name);
    const doc = {
      format: 'bbagent-perf-stats',
      version: 1,
      suite: 'startup',
      lowerIsBetter: true,
      fingerprint: fp,
      subtests: [{ name: 'startup', unit: 'ms', replicates: sample(level) }],
    };
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };
  const perfherder = (name: string, level: number): string => {
    const file = path.join(tmp, name);
    const doc = {
      framework: { name: 'bbagent' },
      suites: [{ name: 'startup', lowerIsBetter: true, subtests: [{ name: 'startup', value: level, replicates: sample(level) }] }],
    };
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };
  const run = async (...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {} };
    return { code: await perfCompareCommand(args, io), out, err };
  };

  it('exits 1 on a 5% slowdown and names it a regression', async () => {
    const res = await run('--baseline', stats('b1.json', 100), '--new', stats('n1.json', 105));
    expect(res.code).toBe(1);
    expect(res.out[0]).toMatch(/^startup\/startup: .* \(\+\d\.\d\d%\), t=\d+\.\d\d, Mann-Whitney p=.*: regression$/);
  });

  it('exits 0 on the same distribution and on a speed-up', async () => {
    expect((await run('--baseline', stats('b2.json', 100), '--new', stats('n2.json', 100))).code).toBe(0);
    const faster = await run('--baseline', perfherder('b3.json', 100), '--new', perfherder('n3.json', 90), '--json');
    expect(faster.code).toBe(0);
    expect(JSON.parse(faster.out[0]!).subtests[0].verdict).toBe('improvement');
  });

  it('does not compare across machine fingerprints', async () => {
    const res = await run('--baseline', stats('b4.json', 100), '--new', stats('n4.json', 150, { ...fingerprint, kernel: 'Linux 6.6', id: 'b' }));
    expect(res.code).toBe(0);
    expect(res.out[0]).toContain('kernel: Linux 6.1 -> Linux 6.6');
  });

  it('names the file and the reason when a file is not a result, and 2 for a bad command line', async () => {
    writeFileSync(path.join(tmp, 'bad.json'), JSON.stringify({ framework: { name: 'x' }, suites: [{ name: 's', subtests: [{ name: 't', value: 1 }] }] }));
    const bad = await run('--baseline', path.join(tmp, 'bad.json'), '--new', stats('n5.json', 1));
    expect(bad.code).toBe(1);
    expect(bad.err).toEqual([`${path.join(tmp, 'bad.json')}: s/t has no replicates (a non-empty list of numbers is needed to compare)`]);
    expect((await run('--baseline', 'x')).code).toBe(2);
  });
});
