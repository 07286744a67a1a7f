// PerfTest (master/bbagent_buildbot/perf.py) on a real Buildbot 3.7 master with bbagent (the bundle) as the
// worker, over msgpack and over PB (one master serving both): the step runs the `perf` remote command (its
// workdir made absolute on the master, as msgpack does for shell steps), the step log carries the PERFHERDER_DATA
// line, the values are read back from the master's own tables (/api/v2/builds/N/test_result_sets and .../results: one `performance`
// set per subtest, the value and every replicate), and the summary names the value, the median and the CI with
// its real coverage (3 kept values give a 75% interval of the median, not a 95% one). A
// failing replicate fails the step with the reason; buildbot-worker (no `perf` command) fails it clearly.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker, MASTER_PACKAGE_ENV } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep } from '../../scripts/harness/master.js';
import { ReferenceWorker } from '../../scripts/harness/reference-worker.js';

const PASSWORD = 'sekrit';

interface ResultSet {
  test_result_setid: number;
  description: string;
  category: string;
  value_unit: string;
  complete: boolean;
}
interface TestResult {
  test_name: string;
  value: string;
}

/** The bbagent workers, one per protocol, on one master serving both. */
const WORKERS = [
  { name: 'bb', protocol: 'msgpack' },
  { name: 'bbpb', protocol: 'pb' },
] as const;

describe('PerfTest on a real master', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-it-perf-'));
  let master: BuildbotMaster;
  const workers: BbagentWorker[] = [];
  let ref: ReferenceWorker;

  beforeAll(async () => {
    const metrics = `['/bin/sh', '-c', 'echo PERFMETRIC load 12.5 ms; echo PERFMETRIC paint 3 ms']`;
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'msgpack',
      alsoProtocol: 'pb',
      workers: [...WORKERS.map((w) => ({ name: w.name, password: PASSWORD })), { name: 'ref', password: PASSWORD }],
      builders: [
        ...WORKERS.flatMap(({ name }) => [
          {
            name: `perf-${name}`,
            workernames: [name],
            steps: `[PerfTest(suite='page', command=${metrics}, repeat=4, filter='ignore_first:1,median', quiet_host='off')]`,
          },
          { name: `perf-wall-${name}`, workernames: [name], steps: `[PerfTest(suite='spawn', command=['true'], repeat=3, out='perf-out', quiet_host='off')]` },
          { name: `perf-fail-${name}`, workernames: [name], steps: `[PerfTest(suite='broken', command='echo bad >&2; exit 3', repeat=3, quiet_host='off')]` },
        ]),
        { name: 'perf-ref', workernames: ['ref'], steps: `[PerfTest(suite='page', command=['true'], quiet_host='off')]` },
      ],
      pythonPreamble: 'from bbagent_buildbot.perf import PerfTest',
      env: MASTER_PACKAGE_ENV,
    });
    const port = (protocol: 'msgpack' | 'pb'): number => (protocol === 'msgpack' ? master.protocolPort : master.alsoPort!);
    const started = await Promise.all([
      ...WORKERS.map((w) =>
        BbagentWorker.start({ dir: path.join(scratch, w.name), masterPort: port(w.protocol), name: w.name, password: PASSWORD, protocol: w.protocol }),
      ),
      ReferenceWorker.start({ dir: path.join(scratch, 'ref'), masterPort: master.protocolPort, name: 'ref', password: PASSWORD, protocol: 'msgpack' }),
    ]);
    ref = started.pop() as ReferenceWorker;
    workers.push(...(started as BbagentWorker[]));
    await Promise.all([...WORKERS.map((w) => master.waitForWorker(w.name)), master.waitForWorker('ref')]);
  });

  afterAll(async () => {
    await Promise.allSettled([...workers.map((w) => w.stop()), ref?.stop()]);
    await master?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it.each(WORKERS)('$protocol: stores the values in the test-result tables and summarizes them', async ({ name }) => {
    const build = await master.runBuild(`perf-${name}`, 60_000);
    const step = findStep(build, 'perf');
    expect(build.results, step.state_string).toBe(Results.SUCCESS);
    expect(step.state_string).toBe('page: 2 subtests, geometric mean 6.12372 (widest 75.0% CI ±0.00%)');
    expect(channelText(findLog(step), 'o')).toMatch(/^PERFHERDER_DATA: \{"framework":\{"name":"bbagent"\}/m);
    expect(JSON.parse(findLog(step, 'perfherder-data.json').content.replace(/^o/gm, ''))).toMatchObject({ suites: [{ name: 'page' }] });
    const { test_result_sets: sets } = await master.get<{ test_result_sets: ResultSet[] }>(`/builds/${build.buildid}/test_result_sets`);
    expect(sets.map((s) => [s.description, s.category, s.value_unit, s.complete])).toEqual([
      ['page/load (ignore_first:1,median; 75.0% CI 12.5..12.5)', 'performance', 'ms', true],
      ['page/paint (ignore_first:1,median; 75.0% CI 3..3)', 'performance', 'ms', true],
    ]);
    const { test_results: rows } = await master.get<{ test_results: TestResult[] }>(`/test_result_sets/${sets[0]!.test_result_setid}/results`);
    expect(rows.map((r) => [r.test_name, r.value])).toEqual([
      ['load', '12.5'],
      ['load replicate 1', '12.5'],
      ['load replicate 2', '12.5'],
      ['load replicate 3', '12.5'],
      ['load replicate 4', '12.5'],
    ]);
  });

  it.each(WORKERS)('$protocol: measures wall time and summarizes one subtest with the median, the CI and the CV', async ({ name }) => {
    const build = await master.runBuild(`perf-wall-${name}`, 60_000);
    const step = findStep(build, 'perf');
    expect(build.results, step.state_string).toBe(Results.SUCCESS);
    expect(step.state_string).toMatch(/^spawn: [\d.e-]+ ms \(median [\d.e-]+, 75\.0% CI ±\d+\.\d\d%, CV \d+\.\d\d%, n=3\)$/);
    const { test_result_sets: sets } = await master.get<{ test_result_sets: ResultSet[] }>(`/builds/${build.buildid}/test_result_sets`);
    expect(sets.map((s) => [s.category, s.value_unit])).toEqual([['performance', 'ms']]);
    const stats = JSON.parse(readFileSync(path.join(scratch, name, `perf-wall-${name}`, 'build', 'perf-out', 'perf-stats.json'), 'utf8')) as {
      subtests: { replicates: number[] }[];
    };
    expect(stats.subtests[0]!.replicates).toHaveLength(3);
  });

  it.each(WORKERS)('$protocol: fails the step with the reason when a replicate fails', async ({ name }) => {
    const build = await master.runBuild(`perf-fail-${name}`, 60_000);
    expect(build.results).toBe(Results.FAILURE);
    expect(findStep(build, 'perf').state_string).toMatch(/^perf broken: replicate 1: .* exited with rc 3: bad \(failure\)$/);
  });

  it('fails clearly on buildbot-worker, which has no perf command', async () => {
    const build = await master.runBuild('perf-ref', 60_000);
    expect(build.results).toBe(Results.FAILURE);
    expect(findStep(build, 'perf').state_string).toBe("perf: worker has no 'perf' command (failure)");
  });
});
