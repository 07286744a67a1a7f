// stat: os.stat(path) of one path, sent as ('stat', [10 ints]) like buildbot-worker's StatFile (the master
// reads stat[0] for S_ISDIR and FileExists steps).

import { statSync } from 'node:fs';
import { argPath } from './args.js';
import type { CommandDefinition, CommandIO, WorkerCommand } from './types.js';
import { reportOSError } from '../fs/os-error-report.js';
import { checkNul, timeSeconds } from '../py/os.js';
import { fsPath } from '../py/fsencoding.js';
import { join, relArgString, rewrite } from './relative-args.js';
import { PyTuple } from '../py/values.js';

class StatFile implements WorkerCommand {
  constructor(
    private readonly path: string,
    private readonly io: CommandIO,
  ) {}

  async run(): Promise<void> {
    const filename = this.path;
    checkNul(filename);
    let st;
    try {
      st = statSync(fsPath(filename), { bigint: true });
    } catch (err) {
      reportOSError(this.io, 'stat', filename, err);
      return;
    }
    // tuple(os.stat_result): the integer fields, times truncated to whole seconds; a tuple, as Python sends it
    this.io.status(
      'stat',
      new PyTuple([
        Number(st.mode),
        Number(st.ino),
        Number(st.dev),
        Number(st.nlink),
        Number(st.uid),
        Number(st.gid),
        Number(st.size),
        timeSeconds(st.atimeNs),
        timeSeconds(st.mtimeNs),
        timeSeconds(st.ctimeNs),
      ]),
    );
    this.io.status('rc', 0);
  }

  interrupt(): void {
    // nothing to stop
  }
}

export const statCommand: CommandDefinition = {
  names: ['stat'],
  // buildbot-worker misspells requiredArgs on this command, so nothing is checked up front
  requiredArgs: [],
  relativeArgs: (args, builderDir) =>
    rewrite(args, ['file'], { path: join(builderDir, typeof args['workdir'] === 'string' ? args['workdir'] : '', relArgString(args, 'file')) }),
  create(args, io, env) {
    return new StatFile(argPath(args, 'path', env), io);
  },
};
