// The arguments of the `fetch` remote command, checked before it runs: the URL, exactly one of sha256 and
// sha512, at most one of dest and extract, whether to go through the agent's cache, and where relative paths
// resolve. Every path leads into the build (and, on a confined worker, into BASEDIR) as other commands' paths do.

import type { DigestAlgorithm } from '../artifacts/hashing.js';
import { CommandArgsError } from '../errors.js';
import { pathJoin } from '../py/os-path.js';
import { argBool, argOptString, argString, commandPath } from './args.js';
import type { CommandArgs, CommandEnv } from './types.js';

export interface FetchRequest {
  url: string;
  algorithm: DigestAlgorithm;
  digest: string;
  /** Absolute: the file to create or replace. */
  dest?: string;
  /** Absolute: the directory to extract into (must not exist, or be empty). */
  extract?: string;
  /** Go through the agent's shared cache (default true). */
  cache: boolean;
  /** `extract` becomes a symlink to the cache's tree (opt-in, read-only) instead of a copy. */
  link: boolean;
}

/**
 * Reads the command's arguments (CommandArgsError naming the argument on a bad one):
 * - `url`; `sha256` or `sha512` (hex; the download checks its form);
 * - `dest` or `extract`: a path; a relative one resolves against `workdir` (default: none) in the builder
 *   directory. PB masters name the builder; msgpack masters pass a bbagent command's arguments as they are and
 *   name none, so FetchBuild also sends the build's `builddir` (absolute), used when no builder was named;
 * - `cache`: false fetches without the agent's cache (then dest or extract is required);
 * - `link`: with `extract` and the cache, a symlink to the cache's tree instead of a copy.
 */
export function fetchRequest(args: CommandArgs, env: CommandEnv): FetchRequest {
  const url = argString(args, 'url');
  const sha256 = argOptString(args, 'sha256');
  const sha512 = argOptString(args, 'sha512');
  if ((sha256 === undefined) === (sha512 === undefined)) {
    throw new CommandArgsError(`fetch ${url}: give exactly one of the arguments 'sha256' and 'sha512'`);
  }
  const destArg = argOptString(args, 'dest');
  const extractArg = argOptString(args, 'extract');
  if (destArg !== undefined && extractArg !== undefined) {
    throw new CommandArgsError(`fetch ${url}: the arguments 'dest' and 'extract' exclude each other`);
  }
  const cache = argBool(args, 'cache', true);
  if (!cache && destArg === undefined && extractArg === undefined) {
    throw new CommandArgsError(`fetch ${url}: without the cache ('cache' false) give 'dest' or 'extract'`);
  }
  const link = argBool(args, 'link', false);
  if (link && (!cache || extractArg === undefined)) {
    throw new CommandArgsError(`fetch ${url}: 'link' needs 'extract' and the cache (it links to the cache's tree)`);
  }
  const req: FetchRequest = {
    url,
    link,
    algorithm: sha256 !== undefined ? 'sha256' : 'sha512',
    digest: (sha256 ?? sha512 ?? '').toLowerCase(),
    cache,
  };
  const where = buildEnv(args, env);
  const workdir = argOptString(args, 'workdir') ?? '';
  const resolve = (name: string, p: string): string => {
    if (p === '') throw new CommandArgsError(`fetch ${url}: argument '${name}' is an empty path`);
    return commandPath(where, workdir === '' ? p : pathJoin(workdir, p));
  };
  if (destArg !== undefined) req.dest = resolve('dest', destArg);
  if (extractArg !== undefined) req.extract = resolve('extract', extractArg);
  return req;
}

/** The environment paths resolve in: the builder directory the master named, else the `builddir` argument. */
function buildEnv(args: CommandArgs, env: CommandEnv): CommandEnv {
  if (env.builderDir !== undefined) return env;
  const builddir = argOptString(args, 'builddir');
  return builddir === undefined || builddir === '' ? env : { ...env, builderDir: pathJoin(env.basedir, builddir) };
}
