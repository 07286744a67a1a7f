// Checks the glob port against python3's own glob.glob(recursive=True) and fnmatch on a real tree, and that
// a walk through symbolic link loops ends (python's ends for one loop, never for two) without holding the loop.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimeSlicer } from '../../agent/fs/time-slice.js';
import { fnmatchcase } from '../../agent/py/fnmatch.js';
import { pyGlob as pyGlobIn, type GlobOptions } from '../../agent/py/glob.js';
import { runIsolated } from './fs-isolated.js';

let root: string;

/** The glob command's walk: sliced as the command slices it. */
const pyGlob = (p: string, o: Omit<GlobOptions, 'slicer'> = {}): Promise<string[]> => pyGlobIn(p, { slicer: new TimeSlicer(), ...o });

function python(code: string, arg: unknown): unknown {
  const out = execFileSync('python3', ['-c', code, JSON.stringify(arg)], { encoding: 'utf8' });
  return JSON.parse(out);
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'pyglob-'));
  const files = [
    'a.txt',
    'b.txt',
    'c.py',
    '.hidden',
    '.hdir/x.txt',
    '.hdir/.y',
    'sub/c.txt',
    'sub/.d.txt',
    'sub/deep/e.py',
    'sub/deep/f.txt',
    'sub/deep/deeper/g.txt',
    'we ird[1].txt',
    'ab?c',
    'x-y',
    'x]y',
    'Z',
    'ünï.txt',
    'star*name',
    'back\\slash',
    '^caret',
    'amp&and',
    'new\nline',
    '😀.txt',
    '\uE000.txt',
  ];
  for (const f of files) {
    mkdirSync(join(root, f, '..'), { recursive: true });
    writeFileSync(join(root, f), f);
  }
  mkdirSync(join(root, 'emptydir'));
  mkdirSync(join(root, 'sub', '.hiddendir', 'in'), { recursive: true });
  symlinkSync('sub', join(root, 'link-to-sub'));
  symlinkSync('nowhere', join(root, 'broken-link'));
  symlinkSync('a.txt', join(root, 'link-to-file'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const PATTERNS = [
  '*',
  '*.txt',
  '.*',
  '*/',
  '*/*',
  '*/*.txt',
  '**',
  '**/',
  '**/*',
  '**/*.txt',
  '**/*.py',
  '**/.*',
  '**/deep',
  '**/deep/',
  '**/**',
  '**/**/*.txt',
  '*/**',
  '*/**/',
  'sub/**',
  'sub/**/',
  'sub/**/*.py',
  'sub/**/**/*.txt',
  'sub/**/.*',
  'sub/*/',
  'sub/.*/*',
  '.hdir/*',
  '.hdir/.*',
  '.*/*',
  'sub',
  'sub/',
  'a.txt',
  'a.txt/',
  'nonexist',
  'nonexist/*',
  'nonexist/**',
  'broken-link',
  'link-to-sub/*',
  'link-to-sub/**',
  'link-to-file/',
  '?',
  '??',
  '?.txt',
  '[ab].txt',
  '[!a].txt',
  '[a-c].txt',
  '[a-c].*',
  '[!a-c]*',
  '[]',
  '[!]',
  '[]]',
  '[!]]*',
  'x[]]y',
  'x[-]y',
  'x[!-]y',
  '[--z]*',
  '[a-]*',
  '[z-a]*',
  '[a-c-e]*',
  '[a--z]*',
  'we ird[[]1].txt',
  'we ird[1].txt',
  'ab[?]c',
  'star[*]name',
  'back[\\]slash',
  'back\\slash',
  '[\\]*',
  '[^]*',
  '^*',
  '[&]*',
  'amp[&&]and',
  '[[]*',
  '[',
  '*[',
  'a*[',
  '*.t?t',
  '*x*',
  '*a*t*',
  '**.txt',
  'a**',
  'sub/**/deep/**',
  '**/deep/**/*.txt',
  '*ï*',
  '[ü]*',
  '?nï.txt',
  '?.txt',
  '[😀].txt',
  '[\uE000-\uF000].txt',
  '[😀-😁]*',
  'new?line',
  'new*',
  'Z*',
  'z*',
  '',
];

describe('pyGlob', () => {
  it('matches python3 glob.glob(recursive=True) exactly (order included)', async () => {
    const pats = PATTERNS.map((p) => (p === '' ? root + '/' : join(root, p) + (p.endsWith('/') ? '/' : '')));
    const expected = python('import glob, json, sys\nprint(json.dumps([glob.glob(p, recursive=True) for p in json.loads(sys.argv[1])]))', pats) as string[][];
    for (const [i, p] of pats.entries()) {
      expect({ pattern: p, files: await pyGlob(p) }).toEqual({ pattern: p, files: expected[i] });
    }
  });

  it('handles patterns on the root directory itself', async () => {
    const pats = [root, `${root}/`, `${root}/**`, `${root}//*.py`, `${root}/./*.py`, `${root}/sub/../*.py`, '/', '/*/'];
    const expected = python(
      'import glob, json, sys\nprint(json.dumps([sorted(glob.glob(p, recursive=True)) for p in json.loads(sys.argv[1])]))',
      pats,
    ) as string[][];
    for (const [i, p] of pats.entries()) {
      expect({ pattern: p, files: [...(await pyGlob(p))].sort() }).toEqual({ pattern: p, files: [...expected[i]!].sort() });
    }
  });

  it('without recursive, ** is a plain *', async () => {
    const pats = [join(root, '**'), join(root, '**/*.txt')];
    const expected = python('import glob, json, sys\nprint(json.dumps([glob.glob(p) for p in json.loads(sys.argv[1])]))', pats) as string[][];
    for (const [i, p] of pats.entries()) expect(await pyGlob(p, { recursive: false })).toEqual(expected[i]);
  });
});

describe('fnmatchcase', () => {
  it('agrees with python3 fnmatch.fnmatchcase', () => {
    const names = ['abc', 'a', '', '.x', 'a-b', 'a]b', 'a\\b', 'a[b', 'x\ny', 'aXbXc', 'ab', 'é', '😀', '^', '!', '-', ']', 'b', 'z', 'aab', 'abab'];
    const pats = [
      '*',
      '?',
      'a*',
      '*b',
      'a*b*c',
      '*a*b',
      'a?b',
      '[a-c]',
      '[!a-c]',
      '[]]',
      '[!]]',
      '[]-]',
      '[!]-]',
      '[-]',
      '[a-]',
      '[--b]',
      '[z-a]',
      '[a-c-]',
      'a[\\]b',
      'a\\b',
      '[\\-^]',
      '[^a]',
      '[!^]',
      'x?y',
      'x*y',
      '[é]',
      '[😀]',
      '?',
      '[!]',
      '[]',
      '[',
      'a[',
      '[[]',
      '*a*a*',
      '*ab',
      'a*ab',
      '*b*b',
      '[&&]',
      '[~]',
      '[|]',
      '[a-z&&[^b]]',
    ];
    const expected = python(
      'import fnmatch, json, sys\nd = json.loads(sys.argv[1])\nprint(json.dumps([[fnmatch.fnmatchcase(n, p) for n in d["names"]] for p in d["pats"]]))',
      { names, pats },
    ) as boolean[][];
    pats.forEach((p, i) => {
      expect({ p, got: names.map((n) => fnmatchcase(n, p)) }).toEqual({ p, got: expected[i] });
    });
  });
});

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('pyGlob over symbolic link loops', () => {
  let loops: string;

  beforeAll(() => {
    loops = mkdtempSync(join(tmpdir(), 'pyglob-loops-'));
    // one loop: python follows it until the path has 40 links (ELOOP) and returns
    mkdirSync(join(loops, 'one', 'sub'), { recursive: true });
    writeFileSync(join(loops, 'one', 'f'), '');
    writeFileSync(join(loops, 'one', 'sub', 'g.txt'), '');
    symlinkSync('.', join(loops, 'one', 'loop'));
    // two loops in one directory: 2^40 paths, python never returns
    mkdirSync(join(loops, 'two'));
    writeFileSync(join(loops, 'two', 'f'), '');
    symlinkSync('.', join(loops, 'two', 'a'));
    symlinkSync('..', join(loops, 'two', 'b'));
  });

  afterAll(() => {
    rmSync(loops, { recursive: true, force: true });
  });

  it('one loop: the same paths as python, in the same order', async () => {
    const pats = [join(loops, 'one', '**'), join(loops, 'one', '**', '*.txt'), join(loops, 'one', '*', '*', '*')];
    const expected = python('import glob, json, sys\nprint(json.dumps([glob.glob(p, recursive=True) for p in json.loads(sys.argv[1])]))', pats) as string[][];
    expect(expected[0]!.length).toBeGreaterThan(100); // python did follow the loop
    for (const [i, p] of pats.entries()) expect({ p, files: await pyGlob(p) }).toEqual({ p, files: expected[i] });
  });

  it('two loops (python never returns): a clear error naming the loop, the event loop never held', async () => {
    const pattern = join(loops, 'two', '**');
    const r = await runIsolated(
      `import { TimeSlicer } from '../../agent/fs/time-slice.js';
       import { pyGlob } from '../../agent/py/glob.js';
       pyGlob(${JSON.stringify(pattern)}, { slicer: new TimeSlicer() }).then(
         (files) => report({ files: files.length }),
         (e) => report({ type: e.pyType, code: e.code, message: e.message }),
       );`,
      30_000,
    );
    expect(r.timedOut, r.stderr).toBe(false);
    expect(r.value).toEqual({
      type: 'RuntimeError',
      code: 'E_GLOB_LOOP',
      message: expect.stringMatching(
        new RegExp(`^glob '${esc(pattern)}': more than 50000 paths found through a symbolic link loop at '${esc(join(loops, 'two'))}/(a|b/two)'$`),
      ),
    });
    expect(r.maxLagMs).toBeLessThan(200);
  });

  it('the budgets can be lowered, and a stop request ends the walk', async () => {
    await expect(pyGlob(join(loops, 'two', '**'), { limits: { loopEntries: 50 } })).rejects.toMatchObject({ code: 'E_GLOB_LOOP' });
    await expect(pyGlob(join(loops, 'one', '**'), { limits: { entries: 5 } })).rejects.toMatchObject({ code: 'E_GLOB_LIMIT' });
    let polls = 0;
    await expect(pyGlob(join(loops, 'two', '**'), { stopped: () => ++polls > 2 })).rejects.toMatchObject({ code: 'E_GLOB_STOPPED' });
  });
});
