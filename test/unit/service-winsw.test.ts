// The Windows service manager (a real service run by WinSW): the configuration it writes (well-formed XML made of
// elements the WinSW 1.x that npm's node-windows ships understands: restart on failure, bbagent itself as the
// stop program (winsw-stop.test.ts checks its command line), the stop timeout), the account rules (never LocalSystem or another privileged account), the password
// (in the configuration only while the wrapper's `install` runs, never on a command line), the sc.exe calls
// against a recorded Service Control Manager, the removal of an older bbagent's scheduled task, and
// `bbagent stop` going through the SCM. Nothing here ran on Windows.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CommandResult, ServiceSpec } from '../../platforms/index.js';
import { ACCOUNT_SCRIPT, windowsQuote } from '../../platforms/win32/account.js';
import { taskName } from '../../platforms/win32/legacy-task.js';
import { parseScState, winswServiceManager } from '../../platforms/win32/service.js';
import { RESTART_DELAY_S, WINSW_EXE_CONFIG, WINSW_SOURCE, renderWinswXml, serviceId } from '../../platforms/win32/winsw-config.js';
import { child, fakeHost, parseXml, python, scratchDir, type FakeHost } from './service-helpers.js';

/** The configuration elements WinSW 1.17 reads (the names in its winsw.exe), of which we may write any. */
const WINSW_1_ELEMENTS = new Set([
  'id',
  'name',
  'description',
  'executable',
  'arguments',
  'workingdirectory',
  'startmode',
  'serviceaccount',
  'onfailure',
  'resetfailure',
  'stopexecutable',
  'stopargument',
  'stoptimeout',
  'logpath',
  'log',
  'env',
  'depend',
  'priority',
]);

const PASSWORD = 'pa$$ w\u00f6rd "x" <&>';
const winSpec: ServiceSpec = {
  name: 'w1',
  description: 'bbagent Buildbot worker w1 (C:\\workers\\w 1)',
  basedir: 'C:\\workers\\w 1',
  command: ['C:\\Program Files\\bbagent\\bbagent.exe', 'start', '--nodaemon', 'C:\\workers\\w 1'],
  user: '.\\bbagent',
  password: PASSWORD,
};

describe('windows argument quoting', () => {
  it('follows CommandLineToArgvW', () => {
    expect(windowsQuote('plain')).toBe('plain');
    expect(windowsQuote('C:\\w 1')).toBe('"C:\\w 1"');
    expect(windowsQuote('C:\\w 1\\')).toBe('"C:\\w 1\\\\"');
    expect(windowsQuote('say "hi"')).toBe('"say \\"hi\\""');
    expect(windowsQuote('')).toBe('""');
  });
});

