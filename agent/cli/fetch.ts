// `bbagent fetch`: fetches one URL, verified by its sha256 or sha512, optionally through a cache directory and
// optionally extracted, for use from any ShellCommand. Exit 0 prints the resulting path (or, with --json, one
// object); any failure prints one line naming the URL and the reason and exits 1 (2 for a bad command line).
// Progress goes to stderr: a bar rewritten in place on a terminal, one JSON line per state change with --json
// when stderr is not a terminal, nothing otherwise. SIGINT and SIGTERM abort the fetch: partial files are removed
// and the one-line error says it was aborted. --cache-floor sets the cache's free-disk floor; --cache-wait lets
// several fetches sharing one cache directory take turns (the cache is one process's at a time) instead of failing.

import path from 'node:path';
import { ArtifactCache, DEFAULT_FLOOR_BYTES, DEFAULT_FLOOR_PERCENT, type FloorOptions } from '../artifacts/cache.js';
import type { DownloadProgress } from '../artifacts/download.js';
import { byteSize } from '../artifacts/progress.js';
import { fetchArtifact, type FetchResult } from '../artifacts/fetch.js';
import type { DigestAlgorithm } from '../artifacts/hashing.js';
import { AgentError, errorMessage } from '../errors.js';
import { silentLogger } from '../log.js';
import { EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';

const COMMAND = 'bbagent fetch';
/** How often a fetch waiting for a cache held by another process tries again (jittered by up to half). */
const LOCK_POLL_MS = 200;

export const FETCH_USAGE = `Usage: bbagent fetch URL (--sha256 HEX | --sha512 HEX) [--dest PATH | --extract DIR [--link]] [--cache DIR [--cache-floor SIZE|N%] [--cache-wait SECONDS]] [--json]

Downloads URL (http or https; HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured), checks its sha256 or sha512
while it streams, and prints the resulting path. Connection drops resume with Range; resets, timeouts, 408, 429
and 5xx are retried with back-off; other statuses and a hash mismatch fail at once (one retry from byte 0 when
the content changed upstream). Any failure prints one line naming the URL and the reason and exits 1.

Where the result goes:
  --dest PATH      the file PATH (replaced atomically). Default without --cache: the URL's file name in the
                   current directory
  --extract DIR    extract the archive (tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip) into DIR, which must not
                   exist or be empty; members escaping DIR (.., absolute paths, links) fail the fetch.
                   With --cache, the tree is extracted once into the cache and DIR gets a copy of it (a
                   reflink where the file system has them), which is DIR's own to write into
  --link           with --cache and --extract: make DIR a symlink to the cache's tree instead of a copy
                   (faster for trees of many files; read-only: a change is found by the next fetch and
                   the tree extracted again)
  neither, with --cache: the file inside the cache (read-only: do not change it)

Options:
      --sha256 HEX    the expected sha256 of the file (64 hex characters)
      --sha512 HEX    the expected sha512 of the file (128 hex characters)
      --cache DIR     fetch through the content-addressed cache in DIR: a file already there is re-verified
                      and no request is sent. There is no cache unless this is given: a running agent holds
                      BASEDIR/cache, so use another directory from a ShellCommand
      --cache-floor SIZE|N%
                      keep this much disk free under the cache: least recently used entries are evicted to make
                      room, and a fetch that cannot fit fails before downloading. A size in bytes or with K, M,
                      G or T (powers of 1024), or a percentage of the file system. Default: the larger of
                      ${DEFAULT_FLOOR_BYTES / 2 ** 30}G and ${DEFAULT_FLOOR_PERCENT}%
      --cache-wait SECONDS
                      when another process has the cache directory open (another fetch), wait up to SECONDS
                      for it instead of failing at once (default 0): parallel fetches of one file through one
                      cache then download it once
      --json          print one JSON object {path, sha256|sha512, bytes, cached, attempts, and with
                      --extract --cache: tree_cached, linked}; progress on a
                      non-terminal stderr becomes one JSON line per state change
  -h, --help          show this help`;

const OPTIONS: OptionSpec = {
  sha256: { type: 'string' },
  sha512: { type: 'string' },
  dest: { type: 'string' },
  extract: { type: 'string' },
  link: { type: 'boolean' },
  cache: { type: 'string' },
  'cache-floor': { type: 'string' },
  'cache-wait': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

interface FetchRequest {
  url: string;
  algorithm: DigestAlgorithm;
  digest: string;
  dest?: string;
  extract?: string;
  cache?: string;
  floor?: FloorOptions;
  cacheWaitMs: number;
  json: boolean;
  link: boolean;
}

export async function fetchCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 1);
    if (values.help === true) {
      io.out(FETCH_USAGE);
      return EXIT_OK;
    }
    const req = request(values, positionals);
    const progress = progressReporter(io, req.json);
    let result: FetchResult;
    try {
      result = await run(req, io, progress);
    } catch (err) {
      progress.clear();
      if (!(err instanceof AgentError)) throw new AgentError('E_FETCH_NETWORK', `${req.url}: ${errorMessage(err)}`);
      // the cache's own errors (E_CACHE_LOCKED from opening it) do not know the URL
      throw err.message.startsWith(req.url) ? err : new AgentError(err.code, `${req.url}: ${err.message}`);
    }
    progress.clear();
    if (req.json) {
      const tree = { ...(result.treeCached !== undefined ? { tree_cached: result.treeCached } : {}), ...(result.linked ? { linked: true } : {}) };
      io.out(
        JSON.stringify({
          path: result.path,
          [result.algorithm]: result.digest,
          bytes: result.bytes,
          cached: result.cached,
          attempts: result.attempts,
          ...tree,
        }),
      );
    } else {
      io.out(result.path);
    }
    return EXIT_OK;
  });
}

