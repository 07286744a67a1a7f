// The demo's second build, the job these workers exist for: a local web server holds a build (a small app with a
// benchmark) and its tests, each a tar.gz with its SHA-256; the build fetches both (FetchBuild: verified, cached,
// extracted), runs its chunk of the test files with RunSuite (the worker cuts the chunk from the extracted files
// and runs only those; Node's own test runner, JUnit report; a flaky test fails on its first run and is rerun), runs a small performance test
// (PerfTest: replicates, median and CI, Perfherder data), and the demo prints what the master stored in its
// test-result tables.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chunkTests } from '../agent/suites/chunk.js';
import { MASTER_PACKAGE_ENV } from './harness/bbagent-worker.js';
import type { BuildbotMaster, BuilderSpec } from './harness/master.js';

const TESTS: Record<string, string> = {
  'math.test.js': `const { test } = require('node:test');
const assert = require('node:assert');
test('adds', () => assert.strictEqual(1 + 1, 2));
test('multiplies', () => assert.strictEqual(6 * 7, 42));
`,
  'strings.test.js': `const { test } = require('node:test');
const assert = require('node:assert');
test('upper case', () => assert.strictEqual('bb'.toUpperCase(), 'BB'));
`,
  'network.test.js': `const { test } = require('node:test');
const fs = require('node:fs');
// flaky on purpose: its first run in a build directory fails, like a test that races a server starting up
test('reconnects', () => {
  const n = fs.existsSync('flaky-count') ? Number(fs.readFileSync('flaky-count', 'utf8')) : 0;
  fs.writeFileSync('flaky-count', String(n + 1));
  if (n === 0) throw new Error('connection refused (first run)');
});
`,
  'slow.test.js': `const { test } = require('node:test');
test('sorts a big array', () => { Array.from({ length: 200000 }, (_, i) => (i * 7919) % 100003).sort((a, b) => a - b); });
`,
};

const APP_BENCH = `// the app's benchmark: a fixed amount of work, timed by the perf command (one replicate per run)
let x = 0;
for (let i = 0; i < 3e6; i++) x = (x * 31 + i) % 1000003;
console.log('checksum', x);
`;

export interface DemoJob {
  builder: BuilderSpec;
  server: http.Server;
  /** Which test files this build's chunk runs. */
  chunk: string[];
}

function tarGz(dir: string, name: string, out: string): { file: string; sha256: string } {
  execFileSync('tar', ['czf', out, '-C', dir, name]);
  return { file: path.basename(out), sha256: createHash('sha256').update(readFileSync(out)).digest('hex') };
}

/** Writes the build and its tests under `scratch/www`, serves them on loopback, and returns the builder. */
export async function prepareDemoJob(scratch: string): Promise<DemoJob> {
  const src = path.join(scratch, 'src');
  const www = path.join(scratch, 'www');
  mkdirSync(path.join(src, 'app'), { recursive: true });
  mkdirSync(path.join(src, 'tests'), { recursive: true });
  mkdirSync(www, { recursive: true });
  writeFileSync(path.join(src, 'app', 'bench.js'), APP_BENCH);
  for (const [name, text] of Object.entries(TESTS)) writeFileSync(path.join(src, 'tests', name), text);
  const files = Object.keys(TESTS).sort();
  const app = tarGz(src, 'app', path.join(www, 'app-1.0.tar.gz'));
  const tests = tarGz(src, 'tests', path.join(www, 'tests-1.0.tar.gz'));

  const server = http.createServer((req, res) => {
    const name = path.basename(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    try {
      const body = readFileSync(path.join(www, name));
      res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/gzip' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // 2 chunks; this build runs the one with the flaky test (the other would go to another worker). RunSuite cuts it
  // on the worker from the extracted files (by count on a first run, later on the durations the master keeps) and
  // runs only its files: {tests} becomes one argument per file.
  const ids = files.map((f) => `tests/tests/${f}`);
  const chunks = [1, 2].map((k) => chunkTests(ids, { total: 2, this: k }));
  const mine = chunks.findIndex((c) => c.includes('tests/tests/network.test.js')) + 1;
  const py = (v: unknown): string => JSON.stringify(v); // a JSON string or list is a Python literal too
  const suiteCmd = [process.execPath, '--test', '--test-reporter=junit', '--test-reporter-destination=report.xml', '{tests}'];
  const q = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`; // one shell word
  const rerun = ['sh', '-c', `exec ${q(process.execPath)} --test --test-name-pattern="^$1$" tests/tests/*.test.js`, 'sh', '{name}'];
  const steps = `[
    FetchBuild(name='fetch build', url=${py(`${base}/${app.file}`)}, sha256=${py(app.sha256)}, extract='app'),
    FetchBuild(name='fetch tests', url=${py(`${base}/${tests.file}`)}, sha256=${py(tests.sha256)}, extract='tests'),
    RunSuite(name='tests', command=${py(suiteCmd)}, results='report.xml', total_chunks=2, this_chunk=${mine}, tests_glob='tests/tests/*.test.js', repeat_failures=3, rerun=${py(rerun)}, logEnviron=False),
    PerfTest(name='perf', suite='app-bench', command=${py([process.execPath, 'app/app/bench.js'])}, repeat=5, warmup=1, quiet_host='off'),
  ]`;
  const builder: BuilderSpec = { name: 'job', workernames: ['demo-worker'], steps };
  return { builder, server, chunk: chunks[mine - 1]! };
}

/** The master.cfg imports of the job's steps (the master-side package, from the repository's `master/`). */
export const DEMO_JOB_PREAMBLE = `
from bbagent_buildbot.fetch import FetchBuild
from bbagent_buildbot.suite import RunSuite
from bbagent_buildbot.perf import PerfTest
`;

export const DEMO_JOB_ENV = MASTER_PACKAGE_ENV;

interface ResultSet {
  test_result_setid: number;
  description: string;
  category: string;
  value_unit: string;
  tests_passed: number | null;
  tests_failed: number | null;
}

interface ResultRow {
  test_name: string | null;
  value: string;
  duration_ns: number | null;
}

/** Prints the test-result sets the master stored for a build, and their rows. */
export async function printStoredResults(master: BuildbotMaster, buildid: number): Promise<void> {
  const sets = (await master.get<{ test_result_sets: ResultSet[] }>(`/builds/${buildid}/test_result_sets`)).test_result_sets;
  console.log(`\nwhat the master stored (/api/v2/builds/${buildid}/test_result_sets): ${sets.length} result sets`);
  for (const set of sets) {
    const counts = set.tests_passed === null ? '' : ` (${set.tests_passed} passed, ${set.tests_failed} failed)`;
    console.log(`  [${set.category}] ${set.description}, unit ${set.value_unit}${counts}`);
    const rows = (await master.get<{ test_results: ResultRow[] }>(`/test_result_sets/${set.test_result_setid}/results`)).test_results;
    for (const row of rows.slice(0, 8)) {
      const ms = row.duration_ns === null ? '' : `  ${(row.duration_ns / 1e6).toFixed(1)} ms`;
      console.log(`       ${String(row.test_name ?? '').padEnd(42)} ${row.value}${ms}`);
    }
    if (rows.length > 8) console.log(`       ... ${rows.length - 8} more`);
  }
}
