// The Windows service manager (Task Scheduler): the task definition it writes (well-formed UTF-16 XML in the
// documented Task schema 1.2 shape, and registered by wine's schtasks.exe where wine is installed), the
// argument quoting, and the schtasks calls.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeTaskXml, renderTaskXml, schtasksServiceManager, taskName, windowsQuote } from '../../platforms/win32/service.js';
import type { ServiceSpec } from '../../platforms/index.js';
import { findExecutable } from '../integration/harness/process.js';
import { fakeHost, scratchDir } from './service-helpers.js';

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

const spec: ServiceSpec = {
  name: 'w1',
  description: 'bbagent Buildbot worker w1 (C:\\workers\\w 1)',
  basedir: 'C:\\workers\\w 1',
  command: ['C:\\Program Files\\bbagent\\bbagent.exe', 'service', 'run', 'C:\\workers\\w 1'],
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
    expect(child(child(child(task, 'Triggers'), 'BootTrigger'), 'Enabled').text).toBe('true');
    const principal = child(child(task, 'Principals'), 'Principal');
    expect(child(principal, 'UserId').text).toBe('S-1-5-18');
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

  it('runs as a named account with a password logon', () => {
    const task = parseXml(encodeTaskXml(renderTaskXml({ ...spec, user: 'BUILD\\bot', password: 'x' })));
    const principal = child(child(task, 'Principals'), 'Principal');
    expect(child(principal, 'UserId').text).toBe('BUILD\\bot');
    expect(child(principal, 'LogonType').text).toBe('Password');
    expect(JSON.stringify(task)).not.toContain('"x"'); // the password is never in the file
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

describe('schtasks install', () => {
  function setup(privileged = true) {
    const dirs = scratchDir('bbagent-schtasks-');
    const host = fakeHost({ privileged });
    const manager = schtasksServiceManager({ host, stateDir: dirs.managerDir });
    return { ...dirs, host, manager, ref: { name: 'w1', basedir: dirs.basedir, pidFile: path.join(dirs.basedir, 'bbagent.pid') } };
  }

  it('creates the task from the definition and runs it; again is unchanged', async () => {
    const { manager, host, managerDir } = setup();
    host.answers.set('schtasks /Query', { code: 1, stdout: '', stderr: 'ERROR: The system cannot find the file specified.' });
    expect(await manager.install(spec, { force: false, noStart: false })).toBe('installed');
    const def = path.join(managerDir, 'w1.xml');
    expect(host.calls).toContainEqual(['schtasks', '/Create', '/TN', taskName('w1'), '/XML', def, '/F']);
    expect(host.calls.at(-1)).toEqual(['schtasks', '/Run', '/TN', taskName('w1')]);
    host.answers.set('schtasks /Query', { code: 0, stdout: '', stderr: '' });
    host.calls.length = 0;
    expect(await manager.install(spec, { force: false, noStart: true })).toBe('unchanged');
    expect(host.calls.filter((c) => c[1] === '/Create')).toEqual([]);
  });

  it('refuses a task it did not write, and different settings, unless --force', async () => {
    const { manager, host } = setup();
    host.answers.set('schtasks /Query', { code: 0, stdout: '', stderr: '' });
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({ code: 'E_SERVICE_EXISTS' });
    expect(await manager.install(spec, { force: true, noStart: true })).toBe('replaced');
    await expect(manager.install({ ...spec, basedir: 'D:\\w1' }, { force: false, noStart: true })).rejects.toMatchObject({ code: 'E_SERVICE_EXISTS' });
  });

  it('passes /RU /RP for an account and needs its password', async () => {
    const { manager, host } = setup();
    host.answers.set('schtasks /Query', { code: 1, stdout: '', stderr: '' });
    await expect(manager.install({ ...spec, user: 'BUILD\\bot' }, { force: false, noStart: true })).rejects.toMatchObject({ code: 'E_SERVICE_SPEC' });
    await manager.install({ ...spec, user: 'BUILD\\bot', password: 'pw' }, { force: false, noStart: true });
    expect(host.calls.find((c) => c[1] === '/Create')?.slice(-4)).toEqual(['/RU', 'BUILD\\bot', '/RP', 'pw']);
  });

  it('refuses without elevation', async () => {
    const { manager } = setup(false);
    await expect(manager.install(spec, { force: false, noStart: true })).rejects.toMatchObject({ code: 'E_SERVICE_RIGHTS' });
  });

  it('stop ends the task and the worker tree named by the pidfile; uninstall deletes the task', async () => {
    const { manager, host, ref, basedir } = setup();
    host.answers.set('schtasks /Query', { code: 1, stdout: '', stderr: '' });
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
  });
});
