// The live service test: `bbagent service install|status|start|stop|uninstall` of the linux-x64 single executable
// against a real systemd (PID 1 of a systemd-nspawn container, harness/container.ts), with the worker attached to a
// real Buildbot 3.7 master on the host: install, a stop that lets a running build finish, a stop that kills a build
// at --stop-timeout, 'bbagent stop' leaving the unit stopped, restart after kill -9, reboot. Each check ends in a PASS or FAIL with what it saw. Run by
// scripts/service-live-test (prints the lines) and test/integration/service-live.test.ts.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RESTART_SEC } from '../../platforms/linux/service.js';
import { containerUnsupported, ensureHostTools, prepareRootfs, SystemdContainer, type ExecResult } from './container.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type RestBuild, type RestBuildRequest } from './master.js';
import { pollUntil } from './process.js';

const WORKER = 'live-worker';
const PASSWORD = 'live-pw';
/** The account the service runs as, created the way docs/install.md says. */
const USER = 'bbagent';
const HOME = '/var/lib/bbagent';
const BASEDIR = `${HOME}/w1`;
const BIN = '/usr/local/bin/bbagent';
/** Where the "other settings" install runs from: a different ExecStart. */
const OTHER_BIN = '/opt/bbagent/bbagent';
const UNIT = `bbagent-${WORKER}.service`;
const UNIT_FILE = `/etc/systemd/system/${UNIT}`;
const CGROUP = `/system.slice/${UNIT}`;
const DIST_IN_CONTAINER = '/mnt/dist';
/** A second worker whose BASEDIR needs quoting in ExecStart= and %-escaping everywhere in the unit. */
const ODD_WORKER = 'odd-worker';
const ODD_BASEDIR = `${HOME}/odd dir %n 100%`;
const ODD_UNIT = `bbagent-${ODD_WORKER}.service`;
/**
 * install --stop-timeout: long enough for the 'drain' build (DRAIN_BUILD_S) to finish inside a stop, short enough
 * that the stop of the never-ending 'sleeper' build (killed at the timeout) adds little to the run.
 */
const STOP_TIMEOUT_S = 8;
/** How long the 'drain' build runs: a stop begun during it waits for it. */
const DRAIN_BUILD_S = 3;
/** A worker reconnects within a second or two; a restart after kill -9 waits RestartSec=10 first. */
const ATTACH_TIMEOUT_MS = 30_000;
const RESTART_TIMEOUT_MS = 45_000;

const RESULT_NAMES = ['SUCCESS', 'WARNINGS', 'FAILURE', 'SKIPPED', 'EXCEPTION', 'RETRY', 'CANCELLED'];

export interface LiveCheck {
  name: string;
  /** False only for a failure: a known bug that still shows (xfail) does not fail the run. */
  ok: boolean;
  /** pass, fail; xfail: a known bug, still there; xpass: a check of a known bug passed (the bug is fixed). */
  status: 'pass' | 'fail' | 'xfail' | 'xpass';
  detail: string;
  ms: number;
}

/** The line scripts/service-live-test prints for a check. */
export function checkLine(c: LiveCheck): string {
  return `${c.status.toUpperCase()} ${c.name} (${(c.ms / 1000).toFixed(1)} s): ${c.detail}`;
}

export interface LiveRunOptions {
  /** The linux-x64 single executable (dist/bbagent-linux-x64). */
  binary: string;
  /** Where the debootstrap'd tree is cached (build/cache/service-live). */
  cacheDir: string;
  /** Keep the scratch directory (container tree, master, logs) for a post-mortem. */
  keep?: boolean;
  /** Progress lines. */
  say?: (line: string) => void;
  /** Called as each check ends. */
  report?: (check: LiveCheck) => void;
  /** Aborting ends the check that runs and skips the rest; the container and the master are stopped as usual. */
  signal?: AbortSignal;
}

