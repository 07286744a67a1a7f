// Fault suite, hostile paths and files (issue 10 items 1 and 8) against a real Buildbot master, on both
// protocols: a workdir under /proc (Node's recursive mkdir looped for ever there), a '**' glob through
// symbolic link loops, logfiles that are a FIFO or a link to /dev/zero, uploads of a FIFO and of a device, and
// a file swapped for a FIFO between lstat and open in a directory upload. Each runs on its own builder while
// another builder of the same agent prints steadily. Pass: every step ends within 10 s with a clear error
// (what buildbot-worker reports where it does not hang), the agent keeps its pid, logs no event-loop stall
// of 200 ms or more, and the steady builder's output keeps reaching the master meanwhile.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type BuildResult, type Protocol } from '../../scripts/harness/master.js';
import { LogFlow, loopStalls, stepTimings, type StepTiming } from './helpers/fs-checks.js';

const PASSWORD = 'pw';
/** Pass criteria of the issue. */
const STEP_BOUND_S = 10;
const STALL_BOUND_MS = 200;
/** How long the test waits for a hostile build (a step is allowed 10 s; the builds start together). */
const BUILD_WAIT_MS = 30_000;
/**
 * The steady builder prints every 50 ms and the agent sends a step's output at least every buffer_timeout (5 s,
 * the master's setting, as buildbot-worker): no new lines on the master for this long means its output stopped.
 */
const SILENCE_BOUND_MS = 8000;

/** A '**' glob step (CommandMixin.runGlob): its result sorted, one path a line, in a 'files' log. */
const preamble = (swapPath: string): string => `
import os
from twisted.internet import defer
from buildbot.process import buildstep, remotetransfer
from buildbot.process.results import SUCCESS

class GlobStep(buildstep.BuildStep, buildstep.CommandMixin):
    def __init__(self, pattern, **kwargs):
        super().__init__(**kwargs)
        self.pattern = pattern

    @defer.inlineCallbacks
    def run(self):
        files = yield self.runGlob(self.pattern)
        yield self.addCompleteLog('files', ''.join(f + '\\n' for f in sorted(files)))
        return SUCCESS

# With blocksize 3072 the first block of the 'dirswap' upload ends with the header of swapdir/f. The master swaps f
# for a FIFO before it acknowledges that block; the worker walks the tree without a pause between lstat and
# open (as tarfile does), so f was read before the swap (the swap between the two: test/unit/tar.test.ts).
SWAP_PATH = ${JSON.stringify(swapPath)}
_directory_write = remotetransfer.DirectoryWriter.remote_write
def _swap_then_write(self, data):
    if os.path.isfile(SWAP_PATH) and not os.path.islink(SWAP_PATH):
        os.unlink(SWAP_PATH)
        os.mkfifo(SWAP_PATH)
    return _directory_write(self, data)
remotetransfer.DirectoryWriter.remote_write = _swap_then_write
`;

const HOSTILE_BUILDERS = ['procdir', 'proccopy', 'procmkdir', 'globloop', 'logfiles', 'uploads', 'dirswap'] as const;
type Hostile = (typeof HOSTILE_BUILDERS)[number];

const sh = (name: string, command: string, extra = ''): string =>
  `steps.ShellCommand(name='${name}', command=${JSON.stringify(command)}, logEnviron=False${extra})`;
const soft = 'haltOnFailure=False, flunkOnFailure=True';

