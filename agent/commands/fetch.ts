// fetch: bbagent's own remote command (no buildbot-worker counterpart), what the master-side FetchBuild step runs.
// It fetches one URL, verified by its sha256 or sha512, through the agent's shared artifact cache
// (env.artifacts: a hit sends no request; concurrent fetches of one file by several steps or workers make one
// request), and copies the file to `dest` or copies the cached extracted tree into `extract` (agent/artifacts/fetch.ts
// does the work; the build gets a tree of its own, which it may write into).
//
// What the master sees: the download's attempts and a progress line at most every 2 s on stdout; a summary line;
// status `rc` (0, or 1 on any failure) and, through sendJsonStatus, `fetch` = {path, algorithm, digest, bytes,
// cached, attempts, seconds, and with extract tree_cached (the cached tree was a hit) and linked (`link`: a symlink
// to it)} on success or `fetch_error` = {code, message} on failure, whose message (also the
// last line on stderr) starts with the URL and says why (HTTP 404, both hashes of a mismatch, the connection
// error, the disk floor, an unsafe archive member). An interrupt aborts the download or extraction: nothing
// half-written is left (partial files are removed, an extraction is published whole or not at all).

import type { ArtifactCache } from '../artifacts/cache.js';
// the downloader, extraction and cache (tar, xz, zip, http/TLS) load at the first fetch, not at the agent's start
import type { FetchResult } from '../artifacts/fetch.js';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { fetchRequest, type FetchRequest } from './fetch-args.js';
import { byteSize } from '../artifacts/progress.js';
import { StepProgress } from './fetch-progress.js';
import { sendJsonStatus } from './json-status.js';
import type { CommandDefinition, CommandEnv, CommandIO, WorkerCommand } from './types.js';

/** The version advertised for `fetch`; FetchBuild checks that the worker has the command. */
export const FETCH_COMMAND_VERSION = '1.0';

/** Status keys of the structured result and of the failure. */
export const FETCH_STATUS_KEY = 'fetch';
export const FETCH_ERROR_STATUS_KEY = 'fetch_error';

class Fetch implements WorkerCommand {
  private readonly abort = new AbortController();

  constructor(
    private readonly req: FetchRequest,
    private readonly io: CommandIO,
    private readonly env: CommandEnv,
  ) {}

  async run(): Promise<void> {
    const { req, io } = this;
    io.text('header', `fetch ${req.url} (${req.algorithm} ${req.digest})${req.extract ? ` into ${req.extract}` : req.dest ? ` to ${req.dest}` : ''}\n`);
    try {
      const result = await this.fetch();
      const size = byteSize(result.bytes);
      const how = result.treeCached
        ? `the cached tree ${result.linked ? 'linked' : 'copied'}, no request`
        : result.cached
          ? 'from the cache, no request'
          : `${result.attempts} request${result.attempts === 1 ? '' : 's'}`;
      io.text('stdout', `fetched ${size} (${how}) in ${result.seconds.toFixed(2)} s: ${result.path}\n`);
      const { treeCached, linked, ...fields } = result;
      sendJsonStatus(io, FETCH_STATUS_KEY, { ...fields, ...(treeCached !== undefined ? { tree_cached: treeCached } : {}), ...(linked ? { linked } : {}) });
      io.status('rc', 0);
    } catch (err) {
      const failure = describeFailure(req.url, err, this.abort.signal.aborted);
      io.text('stderr', `${failure.message}\n`);
      sendJsonStatus(io, FETCH_ERROR_STATUS_KEY, failure);
      io.status('rc', 1);
    }
  }

  interrupt(): void {
    this.abort.abort();
  }

  private async fetch(): Promise<FetchResult> {
    const cache = await this.cache();
    try {
      return await this.fetchOnce(cache);
    } catch (err) {
      // Another step's interrupt aborted the download this one shared (one request per key): fetch again.
      const sharedAbort = err instanceof AgentError && (err.code === 'E_FETCH_ABORTED' || err.code === 'E_EXTRACT_ABORTED');
      if (!sharedAbort || this.abort.signal.aborted || !cache) throw err;
      this.io.text('stdout', 'the shared download was aborted by another step: fetching again\n');
      return this.fetchOnce(cache);
    }
  }

  /** The shared cache, or undefined when the request or the agent has none (then dest or extract is needed). */
  private async cache(): Promise<ArtifactCache | undefined> {
    const { req, env } = this;
    if (!req.cache) return undefined;
    if (env.artifacts === undefined) {
      if (req.dest === undefined && req.extract === undefined) {
        throw new AgentError('E_FETCH_DEST', `${req.url}: this agent has no artifact cache: give 'dest' or 'extract'`);
      }
      return undefined;
    }
    return env.artifacts.get();
  }

  private async fetchOnce(cache: ArtifactCache | undefined): Promise<FetchResult> {
    const { req, io, env } = this;
    const { fetchArtifact } = await import('../artifacts/fetch.js');
    const progress = new StepProgress((line) => io.text('stdout', line), env.now);
    return fetchArtifact({
      url: req.url,
      expected: { algorithm: req.algorithm, digest: req.digest },
      ...(req.dest !== undefined ? { dest: req.dest } : {}),
      ...(req.extract !== undefined ? { extract: req.extract } : {}),
      ...(cache ? { cache } : {}),
      ...(req.link ? { link: true } : {}),
      env: env.environ,
      logger: teeLogger(env.logger, io),
      onProgress: (p) => progress.onProgress(p),
      signal: this.abort.signal,
    });
  }
}

/** The failure's code and one-line message (starting with the URL). */
function describeFailure(url: string, err: unknown, interrupted: boolean): { code: string; message: string } {
  const code = err instanceof AgentError ? String(err.code) : 'E_FETCH_NETWORK';
  let message = errorMessage(err).split('\n')[0] ?? '';
  if (!message.startsWith(url)) message = `${url}: ${message}`;
  if (interrupted) message += ' (interrupted)';
  return { code, message };
}

/** The agent's log, plus the step's: each attempt and the cache's and extraction's lines reach the master too. */
function teeLogger(agent: Logger, io: CommandIO): Logger {
  return {
    info: (m) => {
      agent.info(m);
      io.text('stdout', `${m}\n`);
    },
    warn: (m) => {
      agent.warn(m);
      io.text('stdout', `${m}\n`);
    },
    error: (m) => {
      agent.error(m);
      io.text('stderr', `${m}\n`);
    },
    debug: (m) => agent.debug(m),
  };
}

export const fetchCommand: CommandDefinition = {
  names: ['fetch'],
  version: FETCH_COMMAND_VERSION,
  requiredArgs: ['url'],
  create(args, io, env) {
    return new Fetch(fetchRequest(args, env), io, env);
  },
};
