// Turns the master-relative argument forms (as PB masters send them, paths relative to the builder
// directory) into the absolute forms the commands take. Each command names its own translation.

import os from 'node:os';
import { pathJoin } from '../py/os-path.js';
import { argString as str } from './args.js';
import type { CommandArgs, CommandEnv } from './types.js';

/** os.path.join: an absolute later part replaces what came before. */
export function join(...parts: string[]): string {
  return parts.reduce((a, b) => pathJoin(a, b));
}

/** os.path.expanduser with the worker's HOME. */
export function expandUser(p: string, env: CommandEnv): string {
  if (p !== '~' && !p.startsWith('~/')) return p;
  return (env.environ['HOME'] ?? os.homedir()) + p.slice(1);
}

/** Copies args with `from` keys removed and `to` keys set. */
export function rewrite(args: CommandArgs, remove: string[], set: CommandArgs): CommandArgs {
  const out: CommandArgs = { ...args };
  for (const k of remove) delete out[k];
  return Object.assign(out, set);
}

/** uploadFile / uploadDirectory / downloadFile: path = join(builder, workdir, expanduser(src)). */
export function transferPath(srcKey: string) {
  return (args: CommandArgs, builderDir: string, env: CommandEnv): CommandArgs =>
    rewrite(args, ['workdir', srcKey], { path: join(builderDir, str(args, 'workdir'), expandUser(str(args, srcKey), env)) });
}

/** A key whose value is one path relative to the builder directory, renamed to `to`. */
export function relPath(from: string, to: string) {
  return (args: CommandArgs, builderDir: string): CommandArgs => rewrite(args, [from], { [to]: join(builderDir, str(args, from)) });
}

export { argString as relArgString } from './args.js';
