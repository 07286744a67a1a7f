// How long a real Buildbot 3.7 master takes to store a suite's results through RunSuite: a bbagent worker runs a
// suite that writes a JUnit report of N tests (default 100k, 1% failing, no reruns), the step stores them in the
// master's test-result tables (sqlite), and the bench prints the step's own "stored N test results in X s" line
// (the inserts alone), the step's wall time (worker run, parse, transfer, store), and checks the stored counts.
//
// Run: node scripts/build.mjs && npx esbuild scripts/bench/suites-store.ts --bundle --platform=node --format=esm \
//        --packages=external --outfile=build/cache/suites-store.mjs && node build/cache/suites-store.mjs [--tests N] [--protocol pb]
//        [--data-api] (store through Buildbot's own addTestResults instead, for comparison)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BbagentWorker, MASTER_PACKAGE_ENV } from '../harness/bbagent-worker.js';
import { BuildbotMaster, findLog, findStep, type Protocol } from '../harness/master.js';

const PASSWORD = 'bench';

/** Writes report.xml: `tests` test cases in 100 classes, every 100th failing. */
const GENERATOR = `
const fs = require('node:fs');
const n = Number(process.argv[2]);
const out = fs.createWriteStream('report.xml');
out.write('<?xml version="1.0"?>\\n<testsuites>\\n');
let buf = '';
for (let i = 0; i < n; i++) {
  const body = i % 100 === 99 ? '><failure message="bench failure">assertion failed in test ' + i + '</failure></testcase>' : '/>';
  buf += '<testcase classname="bench.module' + (i % 100) + '" name="test_case_number_' + i + '" time="0.0' + (i % 90 + 10) + '"' + body + '\\n';
  if (buf.length > 65536) { out.write(buf); buf = ''; }
}
out.end(buf + '</testsuites>\\n');
out.on('finish', () => process.exit(1));
`;

interface RestStep {
  started_at: number;
  complete_at: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { tests: { type: 'string' }, protocol: { type: 'string' }, keep: { type: 'boolean' }, 'data-api': { type: 'boolean' } },
  });
  const tests = Number(values.tests ?? 100_000);
  const viaApi = values['data-api'] === true;
  const protocol = (values.protocol ?? 'msgpack') as Protocol;
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-bench-suites-'));
  // --data-api: the rows go through Buildbot's own data.updates.addTestResults, for comparison
  const steps = `[${viaApi ? 'RunSuiteApi' : 'RunSuite'}(name='tests', command=[${JSON.stringify(process.execPath)}, 'gen.js', '${tests}'], results='report.xml', format='junit', durations=False, logEnviron=False, timeout=600)]`;
  const master = await BuildbotMaster.start({
    dir: path.join(scratch, 'master'),
    protocol,
    workers: [{ name: 'bb', password: PASSWORD }],
    builders: [{ name: 'store', workernames: ['bb'], steps }],
    pythonPreamble: 'from bbagent_buildbot.suite import RunSuite\nclass RunSuiteApi(RunSuite):\n    bulk_insert = False\n',
    env: MASTER_PACKAGE_ENV,
  });
  let worker: BbagentWorker | undefined;
  try {
    worker = await BbagentWorker.start({ dir: path.join(scratch, 'bb'), masterPort: master.protocolPort, name: 'bb', password: PASSWORD, protocol });
    await master.waitForWorker('bb');
    const dir = path.join(worker.dir, 'store', 'build');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'gen.js'), GENERATOR);
    // the first build adds every test name to the builder's names; the next one finds them there
    for (const which of ['first build (new test names)', 'next build (names known)']) {
      const build = await master.runBuild('store', 600_000);
      const step = findStep(build, 'tests');
      const stored = /stored (\d+) test results in ([\d.]+) s/.exec(findLog(step, 'summary').content);
      const rest = (await master.get<{ steps: RestStep[] }>(`/steps/${step.stepid}`)).steps[0]!;
      const sets = (await master.get<{ test_result_sets: { tests_passed: number; tests_failed: number }[] }>(`/builds/${build.buildid}/test_result_sets`))
        .test_result_sets;
      console.log(`${which}, ${viaApi ? "Buildbot's addTestResults" : 'bulk insert'}, protocol ${protocol}, ${tests} tests: step "${step.state_string}"`);
      console.log(`  stored ${stored?.[1] ?? '?'} results in ${stored?.[2] ?? '?'} s (inserts and set completion, on the master)`);
      console.log(`  step wall time ${(rest.complete_at - rest.started_at).toFixed(2)} s (suite run, parse, JSON transfer, store)`);
      console.log(`  result set: ${sets[0]?.tests_passed} passed, ${sets[0]?.tests_failed} failed`);
    }
  } finally {
    await worker?.stop();
    await master.stop();
    if (values.keep !== true) rmSync(scratch, { recursive: true, force: true });
    else console.log(`kept ${scratch}`);
  }
}

await main();
