// Several workers in one agent process (bbagent.json `workers`): one bbagent attaches two workers to one real
// master, one over PB and one over msgpack, each with its own base directory; builds on both run at the same
// time and finish with their logs; a third worker whose master is gone gives up alone; SIGTERM detaches both;
// a bad entry refuses to start, naming it.

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker, BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type BuildResult, type RestStep } from '../../scripts/harness/master.js';
import { freePort } from '../../scripts/harness/ports.js';
import { runCommand } from '../../scripts/harness/process.js';

const PB_PASSWORD = 'pb-password-1';
const MP_PASSWORD = 'msgpack-password-2';
/** Each build's step runs this long, so that the two overlap however the master schedules them. */
const STEP_S = 3;

/** A step as the REST API has it, with its end time. */
type TimedStep = RestStep & { complete_at: number | null };

/** The step prints both passwords: each worker redacts its own, and only its own (its redaction set is its own). */
const steps = (tag: string): string =>
  `[steps.ShellCommand(name='work', command='echo start-${tag} ${PB_PASSWORD} ${MP_PASSWORD}; sleep ${STEP_S}; echo end-${tag}', logEnviron=False)]`;

describe('two workers in one agent process', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-multi-'));
  const agentDir = path.join(scratch, 'agent');
  let master: BuildbotMaster;
  let agent: BbagentWorker | undefined;

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      alsoProtocol: 'msgpack',
      workers: [
        { name: 'w-pb', password: PB_PASSWORD },
        { name: 'w-mp', password: MP_PASSWORD },
      ],
      builders: [
        { name: 'b-pb', workernames: ['w-pb'], steps: steps('pb') },
        { name: 'b-mp', workernames: ['w-mp'], steps: steps('mp') },
      ],
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await master?.stop();
  });

  it('attaches both workers, runs a build on each at the same time, and detaches both on SIGTERM', async () => {
    const nobodyListens = await freePort();
    agent = await BbagentWorker.start({
      dir: agentDir,
      masterPort: master.portFor('pb'),
      name: 'w-pb',
      password: PB_PASSWORD,
      protocol: 'pb',
      // the workers side by side in the agent's directory
      config: {
        basedir: 'w-pb',
        workers: [
          { basedir: 'w-mp', name: 'w-mp', password: MP_PASSWORD, protocol: 'msgpack', masterPort: master.portFor('msgpack') },
          { basedir: 'w-gone', name: 'w-gone', masterPort: nobodyListens, maxretries: 0 },
        ],
      },
    });
    const [pbWorker, mpWorker] = await Promise.all([master.waitForWorker('w-pb'), master.waitForWorker('w-mp')]);
    // each worker's log lines carry its name
    await agent.waitForOutput(/\[w-pb\] Connected to 127\.0\.0\.1:\d+ \(pb\)/);
    await agent.waitForOutput(/\[w-mp\] Connected to 127\.0\.0\.1:\d+ \(msgpack\)/);
    // the worker whose master is gone stops alone; the others go on
    await agent.waitForOutput(/\[w-gone\] giving up after 1 failed connection attempts \(maxretries 0\)/);
    await agent.waitForOutput(/worker 'w-gone' stopped \(its master gave up\); 2 other worker\(s\) go on/);

    const [pbRequest, mpRequest] = await Promise.all([master.forceBuild('b-pb'), master.forceBuild('b-mp')]);
    const [pbBuild, mpBuild] = await Promise.all([master.waitForBuild(pbRequest), master.waitForBuild(mpRequest)]);
    checkBuild(pbBuild, pbWorker.workerid, 'pb', path.join(agentDir, 'w-pb'), `<redacted> ${MP_PASSWORD}`);
    checkBuild(mpBuild, mpWorker.workerid, 'mp', path.join(agentDir, 'w-mp'), `${PB_PASSWORD} <redacted>`);
    expect(existsSync(path.join(agentDir, 'w-pb', 'b-pb'))).toBe(true);
    expect(existsSync(path.join(agentDir, 'w-mp', 'b-mp'))).toBe(true);

    // the builds ran at the same time: each step started before the other ended
    const [pbStep, mpStep] = await Promise.all([workStep(pbBuild), workStep(mpBuild)]);
    expect(pbStep.started_at).not.toBeNull();
    expect(mpStep.started_at).not.toBeNull();
    expect(pbStep.started_at ?? Infinity).toBeLessThan(mpStep.complete_at ?? -Infinity);
    expect(mpStep.started_at ?? Infinity).toBeLessThan(pbStep.complete_at ?? -Infinity);

    agent.signal('SIGTERM');
    await Promise.all([master.waitForWorker('w-pb', false), master.waitForWorker('w-mp', false)]);
    // a worker gave up: the agent says so in its exit code
    expect(await agent.exited).toBe(1);
    expect(agent.output).toMatch(/received SIGTERM/);
    expect(agent.output).toMatch(/bbagent stopped/);
  }, 120_000);

  async function workStep(build: BuildResult): Promise<TimedStep> {
    const { steps: all } = await master.get<{ steps: TimedStep[] }>(`/builds/${build.buildid}/steps`);
    const step = all.find((s) => s.name === 'work');
    if (!step) throw new Error(`build ${build.buildid} has no step work`);
    return step;
  }

  it('a bad setting in workers[1] refuses to start, naming the entry and the field', async () => {
    const dir = path.join(scratch, 'bad');
    await BbagentWorker.create({ dir, masterPort: master.portFor('pb'), name: 'w-pb', password: PB_PASSWORD, protocol: 'pb' });
    const file = path.join(dir, 'bbagent.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const workers = [
      { basedir: '../bad-w2', name: 'w2' },
      { basedir: '../bad-w3', name: 'w3', masterPort: 'not-a-port' },
    ];
    writeFileSync(file, JSON.stringify({ ...config, workers }));
    const failed = await runCommand(process.execPath, [BUNDLE, 'start', '--nodaemon', dir]).then(
      (out) => `unexpectedly started:\n${out}`,
      (err: Error) => err.message,
    );
    expect(failed).toContain(`${file}: workers[1].masterPort must be an integer from 1 to 65535, got "not-a-port"`);
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  });
});

function checkBuild(build: BuildResult, workerid: number, tag: string, basedir: string, passwords: string): void {
  expect(build.results, `build of ${tag}: ${build.state_string}`).toBe(Results.SUCCESS);
  expect(build.workerid).toBe(workerid);
  const log = findLog(findStep(build, 'work'));
  expect(channelText(log, 'o')).toBe(`start-${tag} ${passwords}\nend-${tag}\n`);
  expect(channelText(log, 'h')).toContain(` in dir ${path.join(basedir, `b-${tag}`, 'build')}`);
  expect(channelText(log, 'h')).toContain('program finished with exit code 0');
}
