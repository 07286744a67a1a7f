// Chunks that balance by themselves, on a real Buildbot 3.7 master with a real runner (Debian's pytest): 12 test
// files of very unequal, known lengths split into 3 chunks by RunSuite (one build runs the three chunk steps, as
// three builders triggered together would). The first build has no durations: the chunks are cut by count (the
// heavy files land together). The per-file times its chunks measured (the worker maps pytest's `tests.test_07`
// back to `tests/test_07.py`) are kept by the master, and the next build's chunks, cut from them, are balanced:
// the largest chunk's sum of those times is at most 1.10x the mean chunk's. Every build's chunks are disjoint and
// cover the 12 files. All of it is read back from the master's test-result tables, not from the worker.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker, MASTER_PACKAGE_ENV } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, findLog, type StepResult } from '../../scripts/harness/master.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PASSWORD = 'sekrit';
/** Seconds each test file sleeps: 2.4 s a build, the heavy ones first in name order. */
const SLEEPS = [0.6, 0.45, 0.3, 0.25, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05];
const FILES = SLEEPS.map((_s, i) => `tests/test_${String(i + 1).padStart(2, '0')}.py`);

const pytestMissing = ((): string | undefined => {
  const r = spawnSync(path.join(ROOT, 'scripts', 'ensure-pytest'), { encoding: 'utf8', timeout: 300_000 });
  return r.status === 0 ? undefined : `python3-pytest is not installable here: ${(r.stderr || String(r.error)).trim()}`;
})();

const chunkStep = (k: number): string =>
  `RunSuite(name='chunk ${k}', command=['/usr/bin/python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--junitxml=out/${k}.xml', '{tests}'], ` +
  `results='out/${k}.xml', total_chunks=3, this_chunk=${k}, tests_glob='tests/*.py', durations_key='pytests', logEnviron=False)`;

/** A worker whose `suite` command is 1.0 (an older bbagent), as the step sees it. */
const AS_1_0 = `
class RunSuiteOn10(RunSuite):
    def workerVersion(self, command, oldversion=None):
        return "1.0" if command == "suite" else RunSuite.workerVersion(self, command, oldversion)
`;
const OLD_STEPS =
  `RunSuiteOn10(name='plain', command=['/usr/bin/python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--junitxml=out/p.xml', 'tests/test_12.py'], results='out/p.xml', logEnviron=False), ` +
  chunkStep(1).replace('RunSuite(', 'RunSuiteOn10(');

interface TestResultSet {
  test_result_setid: number;
  description: string;
}