function request(values: Record<string, string | boolean | undefined>, positionals: string[]): FetchRequest {
  const str = (name: string): string | undefined => (typeof values[name] === 'string' ? values[name] : undefined);
  const url = positionals[0];
  if (url === undefined) throw new UsageError(`${COMMAND}: missing URL (see '${COMMAND} --help')`);
  const sha256 = str('sha256');
  const sha512 = str('sha512');
  if ((sha256 === undefined) === (sha512 === undefined)) {
    throw new UsageError(`${COMMAND}: give exactly one of --sha256 and --sha512 (see '${COMMAND} --help')`);
  }
  const dest = str('dest');
  const extract = str('extract');
  if (dest !== undefined && extract !== undefined) throw new UsageError(`${COMMAND}: --dest and --extract exclude each other (see '${COMMAND} --help')`);
  const cache = str('cache');
  if (values.link === true && (extract === undefined || cache === undefined)) {
    throw new UsageError(`${COMMAND}: --link needs --extract DIR and --cache DIR (see '${COMMAND} --help')`);
  }
  const floor = str('cache-floor');
  const wait = str('cache-wait');
  if (cache === undefined && (floor !== undefined || wait !== undefined)) {
    throw new UsageError(`${COMMAND}: --cache-floor and --cache-wait need --cache DIR (see '${COMMAND} --help')`);
  }
  const req: FetchRequest = {
    url,
    algorithm: sha256 !== undefined ? 'sha256' : 'sha512',
    digest: sha256 ?? sha512 ?? '',
    cacheWaitMs: wait === undefined ? 0 : parseSeconds(wait) * 1000,
    json: values.json === true,
    link: values.link === true,
  };
  if (floor !== undefined) req.floor = parseFloor(floor);
  if (extract !== undefined) req.extract = extract;
  else if (dest !== undefined) req.dest = dest;
  else if (cache === undefined) req.dest = defaultDest(url);
  if (cache !== undefined) req.cache = cache;
  return req;
}

