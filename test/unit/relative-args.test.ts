// Master-relative (PB) arguments become the absolute forms, as buildbot-worker's protocol_args_setup does.
import { describe, expect, it } from 'vitest';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import type { CommandArgs, CommandDefinition, CommandEnv } from '../../agent/commands/types.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';

const env: CommandEnv = { basedir: '/w', platform: currentPlatform(), logger: silentLogger, environ: { HOME: '/home/bb' }, now: () => 0 };
const B = '/w/builder1';

function def(name: string): CommandDefinition {
  const d = COMMAND_TABLE.find((c) => c.names.includes(name));
  if (!d) throw new Error(`no command ${name}`);
  return d;
}

function rel(name: string, args: CommandArgs): CommandArgs {
  const d = def(name);
  return d.relativeArgs ? d.relativeArgs(args, B, env) : args;
}

describe('relativeArgs (pb.py protocol_args_setup)', () => {
  it('filesystem commands', () => {
    expect(rel('mkdir', { dir: 'build/x', logEnviron: true })).toEqual({ paths: ['/w/builder1/build/x'], logEnviron: true });
    expect(rel('rmdir', { dir: ['a', '/abs'] })).toEqual({ paths: ['/w/builder1/a', '/abs'] });
    expect(rel('rmdir', { dir: 'a' })).toEqual({ paths: ['/w/builder1/a'] });
    expect(rel('cpdir', { fromdir: 'a', todir: 'b', timeout: 5 })).toEqual({ from_path: '/w/builder1/a', to_path: '/w/builder1/b', timeout: 5 });
    expect(rel('stat', { file: 'f', workdir: 'build' })).toEqual({ path: '/w/builder1/build/f', workdir: 'build' });
    expect(rel('stat', { file: 'f' })).toEqual({ path: '/w/builder1/f' });
    expect(rel('glob', { path: 'build/*.c' })).toEqual({ path: '/w/builder1/build/*.c' });
    expect(rel('listdir', { dir: 'build' })).toEqual({ path: '/w/builder1/build' });
    expect(rel('rmfile', { path: 'build/f' })).toEqual({ path: '/w/builder1/build/f' });
  });

  it('shell and transfers', () => {
    expect(rel('shell', { workdir: 'build', command: 'ls' })).toEqual({ workdir: '/w/builder1/build', command: 'ls' });
    expect(rel('uploadFile', { workdir: 'build', workersrc: 'out/a.txt', blocksize: 1, maxsize: null })).toEqual({
      path: '/w/builder1/build/out/a.txt',
      blocksize: 1,
      maxsize: null,
    });
    expect(rel('uploadDirectory', { workdir: 'build', workersrc: '~/x', blocksize: 1 })).toEqual({ path: '/home/bb/x', blocksize: 1 });
    expect(rel('downloadFile', { workdir: 'build', workerdest: '/abs/f', mode: null })).toEqual({ path: '/abs/f', mode: null });
  });

  it('a missing relative argument is named', () => {
    expect(() => rel('listdir', {})).toThrow(/argument 'dir' must be a string/);
  });
});
