// Typed readers for command arguments: each names the argument and what was wrong with it.

import { CommandArgsError } from '../errors.js';
import type { CommandArgs, CommandEnv } from './types.js';
import { isAbsolute } from 'node:path';
import { pathJoin } from '../py/os-path.js';
import { checkConfined } from './confine.js';

export function argString(args: CommandArgs, name: string): string {
  const v = args[name];
  if (typeof v !== 'string') throw new CommandArgsError(`argument '${name}' must be a string, got ${describe(v)}`);
  return v;
}

export function argOptString(args: CommandArgs, name: string): string | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new CommandArgsError(`argument '${name}' must be a string, got ${describe(v)}`);
  return v;
}

export function argOptNumber(args: CommandArgs, name: string): number | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CommandArgsError(`argument '${name}' must be a number, got ${describe(v)}`);
  return v;
}

/**
 * A delay in seconds (timeout, maxTime, sigtermTime): a number >= 0, Infinity meaning never (as Twisted's
 * callLater takes it). Anything else fails the command, as buildbot-worker's callLater assertion does. The one
 * check of these delays: shell steps and the fs commands' helper processes read them here, and RunProcess takes
 * them as given (agent/timers.ts's startDelay throws on a bad one, as a last guard).
 */
export function argOptSeconds(args: CommandArgs, name: string): number | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || Number.isNaN(n) || n < 0)
    throw new CommandArgsError(`argument '${name}' must be a number of seconds >= 0, got ${typeof n === 'number' ? String(n) : describe(v)}`);
  return n;
}

export function argBool(args: CommandArgs, name: string, dflt: boolean): boolean {
  const v = args[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  throw new CommandArgsError(`argument '${name}' must be a boolean, got ${describe(v)}`);
}

/** A path argument or a list of them (mkdir/rmdir accept both). */
export function argPaths(args: CommandArgs, name: string): string[] {
  const v = args[name];
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((p) => typeof p === 'string')) return v as string[];
  throw new CommandArgsError(`argument '${name}' must be a path or a list of paths, got ${describe(v)}`);
}

export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  // never serialize the whole value: a master may send megabytes (or a bigint, which JSON.stringify refuses)
  if (typeof v === 'string') return `string ${JSON.stringify(v.slice(0, 58))}`;
  if (typeof v === 'object') return v instanceof Uint8Array ? `bytes of length ${v.length}` : 'a map';
  return `${typeof v} ${String(v).slice(0, 60)}`;
}

/** Python's `args[name]` (not `.get`): the key must be there, though its value may be None. */
export function argPresent(args: CommandArgs, name: string): void {
  if (!Object.prototype.hasOwnProperty.call(args, name)) throw new CommandArgsError(`argument '${name}' is missing`);
}

/** An integer argument (msgpack may deliver big ones as bigint). */
export function argInt(args: CommandArgs, name: string): number {
  const v = argOptInt(args, name);
  if (v === undefined) throw new CommandArgsError(`argument '${name}' must be an integer, got ${describe(args[name])}`);
  return v;
}

export function argOptInt(args: CommandArgs, name: string): number | undefined {
  const v = argOptNumber(args, name);
  if (v !== undefined && !Number.isInteger(v)) throw new CommandArgsError(`argument '${name}' must be an integer, got ${describe(v)}`);
  return v;
}

/**
 * The path a file command works on. Absolute paths (msgpack masters) are used exactly as sent, like
 * buildbot-worker does ('/x/' and '/x' differ, so no normalising); relative ones are joined onto the builder
 * directory (or basedir) as os.path.join would. PB's join(builder dir, workdir, workersrc) belongs here too.
 * Every command path goes through here, so a confined worker (env.confineToBasedir) checks them all here.
 */
export function commandPath(env: CommandEnv, p: string): string {
  const full = isAbsolute(p) ? p : pathJoin(env.builderDir ?? env.basedir, p);
  confinePath(env, full);
  return full;
}

/** Throws ConfinementError when the worker is confined and `full` (absolute) leads out of BASEDIR. */
export function confinePath(env: CommandEnv, full: string): void {
  if (env.confineToBasedir) checkConfined(env.basedir, full);
}

/** A path argument, resolved by commandPath. */
export function argPath(args: CommandArgs, name: string, env: CommandEnv): string {
  return commandPath(env, argString(args, name));
}
