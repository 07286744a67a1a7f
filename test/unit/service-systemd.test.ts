// The systemd service manager: the unit it writes (checked by systemd-analyze verify when installed), the
// install safety rules, and the systemctl calls, against a fake host (no root or running systemd needed).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderUnit, systemdQuote, systemdServiceManager, unitName, unitOfCgroup } from '../../platforms/linux/service.js';
import { ServiceError, type ServiceSpec } from '../../platforms/index.js';
import { findExecutable } from '../../scripts/harness/process.js';
import { fakeHost, scratchDir } from './service-helpers.js';

function setup(opts: { privileged?: boolean; owner?: number; running?: boolean } = {}) {
  const dirs = scratchDir('bbagent-systemd-');
  const host = fakeHost(opts);
  const manager = systemdServiceManager({ host, unitDir: dirs.managerDir, systemdRunning: () => opts.running ?? true });
  const spec: ServiceSpec = {
    name: 'w1',
    description: 'bbagent Buildbot worker w1',
    basedir: dirs.basedir,
    command: [process.execPath, '/opt/bbagent/bbagent.cjs', 'start', '--nodaemon', dirs.basedir],
  };
  const ref = { name: 'w1', basedir: dirs.basedir, pidFile: path.join(dirs.basedir, 'bbagent.pid') };
  return { ...dirs, host, manager, spec, ref, unitFile: path.join(dirs.managerDir, unitName('w1')) };
}

async function rejection(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

describe('systemd unit', () => {
  it('restarts on failure only, runs as the user, drains on stop (SIGTERM to the agent alone), logs to the journal', () => {
    const { spec } = setup();
    const unit = renderUnit(spec, 'buildbot');
    // a clean exit (bbagent stop, a master's shutdown) is not restarted; a crash or kill -9 is
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).not.toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^StartLimitIntervalSec=0$/m);
    expect(unit).toMatch(/^User=buildbot$/m);
    // SIGTERM to the main process only: the builds are not signalled, the agent lets them finish
    expect(unit).toMatch(/^KillMode=mixed$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^TimeoutStopSec=1800$/m);
    expect(unit).toMatch(/^SendSIGKILL=yes$/m);
    expect(unit).toMatch(/^StandardOutput=journal$/m);
    expect(unit).toMatch(/^WantedBy=multi-user.target$/m);
    // the path has a space: quoted
    expect(unit).toContain(`ExecStart=${process.execPath} /opt/bbagent/bbagent.cjs start --nodaemon "${spec.basedir}"`);
  });

  it('takes the stop timeout from the spec, and refuses one out of range', () => {
    const { spec } = setup();
    expect(renderUnit({ ...spec, stopTimeoutS: 7200 }, 'buildbot')).toMatch(/^TimeoutStopSec=7200$/m);
    for (const bad of [0, -5, 1.5, 86_401]) {
      expect(() => renderUnit({ ...spec, stopTimeoutS: bad }, 'buildbot')).toThrow(/stop timeout must be 1 to 86400 whole seconds/);
    }
  });

  it('names the unit an agent runs in from its cgroup, for bbagent stop', async () => {
    expect(unitOfCgroup('0::/system.slice/bbagent-w1.service\n')).toBe('bbagent-w1.service');
    expect(unitOfCgroup('12:pids:/system.slice/bbagent-a.b_c.service\n1:name=systemd:/system.slice/bbagent-a.b_c.service\n')).toBe('bbagent-a.b_c.service');
    expect(unitOfCgroup('0::/user.slice/user-1000.slice/session-3.scope\n')).toBeUndefined();
    expect(unitOfCgroup(undefined)).toBeUndefined();
    const cgroups: Record<number, string> = { 10: '0::/system.slice/bbagent-w1.service\n', 11: '0::/user.slice/session-1.scope\n' };
    const { host } = setup();
    const manager = systemdServiceManager({ host, unitDir: '/nonexistent', systemdRunning: () => true, readCgroup: (pid) => cgroups[pid] });
    expect(await manager.stopAgent('/w', 10)).toEqual({ via: 'exit', service: 'bbagent-w1.service' });
    expect(await manager.stopAgent('/w', 11)).toBeUndefined();
    expect(await manager.stopAgent('/w', 12)).toBeUndefined();
    // nothing is run: the agent's own clean exit stops it for good
    expect(host.calls).toEqual([]);
  });

  it('quotes ExecStart words the way systemd splits them', () => {
    expect(systemdQuote('/usr/local/bin/bbagent')).toBe('/usr/local/bin/bbagent');
    expect(systemdQuote('/srv/my worker')).toBe('"/srv/my worker"');
    expect(systemdQuote('100%')).toBe('100%%');
    expect(systemdQuote('a"b\\c d')).toBe('"a\\"b\\\\c d"');
    expect(systemdQuote('$HOME')).toBe('$$HOME');
    expect(() => systemdQuote('a\nb')).toThrow(ServiceError);
  });

  const analyze = findExecutable('systemd-analyze');
  it.skipIf(!analyze)('passes systemd-analyze verify', () => {
    const { root, spec } = setup();
    // verify wants an existing executable and a real user: node itself, and root for the check only
    const unitDir = path.join(root, 'verify');
    mkdirSync(unitDir);
    const file = path.join(unitDir, unitName('w1'));
    writeFileSync(file, renderUnit({ ...spec, command: [process.execPath, '--version'] }, 'root'));
    const verify = (): { status: number | null; stderr: string } => spawnSync(analyze!, ['verify', file], { encoding: 'utf8' });
    expect(verify()).toMatchObject({ status: 0, stderr: '' });
    // and it does catch a broken unit (a warning on stderr, whatever the exit code)
    writeFileSync(file, renderUnit(spec, 'root').replace(/^Restart=on-failure$/m, 'Restart=sometimes'));
    const complaint = verify().stderr;
    expect(complaint).toMatch(/restart specifier/);
  });

  it('escapes % in Description, which systemd expands as a specifier (the description holds BASEDIR)', () => {
    const { root, spec } = setup();
    const odd = { ...spec, description: 'bbagent Buildbot worker w1 (/srv/100%done %z)', command: [process.execPath, '--version'] };
    const unit = renderUnit(odd, 'root');
    expect(unit).toMatch(/^Description=bbagent Buildbot worker w1 \(\/srv\/100%%done %%z\)$/m);
    if (!analyze) return;
    // unescaped, systemd logs "Failed to resolve unit specifiers ... ignoring: Invalid slot" and drops Description=
    const file = path.join(root, unitName('w1'));
    writeFileSync(file, unit);
    expect(spawnSync(analyze, ['verify', file], { encoding: 'utf8' })).toMatchObject({ status: 0, stderr: '' });
  });
});

