// The spool under real faults, against a real Buildbot master, on both protocols: a small tmpfs filled up
// while a step spools (ENOSPC), and the spool directory removed under a running step. Each time: the same
// agent process goes on, a concurrent step streams unaffected, the step's `complete` reaches the master
// within 5 s of the process's exit, its log says why the full output was not kept, and the next step spools
// again. Also: PB's setBuilderList with --delete-leftover-dirs leaves the spool alone, and the master receives
// delete_leftover_dirs as the integer buildbot-worker sends. (Over msgpack the master itself lists BASEDIR and
// sends `rmdir` for leftovers: the rmdir command's protection of agent-owned directories covers that case.)
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type BuildResult, type Protocol } from '../../scripts/harness/master.js';
import { pollUntil } from '../../scripts/harness/process.js';
import { fillUp, INFO_PROBE_PREAMBLE, longestLoopStallMs, stepCompleteAt, type ReceivedInfo } from './helpers/spool-support.js';
import { mountTmpfs, tmpfsSupport, unmount } from '../helpers/tmpfs.js';

const PASSWORD = 'pw';
/** The bound: `complete` within this time of the process's exit. */
const COMPLETE_BOUND_S = 5;
/** Room for the head of a step's spool, not for the rest (the test fills what is left). */
const TMPFS_BYTES = 4 * 1024 * 1024;
const TMPFS = tmpfsSupport();
if (!TMPFS.ok) console.warn(`spool-faults: skipping the ENOSPC case: ${TMPFS.why}`);

/**
 * The spooling step: a head of noise (hex of random bytes: gzip cannot shrink it to nothing), then it waits
 * for the test's GO, writes ~3 MB more, and prints the time as its very last act.
 */
const floodScript = (ctrl: string): string =>
  [
    'od -An -tx1 -N 100000 /dev/urandom',
    `touch ${ctrl}/SPOOLING`,
    `n=0; while [ ! -e ${ctrl}/GO ]; do sleep 0.05; n=$((n+1)); [ $n -lt 1200 ] || exit 3; done`,
    'od -An -tx1 -N 1000000 /dev/urandom',
    'date +%s.%N',
  ].join('\n');
/** The concurrent step: numbered lines until GO (and 20 after), no budget: every line must arrive, in order. */
const steadyScript = (ctrl: string): string =>
  `i=0; while [ ! -e ${ctrl}/GO ] && [ $i -lt 1200 ]; do i=$((i+1)); echo steady $i; sleep 0.05; done; for j in $(seq 1 20); do echo after $j; sleep 0.02; done`;
const BUDGET = { BBAGENT_OUTPUT_RATE: '64k', BBAGENT_OUTPUT_BURST: '64k', BBAGENT_OUTPUT_POLICY: 'spool' };

/** What the test measured for one faulted step. */
interface Measured {
  build: BuildResult;
  steady: BuildResult;
  /** complete_at stored by the master (+1: it is truncated to whole seconds) minus the step's last timestamp. */
  completeWithinS: number;
  /** The same, from when the test saw the step complete (polling), for the report. */
  observedS: number;
}

const protocols: Protocol[] = ['msgpack', 'pb'];

