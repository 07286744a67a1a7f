// The helper process that rmdir and cpdir run (rm -rf, chmod, cp): in the worker's base directory, with
// shell headers but no rc of its own, as buildbot-worker's fs commands run theirs.

import { RunProcess } from '../process/run-process.js';
import { argBool, argOptSeconds } from './args.js';
import type { CommandArgs, CommandEnv, CommandIO } from './types.js';

/** buildbot-worker's default timeout (seconds without output) for fs helper processes. */
export const TOOL_TIMEOUT_S = 120;

export function toolProcess(argv: string[], args: CommandArgs, io: CommandIO, env: CommandEnv): RunProcess {
  return new RunProcess(
    {
      command: argv,
      workdir: env.basedir,
      environ: env.environ,
      sendStdout: true,
      sendStderr: true,
      sendRC: false,
      timeout: argOptSeconds(args, 'timeout') ?? TOOL_TIMEOUT_S,
      maxTime: argOptSeconds(args, 'maxTime') ?? null,
      sigtermTime: null,
      initialStdin: null,
      logEnviron: argBool(args, 'logEnviron', true),
      logfiles: {},
      usePTY: false,
      interruptSignal: 'KILL',
      registry: env.processes,
      leftoverCheck: false,
    },
    io,
    env.platform,
    env.logger,
    env.now,
  );
}
