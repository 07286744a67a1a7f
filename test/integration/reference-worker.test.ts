// Proves the integration harness with the reference buildbot-worker: a real master, a real worker, a build
// over msgpack and one over PB, checked through the REST API.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildbotMaster, channelText, findLog, findStep, Results, stdioText, type Protocol } from '../../scripts/harness/master.js';
import { ReferenceWorker } from '../../scripts/harness/reference-worker.js';

const STEPS = `[
    steps.ShellCommand(name='hello', command='echo hello-out; echo hello-err >&2; printf payload > out.txt'),
    steps.FileUpload(name='upload', workersrc='out.txt', masterdest='uploaded.txt'),
    steps.ShellCommand(name='fail', command='exit 3', haltOnFailure=False, flunkOnFailure=True),
]`;

for (const protocol of ['msgpack', 'pb'] as const satisfies readonly Protocol[]) {
  describe(`harness with buildbot-worker over ${protocol}`, () => {
    let scratch: string;
    let master: BuildbotMaster | undefined;
    let worker: ReferenceWorker | undefined;

    beforeAll(async () => {
      scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-ref-${protocol}-`));
      master = await BuildbotMaster.start({
        dir: path.join(scratch, 'master'),
        protocol,
        workers: [{ name: 'w1', password: 'pass' }],
        builders: [{ name: 'b1', workernames: ['w1'], steps: STEPS }],
      });
      worker = await ReferenceWorker.start({
        dir: path.join(scratch, 'worker'),
        masterPort: master.protocolPort,
        name: 'w1',
        password: 'pass',
        protocol,
      });
      await master.waitForWorker('w1', true);
    });

    afterAll(async () => {
      await worker?.stop();
      await master?.stop();
      rmSync(scratch, { recursive: true, force: true });
    });

    it('runs a build and reports steps and channel-prefixed logs', async () => {
      const m = master!;
      const build = await m.runBuild('b1');

      expect(build.results).toBe(Results.FAILURE);
      expect(build.steps.map((s) => s.name)).toEqual(['worker_preparation', 'hello', 'upload', 'fail']);

      const hello = findLog(findStep(build, 'hello'));
      expect(findStep(build, 'hello').results).toBe(Results.SUCCESS);
      expect(hello.type).toBe('s');
      expect(hello.content).toContain('ohello-out\n');
      expect(hello.content).toContain('ehello-err\n');
      expect(channelText(hello, 'o')).toBe('hello-out\n');
      expect(channelText(hello, 'e')).toBe('hello-err\n');
      expect(channelText(hello, 'h')).toContain('program finished with exit code 0\n');
      expect(stdioText(hello)).toContain('hello-out\nhello-err\n');

      expect(findStep(build, 'upload').results).toBe(Results.SUCCESS);
      expect(readFileSync(path.join(m.dir, 'uploaded.txt'), 'utf8')).toBe('payload');

      const fail = findStep(build, 'fail');
      expect(fail.results).toBe(Results.FAILURE);
      expect(channelText(findLog(fail), 'h')).toContain('program finished with exit code 3\n');
    });

    it('shows worker info and can interrupt a running step', async () => {
      const m = master!;
      const info = await m.workerInfo('w1');
      expect(info['version']).toEqual(expect.stringContaining('3.7'));

      await m.reconfig({
        builders: [
          { name: 'b1', workernames: ['w1'], steps: STEPS },
          { name: 'slow', workernames: ['w1'], steps: "[steps.ShellCommand(name='sleep', command='echo started; sleep 60')]" },
        ],
      });
      const brid = await m.forceBuild('slow');
      const buildid = await m.waitForBuildStarted(brid);
      // stop only once the command runs on the worker: a stop that races the command's start ends in EXCEPTION
      await m.waitForLogText(buildid, 'sleep', /started/);
      await m.stopBuild(buildid, 'test interrupt');
      const build = await m.waitForBuild(brid);
      expect(build.results).toBe(Results.CANCELLED);
      expect(findStep(build, 'sleep').results).toBe(Results.CANCELLED);
    });

    it('survives a master restart on the same ports', async () => {
      const m = master!;
      const ports = [m.protocolPort, m.wwwPort];
      await m.restart();
      expect([m.protocolPort, m.wwwPort]).toEqual(ports);
      await m.waitForWorker('w1', true, 60_000);
      const build = await m.runBuild('b1');
      expect(findStep(build, 'hello').results).toBe(Results.SUCCESS);
    });
  });
}
