// `rmdir`: removes directory trees with the platform's remove command, retrying once after making the tree
// writable, with shell headers in the log as buildbot-worker (rm -rf on POSIX).

import type { RunProcess } from '../process/run-process.js';
import { toolProcess } from './tool-process.js';
import { argPaths, commandPath } from './args.js';
import type { CommandDefinition } from './types.js';
import { join, rewrite } from './relative-args.js';

export const rmdirCommand: CommandDefinition = {
  names: ['rmdir'],
  requiredArgs: ['paths'],
  relativeArgs: (args, builderDir) => {
    const dir = args['dir'];
    const dirs = Array.isArray(dir) ? dir : [dir];
    return rewrite(args, ['dir'], { paths: dirs.map((d) => join(builderDir, typeof d === 'string' ? d : String(d))) });
  },
  create(args, io, env) {
    let current: RunProcess | undefined;
    let interrupted = false;
    const run = (argv: string[]): Promise<number> => {
      current = toolProcess(argv, args, io, env);
      return current.start();
    };
    return {
      async run() {
        let rc = 0;
        for (const p of argPaths(args, 'paths').map((x) => commandPath(env, x))) {
          if (interrupted) break;
          let res = await run(env.platform.removeTreeArgv(p));
          if (res !== 0 && !interrupted) {
            await run(env.platform.chmodTreeArgv(p));
            res = await run(env.platform.removeTreeArgv(p));
          }
          if (res !== 0) rc = res;
        }
        io.status('rc', rc);
      },
      interrupt() {
        interrupted = true;
        current?.kill('command interrupted');
      },
    };
  },
};
