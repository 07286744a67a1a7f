// Where a command's paths point. msgpack masters send absolute paths; relative ones resolve against the
// worker's base directory (PB sends paths relative to the builder directory: see CommandEnv.builderDir).

import path from 'node:path';
import { argString } from './args.js';
import type { CommandArgs, CommandEnv } from './types.js';

export function resolvePath(env: CommandEnv, p: string): string {
  return path.resolve(env.builderDir ?? env.basedir, p);
}

export function resolveWorkdir(env: CommandEnv, args: CommandArgs): string {
  return resolvePath(env, argString(args, 'workdir'));
}
