// Proof of the PB layer against a REAL Buildbot 3.7 master (Debian's buildbot, through the integration harness):
// an in-process Worker logs in with connectPb and runs builds. The scenarios of the integration suite run on it and
// on buildbot-worker (PB) side by side and must give the same logs; plus file transfers, 1100 commands in one
// connection (the master's 1024-reference cap), an interrupt, a wrong password and a worker-initiated shutdown.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import { Worker } from '../../agent/worker/worker.js';
import { connectPb, type PbSession } from '../../agent/connection/pb/connect.js';
import { collectWorkerInfo } from '../../agent/worker/info.js';
import { currentPlatform } from '../../platforms/index.js';
import { BuildbotMaster, Results, channelText, findLog, findStep } from '../../scripts/harness/master.js';
import { findExecutable } from '../../scripts/harness/process.js';
import { PYTHON_PREAMBLE } from './scenarios.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const PASSWORD = 'sekrit';
const MANY = 1100;

const PREAMBLE =
  PYTHON_PREAMBLE +
  String.raw`
class ManyStats(buildstep.BuildStep, CompositeStepMixin):
    """Runs 'count' stat commands in one build: each registers a RemoteCommand on the master's broker."""
    def __init__(self, count, **kw):
        super().__init__(**kw)
        self.count = count

    @defer.inlineCallbacks
    def run(self):
        base = self.build.properties.getProperty('builddir')
        ok = 0
        for i in range(self.count):
            rc = yield self.runRemoteCommand('stat', {'file': base, 'logEnviron': False}, abandonOnFailure=False,
                                             evaluateCommand=lambda c: c.rc)
            if rc == 0:
                ok += 1
        yield self.addCompleteLog('result', 'ok %d of %d\n' % (ok, self.count))
        return 0 if ok == self.count else 2
`;

const haveBuildbot = existsSync('/usr/bin/buildbot') && findExecutable('buildbot-worker') !== undefined;

