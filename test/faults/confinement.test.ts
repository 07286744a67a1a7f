// Item 11 against a real Buildbot 3.7 master, over both protocols: a worker with --confine-to-basedir refuses
// absolute paths, '..' escapes and symlinks out of BASEDIR in every fs and transfer command and in a shell
// workdir (the step fails naming the path; nothing outside BASEDIR changes), and still runs the same steps
// inside BASEDIR. rmdir never removes BASEDIR, confined or not: not for a builder whose directory is BASEDIR,
// not for msgpack's `rmdir ''`. A worker reached over a network address without TLS warns once at start.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, findStep, Results, type Protocol, type StepResult } from '../../scripts/harness/master.js';
import { snapshot } from '../helpers/fs-snapshot.js';

const PASSWORD = 'pw';

const PREAMBLE = String.raw`
from buildbot.process import buildstep
from buildbot.process.results import FAILURE, SUCCESS
from buildbot.steps.worker import CompositeStepMixin
from buildbot.worker import base as _bb_worker_base
from twisted.internet import defer

# A worker whose build ended in EXCEPTION waits 10 s (doubling each time) before its next build; here every
# refusal is an expected EXCEPTION.
_bb_worker_base.AbstractWorker.quarantine_initial_timeout = _bb_worker_base.AbstractWorker.quarantine_timeout = 0
_bb_worker_base.AbstractWorker.quarantine_max_timeout = 0

class Probe(buildstep.BuildStep, CompositeStepMixin):
    """Runs remote commands one after the other, as master-side steps would, and writes one line per command
    to a 'result' log: name, then 'rc N' or 'raised <what the worker said>'. One step for many commands keeps
    the build short."""
    def __init__(self, ops, **kw):
        super().__init__(**kw)
        self.ops = ops

    @defer.inlineCallbacks
    def run(self):
        self.rc_log = yield self.addLog('stdio')
        out = []
        ok = True
        for name, cmd, args in self.ops:
            try:
                rc = yield self.runRemoteCommand(cmd, dict(args, logEnviron=False), abandonOnFailure=False, evaluateCommand=lambda c: c.rc)
                out.append('%s\trc %s' % (name, rc))
                ok = ok and rc == 0
            except Exception as e:
                out.append('%s\traised %s' % (name, str(e).replace('\n', ' ')))
                ok = False
        yield self.addCompleteLog('result', '\n'.join(out) + '\n')
        return SUCCESS if ok else FAILURE
`;

/**
 * Makes the msgpack master send `rmdir` with paths [''] for builder 'rmdir-empty': its translation joins the
 * builder directory with 'dir', and join('', '') is ''. (A master that sends the argument as is, or a builder
 * directory that is empty, sends the same.) The translation runs before the first yield, so the swap is undone
 * before anything else can see it.
 */
const MSGPACK_RAW_RMDIR = String.raw`
from buildbot.worker.protocols import msgpack as _bb_msgpack
_bb_start = _bb_msgpack.Connection.remoteStartCommand
def _bb_raw_start(self, remoteCommand, builderName, commandId, commandName, args):
    if builderName != 'rmdir-empty':
        return _bb_start(self, remoteCommand, builderName, commandId, commandName, args)
    saved = self.builder_basedirs[builderName]
    self.builder_basedirs[builderName] = ''
    try:
        return _bb_start(self, remoteCommand, builderName, commandId, commandName, args)
    finally:
        self.builder_basedirs[builderName] = saved
_bb_msgpack.Connection.remoteStartCommand = _bb_raw_start
`;

const py = (v: unknown): string => JSON.stringify(v);

/**
 * Every fs command (one Probe step), each transfer step and a shell step, on paths under `x` (relative to the
 * builder directory, or absolute), as Python; `named` maps each probe to the path its refusal must name.
 */
