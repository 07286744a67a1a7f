// The demo: a local Buildbot 3.7 master in a scratch directory, bbagent attached to it over Perspective Broker (the
// default protocol), and two builds: the job (demo-job.ts: fetch a build and its tests from a local web server, run
// one chunk of the suite with a rerun of a flaky test, run a small performance test, print what the master stored
// in its test-result tables) and a sample build of shell, PTY, upload and filesystem commands. Prints the results
// with log excerpts and stops everything it started.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BbagentWorker } from './harness/bbagent-worker.js';
import { BuildbotMaster, channelText, type BuildResult } from './harness/master.js';
import { DEMO_JOB_ENV, DEMO_JOB_PREAMBLE, prepareDemoJob, printStoredResults, type DemoJob } from './demo-job.js';

const RESULT_NAMES = ['SUCCESS', 'WARNINGS', 'FAILURE', 'SKIPPED', 'EXCEPTION', 'RETRY', 'CANCELLED'];

function sampleSteps(masterDir: string): string {
  return String.raw`[
    steps.ShellCommand(name='hello', command='echo "hello from $(hostname) as $(id -un)"; uname -sm', logEnviron=False),
    steps.ShellCommand(name='compile', command='mkdir -p dist && for f in a b c; do echo "object $f" > dist/$f.o; echo "cc -c $f.c"; done && tar czf app.tar.gz dist', logEnviron=False),
    steps.ShellCommand(name='tests-under-pty', command='tty; for i in 1 2 3; do printf "test %s ... ok\\r\\n" $i; done', usePTY=True, logEnviron=False),
    steps.ShellCommand(name='progress-bar', command='for p in 10 50 100; do printf "\\rdownloading %3d%%" $p; sleep 0.1; done; echo', logEnviron=False),
    steps.FileUpload(name='upload-artifact', workersrc='app.tar.gz', masterdest='${masterDir}/artifacts/app.tar.gz'),
    steps.DirectoryUpload(name='upload-dist', workersrc='dist', masterdest='${masterDir}/artifacts/dist'),
    steps.MakeDirectory(name='mkdir', dir='build/scratch/sub'),
    steps.FileExists(name='check-artifact', file='build/app.tar.gz'),
    steps.RemoveDirectory(name='clean', dir='build/scratch'),
  ]`;
}

function printBuild(build: BuildResult): void {
  console.log(`\nbuild #${build.number}: ${RESULT_NAMES[build.results] ?? build.results} (${build.state_string})`);
  for (const step of build.steps) {
    const result = step.results === null ? '?' : (RESULT_NAMES[step.results] ?? String(step.results));
    console.log(`  ${String(step.number).padStart(2)} ${step.name.padEnd(18)} ${result.padEnd(9)} ${step.state_string}`);
    const stdio = step.logs.find((l) => l.name === 'stdio');
    if (!stdio) continue;
    const out = (channelText(stdio, 'o') + channelText(stdio, 'e')).split('\n').filter(Boolean).slice(0, 4);
    for (const line of out) console.log(`       | ${line}`);
  }
}

async function main(): Promise<number> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-demo-'));
  const masterDir = path.join(scratch, 'master');
  let master: BuildbotMaster | undefined;
  let worker: BbagentWorker | undefined;
  let job: DemoJob | undefined;
  try {
    job = await prepareDemoJob(scratch);
    console.log(`== starting a Buildbot master in ${masterDir}`);
    master = await BuildbotMaster.start({
      dir: masterDir,
      protocol: 'pb',
      workers: [{ name: 'demo-worker', password: 'demo-pass' }],
      builders: [{ name: 'sample', workernames: ['demo-worker'], steps: sampleSteps(masterDir) }, job.builder],
      pythonPreamble: DEMO_JOB_PREAMBLE,
      env: DEMO_JOB_ENV,
    });
    console.log(`== starting bbagent (Perspective Broker, port ${master.protocolPort})`);
    worker = await BbagentWorker.start({
      dir: path.join(scratch, 'worker'),
      masterPort: master.protocolPort,
      name: 'demo-worker',
      password: 'demo-pass',
      protocol: 'pb',
    });
    await master.waitForWorker('demo-worker');
    const info = await master.workerInfo('demo-worker');
    console.log(`== attached: ${JSON.stringify(info)}`);
    console.log(`== forcing the job: fetch the build and its tests, run chunk ${job.chunk.join(' ')}, a perf test`);
    const jobBuild = await master.runBuild('job', 180_000);
    printBuild(jobBuild);
    await printStoredResults(master, jobBuild.buildid);
    console.log("\n== forcing the job again: the build and its tests now come from the worker's cache (no request)");
    const again = await master.runBuild('job', 180_000);
    for (const step of again.steps.filter((st) => st.name.startsWith('fetch'))) console.log(`  ${step.name.padEnd(18)} ${step.state_string}`);
    console.log('\n== forcing the sample build');
    const build = await master.runBuild('sample', 120_000);
    printBuild(build);
    const artifact = readFileSync(path.join(masterDir, 'artifacts', 'app.tar.gz'));
    console.log(`\nartifact on the master: artifacts/app.tar.gz, ${artifact.length} bytes`);
    // the job ends in WARNINGS: its flaky test proved intermittent (RunSuite's rule), which is what it shows
    const jobOk = [jobBuild, again].every((b) => b.results === 0 || b.results === 1);
    return build.results === 0 && jobOk ? 0 : 1;
  } finally {
    console.log('== stopping bbagent and the master');
    await worker?.stop();
    await master?.stop();
    job?.server.close();
    if (!process.env['BBAGENT_DEMO_KEEP']) rmSync(scratch, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
