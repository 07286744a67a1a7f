// The launchd service manager: the plist it writes, parsed by Python's plistlib (a strict XML plist reader)
// and checked against the keys and types of launchd.plist(5); daemon vs agent; the launchctl calls; how
// `bbagent stop` finds the job of a BASEDIR. Nothing here ran on macOS: plutil and launchd are not on this host.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { launchdLabel, launchdServiceManager, renderPlist } from '../../platforms/darwin/service.js';
import { ServiceError, type ServiceSpec } from '../../platforms/index.js';
import { findExecutable } from '../../scripts/harness/process.js';
import { USERS, fakeHost, scratchDir } from './service-helpers.js';

/** launchd.plist(5) keys this project may write, with the plistlib type each must have. */
const LAUNCHD_KEYS: Record<string, 'str' | 'bool' | 'int' | 'list' | 'dict'> = {
  Label: 'str',
  Disabled: 'bool',
  UserName: 'str',
  GroupName: 'str',
  Program: 'str',
  ProgramArguments: 'list',
  WorkingDirectory: 'str',
  EnvironmentVariables: 'dict',
  RunAtLoad: 'bool',
  KeepAlive: 'dict',
  ThrottleInterval: 'int',
  ExitTimeOut: 'int',
  ProcessType: 'str',
  StandardOutPath: 'str',
  StandardErrorPath: 'str',
  LimitLoadToSessionType: 'str',
  AbandonProcessGroup: 'bool',
  SessionCreate: 'bool',
  Umask: 'int',
  Nice: 'int',
};

const python = findExecutable('python3');