describe.skipIf(!python)('WinSW configuration', () => {
  it("the wrapper's .NET configuration is well-formed and allows .NET 4", () => {
    const cfg = parseXml(WINSW_EXE_CONFIG);
    expect(child(cfg, 'startup').children.map((c) => c.attrs['version'])).toEqual(['v4.0', 'v2.0.50727']);
  });

  it('is well-formed, uses only WinSW 1.x elements, restarts on failure, and drains on stop', () => {
    const doc = parseXml(renderWinswXml(winSpec));
    expect(doc.tag).toBe('service');
    for (const c of doc.children) expect(WINSW_1_ELEMENTS.has(c.tag), `<${c.tag}> is not a WinSW 1.x element`).toBe(true);
    const text = (tag: string): string => child(doc, tag).text;
    expect(text('id')).toBe('bbagent-w1');
    expect(text('name')).toBe('bbagent w1');
    expect(text('executable')).toBe('C:\\Program Files\\bbagent\\bbagent.exe');
    expect(text('arguments')).toBe('start --nodaemon "C:\\workers\\w 1"');
    expect(text('workingdirectory')).toBe('C:\\workers\\w 1');
    expect(text('startmode')).toBe('Automatic');
    // the Service Control Manager's recovery action: restart after a failure (crash, kill, exit 1)
    expect(child(doc, 'onfailure').attrs).toEqual({ action: 'restart', delay: `${RESTART_DELAY_S} sec` });
    expect(text('resetfailure')).toBe('1 hour');
    // a stop runs bbagent stop --drain (no Ctrl+C): builds finish within the stop timeout
    expect(text('stopexecutable')).toBe('C:\\Program Files\\bbagent\\bbagent.exe');
    expect(doc.children.filter((c) => c.tag === 'stopargument').map((c) => c.text)).toEqual([
      'stop',
      '--drain',
      '--service',
      '--timeout',
      '1800',
      '"C:\\workers\\w 1"',
      '--',
    ]);
    expect(doc.children.some((c) => c.tag === 'stopparentprocessfirst')).toBe(false);
    expect(text('stoptimeout')).toBe('1800 sec');
    // the wrapper's log goes where the account may write: BASEDIR
    expect(text('logpath')).toBe('C:\\workers\\w 1');
    const account = child(doc, 'serviceaccount');
    expect(account.children.map((c) => [c.tag, c.text])).toEqual([
      ['domain', '.'],
      ['user', 'bbagent'],
      ['allowservicelogon', 'true'],
    ]);
  });

  it('holds the password only when rendered for the install call, XML-escaped', () => {
    const withPassword = parseXml(renderWinswXml(winSpec, PASSWORD));
    expect(child(child(withPassword, 'serviceaccount'), 'password').text).toBe(PASSWORD);
    expect(renderWinswXml(winSpec)).not.toContain('pa$$');
  });

  it('takes the stop timeout and a domain account; refuses % (WinSW expands it)', () => {
    const doc = parseXml(renderWinswXml({ ...winSpec, user: 'CORP\\builder', stopTimeoutS: 300 }));
    expect(child(doc, 'stoptimeout').text).toBe('300 sec');
    expect(child(child(doc, 'serviceaccount'), 'domain').text).toBe('CORP');
    expect(() => renderWinswXml({ ...winSpec, basedir: 'C:\\100%' })).toThrow(/contains %/);
    // '--' may not appear in an XML comment, and a service name may hold it
    expect(child(parseXml(renderWinswXml({ ...winSpec, name: 'a--b' })), 'id').text).toBe('bbagent-a--b');
    expect(() => renderWinswXml({ ...winSpec, stopTimeoutS: 0 })).toThrow(/stop timeout/);
  });

  it('render names the configuration under %ProgramData%\\bbagent\\services and checks the account first', () => {
    const manager = winswServiceManager({ host: fakeHost() });
    const [file] = manager.render(winSpec);
    expect(file!.path).toMatch(/\\bbagent\\services\\w1\\bbagent-w1\.xml$/);
    const { user: _u, password: _p, ...noUser } = winSpec;
    expect(() => manager.render(noUser)).toThrow(/never LocalSystem/);
  });
});

/** A recorded Service Control Manager, Task Scheduler and PowerShell on the fake host. */
function fakeWindows(host: FakeHost, xmlPath: string) {
  const scm: { state?: string; installedXml?: string; legacyTask: boolean; denyStop: boolean } = { legacyTask: false, denyStop: false };
  const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
  host.respond = (cmd, args) => {
    const [verb] = args;
    if (cmd === 'sc.exe' && verb === 'query') {
      if (scm.state === undefined) return { code: 1060, stdout: '[SC] EnumQueryServicesStatus:OpenService FAILED 1060:', stderr: '' };
      const shown = scm.state;
      if (scm.state === 'STOP_PENDING') scm.state = 'STOPPED';
      return ok(`\r\nSERVICE_NAME: bbagent-w1\r\n        TYPE               : 10  WIN32_OWN_PROCESS\r\n        STATE              : 4  ${shown}\r\n`);
    }
    if (cmd === 'sc.exe' && verb === 'start') {
      if (scm.state === 'RUNNING') return { code: 1056, stdout: '', stderr: '' };
      scm.state = 'RUNNING';
      return ok();
    }
    if (cmd === 'sc.exe' && verb === 'stop') {
      if (scm.denyStop) return { code: 5, stdout: '[SC] OpenService FAILED 5:\r\n\r\nAccess is denied.', stderr: '' };
      if (scm.state !== 'RUNNING') return { code: 1062, stdout: '', stderr: '' };
      scm.state = 'STOP_PENDING';
      return ok();
    }
    if (cmd.endsWith('bbagent-w1.exe') && verb === 'install') {
      scm.installedXml = readFileSync(xmlPath, 'utf8');
      scm.state = 'STOPPED';
      return ok();
    }
    if (cmd.endsWith('bbagent-w1.exe') && verb === 'uninstall') {
      scm.state = undefined;
      return ok();
    }
    if (cmd === 'schtasks' && verb === '/Query') return scm.legacyTask ? ok('\\bbagent\\w1  Running') : { code: 1, stdout: '', stderr: 'ERROR' };
    if (cmd === 'schtasks' && verb === '/Delete') scm.legacyTask = false;
    return undefined;
  };
  return scm;
}