describe.skipIf(!haveBuildbot)('PB against a real Buildbot 3.7 master', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-pb-real-'));
  const masterDir = path.join(scratch, 'master');
  const basedir = path.join(scratch, 'bb');
  const logger = new RecordingLogger();
  let master: BuildbotMaster;
  let session: PbSession | undefined;
  let worker: Worker;
  let shutdownRequests = 0;

  beforeAll(async () => {
    const builders = [
      {
        name: 'basic',
        workernames: ['bb'],
        steps: String.raw`[
          steps.ShellCommand(name='hello', command='echo hello; echo oops >&2', logEnviron=False),
          steps.MakeDirectory(dir='build/made/here'),
          steps.ShellCommand(name='write', command='printf "line1\\nline2\\n" > made/here/up.txt', logEnviron=False),
          steps.FileUpload(name='upload', workersrc='made/here/up.txt', masterdest='${masterDir}/basic-up.txt', keepstamp=True),
          steps.FileDownload(name='download', mastersrc='${masterDir}/master.cfg', workerdest='cfg-copy.py', blocksize=1000),
          steps.ShellCommand(name='check', command='cmp cfg-copy.py ${masterDir}/master.cfg && echo same', logEnviron=False),
        ]`,
      },
      { name: 'many', workernames: ['bb'], steps: `[ManyStats(name='many', count=${MANY})]` },
      { name: 'stop', workernames: ['bb'], steps: `[steps.ShellCommand(name='sleepy', command='echo started; sleep 300', logEnviron=False)]` },
    ];
    master = await BuildbotMaster.start({
      dir: masterDir,
      protocol: 'pb',
      workers: [{ name: 'bb', password: PASSWORD }],
      builders,
      pythonPreamble: PREAMBLE,
    });
    const environ: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) environ[k] = v;
    environ['LANG'] = 'C.UTF-8';
    const platform = currentPlatform();
    worker = new Worker({
      env: { basedir, platform, logger, environ, now: () => Date.now() / 1000 },
      commands: COMMAND_TABLE,
      logger,
      collectInfo: () =>
        collectWorkerInfo({ basedir, platform, commands: COMMAND_TABLE, environ, numcpus: null, version: 'bbagent test', deleteLeftoverDirs: false, logger }),
      onShutdownRequest: () => shutdownRequests++,
      version: 'bbagent test',
    });
    session = await connectPb(
      { host: '127.0.0.1', port: master.protocolPort, name: 'bb', password: PASSWORD, keepaliveS: 1, handshakeTimeoutMs: 10_000 },
      worker,
      logger,
    );
    await master.waitForWorker('bb');
  });

  afterAll(async () => {
    session?.close();
    await master?.stop();
  });

  it('attached: the master has the worker info', async () => {
    const info = await master.workerInfo('bb');
    expect(info['version']).toBe('bbagent test');
  });

  it('shell, mkdir, upload and download build succeeds with the right logs', async () => {
    const build = await master.runBuild('basic', 60_000);
    expect(build.results, JSON.stringify(build.steps.map((s) => [s.name, s.results, s.state_string]))).toBe(Results.SUCCESS);
    const hello = findLog(findStep(build, 'hello'));
    expect(channelText(hello, 'o')).toBe('hello\n');
    expect(channelText(hello, 'e')).toBe('oops\n');
    expect(channelText(hello, 'h')).toContain(`in dir ${path.join(basedir, 'basic', 'build')}`);
    expect(channelText(hello, 'h')).toContain('program finished with exit code 0');
    expect(existsSync(path.join(basedir, 'basic', 'build', 'made', 'here'))).toBe(true);
    expect(readFileSync(path.join(masterDir, 'basic-up.txt'), 'utf8')).toBe('line1\nline2\n');
    expect(readFileSync(path.join(basedir, 'basic', 'build', 'cfg-copy.py'), 'utf8')).toBe(readFileSync(path.join(masterDir, 'master.cfg'), 'utf8'));
    expect(channelText(findLog(findStep(build, 'check')), 'o')).toBe('same\n');
  });

  it(`${MANY} commands in one build and connection: every reference is released`, async () => {
    const build = await master.runBuild('many', 180_000);
    expect(build.results).toBe(Results.SUCCESS);
    expect(findLog(findStep(build, 'many'), 'result').content).toContain(`ok ${MANY} of ${MANY}`);
    expect(master.logTail(400)).not.toContain('Maximum PB reference count exceeded');
  }, 240_000);

  it('a build stopped from the master interrupts the command', async () => {
    const brid = await master.forceBuild('stop');
    const buildid = await master.waitForBuildStarted(brid);
    await master.waitForLogText(buildid, 'sleepy', /started/);
    await master.stopBuild(buildid, 'stopped by the test');
    const build = await master.waitForBuild(brid);
    expect(build.results).toBe(Results.CANCELLED);
    expect(channelText(findLog(findStep(build, 'sleepy')), 'h')).toContain('command interrupted, attempting to kill');
  });

  it('a wrong password is refused with E_AUTH', async () => {
    const l = new RecordingLogger();
    const otherBot = new Worker({
      env: { basedir: mkdtempSync(path.join(scratch, 'wrong-')), platform: currentPlatform(), logger: l, environ: {}, now: () => Date.now() / 1000 },
      commands: COMMAND_TABLE,
      logger: l,
      collectInfo: async () => ({}),
      onShutdownRequest: () => {},
    });
    await expect(
      connectPb({ host: '127.0.0.1', port: master.protocolPort, name: 'bb', password: 'nope', keepaliveS: 0, handshakeTimeoutMs: 10_000 }, otherBot, l),
    ).rejects.toMatchObject({ code: 'E_AUTH', message: expect.stringContaining("refused worker 'bb'") });
  });

  it('worker-initiated shutdown: the master calls the worker back, and nothing went wrong on the way', async () => {
    await session!.requestShutdown();
    for (let i = 0; i < 100 && shutdownRequests === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(shutdownRequests).toBe(1);
    expect(logger.lines.filter((l) => l.startsWith('error '))).toEqual([]);
    // keepalives went out every second and were answered
    expect(logger.lines.some((l) => l.includes('keepalive') && l.startsWith('warn'))).toBe(false);
  });
});