const STEPS: Record<Hostile | 'steady', string> = {
  steady: `[${sh('steady', 'i=0; while [ $i -lt 2400 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done')}]`,
  procdir: `[${sh('procdir', 'echo never', ", workdir='/proc/x/y'")}]`,
  proccopy: `[steps.CopyDirectory(name='proccopy', src='build', dest='/proc/a/b/c')]`,
  procmkdir: `[steps.MakeDirectory(name='procmkdir', dir='/proc/x/y', ${soft})]`,
  globloop: `[
    ${sh('loops', 'rm -rf loops && mkdir -p loops/one/sub loops/two && touch loops/one/f loops/one/sub/g.txt loops/two/f && ln -s . loops/one/loop && ln -s . loops/two/a && ln -s .. loops/two/b')},
    GlobStep(name='glob-one', pattern='build/loops/one/**'),
    GlobStep(name='glob-two', pattern='build/loops/two/**'),
  ]`,
  logfiles: `[${sh('logfiles', 'rm -f fifo.log zero.log; mkfifo fifo.log && ln -s /dev/zero zero.log && sleep 2.5 && echo done', ", logfiles={'fifo': 'fifo.log', 'zero': 'zero.log'}")}]`,
  uploads: `[
    ${sh('make', 'rm -f up.fifo zero.link; mkfifo up.fifo && ln -s /dev/zero zero.link')},
    steps.FileUpload(name='up-fifo', workersrc='up.fifo', masterdest='up-fifo', ${soft}),
    steps.FileUpload(name='up-zero', workersrc='zero.link', masterdest='up-zero', ${soft}),
  ]`,
  dirswap: `[
    ${sh('make', 'rm -rf swapdir && mkdir swapdir && echo content > swapdir/f')},
    steps.DirectoryUpload(name='dirswap', workersrc='swapdir', masterdest='swapped', blocksize=3072),
  ]`,
};

/** An exception as the master stores it: "FileNotFoundError: msg" (PB) or "<class 'FileNotFoundError'>: msg" (msgpack). */
function pyError(type: string, message: string): RegExp {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`${type}'?>?: ${esc(message)}`);
}

const protocols: Protocol[] = ['msgpack', 'pb'];