function setup(privileged = true) {
  const dirs = scratchDir('bbagent-winsw-');
  const host = fakeHost({ privileged });
  const winsw = path.join(dirs.root, 'winsw.exe');
  writeFileSync(winsw, 'MZ fake wrapper');
  const serviceRoot = path.join(dirs.root, 'services');
  const manager = winswServiceManager({ host, serviceRoot, winsw, sc: 'sc.exe', powershell: 'powershell.exe', pathApi: path.posix, pollMs: 1 });
  const xmlPath = path.join(serviceRoot, 'w1', 'bbagent-w1.xml');
  const scm = fakeWindows(host, xmlPath);
  const spec: ServiceSpec = { ...winSpec, basedir: dirs.basedir, command: ['/opt/bbagent/bbagent.exe', 'start', '--nodaemon', dirs.basedir] };
  const ref = { name: 'w1', basedir: dirs.basedir, pidFile: path.join(dirs.basedir, 'bbagent.pid') };
  return { ...dirs, host, manager, scm, spec, ref, xmlPath, serviceRoot, exePath: path.join(serviceRoot, 'w1', 'bbagent-w1.exe') };
}

function payloadOf(input: string | undefined): Record<string, string> {
  return JSON.parse(Buffer.from((input ?? '').trim(), 'base64').toString('utf8')) as Record<string, string>;
}

