// The memory breakdown of scripts/bench/run --smaps: /proc/<pid>/smaps parsed and summed by kind of mapping (on
// text in the kernel's format, and on this test process's own smaps), and which bbagent the benchmarks run
// (--bbagent): the single executable is rebuilt when a source is newer.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installCopy, newestSource, resolveBbagent } from './bbagent-exe.js';
import { parseSmaps, smapsBreakdown, smapsOf } from './smaps.js';

const EXE = '/opt/bbagent/bbagent-linux-x64';
// the shape of a SEA's mappings: its code, read-only data, data and the note segment postject appended after it
const SMAPS = `00400000-00e37000 r--p 00000000 fd:00 123  ${EXE}
Size:              10460 kB
Rss:                2300 kB
Anonymous:             0 kB
00e37000-032e4000 r-xp 00a37000 fd:00 123  ${EXE}
Rss:               19000 kB
Anonymous:             0 kB
06b19000-06b46000 rw-p 065fc000 fd:00 123  ${EXE}
Rss:                 100 kB
Anonymous:            60 kB
0e660000-0e7c0000 r--p 06660000 fd:00 123  ${EXE}
Rss:                1400 kB
Anonymous:             0 kB
0f000000-0f400000 rw-p 00000000 00:00 0                                  [heap]
Rss:                2800 kB
Anonymous:          2800 kB
7f0000000000-7f0001000000 rw-p 00000000 00:00 0 
Rss:               14800 kB
Anonymous:         14800 kB
7f1000000000-7f1000200000 r-xp 00000000 fd:00 77   /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1500 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  40 kB
Anonymous:            40 kB
`;

describe('parseSmaps and smapsBreakdown', () => {
  it('reads each mapping with its Rss and Anonymous', () => {
    const entries = parseSmaps(SMAPS);
    expect(entries).toHaveLength(8);
    expect(entries[1]).toEqual({ start: 0xe37000, perms: 'r-xp', offset: 0xa37000, name: EXE, rss: 19000, anonymous: 0 });
    expect(entries[5]).toMatchObject({ name: '', rss: 14800, anonymous: 14800 });
  });

  it('sums by kind: the executable by segment, the SEA blob after the data segment, malloc, anonymous, libraries', () => {
    const by = smapsBreakdown(parseSmaps(SMAPS), EXE);
    expect(by).toEqual({
      'exe: read-only (.rodata incl. ICU, .dynsym, .eh_frame)': 2300,
      'exe: code (.text)': 19000,
      'exe: data (COW)': 100,
      '(of files: anonymous/COW)': 60,
      'exe: SEA blob (note segment)': 1400,
      'malloc heap [heap]': 2800,
      'anon: mmap (V8 heap, code space, malloc arenas, thread stacks)': 14800,
      'shared libraries and other files': 1500,
      'main stack': 40,
    });
  });

  it("parses this process's own smaps, and the kinds add up to its total RSS", () => {
    const entries = smapsOf(process.pid);
    const total = entries.reduce((a, e) => a + e.rss, 0);
    expect(total).toBeGreaterThan(1024);
    const by = smapsBreakdown(entries, process.execPath);
    const sum = Object.entries(by).reduce((a, [k, v]) => (k.startsWith('(') ? a : a + v), 0);
    expect(sum).toBe(total);
    expect(by['exe: code (.text)']).toBeGreaterThan(0);
  });
});

describe('which bbagent the benchmark runs', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('finds the newest source file, ignoring tests', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-exe-'));
    mkdirSync(path.join(dir, 'agent', 'cli'), { recursive: true });
    const old = new Date('2020-01-01T00:00:00Z');
    const newer = new Date('2021-01-01T00:00:00Z');
    for (const [f, t] of [
      ['agent/a.ts', old],
      ['agent/cli/b.ts', newer],
      ['agent/cli/c.test.ts', new Date('2022-01-01T00:00:00Z')],
      ['package.json', old],
    ] as const) {
      writeFileSync(path.join(dir, f), '');
      utimesSync(path.join(dir, f), t, t);
    }
    expect(newestSource(dir)).toEqual({ file: path.join('agent', 'cli', 'b.ts'), mtimeMs: newer.getTime() });
  });

  it('runs the bundle on this Node for --bbagent bundle, and refuses a path that does not exist', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'bbagent-exe-'));
    dir = root;
    const bundle = path.join(root, 'build', 'bbagent.cjs');
    const run = resolveBbagent('bundle', root, bundle, () => undefined);
    expect(run).toMatchObject({ kind: 'bundle', executable: undefined });
    expect(run.label).toContain(process.version);
    expect(() => resolveBbagent(path.join(root, 'nope'), root, bundle, () => undefined)).toThrow(/no such file/);
  });

  it('copies an executable as installed: the same bytes, mode 755', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'bbagent-exe-'));
    dir = root;
    const from = path.join(root, 'built');
    const bytes = Buffer.alloc(200 * 1024 + 7, 0x5a);
    writeFileSync(from, bytes, { mode: 0o644 });
    installCopy(from, path.join(root, 'installed'));
    expect(readFileSync(path.join(root, 'installed')).equals(bytes)).toBe(true);
    expect(statSync(path.join(root, 'installed')).mode & 0o777).toBe(0o755);
  });
});
