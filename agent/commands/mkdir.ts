// mkdir: creates each directory of `paths` with its parents (os.makedirs), as buildbot-worker's MakeDirectory;
// the first failure is reported as a header and its errno as rc.

import { argPaths, commandPath } from './args.js';
import type { CommandDefinition, CommandIO, WorkerCommand } from './types.js';
import { makedirs } from '../fs/makedirs.js';
import { reportOSError } from '../fs/os-error-report.js';
import { isdir } from '../py/os-path.js';
import { TimeSlicer } from '../fs/time-slice.js';
import { join, relArgString, rewrite } from './relative-args.js';

class MakeDirectory implements WorkerCommand {
  constructor(
    private readonly paths: string[],
    private readonly io: CommandIO,
  ) {}

  async run(): Promise<void> {
    // a long list of paths must not hold the event loop (buildbot-worker's loop does)
    const slicer = new TimeSlicer();
    for (const dirname of this.paths) {
      if (slicer.due()) await slicer.pause();
      try {
        if (!isdir(dirname)) makedirs(dirname);
      } catch (err) {
        reportOSError(this.io, 'mkdir', dirname, err);
        return;
      }
    }
    this.io.status('rc', 0);
  }

  interrupt(): void {
    // runs to completion, like buildbot-worker's
  }
}

export const mkdirCommand: CommandDefinition = {
  names: ['mkdir'],
  requiredArgs: ['paths'],
  relativeArgs: (args, builderDir) => rewrite(args, ['dir'], { paths: [join(builderDir, relArgString(args, 'dir'))] }),
  create(args, io, env) {
    return new MakeDirectory(
      argPaths(args, 'paths').map((p) => commandPath(env, p)),
      io,
    );
  },
};
