// Hang forensics against a real Buildbot 3.7 master, on both protocols: a step that hangs in `sleep` under a
// child shell times out, and what the master stores names both processes. A stock master drops log updates for
// a log the step did not declare (RemoteCommand.addToLog: "no such log"), so the report always goes to the stdio
// header, and in full to a `hang` log when the step declares one (docs/processes.md has the master.cfg).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentPlatform } from '../../platforms/index.js';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, stdioText, type BuildResult, type Protocol } from '../../scripts/harness/master.js';
import { pollUntil } from '../../scripts/harness/process.js';

const PASSWORD = 'hang';
const HUNG = `sh -c 'sleep 300; echo never'`;
/** The documented way to get the full report in its own log: declare it, lazily (it appears only when written). */
const HANG_LOGFILES = `logfiles={'hang': '.bbagent-hang'}, lazylogfiles=True`;

const BUILDERS = [
  { name: 'stdio', steps: `[steps.ShellCommand(name='hung', command=${JSON.stringify(HUNG)}, timeout=2, logEnviron=False)]` },
  { name: 'hanglog', steps: `[steps.ShellCommand(name='hung', command=${JSON.stringify(HUNG)}, maxTime=2, ${HANG_LOGFILES}, logEnviron=False)]` },
  { name: 'quick', steps: `[steps.ShellCommand(name='quick', command='echo fine', timeout=2, ${HANG_LOGFILES}, logEnviron=False)]` },
  {
    name: 'asked',
    steps: `[steps.ShellCommand(name='hung', command=${JSON.stringify(`echo started; ${HUNG}`)}, env={'BBAGENT_HANG_FORENSICS': 'always'}, logEnviron=False)]`,
  },
];

/** The report lines of a stdio header (each starts with "hang: "). */
const reportOf = (header: string): string[] => header.split('\n').filter((l) => l.startsWith('hang: '));

/** True when the report's table has a row for `command` (the COMMAND column, indented under its parent). */
const hasRow = (report: string[], command: RegExp): boolean => report.some((l) => /^hang: +\d+ +\d+ [A-Z] +\d+\.\d\d +\d+ \S+ +/.test(l) && command.test(l));

for (const protocol of ['msgpack', 'pb'] as const satisfies readonly Protocol[]) {
  describe.runIf(currentPlatform().id !== 'win32')(`hang forensics against a real master (${protocol})`, () => {
    const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-hang-${protocol}-`));
    let master: BuildbotMaster;
    let bb: BbagentWorker;

    beforeAll(async () => {
      master = await BuildbotMaster.start({
        dir: path.join(scratch, 'master'),
        protocol,
        workers: [{ name: 'bb', password: PASSWORD }],
        builders: BUILDERS.map((b) => ({ ...b, workernames: ['bb'] })),
      });
      bb = await BbagentWorker.start({ dir: path.join(scratch, 'bb'), masterPort: master.protocolPort, name: 'bb', password: PASSWORD, protocol });
      await master.waitForWorker('bb');
    });

    afterAll(async () => {
      await bb?.stop();
      await master?.stop();
      rmSync(scratch, { recursive: true, force: true });
    });

    it('a timeout: the stdio header names the hung shell and its sleep, before the kill', async () => {
      const build = await master.runBuild('stdio');
      const step = findStep(build, 'hung');
      expect(step.logs.map((l) => l.name)).toEqual(['stdio']);
      const header = channelText(findLog(step), 'h');
      const report = reportOf(header);
      expect(report[0]).toMatch(/^hang: process tree before the timeout kill \(\d+ process(es)?, collected in \d+\.\d\d s\)$/);
      expect(hasRow(report, /\/bin\/sh -c sh -c 'sleep 300; echo never'$/)).toBe(true);
      expect(hasRow(report, /sh -c sleep 300; echo never$/)).toBe(true);
      expect(hasRow(report, / sleep 300$/)).toBe(true);
      expect(header.indexOf('command timed out: 2 seconds without output')).toBeLessThan(header.indexOf('hang: '));
      expect(header.indexOf('hang: ')).toBeLessThan(header.indexOf('process killed by signal'));
      expect(step.results).toBe(Results.FAILURE);
    });

    it("a step that declares the 'hang' log gets the full report there; the header points to it", async () => {
      const build = await master.runBuild('hanglog');
      const step = findStep(build, 'hung');
      const hang = stdioText(findLog(step, 'hang'));
      expect(hang).toMatch(/^process tree before the maxTime kill/);
      expect(hang).toMatch(/ sleep 300\n/);
      const header = channelText(findLog(step), 'h');
      expect(reportOf(header).some((l) => /^hang: (stacks \(\S+\) in log 'hang'|no stacks: )/.test(l))).toBe(true);
      if (/stacks \((\S+)\)/.exec(header)) expect(hang).toMatch(/--- pid \d+/);
    });

    it("a step that does not hang gets no 'hang' log (lazylogfiles)", async () => {
      const build = await master.runBuild('quick');
      expect(findStep(build, 'quick').logs.map((l) => l.name)).toEqual(['stdio']);
    });

    it('an interrupt gets the report when the step asks for it (BBAGENT_HANG_FORENSICS=always)', async () => {
      const brid = await master.forceBuild('asked');
      const buildid = await master.waitForBuildStarted(brid);
      await master.waitForLogText(buildid, 'hung', /started/);
      await master.stopBuild(buildid, 'why does it hang?');
      const build: BuildResult = await master.waitForBuild(brid);
      expect(build.results).toBe(Results.CANCELLED);
      const report = reportOf(channelText(findLog(findStep(build, 'hung')), 'h'));
      expect(report[0]).toMatch(/^hang: process tree when interrupted/);
      expect(hasRow(report, / sleep 300$/)).toBe(true);
      // the agent's loop kept running while the tools ran
      const stalls = [...bb.output.matchAll(/event loop blocked for (\d+) ms/g)].map((m) => Number(m[1]));
      expect(Math.max(0, ...stalls)).toBeLessThan(200);
      await pollUntil(() => (/hang forensics of \d+ process/.test(bb.output) ? true : undefined), { timeoutMs: 5000, what: 'the agent log line' });
    });
  });
}
