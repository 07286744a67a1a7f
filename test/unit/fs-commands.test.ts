// Checks mkdir, stat, glob, listdir and rmfile against buildbot-worker's behaviour (python3's os calls
// provide the expected errno / strerror / values).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs, CommandDefinition, CommandEnv, CommandIO } from '../../agent/commands/types.js';
import type { StatusValue } from '../../agent/output/types.js';
import { globCommand } from '../../agent/commands/glob.js';
import { listdirCommand } from '../../agent/commands/listdir.js';
import { mkdirCommand } from '../../agent/commands/mkdir.js';
import { rmfileCommand } from '../../agent/commands/rmfile.js';
import { statCommand } from '../../agent/commands/stat.js';
import { silentLogger } from '../../agent/log.js';
import { PyTuple } from '../../agent/py/values.js';
import type { Platform } from '../../platforms/types.js';

type Event = ['text', string, string] | ['status', string, StatusValue];

function recordingIO(): { io: CommandIO; events: Event[] } {
  const events: Event[] = [];
  const io: CommandIO = {
    text: (stream, text) => void events.push(['text', stream, text]),
    log: () => {
      throw new Error('no logs expected');
    },
    status: (key, value) => void events.push(['status', key, value]),
    stepEnvironment: () => {},
    backpressureMs: () => 0,
    writer: () => {
      throw new Error('no writer');
    },
    reader: () => {
      throw new Error('no reader');
    },
  };
  return { io, events };
}

const env: CommandEnv = { basedir: '/nonexistent', environ: {}, platform: {} as Platform, logger: silentLogger, now: () => Date.now() / 1000 };

async function run(def: CommandDefinition, args: CommandArgs, e: CommandEnv = env): Promise<Event[]> {
  const { io, events } = recordingIO();
  await def.create(args, io, e).run();
  return events;
}