describe('WinSW install', () => {
  it('checks the account by script (stdin), copies the wrapper, installs with the password, then removes it from disk, and starts', async () => {
    const { manager, host, scm, spec, xmlPath, exePath, serviceRoot } = setup();
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('installed');
    const ps = host.calls.findIndex((c) => c[0] === 'powershell.exe');
    expect(host.calls[ps]!.slice(1, 5)).toEqual(['-NoLogo', '-NoProfile', '-NonInteractive', '-EncodedCommand']);
    expect(Buffer.from(host.calls[ps]![5]!, 'base64').toString('utf16le')).toBe(ACCOUNT_SCRIPT);
    expect(payloadOf(host.inputs[ps])).toEqual({ user: '.\\bbagent', basedir: spec.basedir, servicedir: path.join(serviceRoot, 'w1') });
    expect(readFileSync(exePath, 'utf8')).toBe('MZ fake wrapper');
    // WinSW 1.x is a .NET 2.0 program: its .config lets it run on the .NET 4 of current Windows
    expect(readFileSync(`${exePath}.config`, 'utf8')).toBe(WINSW_EXE_CONFIG);
    // the wrapper's install saw the password; the file left behind does not hold it
    expect(scm.installedXml).toContain('<password>pa$$ w\u00f6rd &quot;x&quot; &lt;&amp;&gt;</password>');
    expect(readFileSync(xmlPath, 'utf8')).not.toContain('pa$$');
    expect(readFileSync(xmlPath, 'utf8')).toBe(renderWinswXml(spec));
    for (const c of host.calls) expect(c.join(' ')).not.toContain('pa$$');
    expect(host.calls.filter((c) => c[0] !== 'powershell.exe')).toEqual([
      ['schtasks', '/Query', '/TN', taskName('w1')],
      ['sc.exe', 'query', 'bbagent-w1'],
      [exePath, 'install'],
      ['sc.exe', 'start', 'bbagent-w1'],
    ]);
    expect(scm.state).toBe('RUNNING');
  });

  it('the same settings again are unchanged; other settings are refused; --force stops, removes and registers again', async () => {
    const { manager, host, scm, spec, exePath } = setup();
    await manager.install(spec, { force: false, noStart: false });
    host.calls.length = 0;
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('unchanged');
    expect(host.calls.map((c) => c.join(' '))).toEqual(['schtasks /Query /TN \\bbagent\\w1', 'sc.exe query bbagent-w1', 'sc.exe start bbagent-w1']);
    const other = { ...spec, stopTimeoutS: 60 };
    await expect(manager.install(other, { force: false, noStart: false })).rejects.toMatchObject({
      code: 'E_SERVICE_EXISTS',
      message: expect.stringMatching(/installed '<stoptimeout>1800 sec<\/stoptimeout>' vs new '<stoptimeout>60 sec<\/stoptimeout>'.*--force/),
    });
    host.calls.length = 0;
    expect(await manager.install({ ...other, password: 'new' }, { force: true, noStart: false })).toBe('replaced');
    const seen = host.calls.map((c) => c.join(' '));
    expect(seen.indexOf('sc.exe stop bbagent-w1')).toBeLessThan(seen.indexOf(`${exePath} uninstall`));
    expect(seen.indexOf(`${exePath} uninstall`)).toBeLessThan(seen.indexOf(`${exePath} install`));
    expect(scm.installedXml).toContain('<password>new</password>');
    expect(scm.state).toBe('RUNNING');
  });

  it("refuses to add a service beside an older bbagent's scheduled task; uninstall removes the task (migration)", async () => {
    const { manager, host, scm, spec, ref, basedir } = setup();
    scm.legacyTask = true;
    await expect(manager.install(spec, { force: false, noStart: false })).rejects.toMatchObject({
      code: 'E_SERVICE_EXISTS',
      message: expect.stringMatching(/scheduled task \\bbagent\\w1: run 'bbagent service uninstall' first/),
    });
    expect(await manager.status(ref)).toMatchObject({ installed: true, detail: expect.stringMatching(/older bbagent's scheduled task/) });
    writeFileSync(path.join(basedir, 'bbagent.pid'), '4321\n');
    host.calls.length = 0;
    expect(await manager.uninstall(ref)).toBe(true);
    expect(host.calls).toEqual([
      ['sc.exe', 'query', 'bbagent-w1'],
      ['schtasks', '/Query', '/TN', taskName('w1')],
      ['schtasks', '/End', '/TN', taskName('w1')],
      ['taskkill', '/PID', '4321', '/T', '/F'],
      ['schtasks', '/Delete', '/TN', taskName('w1'), '/F'],
    ]);
    expect(await manager.install(spec, { force: false, noStart: true })).toBe('installed');
  });

  it('finds winsw.exe: --winsw, else beside bbagent.exe, else node-windows of an npm -g install; a missing one is named', async () => {
    const { host, spec, serviceRoot, root } = setup();
    const manager = winswServiceManager({ host, serviceRoot, sc: 'sc.exe', powershell: 'powershell.exe', pathApi: path.posix, pollMs: 1 });
    const err = await manager.install(spec, { force: false, noStart: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_SERVICE_MANAGER', message: expect.stringContaining('looked for /opt/bbagent/winsw.exe') });
    expect((err as Error).message).toMatch(/--winsw PATH/);
    // the spec's (--winsw)
    const mine = path.join(root, 'my-winsw.exe');
    writeFileSync(mine, 'MZ mine');
    expect(await manager.install({ ...spec, winsw: mine }, { force: false, noStart: true })).toBe('installed');
    expect(readFileSync(path.join(serviceRoot, 'w1', 'bbagent-w1.exe'), 'utf8')).toBe('MZ mine');
  });

  it('npm -g: node <prefix>/node_modules/bbagent/build/bbagent.cjs takes node-windows from <prefix>/node_modules', async () => {
    const { host, spec, serviceRoot, root } = setup();
    const manager = winswServiceManager({ host, serviceRoot, sc: 'sc.exe', powershell: 'powershell.exe', pathApi: path.posix, pollMs: 1 });
    const pkg = path.join(root, 'prefix', 'node_modules', 'bbagent');
    const npmWinsw = path.join(root, 'prefix', 'node_modules', WINSW_SOURCE.npmPackage, 'bin', 'winsw', 'winsw.exe');
    mkdirSync(path.dirname(npmWinsw), { recursive: true });
    writeFileSync(npmWinsw, 'MZ from npm');
    const npmSpec = { ...spec, command: ['/usr/bin/node', path.join(pkg, 'build', 'bbagent.cjs'), 'start', '--nodaemon', spec.basedir] };
    expect(await manager.install(npmSpec, { force: false, noStart: true })).toBe('installed');
    expect(readFileSync(path.join(serviceRoot, 'w1', 'bbagent-w1.exe'), 'utf8')).toBe('MZ from npm');
  });

  it('refuses without elevation, running nothing', async () => {
    const { manager, spec, host } = setup(false);
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({ code: 'E_SERVICE_RIGHTS' });
    expect(host.calls).toEqual([]);
  });

  it("reports the script's refusal of an account (an administrator, say) as E_SERVICE_USER, and installs nothing", async () => {
    const { manager, host, spec, exePath } = setup();
    const fallback = host.respond!;
    host.respond = (cmd, args, input) =>
      cmd === 'powershell.exe' ? { code: 3, stdout: '', stderr: "'.\\bbagent' is a member of the local Administrators group\r\n" } : fallback(cmd, args, input);
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({
      code: 'E_SERVICE_USER',
      message: expect.stringContaining('is a member of the local Administrators group'),
    });
    expect(existsSync(exePath)).toBe(false);
  });

  it('refuses privileged accounts before anything runs', async () => {
    const { manager, host, spec } = setup();
    for (const user of ['SYSTEM', 'NT AUTHORITY\\LocalService', 'NETWORK SERVICE', 'S-1-5-18', '.\\Administrator', 'BUILTIN\\Administrators']) {
      await expect(manager.install({ ...spec, user }, { force: false, noStart: true }), user).rejects.toMatchObject({ code: 'E_SERVICE_USER' });
    }
    expect(host.calls).toEqual([]);
  });

  it('the account script checks the account by SID, grants it BASEDIR, and locks the service directory', () => {
    // No PowerShell here to run it: these pin what the script must do, which docs/install.md describes.
    expect(ACCOUNT_SCRIPT).toContain('[Console]::In.ReadToEnd()');
    expect(ACCOUNT_SCRIPT).toMatch(/\$sid -in @\('S-1-5-18', 'S-1-5-19', 'S-1-5-20'\)/);
    expect(ACCOUNT_SCRIPT).toContain("Get-LocalGroupMember -SID 'S-1-5-32-544'");
    expect(ACCOUNT_SCRIPT).toContain('$p.basedir /grant "*$($sid):(OI)(CI)M"');
    // the account runs the wrapper: it reads the directory, and only Administrators and SYSTEM write it
    expect(ACCOUNT_SCRIPT).toContain(`$p.servicedir /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-18:(OI)(CI)F' "*$($sid):(OI)(CI)RX"`);
  });
});

describe('WinSW status, stop, uninstall, and bbagent stop', () => {
  it('status reads sc.exe query; stop waits until the SCM says STOPPED', async () => {
    expect(parseScState('SERVICE_NAME: x\r\n        STATE              : 3  STOP_PENDING\r\n')).toBe('STOP_PENDING');
    const { manager, host, spec, ref } = setup();
    expect(await manager.status(ref)).toEqual({ installed: false, running: false, enabled: false, detail: 'no service bbagent-w1' });
    await manager.install(spec, { force: false, noStart: false });
    expect(await manager.status(ref)).toEqual({ installed: true, running: true, enabled: true, detail: 'bbagent-w1 RUNNING' });
    host.calls.length = 0;
    await manager.stop(ref);
    expect(host.calls.map((c) => c.join(' '))).toEqual([
      'sc.exe query bbagent-w1',
      'sc.exe stop bbagent-w1',
      'sc.exe query bbagent-w1', // STOP_PENDING
      'sc.exe query bbagent-w1', // STOPPED
    ]);
    expect((await manager.status(ref)).running).toBe(false);
  });

  it('uninstall stops the service, runs the wrapper uninstall and removes its directory, BASEDIR kept', async () => {
    const { manager, host, spec, ref, exePath, basedir } = setup();
    await manager.install(spec, { force: false, noStart: false });
    host.calls.length = 0;
    expect(await manager.uninstall(ref)).toBe(true);
    expect(host.calls.map((c) => c.join(' '))).toContain(`${exePath} uninstall`);
    expect(existsSync(path.dirname(exePath))).toBe(false);
    expect(existsSync(basedir)).toBe(true);
    expect(await manager.uninstall(ref)).toBe(false);
  });

  it('bbagent stop of a worker the service runs goes through the SCM (no signal drains a Windows process)', async () => {
    const { manager, host, scm, spec, basedir, root } = setup();
    expect(await manager.stopAgent(basedir, 4321)).toBeUndefined();
    await manager.install(spec, { force: false, noStart: false });
    expect(await manager.stopAgent(path.join(root, 'other'), 4321)).toBeUndefined();
    host.calls.length = 0;
    expect(await manager.stopAgent(basedir, 4321)).toEqual({ via: 'manager', service: serviceId('w1') });
    expect(host.calls.map((c) => c.join(' '))).toContain('sc.exe stop bbagent-w1');
    expect(scm.state).toBe('STOPPED');
    // stopped already: nothing to do, the caller stops the process as usual
    expect(await manager.stopAgent(basedir, 4321)).toBeUndefined();
    scm.state = 'RUNNING';
    scm.denyStop = true;
    await expect(manager.stopAgent(basedir, 4321)).rejects.toMatchObject({ code: 'E_SERVICE_RIGHTS', message: expect.stringMatching(/elevated prompt/) });
  });
});
