// `cpdir`: copies a directory tree with the platform's copy command (cp -R -P -p -v on POSIX), as buildbot-worker.

import type { RunProcess } from '../process/run-process.js';
import { toolProcess } from './tool-process.js';
import { argString, commandPath } from './args.js';
import { makedirs } from '../fs/makedirs.js';
import { exists, pathDirname } from '../py/os-path.js';
import type { CommandDefinition } from './types.js';
import { join, relArgString, rewrite } from './relative-args.js';

export const cpdirCommand: CommandDefinition = {
  names: ['cpdir'],
  requiredArgs: ['to_path', 'from_path'],
  relativeArgs: (args, builderDir) =>
    rewrite(args, ['fromdir', 'todir'], { from_path: join(builderDir, relArgString(args, 'fromdir')), to_path: join(builderDir, relArgString(args, 'todir')) }),
  create(args, io, env) {
    let proc: RunProcess | undefined;
    return {
      async run() {
        const from = commandPath(env, argString(args, 'from_path'));
        const to = commandPath(env, argString(args, 'to_path'));
        // as buildbot-worker: a parent that cannot be made fails the command (Python's OSError)
        const parent = pathDirname(to);
        if (!exists(parent)) makedirs(parent);
        proc = toolProcess(env.platform.copyTreeArgv(from, to), args, io, env);
        const rc = await proc.start();
        io.status('rc', rc);
      },
      interrupt() {
        proc?.kill('command interrupted');
      },
    };
  },
};
