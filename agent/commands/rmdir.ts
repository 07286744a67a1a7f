// `rmdir`: removes directory trees with the platform's remove command, retrying once after making the tree
// writable, with shell headers in the log as buildbot-worker (rm -rf on POSIX). It never removes BASEDIR, an
// ancestor of it or the agent's own directories, whatever path the master sends (see removalProtection).

import type { RunProcess } from '../process/run-process.js';
import { AgentError } from '../errors.js';
import { toolProcess } from './tool-process.js';
import { argPaths, commandPath } from './args.js';
import { removalProtection } from './confine.js';
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
        // Every path is checked before anything is removed: one refused path leaves everything as it was.
        const targets: string[] = [];
        for (const raw of argPaths(args, 'paths')) {
          // An empty path names nothing (buildbot-worker's `rm -rf ''` removes nothing); joined onto BASEDIR it
          // would name BASEDIR itself.
          if (raw === '') {
            io.text('header', 'rmdir: skipping an empty path: it names nothing\n');
            continue;
          }
          const p = commandPath(env, raw);
          const guard = removalProtection(env.basedir, p);
          if (guard?.kind === 'basedir') throw new AgentError('E_RMDIR_BASEDIR', guard.why);
          if (guard) io.text('header', `${guard.why}\n`);
          else targets.push(p);
        }
        let rc = 0;
        for (const p of targets) {
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