/** The host cannot boot systemd in a container (not root, no packages, no network for debootstrap, nspawn fails). */
export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function expect(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function builders(): { name: string; workernames: string[]; steps: string }[] {
  return [
    {
      name: 'identity',
      workernames: [WORKER],
      steps: String.raw`[
        steps.ShellCommand(name='identity', command='echo "user=$(id -un) home=$HOME cache=$CACHE_DIRECTORY"; grep -E "^0::|name=systemd" /proc/self/cgroup', logEnviron=False),
        steps.ShellCommand(name='pty', command='tty', usePTY=True, logEnviron=False),
      ]`,
    },
    {
      name: 'drain',
      workernames: [WORKER],
      steps: String.raw`[
        steps.ShellCommand(name='work', command='echo started; sleep ${DRAIN_BUILD_S}; echo finished', logEnviron=False),
      ]`,
    },
    {
      name: 'sleeper',
      workernames: [WORKER],
      // One sleep in the step's process group, one that left it with setsid: the cgroup holds both.
      steps: String.raw`[
        steps.ShellCommand(name='sleep', command='setsid sleep 3601 </dev/null >/dev/null 2>&1 & echo started; exec sleep 3600', logEnviron=False),
      ]`,
    },
  ];
}

/** Runs every check; never throws for a failed check (see the results), throws EnvironmentError when systemd cannot be booted. */
export async function runServiceLive(opts: LiveRunOptions): Promise<LiveCheck[]> {
  const say = opts.say ?? (() => undefined);
  const unsupported = containerUnsupported();
  if (unsupported) throw new EnvironmentError(unsupported);
  if (!existsSync(opts.binary)) throw new Error(`${opts.binary} is absent (run scripts/release/build-binaries --target linux-x64)`);
  try {
    await ensureHostTools(say);
  } catch (err) {
    throw new EnvironmentError(`cannot install systemd-container and debootstrap: ${message(err)}`);
  }

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-service-live-'));
  const machine = `bbagent-live-${process.pid}`;
  const rootfs = path.join(scratch, 'rootfs');
  say(`scratch directory ${scratch}`);
  const container = new SystemdContainer({
    dir: rootfs,
    machine,
    logFile: path.join(scratch, 'console.log'),
    binds: [{ host: path.dirname(path.resolve(opts.binary)), container: DIST_IN_CONTAINER, readOnly: true }],
  });
  let master: BuildbotMaster | undefined;
  const results: LiveCheck[] = [];
  let aborted: string | undefined;
  const interrupted = new Promise<never>((_, reject) => {
    const stop = (): void => {
      aborted = 'interrupted';
      reject(new Error('interrupted'));
    };
    if (opts.signal?.aborted) stop();
    opts.signal?.addEventListener('abort', stop, { once: true });
  });
  interrupted.catch(() => undefined);

  /**
   * One check: PASS with the returned detail, FAIL with the error; a fatal failure skips the rest. `knownBug` names
   * a bug that is not fixed yet: its failure is XFAIL and does not fail the run, its success XPASS.
   */
  const check = async (name: string, fn: () => Promise<string | void>, how: { fatal?: boolean; knownBug?: string } = {}): Promise<void> => {
    const started = Date.now();
    let result: LiveCheck;
    if (aborted !== undefined) {
      result = { name, ok: false, status: 'fail', detail: `not run: ${aborted}`, ms: 0 };
    } else {
      try {
        const detail = (await Promise.race([fn(), interrupted])) ?? '';
        const ms = Date.now() - started;
        result = how.knownBug
          ? { name, ok: true, status: 'xpass', detail: `${detail} (the known bug is fixed: ${how.knownBug}; make this an ordinary check)`, ms }
          : { name, ok: true, status: 'pass', detail, ms };
      } catch (err) {
        const ms = Date.now() - started;
        result = how.knownBug
          ? { name, ok: true, status: 'xfail', detail: `known bug, ${how.knownBug}: ${message(err)}`, ms }
          : { name, ok: false, status: 'fail', detail: message(err), ms };
        if (how.fatal) aborted = `'${name}' failed`;
      }
    }
    results.push(result);
    opts.report?.(result);
  };

  // ------------------------------------------------------------------ helpers (in the container)
  const bbagent = (args: string[], program = BIN): Promise<ExecResult> => container.exec([program, ...args], { timeoutMs: 90_000 });
  const show = async (...props: string[]): Promise<Record<string, string>> => {
    const out = await container.run(['systemctl', 'show', UNIT, ...props.map((p) => `--property=${p}`)]);
    return Object.fromEntries(
      out
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  };
  const mainPid = async (): Promise<number> => Number((await show('MainPID'))['MainPID'] ?? 0);
  /** pids in the unit's cgroup (every hierarchy systemd keeps it in); [] once the cgroup is gone. */
  const cgroupPids = async (): Promise<number[]> => {
    const dirs = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup'].map((root) => `${root}${CGROUP}/cgroup.procs`);
    const r = await container.sh(`cat ${dirs.join(' ')} 2>/dev/null; true`);
    return [...new Set(r.stdout.split('\n').filter(Boolean).map(Number))].sort((a, b) => a - b);
  };
  const cgroupExists = async (): Promise<boolean> =>
    (
      await container.sh(`for d in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do [ -d "$d${CGROUP}" ] && echo yes; done; true`)
    ).stdout.includes('yes');
  const processes = async (): Promise<{ pid: number; user: string; args: string }[]> =>
    (await container.run(['ps', '-eo', 'pid=,user:32=,args='])).split('\n').flatMap((line) => {
      const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
      return m ? [{ pid: Number(m[1]), user: m[2]!, args: m[3]! }] : [];
    });
  const sleepers = async (): Promise<{ pid: number; user: string; args: string }[]> => (await processes()).filter((p) => /^sleep 360[01]$/.test(p.args));
  const unitHash = async (): Promise<string> =>
    createHash('sha256')
      .update(await container.run(['cat', UNIT_FILE]))
      .digest('hex');
  const exeOf = async (pid: number): Promise<string> => (await container.run(['readlink', `/proc/${pid}/exe`])).trim();
  const userOf = async (pid: number): Promise<string> => (await container.run(['ps', '-o', 'user:32=', '-p', String(pid)])).trim();
  const waitActive = (what: string, accept: (pid: number) => boolean = () => true): Promise<number> =>
    pollUntil(
      async () => {
        const p = await show('ActiveState', 'SubState', 'MainPID');
        const pid = Number(p['MainPID'] ?? 0);
        return p['ActiveState'] === 'active' && p['SubState'] === 'running' && pid > 0 && accept(pid) ? pid : undefined;
      },
      { timeoutMs: RESTART_TIMEOUT_MS, intervalMs: 200, what },
    );
  const attached = async (): Promise<void> => {
    await master!.waitForWorker(WORKER, true, ATTACH_TIMEOUT_MS);
  };
  const detached = async (): Promise<void> => {
    await master!.waitForWorker(WORKER, false, ATTACH_TIMEOUT_MS);
  };
  /** What systemd logged about a unit file while loading it ("FILE:LINE: ..." parse warnings). */
  const unitWarnings = async (file: string): Promise<string[]> =>
    (await container.run(['journalctl', '_PID=1', '-o', 'cat', '--no-pager'])).split('\n').filter((l) => l.startsWith(`${file}:`));
  const bootId = async (): Promise<string> => (await container.run(['cat', '/proc/sys/kernel/random/boot_id'])).trim();

  try {
    try {
      await prepareRootfs(opts.cacheDir, rootfs, machine, say);
    } catch (err) {
      throw new EnvironmentError(`cannot make the container's tree: ${message(err)}`);
    }
    say('starting a Buildbot master on the host');
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      workers: [
        { name: WORKER, password: PASSWORD },
        { name: ODD_WORKER, password: PASSWORD },
      ],
      builders: builders(),
    });
    const m = master;
    say(`master: PB on 127.0.0.1:${m.protocolPort}, REST ${m.apiUrl}`);

    let bootMs = 0;
    try {
      const started = Date.now();
      await container.boot();
      bootMs = Date.now() - started;
    } catch (err) {
      throw new EnvironmentError(`systemd-nspawn could not boot systemd: ${message(err)}`);
    }

    await check(
      'systemd runs as PID 1 of the container',
      async () => {
        const comm = (await container.run(['cat', '/proc/1/comm'])).trim();
        expect(comm === 'systemd', `PID 1 is ${comm}`);
        expect((await container.exec(['test', '-d', '/run/systemd/system'])).code === 0, 'no /run/systemd/system');
        const version = (await container.run(['systemctl', '--version'])).split('\n')[0];
        const state = (await container.exec(['systemctl', 'is-system-running'])).stdout.trim();
        return `${version}; ${state}; booted in ${seconds(bootMs)}`;
      },
      { fatal: true },
    );

    await check(
      `create-worker as the unprivileged user ${USER}`,
      async () => {
        await container.run(['useradd', '--system', '--create-home', '--home-dir', HOME, '--shell', '/bin/sh', USER]);
        await container.run(['install', '-m', '0755', `${DIST_IN_CONTAINER}/${path.basename(opts.binary)}`, BIN]);
        await container.run([BIN, 'create-worker', BASEDIR, `127.0.0.1:${m.protocolPort}`, WORKER, PASSWORD], { user: USER });
        const owner = (await container.run(['stat', '-c', '%U', `${BASEDIR}/bbagent.json`])).trim();
        expect(owner === USER, `bbagent.json belongs to ${owner}`);
        return `${BASEDIR}/bbagent.json owned by ${owner}`;
      },
      { fatal: true },
    );

    let installedAt = 0;
    await check(
      'service install',
      async () => {
        installedAt = Date.now();
        const r = await bbagent(['service', 'install', '--user', USER, '--stop-timeout', `${STOP_TIMEOUT_S}s`, BASEDIR]);
        expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
        expect(/installed \(systemd\)/.test(r.stdout), `output: ${r.stdout.trim()}`);
        return r.stdout.trim();
      },
      { fatal: true },
    );

    await check('unit file written, enabled and active', async () => {
      const enabled = (await container.exec(['systemctl', 'is-enabled', UNIT])).stdout.trim();
      const active = (await container.exec(['systemctl', 'is-active', UNIT])).stdout.trim();
      const p = await show('FragmentPath', 'User', 'Restart', 'KillMode', 'TimeoutStopUSec');
      expect(enabled === 'enabled' && active === 'active', `is-enabled ${enabled}, is-active ${active}`);
      expect(p['FragmentPath'] === UNIT_FILE, `FragmentPath ${p['FragmentPath']}`);
      expect(p['Restart'] === 'on-failure' && p['KillMode'] === 'mixed', `Restart=${p['Restart']} KillMode=${p['KillMode']}`);
      expect(p['TimeoutStopUSec'] === `${STOP_TIMEOUT_S}s`, `TimeoutStopUSec=${p['TimeoutStopUSec']} (want ${STOP_TIMEOUT_S}s)`);
      const warnings = await unitWarnings(UNIT_FILE);
      expect(warnings.length === 0, `systemd complains about the unit: ${warnings.join(' / ')}`);
      return `${UNIT_FILE}: ${enabled}, ${active}, User=${p['User']}, Restart=${p['Restart']}, KillMode=${p['KillMode']}, TimeoutStopUSec=${p['TimeoutStopUSec']}`;
    });

    await check(`the agent runs as ${USER}`, async () => {
      const pid = await waitActive('the unit to run');
      const user = await userOf(pid);
      const exe = await exeOf(pid);
      expect(user === USER, `MainPID ${pid} runs as ${user}`);
      expect(exe === BIN, `MainPID ${pid} runs ${exe}`);
      const others = [];
      for (const p of await cgroupPids()) if ((await userOf(p)) !== USER) others.push(p);
      expect(others.length === 0, `processes of the unit not run by ${USER}: ${others.join(', ')}`);
      return `MainPID ${pid}: ${exe} as ${user}`;
    });

    await check('service status reports it running', async () => {
      const r = await bbagent(['service', 'status', BASEDIR]);
      expect(r.code === 0, `exit ${r.code} (want 0): ${r.stdout.trim()} ${r.stderr.trim()}`);
      expect(/active \(running\), pid \d+, enabled, starts at boot \(systemd\)/.test(r.stdout), `output: ${r.stdout.trim()}`);
      return `exit 0: ${r.stdout.trim()}`;
    });

    await check(
      'the worker attaches to the master',
      async () => {
        await attached();
        const info = await m.workerInfo(WORKER);
        return `connected ${seconds(Date.now() - installedAt)} after install; version ${String(info['version'])}`;
      },
      { fatal: true },
    );

    await check(`a build runs as ${USER}, in the unit's cgroup, with a PTY`, async () => {
      const build = await m.runBuild('identity', 60_000);
      const out = channelText(findLog(findStep(build, 'identity')), 'o');
      expect(build.results === Results.SUCCESS, `build ${RESULT_NAMES[build.results] ?? build.results}: ${out}`);
      expect(out.includes(`user=${USER} home=${HOME} cache=/var/cache/bbagent-${WORKER}`), `identity step printed: ${out}`);
      expect(out.includes(CGROUP), `the step's cgroup is not ${CGROUP}: ${out}`);
      const tty = channelText(findLog(findStep(build, 'pty')), 'o').trim();
      expect(/^\/dev\/pts\/\d+/.test(tty), `the PTY step printed ${JSON.stringify(tty)}`);
      const cached = (await container.sh(`stat -c '%U %n' /var/cache/bbagent-${WORKER}/* 2>&1`)).stdout.trim();
      expect(cached.startsWith(`${USER} `), `node-pty cache: ${cached}`);
      return `${out.split('\n')[0]}; pty ${tty}; node-pty unpacked to ${cached}`;
    });

    await check('service stop with a build running: the build finishes, then the unit stops', async () => {
      const brid = await m.forceBuild('drain');
      const buildid = await m.waitForBuildStarted(brid);
      await m.waitForLogText(buildid, 'work', 'started', { timeoutMs: 30_000 });
      const started = Date.now();
      const r = await bbagent(['service', 'stop', BASEDIR]);
      const took = Date.now() - started;
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim()}`);
      const active = (await container.exec(['systemctl', 'is-active', UNIT])).stdout.trim();
      expect(active === 'inactive', `is-active ${active}`);
      // When the stop returned, the master had the build's end: it ended before the unit stopped.
      const { builds } = await m.get<{ builds: RestBuild[] }>(`/builds/${buildid}`);
      const build = builds[0];
      expect(build?.complete, `build ${buildid} is not complete when the unit stopped: '${build?.state_string}'`);
      expect(build.results === Results.SUCCESS, `build ${buildid}: ${RESULT_NAMES[build.results ?? -1] ?? build.results} '${build.state_string}'`);
      const out = channelText(findLog(findStep(await m.getBuild(buildid), 'work')), 'o');
      expect(out.includes('finished'), `the step printed ${JSON.stringify(out)}`);
      const j = await container.run(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager']);
      expect(j.includes('waiting for 1 running command(s) to finish'), `the journal has no drain line`);
      const result = (await show('Result'))['Result'];
      expect(result === 'success', `Result=${result} (a timeout or a kill is not success)`);
      const s = await bbagent(['service', 'start', BASEDIR]);
      expect(s.code === 0, `start: exit ${s.code}: ${s.stderr.trim()}`);
      await waitActive('the unit to run again');
      await attached();
      return `stop took ${seconds(took)} with ${DRAIN_BUILD_S} s of build left at most; build ${buildid} SUCCESS ('finished' printed); Result=${result}; started again`;
    });

    let sleeperBrid = 0;
    let sleeperBuild = 0;
    await check("a long build's processes are in the unit's cgroup", async () => {
      sleeperBrid = await m.forceBuild('sleeper');
      sleeperBuild = await m.waitForBuildStarted(sleeperBrid);
      await m.waitForLogText(sleeperBuild, 'sleep', 'started', { timeoutMs: 30_000 });
      const found = await pollUntil(
        async () => {
          const s = await sleepers();
          return s.length === 2 ? s : undefined;
        },
        { timeoutMs: 10_000, what: 'both sleeps of the build' },
      );
      const inCgroup = await cgroupPids();
      for (const s of found) expect(inCgroup.includes(s.pid), `${s.args} (pid ${s.pid}) is not in ${CGROUP} (${inCgroup.join(' ')})`);
      for (const s of found) expect(s.user === USER, `${s.args} runs as ${s.user}`);
      return `${found.map((s) => `'${s.args}' pid ${s.pid}`).join(', ')} in ${CGROUP} with ${inCgroup.length} processes`;
    });

    await check(
      `service stop of a build that outlasts --stop-timeout: SIGKILL after ${STOP_TIMEOUT_S} s ends every process (the cgroup is empty)`,
      async () => {
        const started = Date.now();
        const r = await bbagent(['service', 'stop', BASEDIR]);
        const took = Date.now() - started;
        expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim()}`);
        // The agent drained (KillMode=mixed: only it got SIGTERM) until systemd's SIGKILL at TimeoutStopSec.
        expect(took >= (STOP_TIMEOUT_S - 1) * 1000, `stopped after ${seconds(took)}: the build was not waited for`);
        const { ActiveState: active, Result: result } = await show('ActiveState', 'Result');
        // A stop that ran into TimeoutStopSec ends 'failed' with Result=timeout: what it is, and not restarted.
        expect(active === 'inactive' || active === 'failed', `ActiveState ${active}`);
        const left = await cgroupPids();
        expect(left.length === 0, `left in the cgroup: ${left.join(', ')}`);
        const s = await sleepers();
        expect(s.length === 0, `still running: ${s.map((p) => `${p.args} (${p.pid})`).join(', ')}`);
        const gone = !(await cgroupExists());
        return `stopped in ${seconds(took)} (${active}, Result=${result}); cgroup ${gone ? 'removed' : 'empty'}; no sleep left`;
      },
    );

    await check('the master sees the worker disconnect; the build ends', async () => {
      await detached();
      const build = await pollUntil(
        async () => {
          const { builds } = await m.get<{ builds: RestBuild[] }>(`/builds/${sleeperBuild}`);
          return builds[0]?.complete ? builds[0] : undefined;
        },
        { timeoutMs: 30_000, what: `build ${sleeperBuild} to end` },
      );
      const { buildrequests } = await m.get<{ buildrequests: RestBuildRequest[] }>(`/buildrequests/${sleeperBrid}`);
      let retried = '';
      if (!buildrequests[0]?.complete) {
        // A build whose worker was lost is RETRY: cancel the request so the next start does not run it again.
        await m.rpc(`/buildrequests/${sleeperBrid}`, 'cancel', { reason: 'service-live: do not retry' });
        retried = ' (request cancelled, not retried)';
      }
      return `build ${sleeperBuild}: ${RESULT_NAMES[build.results ?? -1] ?? build.results} '${build.state_string}'${retried}`;
    });

    await check('service status after stop exits 3', async () => {
      const r = await bbagent(['service', 'status', BASEDIR]);
      expect(r.code === 3, `exit ${r.code} (want 3): ${r.stdout.trim()}`);
      return `exit 3: ${r.stdout.trim()}`;
    });

    await check('service start: it attaches again', async () => {
      const r = await bbagent(['service', 'start', BASEDIR]);
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim()}`);
      const pid = await waitActive('the unit to run');
      await attached();
      return `${r.stdout.trim()}; MainPID ${pid}; connected`;
    });

    await check("'bbagent stop' under the unit: the agent drains and exits 0, and systemd leaves the unit stopped", async () => {
      const before = await show('NRestarts', 'MainPID');
      const r = await container.exec([BIN, 'stop', BASEDIR], { user: USER, timeoutMs: 30_000 });
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
      expect(r.stdout.includes(`the service ${UNIT} stays stopped`), `output: ${r.stdout.trim()}`);
      // Restart=on-failure: a clean exit is 'dead', never 'auto-restart' (a restart would be pending RestartSec).
      const p = await pollUntil(
        async () => {
          const q = await show('ActiveState', 'SubState', 'Result', 'NRestarts', 'ExecMainStatus');
          return q['ActiveState'] === 'inactive' || q['ActiveState'] === 'failed' || q['SubState'] === 'auto-restart' ? q : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100, what: 'the unit to leave active' },
      );
      const state = `${p['ActiveState']}/${p['SubState']} Result=${p['Result']} ExecMainStatus=${p['ExecMainStatus']} NRestarts=${p['NRestarts']}`;
      expect(p['ActiveState'] === 'inactive' && p['SubState'] === 'dead' && p['Result'] === 'success', state);
      expect(p['NRestarts'] === before['NRestarts'], `NRestarts ${before['NRestarts']} -> ${p['NRestarts']}`);
      await detached();
      const s = await bbagent(['service', 'start', BASEDIR]);
      expect(s.code === 0, `start: exit ${s.code}: ${s.stderr.trim()}`);
      await waitActive('the unit to run again');
      await attached();
      return `pid ${before['MainPID']}: '${r.stdout.trim()}'; then ${state}; started again`;
    });

    await check('kill -9 of the agent: systemd restarts it and it attaches again', async () => {
      const before = await show('MainPID', 'NRestarts');
      const pid = Number(before['MainPID']);
      expect(pid > 0, 'no MainPID');
      const killedAt = Date.now();
      await container.run(['kill', '-9', String(pid)]);
      await detached();
      const seenGone = Date.now() - killedAt;
      const newPid = await waitActive('systemd to restart the agent', (p) => p !== pid);
      await attached();
      const back = Date.now() - killedAt;
      const restarts = Number((await show('NRestarts'))['NRestarts']);
      expect(restarts === Number(before['NRestarts']) + 1, `NRestarts ${before['NRestarts']} -> ${restarts}`);
      return `pid ${pid} killed; master saw the disconnect after ${seconds(seenGone)}; pid ${newPid} attached ${seconds(back)} after the kill (RestartSec=${RESTART_SEC}); NRestarts ${restarts}`;
    });

    await check('reboot: the worker comes back without anyone starting it', async () => {
      const oldBoot = await bootId();
      const oldPid = await mainPid();
      const started = Date.now();
      await container.reboot();
      const booted = Date.now() - started;
      const newBoot = await bootId();
      expect(newBoot !== oldBoot, 'the boot id did not change');
      const pid = await waitActive('the unit to run after the reboot');
      await pollUntil(
        async () => {
          const j = await container.exec(['journalctl', '-b', '0', '-u', UNIT, '-o', 'cat', '--no-pager']);
          return j.stdout.includes('Connected to ') ? true : undefined;
        },
        { timeoutMs: ATTACH_TIMEOUT_MS, what: 'the agent of the new boot to log "Connected to"' },
      );
      await attached();
      return `rebooted in ${seconds(booted)} (boot ${oldBoot.slice(0, 8)} -> ${newBoot.slice(0, 8)}); pid ${oldPid} -> ${pid}, connected`;
    });

    await check("the journal has the agent's log lines", async () => {
      const j = await container.run(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager']);
      for (const line of ['Starting bbagent', 'Connected to ', 'received SIGTERM', 'bbagent stopped']) {
        expect(j.includes(line), `journalctl -u ${UNIT} has no '${line}'`);
      }
      const boots = (await container.run(['journalctl', '--list-boots', '--no-pager'])).trim().split('\n').length - 1;
      expect(boots >= 2, `journalctl --list-boots shows ${boots} boot(s)`);
      const lines = j.trim().split('\n');
      return `${lines.length} lines over ${boots} boots, e.g. ${JSON.stringify(lines.find((l) => l.includes('Connected to ')))}`;
    });

    await check("install again with the same settings changes nothing (no --user: BASEDIR's owner)", async () => {
      const hash = await unitHash();
      const pid = await mainPid();
      const r = await bbagent(['service', 'install', '--stop-timeout', String(STOP_TIMEOUT_S), BASEDIR]);
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim()}`);
      expect(/already installed with these settings/.test(r.stdout), `output: ${r.stdout.trim()}`);
      expect((await unitHash()) === hash, 'the unit file changed');
      expect((await mainPid()) === pid, `the agent was restarted (pid ${pid} -> ${await mainPid()})`);
      return `${r.stdout.trim()}; unit unchanged, pid ${pid} kept`;
    });

    await check('install with other settings is refused without --force', async () => {
      await container.run(['install', '-D', '-m', '0755', BIN, OTHER_BIN]);
      const hash = await unitHash();
      const pid = await mainPid();
      const r = await bbagent(['service', 'install', '--user', USER, '--stop-timeout', `${STOP_TIMEOUT_S}s`, BASEDIR], OTHER_BIN);
      expect(r.code !== 0, `exit 0: ${r.stdout.trim()}`);
      expect(/already exists with different settings.*ExecStart.*--force/.test(r.stderr), `stderr: ${r.stderr.trim()}`);
      expect((await unitHash()) === hash, 'the unit file changed');
      expect((await mainPid()) === pid, 'the agent was restarted');
      return `exit ${r.code}: ${r.stderr.trim().slice(0, 220)}...`;
    });

    await check('install --force replaces the unit and restarts the agent', async () => {
      const pid = await mainPid();
      const r = await bbagent(['service', 'install', '--force', '--user', USER, '--stop-timeout', `${STOP_TIMEOUT_S}s`, BASEDIR], OTHER_BIN);
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim()}`);
      expect(/replaced \(systemd\)/.test(r.stdout), `output: ${r.stdout.trim()}`);
      const newPid = await waitActive('the replaced unit to run', (p) => p !== pid);
      const exe = await exeOf(newPid);
      expect(exe === OTHER_BIN, `the agent runs ${exe}`);
      await attached();
      return `${r.stdout.trim().split(';')[0]}; pid ${pid} -> ${newPid} running ${exe}; connected`;
    });

    await check('power cut: the worker comes back at the next boot', async () => {
      const pid = await mainPid();
      await container.pullThePlug();
      await detached();
      expect(!container.running, 'the container still runs after the power cut');
      await container.boot();
      const newPid = await waitActive('the unit to run after the power cut');
      await attached();
      return `pid ${pid} died with the container; after the boot pid ${newPid} attached`;
    });

    await check("a stale pidfile naming another user's live process (a pid reused after a power cut) does not block the start", async () => {
      // At boot the agent gets a low pid (30 here) that dbus or logind may hold at the next boot. The agent runs as
      // USER, so kill(pid, 0) on that process fails with EPERM ("alive"); the pidfile is older than that process,
      // so agent/cli/pidfile.ts knows it is not the agent that wrote it. The pidfile's date is set back to before
      // that process started, as after a reboot.
      const stop = await bbagent(['service', 'stop', BASEDIR], OTHER_BIN);
      expect(stop.code === 0, `stop: exit ${stop.code}: ${stop.stderr.trim()}`);
      const other = (await container.run(['pidof', '-s', 'dbus-daemon'])).trim();
      await container.run(['sh', '-c', `echo ${other} > ${BASEDIR}/bbagent.pid && touch -d '-1 hour' ${BASEDIR}/bbagent.pid`], { user: USER });
      const since = (await container.run(['date', '+%Y-%m-%d %H:%M:%S'])).trim();
      const start = await bbagent(['service', 'start', BASEDIR], OTHER_BIN);
      expect(start.code === 0, `start: exit ${start.code}: ${start.stderr.trim()}`);
      try {
        await pollUntil(
          async () => {
            if ((await m.worker(WORKER))?.connected_to.length) return true;
            const j = await container.exec(['journalctl', '-u', UNIT, '--since', since, '-o', 'cat', '--no-pager']);
            const refused = j.stdout.split('\n').find((l) => l.includes('already running'));
            if (refused) throw new Error(`the agent refuses to start, and systemd retries every ${RESTART_SEC} s: ${refused}`);
            return undefined;
          },
          { timeoutMs: ATTACH_TIMEOUT_MS, intervalMs: 200, what: 'the worker to attach' },
        );
      } finally {
        // Whatever happened: a clean state for the next checks.
        await container.run(['rm', '-f', `${BASEDIR}/bbagent.pid`]);
        await container.run(['systemctl', 'restart', UNIT]);
        await attached();
      }
      return `pidfile named dbus-daemon (pid ${other}); the worker attached`;
    });

    await check('a BASEDIR with a space and % specifiers installs, runs and uninstalls (quoting, % escapes)', async () => {
      await container.run([BIN, 'create-worker', '--quiet', ODD_BASEDIR, `127.0.0.1:${m.protocolPort}`, ODD_WORKER, PASSWORD], { user: USER });
      try {
        const r = await bbagent(['service', 'install', ODD_BASEDIR]);
        expect(r.code === 0, `install: exit ${r.code}: ${r.stderr.trim()}`);
        const p = Object.fromEntries(
          (await container.run(['systemctl', 'show', ODD_UNIT, '--property=ActiveState,MainPID,Description,WorkingDirectory']))
            .trim()
            .split('\n')
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        const description = `bbagent Buildbot worker ${ODD_WORKER} (${ODD_BASEDIR})`;
        expect(p['Description'] === description, `Description is '${p['Description']}', not '${description}'`);
        expect(p['WorkingDirectory'] === ODD_BASEDIR, `WorkingDirectory is '${p['WorkingDirectory']}'`);
        expect(p['ActiveState'] === 'active', `ActiveState ${p['ActiveState']}`);
        const warnings = await unitWarnings(`/etc/systemd/system/${ODD_UNIT}`);
        expect(warnings.length === 0, `systemd complains about the unit: ${warnings.join(' / ')}`);
        const args = (await container.run(['ps', '-o', 'args=', '-p', p['MainPID'] ?? '0'])).trim();
        expect(args === `${BIN} start --nodaemon ${ODD_BASEDIR}`, `the agent runs '${args}'`);
        await m.waitForWorker(ODD_WORKER, true, ATTACH_TIMEOUT_MS);
        const u = await bbagent(['service', 'uninstall', ODD_BASEDIR]);
        expect(u.code === 0, `uninstall: exit ${u.code}: ${u.stderr.trim()}`);
        await m.waitForWorker(ODD_WORKER, false, ATTACH_TIMEOUT_MS);
        return `'${args}' attached; Description and WorkingDirectory as written; uninstalled`;
      } finally {
        await bbagent(['service', 'uninstall', '--quiet', ODD_BASEDIR]);
      }
    });

    await check('uninstall removes the unit and leaves BASEDIR as it was', async () => {
      const r = await bbagent(['service', 'uninstall', BASEDIR], OTHER_BIN);
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim()}`);
      expect((await container.exec(['test', '-e', UNIT_FILE])).code !== 0, `${UNIT_FILE} is still there`);
      const load = (await show('LoadState'))['LoadState'];
      expect(load === 'not-found', `LoadState ${load}`);
      const left = (await processes()).filter((p) => p.user === USER);
      expect(left.length === 0, `processes of ${USER} left: ${left.map((p) => p.args).join(', ')}`);
      await detached();
      const kept = (await container.run(['ls', '-A', BASEDIR])).trim().split('\n');
      for (const f of ['bbagent.json', 'bbagent.log', 'info', 'identity', 'drain', 'sleeper'])
        expect(kept.includes(f), `${BASEDIR} lost ${f} (has ${kept.join(' ')})`);
      const status = await bbagent(['service', 'status', BASEDIR], OTHER_BIN);
      expect(status.code === 4, `status exit ${status.code} (want 4): ${status.stdout.trim()}`);
      const again = await bbagent(['service', 'uninstall', BASEDIR], OTHER_BIN);
      expect(again.code === 0 && /not installed; nothing to do/.test(again.stdout), `uninstall again: exit ${again.code} ${again.stdout.trim()}`);
      return `${r.stdout.trim()}; ${BASEDIR} has ${kept.join(' ')}; status exit 4; uninstall again: nothing to do`;
    });
  } finally {
    say('stopping the container and the master');
    await container.stop().catch((err: unknown) => say(`stopping the container: ${message(err)}`));
    await master?.stop().catch((err: unknown) => say(`stopping the master: ${message(err)}`));
    if (opts.keep) say(`kept ${scratch}`);
    else rmSync(scratch, { recursive: true, force: true });
  }
  return results;
}
