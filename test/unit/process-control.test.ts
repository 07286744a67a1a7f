// The small process-control members each platform implements: the program search (PATH, PATHEXT) and
// signalling one process by pid (what `bbagent stop` does).

import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { searchPath } from '../../platforms/common/find-program.js';
import { posixPlatform } from '../../platforms/posix/platform.js';
import { joinPathEntry, resolveExecutable } from '../../platforms/posix/spawn.js';
import { win32FindProgram } from '../../platforms/win32/process-control.js';

const posix = process.platform !== 'win32';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-progs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function file(rel: string, mode: number): string {
  const p = path.join(tmp, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, '#!/bin/sh\n');
  chmodSync(p, mode);
  return p;
}

describe('program search', () => {
  it('the first directory of PATH holding an executable file wins; empty entries and directories are skipped', () => {
    const platform = posixPlatform('linux');
    file('a/tool', 0o644); // not executable
    mkdirSync(path.join(tmp, 'b/tool'), { recursive: true }); // a directory
    const c = file('c/tool', 0o755);
    file('d/tool', 0o755);
    const PATH = ['', path.join(tmp, 'a'), path.join(tmp, 'b'), path.join(tmp, 'c'), path.join(tmp, 'd')].join(':');
    if (process.getuid?.() !== 0) expect(platform.findProgram('tool', { PATH })).toBe(c); // root may execute 0644 files
    expect(platform.findProgram('tool', { PATH: path.join(tmp, 'nowhere') })).toBeNull();
    expect(platform.findProgram('tool', {})).toBeNull();
  });

  it.runIf(posix)('POSIX: PATHEXT means nothing', () => {
    file('e/tool.sh', 0o755);
    expect(posixPlatform('linux').findProgram('tool', { PATH: path.join(tmp, 'e'), PATHEXT: '.sh' })).toBeNull();
  });

  it("Windows: ';' separates PATH, PATHEXT extensions are tried in order after the bare name, names of variables in any case", () => {
    const seen: string[] = [];
    const exists = new Set([path.join('C:/tools', 'bzip2.CMD'), path.join('C:/tools', 'bzip2.EXE'), path.join('D:/bin', 'bzip2')]);
    const isExecutable = (p: string): boolean => (seen.push(p), exists.has(p));
    const environ = { Path: 'C:/empty;C:/tools;D:/bin', PathExt: '.EXE;.CMD' };
    expect(win32FindProgram('bzip2', environ, isExecutable)).toBe(path.join('C:/tools', 'bzip2.EXE'));
    const tried = [
      ['C:/empty', 'bzip2'],
      ['C:/empty', 'bzip2.EXE'],
      ['C:/empty', 'bzip2.CMD'],
      ['C:/tools', 'bzip2'],
      ['C:/tools', 'bzip2.EXE'],
    ];
    expect(seen).toEqual(tried.map(([dir, name]) => path.join(dir!, name!)));
    expect(win32FindProgram('bzip2', { PATH: 'D:/bin' }, isExecutable)).toBe(path.join('D:/bin', 'bzip2'));
  });

  it('searchPath keeps the order: directories first, then extensions', () => {
    const order: string[] = [];
    expect(searchPath('x', ['1', '2'], ['', '.a'], (p) => (order.push(p), false))).toBeNull();
    expect(order).toEqual([path.join('1', 'x'), path.join('1', 'x.a'), path.join('2', 'x'), path.join('2', 'x.a')]);
  });
});

describe.runIf(posix)('resolveExecutable (POSIX spawn)', () => {
  it('the first PATH entry with an executable regular file; missing entries, directories, plain files and a file as a PATH entry are skipped', () => {
    const exe = file('r1/bin/tool', 0o755);
    file('r0/bin/tool', 0o644); // not executable
    mkdirSync(path.join(tmp, 'r0/dir/tool'), { recursive: true }); // a directory of that name
    const asEntry = file('r0/plainfile', 0o755); // a PATH entry that is a file (ENOTDIR below it)
    const dirs = [path.join(tmp, 'missing'), asEntry, path.join(tmp, 'r0/dir'), path.join(tmp, 'r0/bin'), path.join(tmp, 'r1/bin')];
    expect(resolveExecutable('tool', dirs.join(':'))).toBe(exe);
    expect(resolveExecutable('tool', dirs.slice(0, 4).join(':'))).toBeUndefined();
    // with a slash: that file only
    expect(resolveExecutable(exe, '')).toBe(exe);
    expect(resolveExecutable(path.join(tmp, 'r0/bin/tool'), dirs.join(':'))).toBeUndefined();
  });

  it('joins a PATH entry and a name exactly as path.join does, normal or not', () => {
    const dirs = ['/usr/bin', '/a', '/usr/local/bin/', '', '.', 'rel/dir', '/a//b', '/a/./b', '/a/../b', '/a/.', '/a/..', '/.hidden', '/a/..b', '/a/.b/c', '/'];
    for (const dir of dirs) for (const f of ['tool', '.tool', '..x', '.', '..']) expect(joinPathEntry(dir, f), `${dir} + ${f}`).toBe(path.join(dir || '.', f));
  });
});

describe.runIf(posix)('signalProcess (POSIX)', () => {
  it('signals a live process (true), reports a gone one (false), and throws when it may not signal', async () => {
    const platform = posixPlatform(process.platform === 'darwin' ? 'darwin' : 'linux');
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    expect(platform.signalProcess(child.pid!, 'TERM')).toBe(true);
    expect(await exited).toBe('SIGTERM');
    expect(platform.signalProcess(child.pid!, 'TERM')).toBe(false); // reaped: no such process
    if (process.getuid?.() !== 0) expect(() => platform.signalProcess(1, 'CONT')).toThrow(expect.objectContaining({ code: 'EPERM' }));
  });
});