describe('systemd install', () => {
  it('writes the unit, reloads, enables and starts it', async () => {
    const { manager, spec, host, unitFile } = setup();
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('installed');
    expect(readFileSync(unitFile, 'utf8')).toContain('User=buildbot');
    expect(host.calls).toEqual([
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', 'bbagent-w1.service'],
      ['systemctl', 'start', 'bbagent-w1.service'],
    ]);
  });

  it('is idempotent: the same settings again change nothing', async () => {
    const { manager, spec, host, unitFile } = setup();
    await manager.install(spec, { force: false, noStart: true });
    const before = readFileSync(unitFile, 'utf8');
    host.calls.length = 0;
    expect(await manager.install(spec, { force: false, noStart: true })).toBe('unchanged');
    expect(readFileSync(unitFile, 'utf8')).toBe(before);
    expect(host.calls).toEqual([
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', 'bbagent-w1.service'],
    ]);
  });

  it('refuses different settings without --force, and replaces (and restarts) with it', async () => {
    const { manager, spec, host, unitFile } = setup();
    await manager.install(spec, { force: false, noStart: false });
    const other = { ...spec, command: ['/usr/local/bin/bbagent', 'start', '--nodaemon', spec.basedir] };
    const err = await rejection(manager.install(other, { force: false, noStart: false }));
    expect(err.code).toBe('E_SERVICE_EXISTS');
    expect(err.message).toMatch(/already exists with different settings .*ExecStart/);
    expect(err.message).toMatch(/--force/);
    host.calls.length = 0;
    expect(await manager.install(other, { force: true, noStart: false })).toBe('replaced');
    expect(readFileSync(unitFile, 'utf8')).toContain('ExecStart=/usr/local/bin/bbagent start');
    expect(host.calls.at(-1)).toEqual(['systemctl', 'restart', 'bbagent-w1.service']);
  });

  it('refuses without root, touching nothing', async () => {
    const { manager, spec, host, unitFile } = setup({ privileged: false });
    const err = await rejection(manager.install(spec, { force: false, noStart: false }));
    expect(err.code).toBe('E_SERVICE_RIGHTS');
    expect(err.message).toMatch(/sudo/);
    expect(existsSync(unitFile)).toBe(false);
    expect(host.calls).toEqual([]);
  });

  it('refuses when systemd is not running', async () => {
    const { manager, spec } = setup({ running: false });
    expect((await rejection(manager.install(spec, { force: false, noStart: false }))).code).toBe('E_SERVICE_MANAGER');
  });

  it('never runs the worker as root, and wants the user to own BASEDIR', async () => {
    const asRoot = setup({ owner: 0 });
    const err = await rejection(asRoot.manager.install(asRoot.spec, { force: false, noStart: false }));
    expect(err.code).toBe('E_SERVICE_USER');
    expect(err.message).toMatch(/as root/);
    const other = setup({ owner: 999 });
    const err2 = await rejection(other.manager.install({ ...other.spec, user: 'alice' }, { force: false, noStart: false }));
    expect(err2.message).toMatch(/belongs to buildbot, not to alice/);
    const unknown = await rejection(other.manager.install({ ...other.spec, user: 'nobody-here' }, { force: false, noStart: false }));
    expect(unknown.message).toMatch(/no such user 'nobody-here'/);
  });

  it('rejects a relative program and a bad service name', async () => {
    const { manager, spec } = setup();
    expect(() => manager.render({ ...spec, command: ['bbagent', 'start'] })).toThrow(/absolute program path/);
    expect(() => manager.render({ ...spec, name: '../evil' })).toThrow(/service name/);
  });
});

