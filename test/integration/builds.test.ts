// bbagent against a real Buildbot 3.7 master: every scenario runs once on buildbot-worker and once on bbagent,
// and the results are compared as the master stores them. Then bbagent-only checks: big output, a build
// stopped from the master, a wrong password, a master restart.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive } from '../helpers/procs.js';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type BuildResult, type Protocol } from '../../scripts/harness/master.js';
import { ReferenceWorker } from '../../scripts/harness/reference-worker.js';
import { PYTHON_PREAMBLE, SCENARIOS } from './scenarios.js';

const PASSWORD = 'sekrit';
/** 50 MiB of distinct lines (101 bytes each), generated the same way here and on the worker. */
const BIG_LINES = 524_288;
const BIG_AWK = `BEGIN{for(i=0;i<${BIG_LINES};i++) printf "line %08d abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\\n", i}`;

/** Log text with what legitimately differs between two workers replaced by placeholders. */
function normalizeText(text: string, subs: [string, string][]): string {
  let t = text;
  for (const [from, to] of subs) t = t.split(from).join(to);
  return (
    t
      .replace(/elapsedTime=\d+\.\d+/g, 'elapsedTime=X')
      // bbagent's hang forensics before a timeout kill (header lines buildbot-worker does not have)
      .replace(/^hhang: .*\n/gm, '')
      .replace(/\/dev\/pts\/\d+/g, '/dev/pts/N')
      .replace(/(h environment:\n)(h {2}.*\n)+/g, '$1<ENV>\n')
      .replace(/eUpon execvpe[^]*?\n(e\w+Error: [^\n]*)\n/g, 'e<TRACEBACK>\n$1\n')
      .replace(/(FileNotFoundError: \[Errno 2\] No such file or directory)[^\n]*/g, '$1')
      // a failure's stack frames are the worker's own code: Python frames there, JS frames here
      .replace(/(\[Failure instance: Traceback: [^\n]*\n)[^]*?\n\]/g, '$1<FRAMES>\n]')
      // PB failures carry a formatted traceback: File "...", line N, in f / source line / --- <exception caught here> ---
      .replace(
        /(?:^ *(?:File "[^\n]*", line \d+, in [^\n]*|--- <exception caught here> ---|--- &lt;exception caught here&gt; ---)\n(?: {4,}[^\n]*\n| *\n)*)+/gm,
        '<FRAMES>\n',
      )
  );
}

function normalizeBuild(b: BuildResult, subs: [string, string][]) {
  return {
    results: b.results,
    state: normalizeText(b.state_string, subs),
    steps: b.steps.map((s) => ({
      name: s.name,
      results: s.results,
      state: normalizeText(s.state_string, subs),
      logs: s.logs.map((l) => ({ name: l.name, type: l.type, content: normalizeText(l.content, subs) })),
    })),
  };
}

function treeListing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = statSync(p);
      if (st.isDirectory()) {
        out.push(`${r}/`);
        walk(p, r);
      } else out.push(`${r} ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`);
    }
  };
  walk(dir, '');
  return out;
}

const protocols: Protocol[] = ['msgpack', 'pb'];