describe.each(protocols)('spool faults over %s', (protocol) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-spoolf-${protocol}-`));
  const ctrl = path.join(scratch, 'ctrl');
  const basedir = path.join(scratch, 'bb');
  const spoolDir = path.join(basedir, 'spool');
  let master: BuildbotMaster;
  let bb: BbagentWorker;
  let pid: number;
  let mounted = false;
  const deleteLeftovers = protocol === 'pb';

  beforeAll(async () => {
    mkdirSync(ctrl, { recursive: true });
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol,
      workers: [{ name: 'bb', password: PASSWORD }],
      builders: [
        {
          name: 'flood',
          workernames: ['bb'],
          steps: `[steps.ShellCommand(name='flood', command=['sh', '-c', ${JSON.stringify(floodScript(ctrl))}], env=${JSON.stringify(BUDGET)}, logEnviron=False)]`,
        },
        {
          name: 'steady',
          workernames: ['bb'],
          steps: `[steps.ShellCommand(name='steady', command=['sh', '-c', ${JSON.stringify(steadyScript(ctrl))}], logEnviron=False)]`,
        },
        { name: 'info', workernames: ['bb'], steps: `[ReceivedInfoProbe(name='info')]` },
      ],
      pythonPreamble: INFO_PROBE_PREAMBLE,
    });
    // The spool exists before the agent connects: with --delete-leftover-dirs, PB's setBuilderList must spare it.
    // (msgpack: see the note at the top; there the flag stays off.)
    mkdirSync(spoolDir, { recursive: true });
    if (TMPFS.ok) {
      mountTmpfs(spoolDir, TMPFS_BYTES);
      mounted = true;
    }
    writeFileSync(path.join(spoolDir, 'sentinel.log.gz'), '');
    // (rm -r stops at a mountpoint before touching its files: the agent's bookkeeping directory tells more)
    mkdirSync(path.join(basedir, '.bbagent'), { recursive: true });
    writeFileSync(path.join(basedir, '.bbagent', 'sentinel'), '');
    bb = await BbagentWorker.start({
      dir: basedir,
      masterPort: master.protocolPort,
      name: 'bb',
      password: PASSWORD,
      protocol,
      createArgs: deleteLeftovers ? ['--delete-leftover-dirs'] : [],
    });
    await master.waitForWorker('bb');
    pid = bb.pid;
  });

  afterAll(async () => {
    await bb?.stop();
    await master?.stop();
    if (mounted) unmount(spoolDir);
  });

  const agentGone = (): string | undefined => (bb.running ? undefined : `the agent exited:\n${bb.output.slice(-3000)}`);

  /** Forces flood and steady together; `fault` runs once flood is spooling, then GO. */
  async function faultedRun(fault: () => void): Promise<Measured> {
    rmSync(path.join(ctrl, 'GO'), { force: true });
    rmSync(path.join(ctrl, 'SPOOLING'), { force: true });
    const [floodReq, steadyReq] = await Promise.all([master.forceBuild('flood'), master.forceBuild('steady')]);
    const buildid = await master.waitForBuildStarted(floodReq);
    // the concurrent step is streaming before the fault, and goes on until after it
    await master.waitForLogText(await master.waitForBuildStarted(steadyReq), 'steady', /^steady 1$/m, { timeoutMs: 60_000 });
    await pollUntil(() => existsSync(path.join(ctrl, 'SPOOLING')) || undefined, {
      timeoutMs: 60_000,
      what: 'the flood step to write its head',
      failFast: agentGone,
    });
    await pollUntil(() => readdirSync(spoolDir).some((f) => f.endsWith('.part')) || undefined, {
      timeoutMs: 30_000,
      what: 'a spool file being written',
      failFast: agentGone,
    });
    fault();
    writeFileSync(path.join(ctrl, 'GO'), '');
    const { stepid } = await master.waitForStepStarted(buildid, 'flood');
    const seenComplete = await pollUntil(
      async () => {
        const { steps } = await master.get<{ steps: { complete: boolean }[] }>(`/steps/${stepid}`);
        return steps[0]?.complete ? Date.now() / 1000 : undefined;
      },
      { timeoutMs: 60_000, what: 'the flood step to complete', intervalMs: 20, failFast: agentGone },
    );
    const [build, steady] = await Promise.all([master.waitForBuild(floodReq), master.waitForBuild(steadyReq)]);
    const stdout = channelText(findLog(findStep(build, 'flood')), 'o');
    const exitAt = Number(
      /^(\d+\.\d+)$/m.exec(
        stdout
          .split('\n')
          .filter((l) => /^\d+\.\d+$/.test(l))
          .at(-1) ?? '',
      )?.[1],
    );
    expect(exitAt, `the step's last line (its exit time) in:\n${stdout.slice(-2000)}`).toBeGreaterThan(0);
    const completeAt = await stepCompleteAt(master, stepid);
    return { build, steady, completeWithinS: completeAt + 1 - exitAt, observedS: seenComplete - exitAt };
  }

  function expectUnaffected(m: Measured): void {
    expect(bb.running).toBe(true);
    expect(bb.pid).toBe(pid);
    expect(m.build.results).toBe(Results.SUCCESS);
    expect(m.completeWithinS).toBeLessThanOrEqual(COMPLETE_BOUND_S);
    // the concurrent step: every line, in order
    expect(m.steady.results).toBe(Results.SUCCESS);
    const lines = channelText(findLog(findStep(m.steady, 'steady')), 'o')
      .split('\n')
      .slice(0, -1);
    const n = lines.filter((l) => l.startsWith('steady ')).length;
    expect(n).toBeGreaterThan(0);
    expect(lines).toEqual([...Array.from({ length: n }, (_, i) => `steady ${i + 1}`), ...Array.from({ length: 20 }, (_, j) => `after ${j + 1}`)]);
    expect(longestLoopStallMs(bb.output)).toBeLessThan(200);
  }

  /** The next spooled step keeps its full output again; returns the spool file's text. */
  async function spoolsAgain(): Promise<void> {
    writeFileSync(path.join(ctrl, 'GO'), '');
    const build = await master.runBuild('flood', 60_000);
    expect(build.results).toBe(Results.SUCCESS);
    const header = channelText(findLog(findStep(build, 'flood')), 'h');
    const file = /full output on the worker: (\S+)/.exec(header)?.[1];
    expect(file, header).toBeDefined();
    const spooled = gunzipSync(readFileSync(file!)).toString();
    expect(spooled.trimEnd().split('\n').at(-1)).toMatch(/^\d+\.\d+$/);
    expect(spooled.length).toBeGreaterThan(3_000_000);
  }

  it('setBuilderList (--delete-leftover-dirs on PB) spared the spool; the master got delete_leftover_dirs as an int', async () => {
    expect(existsSync(path.join(spoolDir, 'sentinel.log.gz'))).toBe(true);
    expect(existsSync(path.join(basedir, '.bbagent', 'sentinel'))).toBe(true);
    const build = await master.runBuild('info');
    // the master cuts long log lines: the JSON has no newline of its own
    const got = JSON.parse(findLog(findStep(build, 'info'), 'info').content.replace(/\n/g, '')) as ReceivedInfo;
    expect(got.info['delete_leftover_dirs']).toBe(deleteLeftovers ? 1 : 0);
    expect(got.types['delete_leftover_dirs']).toBe('int');
  });

  it.skipIf(!TMPFS.ok)('ENOSPC mid-step (a tmpfs filled up): the step completes, says why, the agent and a concurrent step go on', async () => {
    const filler = path.join(spoolDir, 'filler');
    const m = await faultedRun(() => fillUp(filler));
    console.log(`[${protocol}] ENOSPC: complete <= ${m.completeWithinS.toFixed(2)} s after exit (master's record); seen ${m.observedS.toFixed(2)} s`);
    expectUnaffected(m);
    const header = channelText(findLog(findStep(m.build, 'flood')), 'h');
    expect(header).toMatch(/\[bbagent\] the full output of this step cannot be kept on the worker: cannot write \S+\.part: ENOSPC/);
    expect(header).toMatch(/output was over budget .*; the full output could not be kept on the worker \(.*ENOSPC/);
    expect(bb.output).toMatch(/spool \S+: the full output cannot be kept: .*ENOSPC/);
    expect(readdirSync(spoolDir).filter((f) => f.endsWith('.part'))).toEqual([]);
    rmSync(filler);
    await spoolsAgain();
  });

  it('the spool directory removed mid-step: the step completes, says why; the next step spools again', async () => {
    if (mounted) {
      unmount(spoolDir);
      mounted = false;
    }
    const m = await faultedRun(() => rmSync(spoolDir, { recursive: true, force: true }));
    console.log(
      `[${protocol}] spool dir removed: complete <= ${m.completeWithinS.toFixed(2)} s after exit (master's record); seen ${m.observedS.toFixed(2)} s`,
    );
    expectUnaffected(m);
    const header = channelText(findLog(findStep(m.build, 'flood')), 'h');
    expect(header).toMatch(/the full output could not be kept on the worker \(cannot move \S+\.part into place: ENOENT.*the spool directory \S+ was removed\)/);
    expect(bb.output).toMatch(/the full output cannot be kept: .*was removed/);
    await spoolsAgain();
  });
});