function probeSteps(x: string, masterFile: string, masterOut: string, tag: string): { tag: string; steps: string[]; fs: string; named: Map<string, string> } {
  const named = new Map<string, string>();
  const ops: [string, string, Record<string, string>][] = [];
  const op = (what: string, cmd: string, args: Record<string, string>, names: string): void => {
    ops.push([what, cmd, args]);
    named.set(what, names);
  };
  op('mkdir', 'mkdir', { dir: `${x}/made` }, `${x}/made`);
  op('rmdir', 'rmdir', { dir: `${x}/victim/deep` }, `${x}/victim/deep`);
  op('cpdir-to', 'cpdir', { fromdir: 'src', todir: `${x}/copy` }, `${x}/copy`);
  op('cpdir-from', 'cpdir', { fromdir: `${x}/victim`, todir: 'copy-in' }, `${x}/victim`);
  op('stat', 'stat', { file: `${x}/file` }, `${x}/file`);
  op('glob', 'glob', { path: `${x}/*` }, `${x}/*`);
  op('listdir', 'listdir', { dir: x }, x);
  op('rmfile', 'rmfile', { path: `${x}/file` }, `${x}/file`);
  const fs = `${tag}-fs`;
  const step = (what: string, python: string, names: string): string => {
    named.set(what, names);
    return python.replace('NAME', py(`${tag}-${what}`));
  };
  const steps = [
    `Probe(${py(ops)}, name=${py(fs)}, alwaysRun=True)`,
    step(
      'upload-file',
      `steps.FileUpload(name=NAME, workersrc=${py(`${x}/secret`)}, masterdest=${py(`${masterOut}/${tag}-file`)}, workdir='.', alwaysRun=True)`,
      `${x}/secret`,
    ),
    step(
      'upload-dir',
      `steps.DirectoryUpload(name=NAME, workersrc=${py(`${x}/victim`)}, masterdest=${py(`${masterOut}/${tag}-dir`)}, workdir='.', alwaysRun=True)`,
      `${x}/victim`,
    ),
    step(
      'download',
      `steps.FileDownload(name=NAME, mastersrc=${py(masterFile)}, workerdest=${py(`${x}/downloaded`)}, workdir='.', alwaysRun=True)`,
      `${x}/downloaded`,
    ),
    step('shell', `steps.ShellCommand(name=NAME, command=['touch', 'ran-here'], workdir=${py(x)}, logEnviron=False, alwaysRun=True)`, x),
  ];
  return { tag, steps, fs, named };
}

/** The Probe step's result log: command name -> 'rc N' or 'raised ...'. */
function probeResults(step: StepResult): Map<string, string> {
  const log = step.logs.find((l) => l.name === 'result');
  if (!log) throw new Error(`step ${step.name} has no result log: ${stepText(step)}`);
  return new Map(
    log.content
      .trim()
      .split('\n')
      .map((l) => l.split('\t') as [string, string]),
  );
}

