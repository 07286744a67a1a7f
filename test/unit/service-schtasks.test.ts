// The Windows service manager (Task Scheduler): the task definition it registers (well-formed XML in the
// documented Task schema 1.2 shape, registered by wine's schtasks.exe where wine is installed), the account
// rules (never LocalSystem or another privileged account), and what reaches the Task Scheduler: the definition
// and the password only on a PowerShell script's stdin, no file, nothing secret on any command line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { schtasksServiceManager } from '../../platforms/win32/service.js';
import { definitionDigest, renderTaskXml, taskName, windowsQuote } from '../../platforms/win32/task-definition.js';
import { QUERY_SCRIPT, REGISTER_SCRIPT } from '../../platforms/win32/task-scripts.js';
import type { CommandResult, ServiceSpec } from '../../platforms/index.js';
import { findExecutable } from '../../scripts/harness/process.js';
import { fakeHost, scratchDir, type FakeHost } from './service-helpers.js';

/** schtasks /XML reads UTF-16 little-endian with a byte-order mark (what Task Scheduler exports). */
function encodeTaskXml(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf16le')]);
}

const python = findExecutable('python3');
const wine = ['/usr/lib/wine/wine64'].find((w) => existsSync(w));

interface XmlNode {
  tag: string;
  attrs: Record<string, string>;
  text: string;
  children: XmlNode[];
}