describe.skipIf(pytestMissing !== undefined)(`RunSuite chunks balance by themselves${pytestMissing ? ` (skipped: ${pytestMissing})` : ''}`, () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-chunks-'));
  let master: BuildbotMaster;
  let bb: BbagentWorker;

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'msgpack',
      workers: [{ name: 'bb', password: PASSWORD }],
      builders: [
        { name: 'pytests', workernames: ['bb'], steps: `[${[1, 2, 3].map(chunkStep).join(', ')}]` },
        { name: 'old', workernames: ['bb'], steps: `[${OLD_STEPS}]` },
      ],
      pythonPreamble: `from bbagent_buildbot.suite import RunSuite\n${AS_1_0}`,
      env: MASTER_PACKAGE_ENV,
    });
    bb = await BbagentWorker.start({ dir: path.join(scratch, 'bb'), masterPort: master.protocolPort, name: 'bb', password: PASSWORD, protocol: 'msgpack' });
    await master.waitForWorker('bb');
    for (const builder of ['pytests', 'old']) {
      const dir = path.join(bb.dir, builder, 'build');
      mkdirSync(path.join(dir, 'tests'), { recursive: true });
      FILES.forEach((f, i) => writeFileSync(path.join(dir, f), `import time\n\ndef test_sleep():\n    time.sleep(${SLEEPS[i]})\n`));
    }
  }, 60_000);

  afterAll(async () => {
    await bb?.stop();
    await master?.stop();
  });

  /** Per chunk step: the test files it ran and their seconds, from the test results the master stored. */
  async function storedChunks(buildid: number): Promise<Map<string, number>[]> {
    const sets = (await master.get<{ test_result_sets: TestResultSet[] }>(`/builds/${buildid}/test_result_sets`)).test_result_sets;
    const chunks: Map<string, number>[] = [];
    for (const k of [1, 2, 3]) {
      const set = sets.find((s) => s.description === `chunk ${k}`);
      const rows = set
        ? (await master.get<{ test_results: { test_name: string; duration_ns: number }[] }>(`/test_result_sets/${set.test_result_setid}/results`)).test_results
        : [];
      // pytest's id is `tests.test_07::test_sleep`: the file is the module path
      chunks.push(new Map(rows.map((r) => [`${r.test_name.split('::')[0]!.replace('.', '/')}.py`, r.duration_ns / 1e9])));
    }
    return chunks;
  }

  function expectDisjointCover(chunks: Map<string, number>[]): void {
    const all = chunks.flatMap((c) => [...c.keys()]);
    expect(all.length).toBe(FILES.length);
    expect(new Set(all)).toEqual(new Set(FILES));
  }

  const why = (steps: StepResult[]): string =>
    steps.map((s) => `--- ${s.name}: ${s.state_string}\n${s.logs.map((l) => l.content.slice(-2000)).join('\n')}`).join('\n');
  const summaryLine = (s: StepResult): string => findLog(s, 'summary').content.split('\n')[0]!;

  it('cuts the first build by count, and the next ones balanced on the times the first measured', async () => {
    const first = await master.runBuild('pytests', 60_000);
    const steps1 = first.steps.filter((s) => s.name.startsWith('chunk'));
    expect(
      steps1.map((s) => [s.results, summaryLine(s)]),
      why(steps1),
    ).toEqual([
      [Results.SUCCESS, 'chunk 1/3: 4 passed, 0 failed'],
      [Results.SUCCESS, 'chunk 2/3: 4 passed, 0 failed'],
      [Results.SUCCESS, 'chunk 3/3: 4 passed, 0 failed'],
    ]);
    expect(findLog(steps1[0]!, 'summary').content).toContain('chunk 1/3: 4 of 12 tests, cut by count (no durations yet)');
    const byCount = await storedChunks(first.buildid);
    expectDisjointCover(byCount);
    expect([...byCount[0]!.keys()].sort()).toEqual(FILES.slice(0, 4));
    const recorded = new Map(byCount.flatMap((c) => [...c]));
    for (const [i, f] of FILES.entries()) expect(recorded.get(f)).toBeGreaterThanOrEqual(SLEEPS[i]! - 0.01);

    const loads = (chunks: Map<string, number>[]): number[] => chunks.map((c) => [...c.keys()].reduce((sum, f) => sum + recorded.get(f)!, 0));
    const balance = (l: number[]): number => Math.max(...l) / (l.reduce((a, b) => a + b, 0) / l.length);
    expect(balance(loads(byCount))).toBeGreaterThan(1.5);

    const second = await master.runBuild('pytests', 60_000);
    const steps2 = second.steps.filter((s) => s.name.startsWith('chunk'));
    expect(
      steps2.map((s) => s.results),
      why(steps2),
    ).toEqual([Results.SUCCESS, Results.SUCCESS, Results.SUCCESS]);
    // every chunk of the build was cut from one snapshot of the master's durations
    const snapshots = steps2.map((s) => /balanced on the durations given \(([0-9a-f]{16})\)/.exec(findLog(s, 'summary').content)?.[1]);
    expect(new Set(snapshots).size, why(steps2)).toBe(1);
    expect(snapshots[0]).toBeDefined();
    const balanced = await storedChunks(second.buildid);
    expectDisjointCover(balanced);
    expect(balance(loads(balanced)), JSON.stringify(balanced.map((c) => [...c.keys()]))).toBeLessThanOrEqual(1.1);
  }, 90_000);

  it("a worker whose 'suite' command is 1.0 runs an unchunked step, and fails a chunked one saying why", async () => {
    const build = await master.runBuild('old', 60_000);
    const [plain, chunked] = build.steps.filter((s) => s.name === 'plain' || s.name.startsWith('chunk'));
    // the summary log's first line is the step's summary (state_string can lag the build's end under load)
    expect([plain!.results, summaryLine(plain!)]).toEqual([Results.SUCCESS, '1 passed, 0 failed']);
    expect([chunked!.results, chunked!.state_string]).toEqual([Results.FAILURE, "suite: worker's 'suite' command is 1.0, chunks need 1.1 (failure)"]);
    expect(findLog(chunked!, 'error').content).toContain("worker 'bb' has the 'suite' command version 1.0; running a chunk");
  }, 60_000);
});