/** What the master shows of a step: its state and every log's text. */
function stepText(step: StepResult): string {
  return [step.state_string, ...step.logs.map((l) => l.content)].join('\n');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The longest event-loop stall the agent logged (agent/loop-monitor.ts logs every one of 100 ms or more). */
function longestStallMs(output: string): number {
  return Math.max(0, ...[...output.matchAll(/event loop blocked for (\d+) ms/g)].map((m) => Number(m[1])));
}

/** A non-loopback IPv4 address of this machine, to reach the master "over the network". */
function networkAddress(): string | undefined {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

const protocols: Protocol[] = ['msgpack', 'pb'];

describe.each(protocols)('confinement over %s', (protocol) => {
  const scratch = realpathSync(mkdtempSync(path.join(os.tmpdir(), `bbagent-confine-${protocol}-`)));
  const outside = path.join(scratch, 'outside');
  const masterOut = path.join(scratch, 'master-got');
  const masterFile = path.join(scratch, 'master-file.txt');
  const confinedDir = path.join(scratch, 'workers', 'confined');
  const freeDir = path.join(scratch, 'workers', 'free');
  // one builder per kind of escape, run at once: the master waits up to 1 s for an rc after every refused
  // command (remotecommand.py's _finished), so 12 refusals in a row take 12 s
  const kinds = {
    absolute: outside,
    dotdot: path.relative(path.join(confinedDir, 'escape-dotdot'), outside), // ../../../outside
    symlink: 'out', // a symlink to outside made by the build's first step
  };
  const escapeProbes = Object.entries(kinds).map(([kind, x]) => ({ builder: `escape-${kind}`, ...probeSteps(x, masterFile, masterOut, kind) }));
  const insideProbes = [
    probeSteps('sub', masterFile, masterOut, 'in-rel'),
    probeSteps(path.join(confinedDir, 'inside', 'abs'), masterFile, masterOut, 'in-abs'),
  ];
  const prepare = (dirs: string[]): string =>
    `steps.ShellCommand(name='prepare', workdir='.', logEnviron=False, command=${py(
      [
        `mkdir -p src && echo s > src/f && ln -sfn ${outside} out`,
        ...dirs.map((d) => `mkdir -p ${d}/victim/deep && echo f > ${d}/file && echo s > ${d}/secret`),
      ].join(' && '),
    )})`;
  let master: BuildbotMaster;
  let confined: BbagentWorker;
  let free: BbagentWorker;

  beforeAll(async () => {
    mkdirSync(path.join(outside, 'victim', 'deep'), { recursive: true });
    writeFileSync(path.join(outside, 'file'), 'outside file\n');
    writeFileSync(path.join(outside, 'secret'), 'outside secret\n');
    writeFileSync(path.join(outside, 'victim', 'deep', 'keep'), 'keep\n');
    mkdirSync(masterOut);
    writeFileSync(masterFile, 'from the master\n');
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol,
      workers: [
        { name: 'confined', password: PASSWORD },
        { name: 'free', password: PASSWORD },
        { name: 'remote', password: PASSWORD },
      ],
      builders: [
        ...escapeProbes.map((p) => ({ name: p.builder, workernames: ['confined'], steps: `[${[prepare([]), ...p.steps].join(',\n')}]` })),
        {
          name: 'inside',
          workernames: ['confined'],
          steps: `[${[prepare(['sub', path.join(confinedDir, 'inside', 'abs')]), ...insideProbes.flatMap((p) => p.steps)].join(',\n')}]`,
        },
        // a builder whose directory is BASEDIR itself: RemoveDirectory('') names BASEDIR
        { name: 'rmdir-basedir', workernames: ['free'], steps: `[steps.RemoveDirectory(name='rmdir', dir='')]`, args: "workerbuilddir=''" },
        { name: 'rmdir-basedir-confined', workernames: ['confined'], steps: `[steps.RemoveDirectory(name='rmdir', dir='')]`, args: "workerbuilddir=''" },
        { name: 'rmdir-empty', workernames: ['free'], steps: `[Probe([['rmdir', 'rmdir', {'dir': ''}]], name='rmdir')]` },
      ],
      pythonPreamble: PREAMBLE + (protocol === 'msgpack' ? MSGPACK_RAW_RMDIR : ''),
    });
    [confined, free] = await Promise.all([
      BbagentWorker.start({
        dir: confinedDir,
        masterPort: master.protocolPort,
        name: 'confined',
        password: PASSWORD,
        protocol,
        createArgs: ['--confine-to-basedir'],
      }),
      BbagentWorker.start({ dir: freeDir, masterPort: master.protocolPort, name: 'free', password: PASSWORD, protocol }),
    ]);
    await Promise.all([master.waitForWorker('confined'), master.waitForWorker('free')]);
  });

  afterAll(async () => {
    await Promise.all([confined?.stop(), free?.stop()]);
    await master?.stop();
  });

  it('a confined worker refuses every escape, naming the path, touches nothing outside BASEDIR, and still works inside', async () => {
    const before = snapshot(outside);
    const [inside, ...escapes] = await Promise.all(['inside', ...escapeProbes.map((p) => p.builder)].map((b) => master.runBuild(b, 90_000)));
    for (const [i, probe] of escapeProbes.entries()) {
      const build = escapes[i]!;
      expect(findStep(build, 'prepare').results).toBe(Results.SUCCESS);
      const fs = probeResults(findStep(build, probe.fs));
      for (const [what, named] of probe.named) {
        const refusal = new RegExp(`confineToBasedir: refusing '[^']*${escapeRe(named)}'`);
        if (fs.has(what)) {
          expect(fs.get(what), `${probe.fs} ${what}`).toMatch(/^raised /);
          expect(fs.get(what), `${probe.fs} ${what}`).toMatch(refusal);
          continue;
        }
        const step = findStep(build, `${probe.tag}-${what}`);
        expect(step.results, `${step.name}: ${stepText(step)}`).not.toBe(Results.SUCCESS);
        expect(stepText(step), step.name).toMatch(refusal);
      }
    }
    expect(snapshot(outside)).toEqual(before);
    expect(readdirSync(masterOut).filter((f) => !f.startsWith('in-'))).toEqual([]); // nothing was uploaded from outside
    expect(confined.running).toBe(true);
    expect(longestStallMs(confined.output)).toBeLessThan(200);

    const failed = inside!.steps.filter((s) => s.results !== Results.SUCCESS).map((s) => `${s.name}: ${stepText(s)}`);
    expect(failed).toEqual([]);
    for (const probe of insideProbes) expect([...probeResults(findStep(inside!, probe.fs)).values()]).toEqual(Array(8).fill('rc 0'));
    // msgpack masters 3.7 answer every read of a download with None: the file arrives empty (agent/commands/download-file.ts)
    expect(readFileSync(path.join(confinedDir, 'inside', 'sub', 'downloaded'), 'utf8')).toBe(protocol === 'pb' ? 'from the master\n' : '');
    expect(readFileSync(path.join(masterOut, 'in-rel-file'), 'utf8')).toBe('s\n');
    expect(existsSync(path.join(confinedDir, 'inside', 'abs', 'ran-here'))).toBe(true);
  });

  for (const [builder, worker] of [
    ['rmdir-basedir', 'free'],
    ['rmdir-basedir-confined', 'confined'],
  ] as const) {
    it(`rmdir of a builder directory that is BASEDIR is refused (${worker})`, async () => {
      const dir = worker === 'free' ? freeDir : confinedDir;
      const before = snapshot(dir);
      const build = await master.runBuild(builder);
      const step = build.steps.find((s) => s.name === 'rmdir')!;
      expect(step.results).toBe(Results.EXCEPTION);
      expect(stepText(step)).toMatch(new RegExp(`rmdir: refusing to remove '${escapeRe(dir)}/?': it is the worker's base directory`));
      expect(existsSync(path.join(dir, 'bbagent.json'))).toBe(true);
      expect(snapshot(dir).filter((l) => !l.includes(`${path.sep}bbagent.log`) && !/\/ \d/.test(l))).toEqual(
        before.filter((l) => !l.includes(`${path.sep}bbagent.log`) && !/\/ \d/.test(l)),
      );
    });
  }

  it.runIf(protocol === 'msgpack')('msgpack rmdir with an empty path leaves BASEDIR intact', async () => {
    const before = snapshot(freeDir).filter((l) => !l.includes('bbagent.log'));
    const build = await master.runBuild('rmdir-empty');
    const step = build.steps.find((s) => s.name === 'rmdir')!;
    expect(stepText(step)).toContain('rmdir: skipping an empty path: it names nothing');
    expect(step.results).toBe(Results.SUCCESS); // as buildbot-worker's `rm -rf ''`
    expect(snapshot(freeDir).filter((l) => !l.includes('bbagent.log'))).toEqual(before);
  });

  it('warns once at start about cleartext only when the master is not on loopback', async () => {
    expect(confined.output).not.toMatch(/without TLS/);
    const address = networkAddress();
    if (protocol === 'pb' || address === undefined) return; // the harness binds PB to 127.0.0.1 only
    const remote = await BbagentWorker.start({
      dir: path.join(scratch, 'workers', 'remote'),
      masterPort: master.protocolPort,
      name: 'remote',
      password: PASSWORD,
      protocol,
      createArgs: [`--connection-string=tcp:host=${address}:port=${master.protocolPort}`],
    });
    try {
      await master.waitForWorker('remote');
      const lines = remote.output.split('\n').filter((l) => l.includes('without TLS'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`the master ${address}:${master.protocolPort} is reached without TLS`);
      expect(lines[0]).toContain('--use-tls');
    } finally {
      await remote.stop();
    }
  });
});