describe.each(protocols)('hostile paths and files over %s', (protocol) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-hostile-${protocol}-`));
  const bbDir = path.join(scratch, 'bb');
  let master: BuildbotMaster;
  let bb: BbagentWorker;
  const builds = new Map<Hostile, BuildResult>();
  const timings = new Map<Hostile, StepTiming[]>();
  let pid = 0;
  let silenceMs = Number.POSITIVE_INFINITY;

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol,
      workers: [{ name: 'bb', password: PASSWORD }],
      builders: (['steady', ...HOSTILE_BUILDERS] as const).map((name) => ({ name, workernames: ['bb'], steps: STEPS[name] })),
      pythonPreamble: preamble(path.join(bbDir, 'dirswap', 'build', 'swapdir', 'f')),
    });
    bb = await BbagentWorker.start({ dir: bbDir, masterPort: master.protocolPort, name: 'bb', password: PASSWORD, protocol });
    await master.waitForWorker('bb');
    pid = bb.pid;

    // the steady builder runs all along; the hostile builds start together once its output flows
    const steadyBrid = await master.forceBuild('steady');
    const steadyBuild = await master.waitForBuildStarted(steadyBrid);
    const flow = await LogFlow.start(master, steadyBuild, 'steady');
    await master.waitForLogText(steadyBuild, 'steady', 'tick 5', { timeoutMs: 30_000 });
    const from = flow.now();
    const brids = await Promise.all(HOSTILE_BUILDERS.map((b) => master.forceBuild(b)));
    // a build that does not finish is recorded as such (each test then fails on its own), not awaited for ever
    const done = await Promise.all(brids.map((brid) => master.waitForBuild(brid, BUILD_WAIT_MS).catch(() => undefined)));
    const to = flow.now();
    flow.stop();
    silenceMs = flow.longestSilence(from, to);
    await master.stopBuild(steadyBuild);
    for (const [i, name] of HOSTILE_BUILDERS.entries()) {
      const build = done[i];
      if (!build) continue;
      builds.set(name, build);
      timings.set(name, await stepTimings(master, build.buildid));
    }
  }, 100_000);

  /** The finished build of a hostile builder; fails the test when it did not finish in time. */
  function build(name: Hostile): BuildResult {
    const b = builds.get(name);
    expect(b, `the ${name} build did not finish within ${BUILD_WAIT_MS / 1000} s`).toBeDefined();
    return b!;
  }

  afterAll(async () => {
    await bb?.stop();
    await master?.stop();
  });

  it('every step ends within 10 s; same agent pid; no event-loop stall >= 200 ms; the steady builder kept flowing', () => {
    const all = [...timings.entries()].flatMap(([b, ts]) => ts.map((t) => `${b}/${t.name}: ${t.seconds} s`));
    console.log(`[${protocol}] step durations: ${all.join(', ')}`);
    expect(
      HOSTILE_BUILDERS.filter((b) => !builds.has(b)),
      'builds that did not finish',
    ).toEqual([]);
    console.log(
      `[${protocol}] event-loop stalls logged: ${JSON.stringify(loopStalls(bb.output))}; longest silence of the steady builder: ${Math.round(silenceMs)} ms`,
    );
    for (const ts of timings.values()) for (const t of ts) expect(t.seconds, t.name).toBeLessThanOrEqual(STEP_BOUND_S);
    expect(bb.running).toBe(true);
    expect(bb.pid).toBe(pid);
    expect(loopStalls(bb.output).filter((ms) => ms >= STALL_BOUND_MS)).toEqual([]);
    expect(silenceMs).toBeLessThan(SILENCE_BOUND_MS);
  });

  it("a workdir under /proc: EXCEPTION, no header, python's FileNotFoundError naming '/proc/x' (as buildbot-worker)", () => {
    const step = findStep(build('procdir'), 'procdir');
    expect(step.results).toBe(Results.EXCEPTION);
    expect(findLog(step, 'stdio').content).toBe('');
    expect(findLog(step, 'err.text').content).toMatch(pyError('FileNotFoundError', "[Errno 2] No such file or directory: '/proc/x'"));
  });

  it('cpdir and mkdir under /proc: the same errors as buildbot-worker', () => {
    const copy = findStep(build('proccopy'), 'proccopy');
    expect(copy.results).toBe(Results.EXCEPTION);
    expect(findLog(copy, 'err.text').content).toMatch(pyError('FileNotFoundError', "[Errno 2] No such file or directory: '/proc/a'"));
    // the master's MakeDirectory keeps no log: its header (mkdir: No such file or directory: ...) is not stored
    expect(findStep(build('procmkdir'), 'procmkdir').results).toBe(Results.FAILURE);
  });

  it("'**' through one symlink loop gives python's paths; through two (python never returns) a clear error", () => {
    const b = build('globloop');
    const one = findStep(b, 'glob-one');
    expect(one.results).toBe(Results.SUCCESS);
    const base = path.join(bbDir, 'globloop', 'build', 'loops');
    const expected = JSON.parse(
      execFileSync('python3', ['-c', 'import glob,json,sys; print(json.dumps(sorted(glob.glob(sys.argv[1], recursive=True))))', path.join(base, 'one', '**')], {
        encoding: 'utf8',
      }),
    ) as string[];
    expect(expected.length).toBeGreaterThan(100);
    expect(findLog(one, 'files').content.split('\n').slice(0, -1)).toEqual(expected);
    const two = findStep(b, 'glob-two');
    expect(two.results).toBe(Results.EXCEPTION);
    expect(findLog(two, 'err.text').content).toMatch(
      new RegExp(`glob '${base}/two/\\*\\*': more than \\d+ paths found through a symbolic link loop at '${base}/two/(a|b/two)'`),
    );
  });

  it('logfiles that are a FIFO and a link to /dev/zero are reported in their logs, not read; the step succeeds', () => {
    const step = findStep(build('logfiles'), 'logfiles');
    expect(step.results).toBe(Results.SUCCESS);
    const dir = path.join(bbDir, 'logfiles', 'build');
    expect(findLog(step, 'fifo').content).toContain(`bbagent: not reading logfile '${dir}/fifo.log': it is a FIFO, not a regular file`);
    expect(findLog(step, 'zero').content).toContain(`bbagent: not reading logfile '${dir}/zero.log': it is a character device, not a regular file`);
  });

  it('upload_file of a FIFO or of a link to /dev/zero fails the step with a message naming the file and its kind', () => {
    const b = build('uploads');
    const dir = path.join(bbDir, 'uploads', 'build');
    for (const [name, file, kind] of [
      ['up-fifo', 'up.fifo', 'a FIFO'],
      ['up-zero', 'zero.link', 'a character device'],
    ] as const) {
      const step = findStep(b, name);
      expect(step.results).toBe(Results.FAILURE);
      expect(channelText(findLog(step, 'stdio'), 'e')).toContain(`Cannot open file '${dir}/${file}' for upload: it is ${kind}, not a regular file`);
    }
  });

  it('a file swapped for a FIFO by the master after its header left is already archived: the step succeeds', () => {
    const step = findStep(build('dirswap'), 'dirswap');
    expect(step.results).toBe(Results.SUCCESS);
    expect(readFileSync(path.join(master.dir, 'swapped', 'f'), 'utf8')).toBe('content\n');
  });
});