/** Parses with Python's XML parser (expat: rejects anything not well-formed) into a small tree. */
function parseXml(bytes: Buffer): XmlNode {
  const script = `
import sys, json, xml.dom.minidom as m
doc = m.parseString(sys.stdin.buffer.read())
def walk(e):
    kids = [c for c in e.childNodes if c.nodeType == c.ELEMENT_NODE]
    text = ''.join(c.data for c in e.childNodes if c.nodeType == c.TEXT_NODE).strip()
    return {'tag': e.tagName, 'attrs': dict(e.attributes.items()), 'text': text, 'children': [walk(k) for k in kids]}
print(json.dumps(walk(doc.documentElement)))
`;
  const r = spawnSync(python!, ['-c', script], { input: bytes });
  if (r.status !== 0) throw new Error(`not well-formed XML: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()) as XmlNode;
}

function child(n: XmlNode, tag: string): XmlNode {
  const c = n.children.find((x) => x.tag === tag);
  if (!c) throw new Error(`<${n.tag}> has no <${tag}> (has ${n.children.map((x) => x.tag).join(', ')})`);
  return c;
}

const PASSWORD = 'pa$$ w\u00f6rd "x"';
const spec: ServiceSpec = {
  name: 'w1',
  description: 'bbagent Buildbot worker w1 (C:\\workers\\w 1)',
  basedir: 'C:\\workers\\w 1',
  command: ['C:\\Program Files\\bbagent\\bbagent.exe', 'service', 'run', 'C:\\workers\\w 1'],
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

describe.skipIf(!python)('task definition', () => {
  it('is UTF-16LE with a BOM, well-formed, and shaped like Task Scheduler schema 1.2', () => {
    const bytes = encodeTaskXml(renderTaskXml(spec));
    expect([bytes[0], bytes[1]]).toEqual([0xff, 0xfe]);
    const task = parseXml(bytes);
    expect(task.tag).toBe('Task');
    expect(task.attrs).toMatchObject({ version: '1.2', xmlns: 'http://schemas.microsoft.com/windows/2004/02/mit/task' });
    expect(task.children.map((c) => c.tag)).toEqual(['RegistrationInfo', 'Triggers', 'Principals', 'Settings', 'Actions']);
    expect(child(child(task, 'RegistrationInfo'), 'URI').text).toBe('\\bbagent\\w1');
    expect(child(child(task, 'RegistrationInfo'), 'Source').text).toMatch(/^bbagent service install, definition sha256:[0-9a-f]{64}$/);
    expect(child(child(child(task, 'Triggers'), 'BootTrigger'), 'Enabled').text).toBe('true');
    const principal = child(child(task, 'Principals'), 'Principal');
    expect(child(principal, 'UserId').text).toBe('.\\bbagent');
    expect(child(principal, 'LogonType').text).toBe('Password');
    expect(child(principal, 'RunLevel').text).toBe('LeastPrivilege');
    const settings = child(task, 'Settings');
    expect(child(settings, 'ExecutionTimeLimit').text).toBe('PT0S');
    expect(child(settings, 'MultipleInstancesPolicy').text).toBe('IgnoreNew');
    expect(child(settings, 'DisallowStartIfOnBatteries').text).toBe('false');
    expect(child(child(settings, 'RestartOnFailure'), 'Interval').text).toBe('PT1M');
    const exec = child(child(task, 'Actions'), 'Exec');
    expect(child(exec, 'Command').text).toBe('C:\\Program Files\\bbagent\\bbagent.exe');
    expect(child(exec, 'Arguments').text).toBe('service run "C:\\workers\\w 1"');
    expect(child(exec, 'WorkingDirectory').text).toBe('C:\\workers\\w 1');
  });

  it('names the account, never holds its password, and carries the digest of its own settings', () => {
    const text = renderTaskXml({ ...spec, user: 'BUILD\\bot' });
    const principal = child(child(parseXml(encodeTaskXml(text)), 'Principals'), 'Principal');
    expect(child(principal, 'UserId').text).toBe('BUILD\\bot');
    expect(text).not.toContain('pa$$');
    const digest = definitionDigest(text);
    expect(digest).toMatch(/^sha256:/);
    expect(definitionDigest(renderTaskXml({ ...spec, user: 'BUILD\\bot' }))).toBe(digest);
    expect(definitionDigest(renderTaskXml({ ...spec, user: 'BUILD\\bot', basedir: 'D:\\w' }))).not.toBe(digest);
    expect(definitionDigest(renderTaskXml({ ...spec, user: 'BUILD\\bot', password: 'other' }))).toBe(digest);
    expect(definitionDigest(text.replace(/<Source>[^<]*<\/Source>/, ''))).toBeUndefined();
  });

  it.skipIf(!wine)("is registered by wine's schtasks.exe", () => {
    const env = {
      ...process.env,
      WINEPREFIX: path.join(os.tmpdir(), 'bbagent-smoke-wineprefix'),
      WINEDEBUG: '-all',
      WINEDLLOVERRIDES: 'mscoree,mshtml=',
    };
    if (!existsSync(path.join(env.WINEPREFIX, 'system.reg'))) spawnSync(wine!, ['wineboot', '-i'], { env, timeout: 120_000 });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-task-'));
    const file = path.join(dir, 'task.xml');
    writeFileSync(file, encodeTaskXml(renderTaskXml(spec)));
    const name = `\\bbagent\\unit-${process.pid}`;
    const create = spawnSync(wine!, ['schtasks', '/Create', '/TN', name, '/XML', `Z:${file.split('/').join('\\')}`, '/F'], { env, timeout: 60_000 });
    expect(create.status, create.stderr?.toString()).toBe(0);
    const stored = path.join(env.WINEPREFIX, 'drive_c', 'windows', 'system32', 'tasks', 'bbagent', `unit-${process.pid}`);
    // Wine's taskschd keeps what it implements (registration info, settings) and drops triggers, principal and
    // the action's details from its stored copy: it checks parsing and the settings, not the whole task.
    const kept = readFileSync(stored).toString('utf8');
    expect(kept).toContain('<URI>\\bbagent\\w1</URI>');
    expect(kept).toContain('<Priority>5</Priority>');
    expect(kept).toContain('<ExecutionTimeLimit>PT0S</ExecutionTimeLimit>');
    expect(kept).toContain('<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>');
    expect(kept).toContain('<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>');
    spawnSync(wine!, ['schtasks', '/Delete', '/TN', name, '/F'], { env, timeout: 60_000 });
    spawnSync(path.join(path.dirname(wine!), 'wineserver'), ['-k'], { env, timeout: 60_000 }); // wine's server outlives the test otherwise
  });
});

/** The script a powershell call ran (from -EncodedCommand) and the payload it got on stdin. */
function decodeScriptCall(call: string[], input: string | undefined): { script: string; payload: Record<string, string> } {
  const encoded = call[call.indexOf('-EncodedCommand') + 1]!;
  return {
    script: Buffer.from(encoded, 'base64').toString('utf16le'),
    payload: JSON.parse(Buffer.from((input ?? '').trim(), 'base64').toString('utf8')) as Record<string, string>,
  };
}

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });

/** A Task Scheduler in the fake host: the query script answers with what `tasks` holds, register stores. */
function taskScheduler(host: FakeHost, tasks: Map<string, string>, registerAnswer?: CommandResult): void {
  host.respond = (cmd, args, input) => {
    if (!cmd.endsWith('powershell.exe')) return undefined;
    const { script, payload } = decodeScriptCall([cmd, ...args], input);
    if (script === QUERY_SCRIPT) {
      const xml = tasks.get(payload['name']!);
      return xml === undefined ? { code: 4, stdout: '', stderr: '' } : ok(Buffer.from(xml, 'utf8').toString('base64'));
    }
    if (script === REGISTER_SCRIPT) {
      if (registerAnswer) return registerAnswer;
      tasks.set(payload['name']!, payload['xml']!);
      return ok();
    }
    return { code: 1, stdout: '', stderr: 'unknown script' };
  };
}

describe('schtasks install', () => {
  function setup(privileged = true) {
    const dirs = scratchDir('bbagent-schtasks-');
    const host = fakeHost({ privileged });
    const tasks = new Map<string, string>();
    taskScheduler(host, tasks);
    const manager = schtasksServiceManager({ host, powershell: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe' });
    return { ...dirs, host, tasks, manager, ref: { name: 'w1', basedir: dirs.basedir, pidFile: path.join(dirs.basedir, 'bbagent.pid') } };
  }

  it('registers through the Task Scheduler API with the password only on stdin, writes no file, and runs it', async () => {
    const { manager, host } = setup();
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('installed');
    const i = host.calls.findIndex(
      (c) => c[0]!.endsWith('powershell.exe') && decodeScriptCall(c, host.inputs[host.calls.indexOf(c)]).script === REGISTER_SCRIPT,
    );
    expect(i).toBeGreaterThanOrEqual(0);
    const call = host.calls[i]!;
    expect(call.slice(0, 5)).toEqual([
      'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
      '-NoLogo',
      '-NoProfile',
      '-NonInteractive',
      '-EncodedCommand',
    ]);
    expect(decodeScriptCall(call, host.inputs[i]).payload).toEqual({
      folder: '\\bbagent',
      name: 'w1',
      xml: renderTaskXml(spec),
      user: '.\\bbagent',
      password: PASSWORD,
      basedir: spec.basedir,
    });
    // no secret on any command line, and no definition file for the Task Scheduler to read
    for (const c of host.calls) expect(c.join(' ')).not.toContain('pa$$');
    for (const c of host.calls) expect(c.some((a) => /\.xml$|\/XML/i.test(a))).toBe(false);
    expect(manager.render(spec).map((f) => f.path)).toEqual(['Task Scheduler \\bbagent\\w1']);
    expect(host.calls.at(-1)).toEqual(['schtasks', '/Run', '/TN', taskName('w1')]);
  });

  it('the same settings again are unchanged; --force registers again (a new password)', async () => {
    const { manager, host } = setup();
    await manager.install(spec, { force: false, noStart: true });
    host.calls.length = 0;
    expect(await manager.install(spec, { force: false, noStart: true })).toBe('unchanged');
    expect(host.calls).toHaveLength(1); // the query only
    expect(await manager.install({ ...spec, password: 'new' }, { force: true, noStart: true })).toBe('replaced');
    expect(decodeScriptCall(host.calls.at(-1)!, host.inputs.at(-1)).payload['password']).toBe('new');
  });

  it('refuses a task it did not write, and different settings, unless --force', async () => {
    const { manager, tasks } = setup();
    tasks.set('w1', '<Task><Actions><Exec><Command>C:\\other.exe</Command></Exec></Actions></Task>');
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({
      code: 'E_SERVICE_EXISTS',
      message: expect.stringMatching(/not installed by bbagent/),
    });
    expect(await manager.install(spec, { force: true, noStart: true })).toBe('replaced');
    await expect(manager.install({ ...spec, basedir: 'D:\\w1' }, { force: false, noStart: true })).rejects.toMatchObject({
      code: 'E_SERVICE_EXISTS',
      message: expect.stringContaining("WorkingDirectory installed 'C:\\workers\\w 1' vs new 'D:\\w1'"),
    });
  });

  it('needs an account: none, or a privileged one, is refused before anything runs', async () => {
    const { manager, host } = setup();
    const { user: _u, password: _p, ...noUser } = spec;
    await expect(manager.install(noUser, { force: false, noStart: true })).rejects.toMatchObject({
      code: 'E_SERVICE_USER',
      message: expect.stringMatching(/never LocalSystem.*net user bbagent \* \/add/),
    });
    for (const user of [
      'SYSTEM',
      'NT AUTHORITY\\SYSTEM',
      'LocalSystem',
      'NT AUTHORITY\\LocalService',
      'NT AUTHORITY\\LOCAL SERVICE',
      'NETWORK SERVICE',
      'S-1-5-18',
      '*S-1-5-20',
      '.\\Administrator',
      'CORP\\Domain Admins',
      'BUILTIN\\Administrators',
      'NT SERVICE\\bbagent',
    ]) {
      await expect(manager.install({ ...spec, user }, { force: false, noStart: true }), user).rejects.toMatchObject({ code: 'E_SERVICE_USER' });
    }
    await expect(manager.install({ ...noUser, user: '.\\bbagent' }, { force: false, noStart: true })).rejects.toMatchObject({
      code: 'E_SERVICE_SPEC',
      message: expect.stringMatching(/BBAGENT_SERVICE_PASSWORD.*--password-stdin/),
    });
    expect(host.calls).toEqual([]);
    for (const user of ['bbagent', '.\\bbagent', 'BUILD\\bot', 'sysadmin', 'systemd-worker']) {
      expect(() => manager.render({ ...spec, user })).not.toThrow();
    }
  });

  it("reports the script's refusal of an account (an administrator, say) as E_SERVICE_USER", async () => {
    const { host, tasks } = setup();
    taskScheduler(host, tasks, { code: 3, stdout: '', stderr: "'.\\bbagent' is a member of the local Administrators group\r\n" });
    const manager = schtasksServiceManager({ host });
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({
      code: 'E_SERVICE_USER',
      message: expect.stringContaining('is a member of the local Administrators group'),
    });
  });

  it('the registration script checks the account, grants it BASEDIR, and registers with a password logon', () => {
    // No PowerShell here to run it: these pin what the script must do, which docs/install.md describes.
    expect(REGISTER_SCRIPT).toContain('[Console]::In.ReadToEnd()');
    expect(REGISTER_SCRIPT).toMatch(/\$sid -in @\('S-1-5-18', 'S-1-5-19', 'S-1-5-20'\)/);
    expect(REGISTER_SCRIPT).toContain("Get-LocalGroupMember -SID 'S-1-5-32-544'");
    expect(REGISTER_SCRIPT).toContain('icacls.exe" $p.basedir /grant "*$($sid):(OI)(CI)M"');
    // ITaskFolder::RegisterTask(path, xml, TASK_CREATE_OR_UPDATE, user, password, TASK_LOGON_PASSWORD)
    expect(REGISTER_SCRIPT).toContain('$folder.RegisterTask($p.name, $p.xml, 6, $p.user, $p.password, 1)');
    expect(REGISTER_SCRIPT.indexOf('RegisterTask(')).toBeGreaterThan(REGISTER_SCRIPT.indexOf('exit 3'));
  });

  it('refuses without elevation', async () => {
    const { manager } = setup(false);
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({ code: 'E_SERVICE_RIGHTS' });
  });

  it('stop ends the task and the worker tree named by the pidfile; uninstall deletes the task', async () => {
    const { manager, host, ref, basedir } = setup();
    await manager.install(spec, { force: false, noStart: true });
    host.answers.set('schtasks /Query', { code: 0, stdout: 'Status: Running\r\nLast Result: 267009\r\n', stderr: '' });
    writeFileSync(path.join(basedir, 'bbagent.pid'), '4321\n');
    host.calls.length = 0;
    await manager.stop(ref);
    expect(host.calls.slice(1)).toEqual([
      ['schtasks', '/End', '/TN', taskName('w1')],
      ['taskkill', '/PID', '4321', '/T', '/F'],
    ]);
    expect(await manager.status(ref)).toMatchObject({ installed: true, running: true, detail: 'Running, last result 267009' });
    host.calls.length = 0;
    expect(await manager.uninstall(ref)).toBe(true);
    expect(host.calls).toContainEqual(['schtasks', '/Delete', '/TN', taskName('w1'), '/F']);
    expect(existsSync(basedir)).toBe(true);
    host.answers.set('schtasks /Query', { code: 1, stdout: '', stderr: 'ERROR: The system cannot find the file specified.' });
    expect(await manager.uninstall(ref)).toBe(false);
  });
});
