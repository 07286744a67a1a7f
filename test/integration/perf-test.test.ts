// PerfTest (master/bbagent_buildbot/perf.py) on a real Buildbot 3.7 master with bbagent (the bundle) as the
// worker: the step runs the `perf` remote command, the step log carries the PERFHERDER_DATA line, the values are
// read back from the master's own tables (/api/v2/builds/N/test_result_sets and .../results: one `performance`
// set per subtest, the value and every replicate), and the summary names the value, the median and the CI. A
// failing replicate fails the step with the reason; buildbot-worker (no `perf` command) fails it clearly.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep } from '../../scripts/harness/master.js';
import { ReferenceWorker } from '../../scripts/harness/reference-worker.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
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

describe('PerfTest on a real master', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-it-perf-'));
  let master: BuildbotMaster;
  let bb: BbagentWorker;
  let ref: ReferenceWorker;

  beforeAll(async () => {
    const metrics = `['/bin/sh', '-c', 'echo PERFMETRIC load 12.5 ms; echo PERFMETRIC paint 3 ms']`;
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'msgpack',
      workers: [
        { name: 'bb', password: PASSWORD },
        { name: 'ref', password: PASSWORD },
      ],
      builders: [
        {
          name: 'perf-bb',
          workernames: ['bb'],
          steps: `[PerfTest(suite='page', command=${metrics}, repeat=4, filter='ignore_first:1,median', quiet_host='off')]`,
        },
        { name: 'perf-fail', workernames: ['bb'], steps: `[PerfTest(suite='broken', command='echo bad >&2; exit 3', repeat=3, quiet_host='off')]` },
        { name: 'perf-ref', workernames: ['ref'], steps: `[PerfTest(suite='page', command=['true'], quiet_host='off')]` },
      ],
      pythonPreamble: 'from bbagent_buildbot.perf import PerfTest',
      env: { PYTHONPATH: path.join(REPO_ROOT, 'master') },
    });
    [bb, ref] = await Promise.all([
      BbagentWorker.start({ dir: path.join(scratch, 'bb'), masterPort: master.protocolPort, name: 'bb', password: PASSWORD, protocol: 'msgpack' }),
      ReferenceWorker.start({ dir: path.join(scratch, 'ref'), masterPort: master.protocolPort, name: 'ref', password: PASSWORD, protocol: 'msgpack' }),
    ]);
    await Promise.all([master.waitForWorker('bb'), master.waitForWorker('ref')]);
  });

  afterAll(async () => {
    await Promise.allSettled([bb?.stop(), ref?.stop()]);
    await master?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('stores the values in the test-result tables and summarizes them', async () => {
    const build = await master.runBuild('perf-bb', 60_000);
    const step = findStep(build, 'perf');
    expect(build.results, step.state_string).toBe(Results.SUCCESS);
    expect(step.state_string).toBe('page: 2 subtests, geometric mean 6.12372 (widest 95% CI ±0.00%)');
    expect(channelText(findLog(step), 'o')).toMatch(/^PERFHERDER_DATA: \{"framework":\{"name":"bbagent"\}/m);
    expect(JSON.parse(findLog(step, 'perfherder-data.json').content.replace(/^o/gm, ''))).toMatchObject({ suites: [{ name: 'page' }] });
    const { test_result_sets: sets } = await master.get<{ test_result_sets: ResultSet[] }>(`/builds/${build.buildid}/test_result_sets`);
    expect(sets.map((s) => [s.description, s.category, s.value_unit, s.complete])).toEqual([
      ['page/load (ignore_first:1,median; 95% CI 12.5..12.5)', 'performance', 'ms', true],
      ['page/paint (ignore_first:1,median; 95% CI 3..3)', 'performance', 'ms', true],
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

  it('fails the step with the reason when a replicate fails', async () => {
    const build = await master.runBuild('perf-fail', 60_000);
    expect(build.results).toBe(Results.FAILURE);
    expect(findStep(build, 'perf').state_string).toMatch(/^perf broken: replicate 1: .* exited with rc 3: bad \(failure\)$/);
  });

  it('fails clearly on buildbot-worker, which has no perf command', async () => {
    const build = await master.runBuild('perf-ref', 60_000);
    expect(build.results).toBe(Results.FAILURE);
    expect(findStep(build, 'perf').state_string).toBe("perf: worker has no 'perf' command (failure)");
  });
});
