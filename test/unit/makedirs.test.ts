// Checks the one directory-creating walk (platforms/common/makedirs.ts) through the agent's wrapper
// (agent/fs/makedirs.ts) against python3's os.makedirs: same errors (type, errno, the path named), same
// directories made; that it ends where Node's recursive mkdir loops for ever (/proc), also through the callers a
// master reaches (a shell step's workdir, mkdir, cpdir); and platforms' own use of it, with Node's errors.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MAKEDIRS_LEVELS, makedirs } from '../../agent/fs/makedirs.js';
import { PyError } from '../../agent/py/exceptions.js';
import { PyOSError } from '../../agent/py/os-error.js';
import { makedirsWith, makedirs as platformMakedirs, type DirectoryOps } from '../../platforms/common/makedirs.js';
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

describe("platforms' makedirs (Node's errors, the same walk)", () => {
  const nodeMakedirs = (p: string, existOk: boolean): unknown => {
    try {
      platformMakedirs(p, { existOk });
      return 'ok';
    } catch (err) {
      return (err as NodeJS.ErrnoException).code;
    }
  };

  it("ends where Node's recursive mkdir loops (/proc) with ENOENT, and fails as mkdir does elsewhere", () => {
    expect(nodeMakedirs('/proc/x/y', true)).toBe('ENOENT');
    expect(nodeMakedirs('/dev/null/x', true)).toBe('ENOTDIR');
    expect(nodeMakedirs(join(tmp, 'exists'), false)).toBe('EEXIST');
    expect(nodeMakedirs(join(tmp, 'exists'), true)).toBe('ok');
    expect(nodeMakedirs(join(tmp, 'file'), true)).toBe('EEXIST'); // a file, not a directory
  });

  it('creates every missing level with the mode (trailing slash, "." and ".." levels)', () => {
    for (const rel of ['a/b/c', 'd/e/', 'f/g/.', 'h/../i/j']) expect(nodeMakedirs(`${join(tmp, 'node')}/${rel}`, false)).toBe('ok'); // not join(): it would drop 'h/..'
    for (const part of ['a/b/c', 'd/e', 'f/g', 'h', 'i/j']) expect(statSync(join(tmp, 'node', part)).isDirectory()).toBe(true);
    platformMakedirs(join(tmp, 'node-modes', 'x'), { mode: 0o700 });
    expect(statSync(join(tmp, 'node-modes')).mode & 0o777).toBe(0o700);
    expect(statSync(join(tmp, 'node-modes', 'x')).mode & 0o777).toBe(0o700);
  });

  it('is bounded: too many missing levels is E_MAKEDIRS_DEPTH, nothing made', () => {
    const deep = join(tmp, 'node-deep', ...Array.from({ length: MAX_MAKEDIRS_LEVELS + 10 }, () => 'a'));
    expect(nodeMakedirs(deep, true)).toBe('E_MAKEDIRS_DEPTH');
    expect(existsSync(join(tmp, 'node-deep'))).toBe(false);
  });

  it('a level made by someone else meanwhile (EEXIST on the way down) is fine; another error stops the walk', () => {
    const made: string[] = [];
    const ops: DirectoryOps = {
      split: (p) => [dirname(p), basename(p)],
      exists: (p) => p === '/r',
      isdir: (p) => p === '/r/a/b',
      mkdir: (p) => {
        made.push(p);
        if (p === '/r/a') throw Object.assign(new Error('raced'), { code: 'EEXIST' });
      },
      tooDeep: () => new Error('deep'),
    };
    makedirsWith(ops, '/r/a/b');
    expect(made).toEqual(['/r/a', '/r/a/b']);
    made.length = 0;
    const failing: DirectoryOps = {
      ...ops,
      mkdir: (p) => {
        made.push(p);
        throw Object.assign(new Error('ro'), { code: 'EROFS' });
      },
    };
    expect(() => makedirsWith(failing, '/r/a/b')).toThrow('ro');
    expect(made).toEqual(['/r/a']); // '/r/a' failed: '/r/a/b' is not tried
  });
});
