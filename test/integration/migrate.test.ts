// Migrating from buildbot-worker against a REAL Buildbot 3.7 master, as the README tells an operator to: a
// worker made and run by the real buildbot-worker builds; it is stopped, its basedir migrated with
// `bbagent create-worker --from-buildbot-worker`, and bbagent started there attaches under the same name and
// password and builds in the same builder directory. Over PB (in the background, with --log-level debug, whose
// debug lines must now appear) and over msgpack (in the foreground).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep } from '../../scripts/harness/master.js';
import { findExecutable, ManagedProcess, runCommand } from '../../scripts/harness/process.js';

const BUILDBOT_WORKER = findExecutable('buildbot-worker');
const haveBuildbot = existsSync('/usr/bin/buildbot') && BUILDBOT_WORKER !== undefined;
const PASSWORD = "migr'ated\\pw";

const env = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BBAGENT_')));
const bbagent = (args: string[]): Promise<string> => runCommand(process.execPath, [BUNDLE, ...args], { env: env() });
const buildbotWorker = (args: string[]): Promise<string> => runCommand(BUILDBOT_WORKER!, args, { env: env() });

/** The step writes a file into its builder directory and reads the one the previous build left there. */
const STEPS = String.raw`[
  steps.ShellCommand(name='who', command='cat ../previous 2>/dev/null || echo none; echo ran-here > ../previous; pwd', logEnviron=False),
]`;

describe.skipIf(!haveBuildbot)('migrating a buildbot-worker basedir, against a real master', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-migrate-it-'));
  let master: BuildbotMaster;
  let foreground: ManagedProcess | undefined;

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      alsoProtocol: 'msgpack',
      workers: [
        { name: 'old-pb', password: PASSWORD },
        { name: 'old-mp', password: PASSWORD },
      ],
      builders: [
        { name: 'b-pb', workernames: ['old-pb'], steps: STEPS },
        { name: 'b-mp', workernames: ['old-mp'], steps: STEPS },
      ],
    });
  });

  afterAll(async () => {
    await foreground?.stop(15_000);
    for (const dir of ['pb']) await bbagent(['stop', '-q', path.join(scratch, dir)]).catch(() => undefined);
    await master?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  async function buildOutput(builder: string): Promise<string> {
    const build = await master.runBuild(builder);
    expect(build.results, `${builder}: ${build.state_string}`).toBe(Results.SUCCESS);
    return channelText(findLog(findStep(build, 'who')), 'o');
  }

  it('PB: buildbot-worker builds, is stopped; migrated, `bbagent start` builds in the same directory', async () => {
    const dir = path.join(scratch, 'pb');
    await buildbotWorker(['create-worker', '-q', '--keepalive=30', '--umask=0o22', dir, `127.0.0.1:${master.portFor('pb')}`, 'old-pb', PASSWORD]);
    await buildbotWorker(['start', dir]);
    await master.waitForWorker('old-pb');
    const first = await buildOutput('b-pb');
    expect(first.split('\n')[0]).toBe('none');
    await buildbotWorker(['stop', dir]);
    await master.waitForWorker('old-pb', false);

    const migrated = await bbagent(['create-worker', '--from-buildbot-worker', dir]);
    expect(migrated).toContain(`worker configured in ${dir}`);
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8'))).toMatchObject({
      masterPort: master.portFor('pb'),
      name: 'old-pb',
      password: PASSWORD,
      keepalive: 30,
      umask: '0o022',
      protocol: 'pb',
    });
    const started = await bbagent(['start', '--log-level=debug', dir]);
    expect(started).toMatch(/bbagent started in .* Connected to 127\.0\.0\.1:\d+ \(pb\); worker is ready/);
    const second = await buildOutput('b-pb');
    // the builder directory buildbot-worker left is the one bbagent builds in
    expect(second.split('\n')[0]).toBe('ran-here');
    expect(second).toContain(path.join(dir, 'b-pb', 'build'));
    // --log-level debug reached the daemon: the PB login line, debug-only, is in its log
    expect(readFileSync(path.join(dir, 'bbagent.log'), 'utf8')).toMatch(/\[debug\] .*PB login of worker 'old-pb' at .* accepted/);
    await bbagent(['stop', dir]);
    await master.waitForWorker('old-pb', false);
  });

  it('msgpack: a basedir made with --protocol msgpack_experimental_v7 migrates and builds', async () => {
    const dir = path.join(scratch, 'mp');
    await buildbotWorker(['create-worker', '-q', '--protocol=msgpack_experimental_v7', dir, `127.0.0.1:${master.portFor('msgpack')}`, 'old-mp', PASSWORD]);
    await bbagent(['create-worker', '-q', '--from-buildbot-worker', dir]);
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8'))).toMatchObject({ protocol: 'msgpack', name: 'old-mp' });
    foreground = await ManagedProcess.spawn({
      command: process.execPath,
      args: [BUNDLE, 'start', '--nodaemon', dir],
      cwd: dir,
      env: env(),
      label: 'bbagent old-mp',
    });
    await master.waitForWorker('old-mp');
    expect((await buildOutput('b-mp')).split('\n')[0]).toBe('none');
    // without --log-level debug, no debug lines
    expect(foreground.capturedOutput).not.toContain('[debug]');
  });
});
