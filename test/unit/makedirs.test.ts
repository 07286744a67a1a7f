// Checks the one directory-creating wrapper (agent/fs/makedirs.ts) against python3's os.makedirs: same
// errors (type, errno, the path named), same directories made; and that it ends where Node's recursive mkdir
// loops for ever (/proc), also through the callers a master reaches (a shell step's workdir, mkdir, cpdir).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MAKEDIRS_LEVELS, makedirs } from '../../agent/fs/makedirs.js';
import { PyError } from '../../agent/py/exceptions.js';
import { PyOSError } from '../../agent/py/os-error.js';
import { runIsolated } from './fs-isolated.js';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'makedirs-'));
  writeFileSync(join(tmp, 'file'), 'x');
  mkdirSync(join(tmp, 'exists'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

type Outcome = { ok: true } | { type: string; errno: number | null; filename: string | null };

/** What python3's os.makedirs(p, exist_ok=...) does. */
function pythonMakedirs(p: string, existOk: boolean): Outcome {
  const code = `import os, sys, json
try:
    os.makedirs(sys.argv[1], exist_ok=sys.argv[2] == '1')
    print(json.dumps({'ok': True}))
except OSError as e:
    print(json.dumps({'type': type(e).__name__, 'errno': e.errno, 'filename': e.filename}))`;
  return JSON.parse(execFileSync('python3', ['-c', code, p, existOk ? '1' : '0'], { encoding: 'utf8' })) as Outcome;
}

function ours(p: string, existOk: boolean): Outcome {
  try {
    makedirs(p, { existOk });
    return { ok: true };
  } catch (err) {
    if (!(err instanceof PyOSError)) throw err;
    return { type: err.pyType, errno: err.errno, filename: err.filename ?? null };
  }
}

describe('makedirs', () => {
  it("gives python's result and error (type, errno, the level named) for each case", () => {
    const cases: [string, boolean][] = [
      ['/proc/x/y', false],
      ['/proc/x', true],
      ['/proc/self/x/y/z', false],
      ['/dev/null/x', false],
      ['/sys/x/y', true],
      [join(tmp, 'file', 'sub', 'deeper'), false],
      [join(tmp, 'file'), true],
      [join(tmp, 'exists'), false],
      [join(tmp, 'exists'), true],
      [join(tmp, 'exists') + '/', false],
    ];
    for (const [p, existOk] of cases) {
      expect({ p, existOk, r: ours(p, existOk) }).toEqual({ p, existOk, r: pythonMakedirs(p, existOk) });
    }
  });

  it('creates every missing level, like python (trailing slash, "." and ".." levels)', () => {
    for (const rel of ['a/b/c', 'd/e/', 'f/g/.', 'h/../i/j']) {
      const mine = join(tmp, 'ours', rel);
      const theirs = join(tmp, 'python', rel);
      const r = ours(mine, false);
      expect(r).toEqual(pythonMakedirs(theirs, false));
      for (const part of ['a/b/c', 'd/e', 'f/g', 'h', 'i/j']) {
        expect(existsSync(join(tmp, 'ours', part))).toBe(existsSync(join(tmp, 'python', part)));
      }
    }
    expect(statSync(join(tmp, 'ours', 'a', 'b', 'c')).isDirectory()).toBe(true);
  });

  it('applies the mode to every level it creates', () => {
    const p = join(tmp, 'modes', 'x', 'y');
    makedirs(p, { mode: 0o700 });
    expect(statSync(join(tmp, 'modes')).mode & 0o777).toBe(0o700);
    expect(statSync(p).mode & 0o777).toBe(0o700);
  });

  it('is bounded: too many missing levels is a RecursionError (as in python), nothing made; a huge path ENAMETOOLONG', () => {
    const deep = join(tmp, 'deep', ...Array.from({ length: MAX_MAKEDIRS_LEVELS + 10 }, () => 'a'));
    expect(() => makedirs(deep)).toThrow(PyError);
    expect(() => makedirs(deep)).toThrow(/maximum recursion depth exceeded/);
    expect(existsSync(join(tmp, 'deep'))).toBe(false);
    const long = join(tmp, 'x'.repeat(40_000));
    expect(() => makedirs(long)).toThrow(
      expect.objectContaining({ pyType: 'OSError', code: 'ENAMETOOLONG', message: expect.stringContaining('File name too long') }),
    );
  });

  it('a NUL in the path is ValueError, before any system call', () => {
    expect(() => makedirs(join(tmp, 'a\0b'))).toThrow(expect.objectContaining({ pyType: 'ValueError' }));
  });
});

describe('callers a master reaches end where Node would loop for ever', () => {
  it("a shell step's workdir under /proc: FileNotFoundError naming '/proc/x' at once (RunProcess)", async () => {
    const r = await runIsolated(
      `import { ensureDir } from '../../agent/fs/makedirs.js';
       try { ensureDir('/proc/x/y'); report('no error'); } catch (e) { report({ name: (e as any).pyType, message: (e as Error).message }); }`,
      10_000,
    );
    expect(r.timedOut).toBe(false);
    expect(r.value).toEqual({ name: 'FileNotFoundError', message: "[Errno 2] No such file or directory: '/proc/x'" });
  });

  it('mkdir and cpdir commands under /proc report what buildbot-worker reports', async () => {
    const r = await runIsolated(
      `import { mkdirCommand } from '../../agent/commands/mkdir.js';
       import { cpdirCommand } from '../../agent/commands/cpdir.js';
       const events: unknown[] = [];
       const io = { text: (s: string, t: string) => events.push(['text', s, t]), status: (k: string, v: unknown) => events.push(['status', k, v]) } as any;
       const env = { basedir: '/', environ: {}, platform: {}, logger: { info() {}, warn() {}, error() {}, debug() {} }, now: () => 0 } as any;
       (async () => {
         await mkdirCommand.create({ paths: ['/proc/x/y'] }, io, env).run();
         try { await cpdirCommand.create({ from_path: '/tmp', to_path: '/proc/a/b/c' }, io, env).run(); }
         catch (e) { events.push(['failure', (e as any).pyType, (e as Error).message]); }
         report(events);
       })();`,
      10_000,
    );
    expect(r.timedOut).toBe(false);
    expect(r.value).toEqual([
      ['text', 'header', 'mkdir: No such file or directory: /proc/x/y'],
      ['status', 'rc', 2],
      ['failure', 'FileNotFoundError', "[Errno 2] No such file or directory: '/proc/a'"],
    ]);
  });
});