describe.each(protocols)('builds over %s', (protocol) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-it-${protocol}-`));
  const masterDir = path.join(scratch, 'master');
  let master: BuildbotMaster;
  let ref: ReferenceWorker;
  let bb: BbagentWorker;

  beforeAll(async () => {
    const builders = SCENARIOS.flatMap((sc) => [
      { name: `${sc.name}-ref`, workernames: ['ref'], steps: sc.steps.split('MASTERDIR').join(masterDir) },
      { name: `${sc.name}-bb`, workernames: ['bb'], steps: sc.steps.split('MASTERDIR').join(masterDir) },
    ]);
    builders.push(
      { name: 'big-bb', workernames: ['bb'], steps: `[steps.ShellCommand(name='big', command=['awk', ${JSON.stringify(BIG_AWK)}], logEnviron=False)]` },
      {
        name: 'stop-bb',
        workernames: ['bb'],
        steps: `[steps.ShellCommand(name='sleepy', command='sleep 300 & echo $! > gc.pid; setsid sh -c "echo \\\\$\\\\$ > gc2.pid; sleep 300" & echo started; sleep 300', logEnviron=False)]`,
      },
      { name: 'trivial-bb', workernames: ['bb'], steps: `[steps.ShellCommand(name='hello', command='echo hello', logEnviron=False)]` },
      { name: 'info-bb', workernames: ['bb'], steps: `[WorkerInfoProbe(name='info')]` },
      {
        name: 'drain',
        workernames: ['stopper'],
        steps: `[steps.ShellCommand(name='work', command='echo started; sleep 8; echo finished', logEnviron=False), steps.ShellCommand(name='next', command='echo next step', logEnviron=False)]`,
      },
      { name: 'long', workernames: ['stopper'], steps: `[steps.ShellCommand(name='work', command='echo started; sleep 300', logEnviron=False)]` },
    );
    master = await BuildbotMaster.start({
      dir: masterDir,
      protocol,
      workers: [
        { name: 'ref', password: PASSWORD },
        { name: 'bb', password: PASSWORD },
        { name: 'stopper', password: PASSWORD },
      ],
      builders,
      pythonPreamble: PYTHON_PREAMBLE,
    });
    [ref, bb] = await Promise.all([
      ReferenceWorker.start({
        dir: path.join(scratch, 'ref'),
        masterPort: master.protocolPort,
        name: 'ref',
        password: PASSWORD,
        protocol,
        env: { LANG: 'C.UTF-8' },
      }),
      BbagentWorker.start({
        dir: path.join(scratch, 'bb'),
        masterPort: master.protocolPort,
        name: 'bb',
        password: PASSWORD,
        protocol,
        env: { LANG: 'C.UTF-8' },
      }),
    ]);
    await Promise.all([master.waitForWorker('ref'), master.waitForWorker('bb')]);
  });

  afterAll(async () => {
    await Promise.allSettled([bb?.stop(), ref?.stop()]);
    await master?.stop();
  });

  it.each(SCENARIOS.map((s) => s.name))('%s: same results and logs as buildbot-worker', async (name) => {
    const [r, b] = await Promise.all([master.runBuild(`${name}-ref`, 90_000), master.runBuild(`${name}-bb`, 90_000)]);
    const subs = (dir: string, builder: string, worker: string): [string, string][] => [
      [path.join(dir, builder), '<BUILDDIR>'],
      [dir, '<BASEDIR>'],
      [builder, '<BUILDER>'],
      [`worker ${worker} `, 'worker <WORKER> '],
    ];
    const nr = normalizeBuild(r, subs(ref.dir, `${name}-ref`, 'ref'));
    const nb = normalizeBuild(b, subs(bb.dir, `${name}-bb`, 'bb'));
    expect(nb).toEqual(nr);
    // the differential comparison is only worth something if the reference did the work
    expect(r.steps.length).toBeGreaterThan(1);
    if (name === 'transfer') {
      const up = path.join(masterDir, 'uploads');
      expect(treeListing(path.join(up, 'transfer-bb'))).toEqual(treeListing(path.join(up, 'transfer-ref')));
      expect(readFileSync(path.join(up, 'transfer-bb', 'up.txt'), 'utf8')).toBe('upload me\n');
      expect(existsSync(path.join(up, 'transfer-bb', 'out', 'emptydir'))).toBe(true);
    }
    if (name === 'pty') expect(channelText(findLog(findStep(b, 'pty')), 'o')).toMatch(/^\/dev\/pts\/\d+\n0 0\n/);
    if (name === 'keepstamp' && protocol === 'pb') {
      const stamped = statSync(path.join(masterDir, 'uploads', 'keepstamp-bb', 'stamped.txt'));
      expect(new Date(stamped.mtimeMs).getFullYear()).toBe(2001);
    }
    if (name === 'transfer' && protocol === 'pb') {
      // over PB FileDownload works (over msgpack the 3.7 master writes an empty file, on both workers)
      expect(channelText(findLog(findStep(b, 'show-download')), 'o')).toBe('-rw-r-----\n16\n');
    }
    if (name === 'shell') {
      const env = channelText(findLog(findStep(b, 'env-log')), 'h');
      expect(env).toContain('  BB_TEST_VAR=v\n');
      expect(env).toContain(`  PWD=${path.join(bb.dir, 'shell-bb', 'build')}\n`);
    }
  });

  it('a 50 MiB output step arrives intact', async () => {
    const build = await master.runBuild('big-bb', 180_000);
    expect(build.results).toBe(Results.SUCCESS);
    const stdout = channelText(findLog(findStep(build, 'big')), 'o');
    const expected = execFileSync('awk', [BIG_AWK], { maxBuffer: 1 << 30 });
    expect(stdout.split('\n').length - 1).toBe(BIG_LINES);
    expect(createHash('sha256').update(stdout).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
  });

  it('a build stopped from the master leaves no child or grandchild alive', async () => {
    const brid = await master.forceBuild('stop-bb');
    const buildid = await master.waitForBuildStarted(brid);
    const builddir = path.join(bb.dir, 'stop-bb', 'build');
    await master.waitForLogText(buildid, 'sleepy', /started/);
    await master.stopBuild(buildid, 'stopped by the test');
    const build = await master.waitForBuild(brid);
    expect(build.results).toBe(Results.CANCELLED);
    const pids = ['gc.pid', 'gc2.pid'].map((f) => Number(readFileSync(path.join(builddir, f), 'utf8')));
    expect(pids.every((p) => p > 0)).toBe(true);
    for (const p of pids) expect(alive(p), `pid ${p} should be dead`).toBe(false);
    expect(channelText(findLog(findStep(build, 'sleepy')), 'h')).toContain('command interrupted, attempting to kill');
  });

  it('a wrong password gets a clear error and retries without crashing', async () => {
    const wrong = await BbagentWorker.start({
      dir: path.join(scratch, 'wrong'),
      masterPort: master.protocolPort,
      name: 'bb-wrong',
      password: 'nope',
      protocol,
    });
    try {
      await wrong.waitForOutput(/refused worker 'bb-wrong'[^\n]*\n[^]*refused worker 'bb-wrong'/, 30_000);
      expect(wrong.running).toBe(true);
    } finally {
      await wrong.stop();
    }
  });

  it('sends worker info, with host facts under extra keys', async () => {
    const build = await master.runBuild('info-bb');
    const p = JSON.parse(findLog(findStep(build, 'info'), 'info').content) as Record<string, unknown>;
    expect(p['numcpus']).toBeGreaterThan(0);
    expect(p['basedir']).toBe(bb.dir);
    expect(p['system']).toBe('posix');
    expect(p['os_id']).toBe('debian');
    expect(p['delete_leftover_dirs']).toBe(0); // an int, as buildbot-worker sends it
    // Host facts: the same values the machine's own tools print.
    const osRelease = readFileSync('/etc/os-release', 'utf8');
    expect(p['bbagent_os_distro']).toBe(/^NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1]);
    expect(p['bbagent_os_release']).toBe(/^VERSION_ID="?([^"\n]*)"?$/m.exec(osRelease)?.[1]);
    expect(p['bbagent_os_kernel']).toBe(execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
    expect(p['bbagent_cpu_model']).toBe(/^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim());
    expect(p['bbagent_cpu_cores']).toBe(Number(execFileSync('nproc', { encoding: 'utf8' }).trim()));
    expect(p['bbagent_mem_total']).toBe(Number(/^MemTotal:\s*(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) * 1024);
    expect(p['bbagent_agent']).toBe('bbagent');
    const info = await master.workerInfo('bb');
    expect(info['admin']).toMatch(/admin/);
    expect(info['version']).toMatch(/^bbagent /);
  });

  it('SIGTERM: the first lets the running command finish, the second interrupts it', async () => {
    const dir = path.join(scratch, 'stopper');
    let w = await BbagentWorker.start({ dir, masterPort: master.protocolPort, name: 'stopper', password: PASSWORD, protocol });
    await master.waitForWorker('stopper');
    const brid = await master.forceBuild('drain');
    const buildid = await master.waitForBuildStarted(brid);
    await master.waitForLogText(buildid, 'work', /started/);
    w.signal('SIGTERM');
    const drained = await master.waitForBuild(brid);
    expect(drained.results).toBe(Results.SUCCESS);
    expect(channelText(findLog(findStep(drained, 'next')), 'o')).toBe('next step\n');
    expect(channelText(findLog(findStep(drained, 'work')), 'o')).toBe('started\nfinished\n');
    expect(await w.exited).toBe(0);

    w = await BbagentWorker.start({ dir, masterPort: master.protocolPort, name: 'stopper', password: PASSWORD, protocol });
    await master.waitForWorker('stopper');
    const brid2 = await master.forceBuild('long');
    const buildid2 = await master.waitForBuildStarted(brid2);
    await master.waitForLogText(buildid2, 'work', /started/);
    w.signal('SIGTERM');
    await w.waitForOutput(/waiting for 1 running command/);
    w.signal('SIGTERM');
    const interrupted = await master.waitForBuild(brid2);
    expect(channelText(findLog(findStep(interrupted, 'work')), 'h')).toContain('command interrupted, attempting to kill');
    expect(interrupted.results).not.toBe(Results.SUCCESS);
    expect(await w.exited).toBe(0);
  });

  it('re-attaches by itself after a master restart', async () => {
    await master.restart();
    await master.waitForWorker('bb', true, 60_000);
    const build = await master.runBuild('trivial-bb');
    expect(build.results).toBe(Results.SUCCESS);
    expect(channelText(findLog(findStep(build, 'hello')), 'o')).toBe('hello\n');
  });
});
