// Typed readers for command arguments: each names the argument and what was wrong with it.

import { CommandArgsError } from '../errors.js';
import type { CommandArgs } from './types.js';

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
  return `${typeof v} ${JSON.stringify(v)?.slice(0, 60) ?? ''}`.trim();
}