/** `--cache-floor`: a size (bytes, or K, M, G, T as powers of 1024, with an optional B or iB) or a percentage. */
export function parseFloor(text: string): FloorOptions {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent && Number(percent[1]) <= 100) return { bytes: 0, percent: Number(percent[1]) };
  const size = /^(\d+(?:\.\d+)?)([KMGT]?)(i?B)?$/i.exec(text);
  if (size === null || (size[2] === '' && size[3] !== undefined && size[3].length > 1)) {
    throw new UsageError(`${COMMAND}: --cache-floor '${text}' is neither a size (2G, 500M, 0) nor a percentage up to 100% (5%)`);
  }
  const power = size[2] === '' ? 0 : 'KMGT'.indexOf(size[2]!.toUpperCase()) + 1;
  return { bytes: Math.round(Number(size[1]) * 1024 ** power), percent: 0 };
}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${COMMAND}: --cache-wait '${text}' is not a number of seconds`);
  return n;
}

/** The URL's last path segment, in the current directory (as wget names it). */
function defaultDest(url: string): string {
  let name = '';
  try {
    name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  } catch {
    // a bad URL fails in the download, with its own message
    return 'index.html';
  }
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new UsageError(`${COMMAND}: ${url} names no file: give --dest PATH (see '${COMMAND} --help')`);
  }
  return path.resolve(name);
}

async function run(req: FetchRequest, io: CliIO, progress: ProgressReporter): Promise<FetchResult> {
  const onProgress = progress.onProgress;
  // Ctrl-C or a step's SIGTERM stops the fetch and removes its partial files before the process exits.
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let cache: ArtifactCache | undefined;
  try {
    if (req.cache !== undefined) cache = await openCache(req.cache, req, abort.signal, progress);
    return await fetchArtifact({
      url: req.url,
      expected: { algorithm: req.algorithm, digest: req.digest },
      ...(req.dest !== undefined ? { dest: path.resolve(req.dest) } : {}),
      ...(req.extract !== undefined ? { extract: path.resolve(req.extract) } : {}),
      ...(cache ? { cache } : {}),
      ...(req.link ? { link: true } : {}),
      env: io.env,
      logger: silentLogger,
      ...(onProgress ? { onProgress } : {}),
      signal: abort.signal,
    });
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    await cache?.close();
  }
}

/** Opens the cache directory, waiting up to --cache-wait while another process has it open. */
async function openCache(dir: string, req: FetchRequest, signal: AbortSignal, progress: ProgressReporter): Promise<ArtifactCache> {
  const root = path.resolve(dir);
  const deadline = performance.now() + req.cacheWaitMs;
  for (let tries = 1; ; tries++) {
    try {
      return await ArtifactCache.open({ root, ...(req.floor ? { floor: req.floor } : {}) });
    } catch (err) {
      const left = deadline - performance.now();
      if (!(err instanceof AgentError) || err.code !== 'E_CACHE_LOCKED') throw err;
      if (left <= 0) throw req.cacheWaitMs > 0 ? new AgentError(err.code, `${err.message} (waited ${req.cacheWaitMs / 1000} s)`) : err;
      if (signal.aborted) throw new AgentError('E_FETCH_ABORTED', `${req.url}: download aborted`);
      if (tries === 1) progress.waiting(err.message);
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, LOCK_POLL_MS * (0.5 + Math.random()))));
    }
  }
}

interface ProgressReporter {
  onProgress: ((p: DownloadProgress) => void) | undefined;
  /** The fetch waits for the cache directory (--cache-wait): said once. */
  waiting(reason: string): void;
  /** Removes the bar before the result or the error is printed. */
  clear(): void;
}

function progressReporter(io: CliIO, json: boolean): ProgressReporter {
  const write = io.errWrite;
  if (io.isTTY === true && write !== undefined) {
    let drawn = false;
    return {
      onProgress: (p) => {
        write(`\r${progressLine(p)}\x1b[K`);
        drawn = true;
      },
      waiting: (reason) => {
        write(`\rwaiting: ${reason}\x1b[K`);
        drawn = true;
      },
      clear: () => {
        if (drawn) write('\r\x1b[K');
        drawn = false;
      },
    };
  }
  if (!json) return { onProgress: undefined, waiting: () => {}, clear: () => {} };
  let last = '';
  return {
    onProgress: (p) => {
      const state = `${p.state}/${p.attempt}`;
      if (state === last) return;
      last = state;
      io.err(JSON.stringify({ event: 'progress', ...p }));
    },
    waiting: (reason) => io.err(JSON.stringify({ event: 'waiting', reason })),
    clear: () => {},
  };
}

/** `downloading  12.0 MiB / 40.0 MiB  30%  5.1 MiB/s  ETA 6 s` (what is known of it). */
export function progressLine(p: DownloadProgress): string {
  const parts = [p.attempt > 1 ? `${p.state} (attempt ${p.attempt})` : p.state];
  parts.push(p.total !== undefined ? `${byteSize(p.bytes)} / ${byteSize(p.total)}  ${Math.floor((100 * p.bytes) / Math.max(p.total, 1))}%` : byteSize(p.bytes));
  if (p.rate !== undefined) {
    parts.push(`${byteSize(p.rate)}/s`);
    if (p.total !== undefined && p.rate > 0) parts.push(`ETA ${Math.ceil((p.total - p.bytes) / p.rate)} s`);
  }
  if (p.state === 'retrying' && p.reason !== undefined) parts.push(`${p.reason}; again in ${Math.ceil((p.retryInMs ?? 0) / 1000)} s`);
  return parts.join('  ');
}
