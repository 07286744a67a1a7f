// `bbagent stop --drain` on a REAL Buildbot 3.7 master, over the control socket (a Unix socket here; the same
// request is what the Windows service's stop program sends over the named pipe): while a shell step sleeps, a
// drain makes the agent let the build finish SUCCESS, then exit 0; meanwhile `bbagent status` reports
// `draining: true` in both formats, a second drain only waits, and the master (PB) is asked to start no new
// build on the worker: one forced meanwhile waits for the next start. A drain with nothing running exits 0 with
// stop's "not running" message, and --service (the stop program WinSW runs, with the service's own arguments
// appended after `--`) drains an idle agent and writes what it did to BASEDIR/bbagent.log.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results } from '../../scripts/harness/master.js';
import { ManagedProcess, pollUntil, runCommand } from '../../scripts/harness/process.js';

const haveBuildbot = existsSync('/usr/bin/buildbot');
const SLEEPY = "[steps.ShellCommand(name='sleepy', command='echo start; sleep 3; echo done', logEnviron=False)]";
const env = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BBAGENT_')));

function bbagent(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, ...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

/** One request line on the control socket, the agent's reply. */
function ask(sock: string, line: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock, () => s.write(`${line}\n`));
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString('utf8')));
    s.on('close', () => resolve(JSON.parse(got)));
    s.on('error', reject);
  });
}

describe.skipIf(!haveBuildbot)('bbagent stop --drain during a real build', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-drain-it-'));
  const dir = path.join(scratch, 'w');
  let master: BuildbotMaster;
  let agent: ManagedProcess | undefined;
  /** A build forced while the agent drained: the master keeps it for the next start. */
  let later: number | undefined;

  const startAgent = async (): Promise<ManagedProcess> => {
    const a = await ManagedProcess.spawn({ command: process.execPath, args: [BUNDLE, 'start', '--nodaemon', dir], cwd: dir, env: env(), label: 'bbagent dr' });
    await master.waitForWorker('dr');
    // the control socket answers once the agent is up
    await pollUntil(async () => ((await bbagent(['status', '--json', dir])).code === 0 ? true : undefined), { timeoutMs: 10_000, what: 'status to answer' });
    return a;
  };

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      workers: [{ name: 'dr', password: 'drain-pw' }],
      builders: [{ name: 'slow', workernames: ['dr'], steps: SLEEPY }],
    });
    await runCommand(process.execPath, [BUNDLE, 'create-worker', '-q', dir, `127.0.0.1:${master.portFor('pb')}`, 'dr', 'drain-pw'], { env: env() });
    agent = await startAgent();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(15_000);
    await master?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('refuses a drain request with a bad timeout, and drains nothing', async () => {
    const sock = path.join(dir, '.bbagent', 'run', 'control.sock');
    for (const t of ['0', '1.5', '"60"', '86401']) {
      expect(await ask(sock, `{"request":"drain","timeoutS":${t}}`)).toMatchObject({ ok: false, error: expect.stringContaining('timeoutS must be') });
    }
    const r = await bbagent(['status', '--json', dir]);
    expect((JSON.parse(r.out) as { draining: boolean }).draining).toBe(false);
  }, 15_000);

  it('lets the running build finish SUCCESS, shows draining meanwhile, then the agent exits 0', async () => {
    const brid = await master.forceBuild('slow');
    await master.waitForLogText(await master.waitForBuildStarted(brid), 'sleepy', 'start');
    const first = bbagent(['stop', '--drain', '--timeout', '60', dir]);
    const draining = await pollUntil(
      async () => {
        const r = await bbagent(['status', '--json', dir]);
        const s = r.code === 0 ? (JSON.parse(r.out) as { draining: boolean; workers: { commands: { running: unknown[] } }[] }) : undefined;
        return s?.draining === true ? s : undefined;
      },
      { timeoutMs: 10_000, what: 'status to say draining' },
    );
    // the build still runs while the agent drains, and the master was asked to start no new one here (PB)
    expect(draining.workers[0]!.commands.running).toHaveLength(1);
    await pollUntil(async () => ((await master.worker('dr'))?.graceful === true ? true : undefined), { timeoutMs: 5000, what: 'the worker to be graceful' });
    later = await master.forceBuild('slow');
    const text = await bbagent(['status', dir]);
    expect(text.code).toBe(0);
    expect(text.out).toContain('draining: true');
    // a second drain changes nothing: it waits for the same exit
    const second = await bbagent(['stop', '--drain', dir]);
    expect(second.code, second.err).toBe(0);
    expect(second.out).toMatch(/is draining already: waiting for it to exit/);
    expect((await master.waitForBuild(brid)).results).toBe(Results.SUCCESS);
    const r = await first;
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/draining process \d+: waiting for 1 running command\(s\) to finish \(up to 60 s/);
    expect(r.out).toMatch(/bbagent process \d+ is dead/);
    expect(await agent!.exited).toBe(0);
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
    // the build forced during the drain did not start on the draining worker
    await expect(master.waitForBuildStarted(later, 0)).rejects.toThrow();
  }, 45_000);

  it('with nothing running exits 0 with stop\'s "not running" message', async () => {
    const r = await bbagent(['stop', '--drain', dir]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim()).toBe(`bbagent not running in ${dir} (no bbagent.pid)`);
  }, 15_000);

  it("as the service's stop program (WinSW's appended words after --) drains an idle agent and logs to bbagent.log", async () => {
    agent = await startAgent();
    // the build kept by the master runs now; then the agent is idle
    expect((await master.waitForBuild(later!)).results).toBe(Results.SUCCESS);
    const r = await bbagent(['stop', '--drain', '--service', '--timeout', '30', dir, '--', 'start', '--nodaemon', dir]);
    expect(r.code, r.err).toBe(0);
    expect(await agent.exited).toBe(0);
    const log = readFileSync(path.join(dir, 'bbagent.log'), 'utf8');
    expect(log).toMatch(/\[info\] bbagent stop --drain \(service stop\): draining process \d+: waiting for 0 running command\(s\)/);
    expect(log).toMatch(/\(service stop\): bbagent process \d+ is dead/);
  }, 30_000);
});