describe('systemd uninstall, status, start, stop', () => {
  it('uninstall stops and removes the unit and leaves BASEDIR alone', async () => {
    const { manager, spec, ref, host, unitFile, basedir } = setup();
    writeFileSync(path.join(basedir, 'bbagent.json'), '{}');
    await manager.install(spec, { force: false, noStart: false });
    host.calls.length = 0;
    expect(await manager.uninstall(ref)).toBe(true);
    expect(existsSync(unitFile)).toBe(false);
    expect(existsSync(path.join(basedir, 'bbagent.json'))).toBe(true);
    expect(host.calls[0]).toEqual(['systemctl', 'disable', '--now', 'bbagent-w1.service']);
    expect(host.calls).toContainEqual(['systemctl', 'daemon-reload']);
    expect(await manager.uninstall(ref)).toBe(false);
  });

  it('status reads systemctl show', async () => {
    const { manager, spec, ref, host } = setup();
    await manager.install(spec, { force: false, noStart: false });
    host.answers.set('systemctl show', {
      code: 0,
      stdout: 'MainPID=4242\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n',
      stderr: '',
    });
    expect(await manager.status(ref)).toEqual({ installed: true, running: true, enabled: true, detail: 'active (running), pid 4242, enabled' });
  });

  it('start and stop need the unit and root, and surface systemctl failures', async () => {
    const { manager, spec, ref, host } = setup();
    expect((await rejection(manager.start(ref))).code).toBe('E_SERVICE_MISSING');
    await manager.install(spec, { force: false, noStart: true });
    host.calls.length = 0;
    await manager.stop(ref);
    await manager.start(ref);
    expect(host.calls).toEqual([
      ['systemctl', 'stop', 'bbagent-w1.service'],
      ['systemctl', 'start', 'bbagent-w1.service'],
    ]);
    host.answers.set('systemctl start', { code: 1, stdout: '', stderr: 'Job for bbagent-w1.service failed.' });
    const err = await rejection(manager.start(ref));
    expect(err.code).toBe('E_SERVICE_COMMAND');
    expect(err.message).toMatch(/Job for bbagent-w1.service failed/);
    host.privileged = false;
    expect((await rejection(manager.stop(ref))).code).toBe('E_SERVICE_RIGHTS');
  });
});