/** The plist as Python's plistlib reads it, with each value's type name. */
function parsePlist(text: string): Record<string, { type: string; value: unknown }> {
  const script =
    'import plistlib,sys,json\n' +
    'd = plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML)\n' +
    'print(json.dumps({k: {"type": type(v).__name__, "value": v} for k, v in d.items()}))\n';
  const r = spawnSync(python!, ['-c', script], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`plistlib rejected the plist: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, { type: string; value: unknown }>;
}

function setup(opts: { privileged?: boolean; uid?: number; owner?: number } = {}) {
  const dirs = scratchDir('bbagent-launchd-');
  const host = fakeHost(opts);
  const manager = launchdServiceManager({ host, daemonDir: dirs.managerDir, agentHome: path.join(dirs.root, 'home') });
  const spec: ServiceSpec = {
    name: 'w1',
    description: 'bbagent Buildbot worker w1',
    basedir: dirs.basedir,
    command: ['/usr/local/bin/bbagent', 'start', '--nodaemon', dirs.basedir],
  };
  return { ...dirs, host, manager, spec, ref: { name: 'w1', basedir: dirs.basedir, pidFile: path.join(dirs.basedir, 'bbagent.pid') } };
}

describe.skipIf(!python)('launchd plist', () => {
  it('a LaunchDaemon: valid plist, known keys of the right types, runs as the user, restarts on failure only', () => {
    const { spec } = setup();
    const plist = parsePlist(renderPlist({ ...spec, description: 'a <b> & "c"' }, USERS[1]));
    for (const [key, { type }] of Object.entries(plist)) {
      expect(LAUNCHD_KEYS[key], `unknown launchd key ${key}`).toBeDefined();
      expect(type, `type of ${key}`).toBe(LAUNCHD_KEYS[key]);
    }
    expect(plist['Label']?.value).toBe(launchdLabel('w1'));
    expect(plist['ProgramArguments']?.value).toEqual(spec.command);
    expect(plist['UserName']?.value).toBe('buildbot');
    // launchd restarts the job unless it exited 0: 'bbagent stop' (the agent drains, then exits 0) is for good
    expect(plist['KeepAlive']?.value).toEqual({ SuccessfulExit: false });
    // the drain time before SIGKILL: install --stop-timeout, 30 min by default
    expect(plist['ExitTimeOut']?.value).toBe(1800);
    expect(plist['RunAtLoad']?.value).toBe(true);
    expect(plist['ProcessType']?.value).toBe('Standard');
    expect((plist['EnvironmentVariables']?.value as Record<string, string>)['HOME']).toBe('/var/lib/buildbot');
    expect(plist['LimitLoadToSessionType']).toBeUndefined();
  });

  it('a LaunchAgent: the Aqua session, no UserName', () => {
    const { spec } = setup();
    const plist = parsePlist(renderPlist({ ...spec, session: 'agent' }, USERS[2]));
    expect(plist['LimitLoadToSessionType']?.value).toBe('Aqua');
    expect(plist['UserName']).toBeUndefined();
  });

  it('ExitTimeOut is the stop timeout; 0 (launchd: never) and out-of-range values are refused', () => {
    const { spec } = setup();
    expect(parsePlist(renderPlist({ ...spec, stopTimeoutS: 600 }, USERS[1]))['ExitTimeOut']?.value).toBe(600);
    expect(() => renderPlist({ ...spec, stopTimeoutS: 0 }, USERS[1])).toThrow(/stop timeout/);
  });

  it('escapes XML in arguments and paths', () => {
    const { spec } = setup();
    const plist = parsePlist(renderPlist({ ...spec, command: ['/opt/a&b/bbagent', '<x>', '"q"'] }, USERS[1]));
    expect(plist['ProgramArguments']?.value).toEqual(['/opt/a&b/bbagent', '<x>', '"q"']);
    // '--' may not appear in an XML comment, and a service name may hold it
    expect(parsePlist(renderPlist({ ...spec, name: 'a---b' }, USERS[1]))['Label']?.value).toBe(launchdLabel('a---b'));
  });
});

describe('launchd install', () => {
  it('daemon: needs root, writes /Library/LaunchDaemons, enables and bootstraps into system', async () => {
    const { manager, spec, host, managerDir } = setup();
    host.answers.set('launchctl print', { code: 113, stdout: '', stderr: 'Could not find service' });
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('installed');
    const file = path.join(managerDir, `${launchdLabel('w1')}.plist`);
    expect(readFileSync(file, 'utf8')).toContain('<string>buildbot</string>');
    expect(host.calls).toContainEqual(['launchctl', 'enable', 'system/org.buildbot.bbagent.w1']);
    expect(host.calls).toContainEqual(['launchctl', 'bootstrap', 'system', file]);
    // again: unchanged
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('unchanged');
    // other settings: refused, then replaced with --force (unloading the old job first)
    const other = { ...spec, command: ['/opt/bbagent', 'start', '--nodaemon', spec.basedir] };
    await expect(manager.install(other, { force: false, noStart: false })).rejects.toMatchObject({ code: 'E_SERVICE_EXISTS' });
    host.answers.set('launchctl print', { code: 0, stdout: 'state = running\npid = 77\n', stderr: '' });
    host.calls.length = 0;
    expect(await manager.install(other, { force: true, noStart: false })).toBe('replaced');
    expect(host.calls[1]).toEqual(['launchctl', 'bootout', 'system/org.buildbot.bbagent.w1']);
  });

  it('daemon refuses without root; agent refuses with root', async () => {
    const user = setup({ privileged: false, uid: 1000 });
    await expect(user.manager.install(user.spec, { force: false, noStart: false })).rejects.toMatchObject({ code: 'E_SERVICE_RIGHTS' });
    const root = setup({ privileged: true });
    await expect(root.manager.install({ ...root.spec, session: 'agent' }, { force: false, noStart: false })).rejects.toMatchObject({
      code: 'E_SERVICE_RIGHTS',
    });
  });

  it('agent: ~/Library/LaunchAgents of the invoking user, domain gui/<uid>', async () => {
    const { manager, spec, host, root } = setup({ privileged: false, uid: 1000 });
    host.answers.set('launchctl print', { code: 113, stdout: '', stderr: '' });
    await manager.install({ ...spec, session: 'agent' }, { force: false, noStart: false });
    const file = path.join(root, 'home', 'Library', 'LaunchAgents', `${launchdLabel('w1')}.plist`);
    expect(existsSync(file)).toBe(true);
    expect(host.calls).toContainEqual(['launchctl', 'bootstrap', 'gui/1000', file]);
  });

  it('never runs a daemon as root', async () => {
    const { manager, spec } = setup({ owner: 0 });
    const err = await manager.install(spec, { force: false, noStart: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe('E_SERVICE_USER');
  });

  it('uninstall boots the job out and removes the plist; status reads launchctl print', async () => {
    const { manager, spec, ref, host, basedir } = setup();
    await manager.install(spec, { force: false, noStart: true });
    host.answers.set('launchctl print', { code: 0, stdout: '\tstate = running\n\tpid = 4242\n', stderr: '' });
    expect(await manager.status(ref)).toMatchObject({ installed: true, running: true, detail: 'state = running, pid 4242' });
    host.calls.length = 0;
    expect(await manager.uninstall(ref)).toBe(true);
    expect(host.calls).toContainEqual(['launchctl', 'bootout', 'system/org.buildbot.bbagent.w1']);
    expect(existsSync(basedir)).toBe(true);
    expect(await manager.uninstall(ref)).toBe(false);
  });
});

describe('launchd and bbagent stop', () => {
  it("finds the job whose WorkingDirectory is BASEDIR (daemon or agent), and stops it by the agent's clean exit", async () => {
    const { manager, spec, host, basedir, root } = setup();
    host.answers.set('launchctl print', { code: 113, stdout: '', stderr: '' });
    expect(await manager.stopAgent(basedir, 4242)).toBeUndefined();
    await manager.install(spec, { force: false, noStart: true });
    expect(await manager.stopAgent(basedir, 4242)).toEqual({ via: 'exit', service: launchdLabel('w1') });
    expect(await manager.stopAgent(path.join(root, 'elsewhere'), 4242)).toBeUndefined();
    // nothing is booted out: the job stays loaded, and launchd does not restart a clean exit
    expect(host.calls.filter((c) => c.includes('bootout'))).toEqual([]);
  });
});