/** What python's os.<fn>(path) raises: [errno, strerror], or null when it succeeds. */
function pyError(fn: string, path: string): [number, string] | null {
  const out = execFileSync(
    'python3',
    ['-c', `import os,sys,json\ntry:\n  os.${fn}(sys.argv[1])\n  print('null')\nexcept OSError as e:\n  print(json.dumps([e.errno, e.strerror]))`, path],
    { encoding: 'utf8' },
  );
  return JSON.parse(out) as [number, string] | null;
}

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fs-commands-'));
  writeFileSync(join(tmp, 'file.txt'), 'x');
  mkdirSync(join(tmp, 'dir', 'sub'), { recursive: true });
  for (const n of ['b', 'a', 'c', '.h', 'zz', 'ünï']) writeFileSync(join(tmp, 'dir', n), n);
  symlinkSync('nowhere', join(tmp, 'dir', 'dangling'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('command definitions', () => {
  it('have the wire names and required args of buildbot-worker', () => {
    expect([mkdirCommand, statCommand, globCommand, listdirCommand, rmfileCommand].map((d) => [d.names, d.requiredArgs])).toEqual([
      [['mkdir'], ['paths']],
      [['stat'], []],
      [['glob'], ['path']],
      [['listdir'], []],
      [['rmfile'], ['path']],
    ]);
  });
});

describe('paths', () => {
  it('relative paths resolve against the builder directory, absolute ones are used as sent', async () => {
    const e = { ...env, builderDir: tmp };
    expect(await run(mkdirCommand, { paths: ['rel/a'] }, e)).toEqual([['status', 'rc', 0]]);
    expect(statSync(join(tmp, 'rel', 'a')).isDirectory()).toBe(true);
    expect((await run(statCommand, { path: 'file.txt' }, e)).at(-1)).toEqual(['status', 'rc', 0]);
    // a trailing slash is kept: stat('<file>/') is ENOTDIR, as in Python
    const withSlash = join(tmp, 'file.txt') + '/';
    expect(await run(statCommand, { path: withSlash })).toEqual([
      ['text', 'header', `stat: Not a directory: ${withSlash}`],
      ['status', 'rc', 20],
    ]);
  });
});

describe('mkdir', () => {
  it('creates nested directories and reports rc 0, also when they exist', async () => {
    const a = join(tmp, 'm1', 'x', 'y');
    const b = join(tmp, 'dir');
    expect(await run(mkdirCommand, { paths: [a, b] })).toEqual([['status', 'rc', 0]]);
    expect(statSync(a).isDirectory()).toBe(true);
  });

  it('accepts a trailing slash', async () => {
    const a = join(tmp, 'm2', 'q') + '/';
    expect(await run(mkdirCommand, { paths: [a] })).toEqual([['status', 'rc', 0]]);
    expect(statSync(a).isDirectory()).toBe(true);
  });

  it('reports the first failure as header + errno and stops', async () => {
    const onFile = join(tmp, 'file.txt');
    const underFile = join(tmp, 'file.txt', 'sub');
    const later = join(tmp, 'never-made');
    const e1 = pyError('makedirs', onFile)!;
    expect(await run(mkdirCommand, { paths: [onFile, later] })).toEqual([
      ['text', 'header', `mkdir: ${e1[1]}: ${onFile}`],
      ['status', 'rc', e1[0]],
    ]);
    expect(e1[0]).toBe(17);
    expect(existsSync(later)).toBe(false);
    const e2 = pyError('makedirs', underFile)!;
    expect(await run(mkdirCommand, { paths: [underFile] })).toEqual([
      ['text', 'header', `mkdir: ${e2[1]}: ${underFile}`],
      ['status', 'rc', e2[0]],
    ]);
    expect(e2).toEqual([20, 'Not a directory']);
  });

  it('fails the command (ValueError) on a NUL in a path', async () => {
    await expect(run(mkdirCommand, { paths: [join(tmp, 'a\0b')] })).rejects.toMatchObject({ pyType: 'ValueError' });
  });
});

describe('stat', () => {
  it('sends the 10 stat ints of os.stat as a tuple, then rc 0', async () => {
    for (const p of [join(tmp, 'file.txt'), join(tmp, 'dir')]) {
      const want = JSON.parse(
        execFileSync('python3', ['-c', 'import os,sys,json; print(json.dumps(list(tuple(os.stat(sys.argv[1])))))', p], { encoding: 'utf8' }),
      ) as number[];
      expect(await run(statCommand, { path: p })).toEqual([
        ['status', 'stat', new PyTuple(want)],
        ['status', 'rc', 0],
      ]);
    }
  });

  it('reports a missing path as header + errno', async () => {
    for (const p of [join(tmp, 'missing'), join(tmp, 'file.txt', 'x'), join(tmp, 'dir', 'dangling')]) {
      const [errno, strerror] = pyError('stat', p)!;
      expect(await run(statCommand, { path: p })).toEqual([
        ['text', 'header', `stat: ${strerror}: ${p}`],
        ['status', 'rc', errno],
      ]);
    }
  });
});

describe('listdir', () => {
  it('lists names in os.listdir order', async () => {
    const p = join(tmp, 'dir');
    const want = JSON.parse(
      execFileSync('python3', ['-c', 'import os,sys,json; print(json.dumps(os.listdir(sys.argv[1])))', p], { encoding: 'utf8' }),
    ) as string[];
    expect(await run(listdirCommand, { path: p })).toEqual([
      ['status', 'files', want],
      ['status', 'rc', 0],
    ]);
  });

  it('reports errors as header + errno', async () => {
    for (const p of [join(tmp, 'missing'), join(tmp, 'file.txt')]) {
      const [errno, strerror] = pyError('listdir', p)!;
      expect(await run(listdirCommand, { path: p })).toEqual([
        ['text', 'header', `listdir: ${strerror}: ${p}`],
        ['status', 'rc', errno],
      ]);
    }
  });
});

describe('glob', () => {
  it('sends python glob.glob(recursive=True) results', async () => {
    for (const pat of [join(tmp, 'dir', '*'), join(tmp, '**'), join(tmp, 'dir', '.*'), join(tmp, 'nothing*')]) {
      const want = JSON.parse(
        execFileSync('python3', ['-c', 'import glob,sys,json; print(json.dumps(glob.glob(sys.argv[1], recursive=True)))', pat], { encoding: 'utf8' }),
      ) as string[];
      const events = await run(globCommand, { path: pat });
      expect(events).toEqual([
        ['status', 'files', want],
        ['status', 'rc', 0],
      ]);
    }
  });
});

describe('rmfile', () => {
  it('removes a file (and a dangling symlink)', async () => {
    const f = join(tmp, 'to-remove');
    writeFileSync(f, '');
    expect(await run(rmfileCommand, { path: f })).toEqual([['status', 'rc', 0]]);
    expect(existsSync(f)).toBe(false);
    const l = join(tmp, 'dangling-2');
    symlinkSync('nowhere', l);
    expect(await run(rmfileCommand, { path: l })).toEqual([['status', 'rc', 0]]);
  });

  it('reports errors as header + errno', async () => {
    for (const p of [join(tmp, 'missing'), join(tmp, 'dir'), join(tmp, 'file.txt', 'x')]) {
      const [errno, strerror] = pyError('remove', p)!;
      expect(await run(rmfileCommand, { path: p })).toEqual([
        ['text', 'header', `rmfile: ${strerror}: ${p}`],
        ['status', 'rc', errno],
      ]);
    }
  });
});
