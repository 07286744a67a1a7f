// Downloads one URL to a file, verified: the sha256/sha512 is computed while the body streams, the content goes to
// a partial file beside the destination and is published atomically (fsync, rename, fsync of the directory) only
// once its digest matched. Failures are retried by policy (retry.ts): resets, timeouts, 408, 429 (Retry-After),
// 5xx and short bodies, with jittered backoff; a drop mid-body resumes with Range + If-Range, and the hash state is
// kept across attempts, so the kept prefix is never read back (the partial is the download's own and lives only
// as long as this call; a partial from another process is never resumed). A complete body with the wrong digest
// is "content changed upstream": one more attempt from byte 0 asking caches for a fresh copy, then a failure
// naming both digests. Every attempt is logged; progress goes to an injected callback. An AbortSignal stops at
// once. Whatever happens, no partial file outlives the call.
//
// Callers: the `bbagent fetch` CLI and the `fetch` remote command (through the cache, which hands a `partialPath`
// in its own directory so its start-up sweep finds leftovers of a killed agent), and the benchmark. Errors are
// AgentError with codes: E_FETCH_URL, E_FETCH_DIGEST, E_FETCH_HTTP (status), E_FETCH_SHORT_BODY, E_FETCH_TIMEOUT,
// E_FETCH_NETWORK (connection), E_FETCH_RANGE, E_FETCH_HASH_MISMATCH, E_FETCH_PROXY, E_FETCH_REDIRECT,
// E_FETCH_TOO_LARGE, E_FETCH_HEADERS, E_FETCH_WRITE (the partial or the destination), E_FETCH_ABORTED. Messages
// start with the URL.
//
//   const r = await download({ url, expected: { algorithm: 'sha256', digest }, dest, logger, env: process.env,
//                              onProgress: (p) => bar.draw(p), signal });   // r: { path, digest, bytes, attempts, ... }

import { randomBytes } from 'node:crypto';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { checkDigest, StreamHash, type DigestAlgorithm, type ExpectedDigest } from './hashing.js';
import { runAttempt, type AttemptInput, type AttemptReport, type ContentState } from './http-attempt.js';
import { PartialFile } from './partial-file.js';
import { ProgressMeter, type ProgressCallback } from './progress.js';
import type { ProxyEnv } from './proxy.js';
import { DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_TOTAL, PROGRESS_BYTES, RetryableError, backoffDelay, isRetryable } from './retry.js';

export type { DigestAlgorithm, ExpectedDigest } from './hashing.js';
export type { DownloadProgress, DownloadState, ProgressCallback } from './progress.js';
export type { ProxyEnv } from './proxy.js';

/** Time to set up a connection (TCP, proxy tunnel, TLS handshake) before the attempt fails as a timeout. */
export const CONNECT_TIMEOUT_MS = 30_000;
/** Time without a byte from the server (waiting for the headers, or mid-body) before the attempt fails. */
export const IDLE_TIMEOUT_MS = 60_000;

export interface DownloadOptions {
  url: string;
  /** The digest the content must have. */
  expected: ExpectedDigest;
  /** The file to create or replace; its directory must exist. */
  dest: string;
  /** The partial file to write (must not exist, same file system as dest); default `<dest>.partial-<pid>-<random>`. */
  partialPath?: string;
  /** Where proxy settings come from (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, either case). */
  env?: ProxyEnv;
  logger: Logger;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Extra request headers (e.g. Authorization), dropped on a redirect to another origin. */
  headers?: Record<string, string>;
  userAgent?: string;
  /** Extra trusted CAs for https (PEM), besides the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Fail (E_FETCH_TOO_LARGE) when the content is bigger than this. */
  maxBytes?: number;
  /** Attempts in a row without progress before giving up (DEFAULT_MAX_ATTEMPTS). */
  maxAttempts?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Test seams: the backoff's random source, the wait between attempts, the clocks (monotonic and wall, ms). */
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  wallNow?: () => number;
}

export interface DownloadResult {
  path: string;
  algorithm: DigestAlgorithm;
  digest: string;
  bytes: number;
  /** Requests made (redirects not counted). */
  attempts: number;
  seconds: number;
  /** Bytes resuming saved: the sum of the Range starts the server answered with 206 (a restart would refetch them). */
  resumedBytes: number;
  /** Body bytes received over all attempts (bytes minus resumedBytes when nothing was lost). */
  receivedBytes: number;
}

/** What the default partial file's name has after the destination's: `<dest>.partial-<pid>-<12 hex>`. */
export const PARTIAL_INFIX = '.partial-';

/**
 * A fresh partial name beside `dest`. Only a killed process leaves one behind (every failure removes it): the
 * next fetch to `dest` removes it (fetch-sweep.ts), knowing by the pid that its process is gone.
 */
export function partialPathFor(dest: string): string {
  return `${dest}${PARTIAL_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Downloads `opts.url` to `opts.dest`, verified, with retries and resume (see the opening comment). */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const url = parseUrl(opts.url);
  const expected = checkDigest(opts.expected);
  const now = opts.now ?? (() => performance.now());
  const started = now();
  const meter = new ProgressMeter(opts.onProgress, now);
  if (opts.signal?.aborted) throw aborted(url);
  let partial: PartialFile;
  try {
    partial = await PartialFile.create(opts.partialPath ?? partialPathFor(opts.dest));
  } catch (err) {
    throw withUrl(url, err);
  }
  const state: ContentState = { partial, hash: new StreamHash(expected.algorithm), rangesRefused: false };
  try {
    const tally = await attemptUntilDone(url, expected, state, meter, opts);
    await partial.publish(opts.dest); // still 'verifying': the content is durable and in place only after this
    const result: DownloadResult = {
      path: opts.dest,
      algorithm: expected.algorithm,
      digest: expected.digest,
      bytes: state.hash.bytes,
      attempts: tally.attempts,
      seconds: (now() - started) / 1000,
      resumedBytes: tally.resumedBytes,
      receivedBytes: tally.receivedBytes,
    };
    meter.enter('done', tally.attempts);
    return result;
  } catch (err) {
    await partial.discard();
    if (opts.signal?.aborted) throw aborted(url);
    if (err instanceof AgentError && err.message.startsWith(url.href)) throw err;
    throw withUrl(url, err);
  }
}

interface Tally {
  attempts: number;
  resumedBytes: number;
  receivedBytes: number;
}

/** The attempt loop: returns once the whole content is in the partial file with the expected digest. */
async function attemptUntilDone(url: URL, expected: ExpectedDigest, state: ContentState, meter: ProgressMeter, opts: DownloadOptions): Promise<Tally> {
  const tally: Tally = { attempts: 0, resumedBytes: 0, receivedBytes: 0 };
  const maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const sleep = opts.sleep ?? sleepFor;
  const input = attemptInput(url, opts);
  let failures = 0;
  let mismatches = 0;
  for (;;) {
    tally.attempts++;
    meter.enter('connecting', tally.attempts);
    const report: AttemptReport = { finalUrl: url.href, rangeFrom: 0, bodyFrom: 0, received: 0 };
    let err: unknown;
    try {
      await runAttempt(input, state, meter, report);
      meter.enter('verifying', tally.attempts);
      const got = state.hash.hex();
      if (got === expected.digest) {
        account(tally, report);
        opts.logger.info(`fetch ${url.href}: attempt ${tally.attempts}: ${describe(report, url)}, ${state.hash.bytes} bytes, ${expected.algorithm} ok`);
        return tally;
      }
      err = mismatch(url, expected, got, state.hash.bytes, mismatches);
    } catch (e) {
      err = e;
    }
    account(tally, report);
    if (opts.signal?.aborted) throw aborted(url);
    const verdict = await nextStep(err, state, report, { failures, mismatches, attempts: tally.attempts, maxAttempts });
    opts.logger.warn(`fetch ${url.href}: attempt ${tally.attempts}: ${describe(report, url)}, ${report.received} bytes, ${errorMessage(err)}${verdict.note}`);
    if (verdict.give !== undefined) throw verdict.give;
    failures = verdict.failures;
    mismatches = verdict.mismatches;
    input.noCache = verdict.noCache || input.noCache;
    const delay = verdict.delayMs ?? backoffDelay(failures, opts.random ?? Math.random);
    meter.enter('retrying', tally.attempts, { reason: errorMessage(err), retryInMs: delay });
    if (delay > 0) await sleep(delay, opts.signal);
    if (opts.signal?.aborted) throw aborted(url);
  }
}

function attemptInput(url: URL, opts: DownloadOptions): AttemptInput {
  const headers = { ...(opts.headers ?? {}) };
  if (opts.userAgent !== undefined) headers['User-Agent'] = opts.userAgent;
  return {
    url,
    env: opts.env ?? {},
    headers,
    connectTimeoutMs: opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    idleTimeoutMs: opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    ca: opts.ca,
    signal: opts.signal,
    noCache: false,
    maxBytes: opts.maxBytes,
    wallNow: opts.wallNow ?? Date.now,
  };
}

function account(tally: Tally, report: AttemptReport): void {
  tally.receivedBytes += report.received;
  if (report.status === 206) tally.resumedBytes += report.bodyFrom;
}

interface Verdict {
  /** Set when the download gives up: the error to throw. */
  give?: unknown;
  failures: number;
  mismatches: number;
  noCache: boolean;
  /** The wait before the next attempt (undefined: backoff). */
  delayMs?: number;
  /** Appended to the attempt's log line. */
  note: string;
}

/** After a failed attempt: give up, or how to go on (start again from 0 or resume, and when). */
async function nextStep(
  err: unknown,
  state: ContentState,
  report: AttemptReport,
  count: { failures: number; mismatches: number; attempts: number; maxAttempts: number },
): Promise<Verdict> {
  if (err instanceof AgentError && err.code === 'E_FETCH_HASH_MISMATCH') {
    if (count.mismatches >= 1) return { give: err, failures: count.failures, mismatches: count.mismatches, noCache: true, note: '' };
    await restartContent(state);
    return { failures: count.failures, mismatches: count.mismatches + 1, noCache: true, delayMs: 0, note: ': once more from byte 0, bypassing caches' };
  }
  if (!isRetryable(err)) return { give: err, failures: count.failures, mismatches: count.mismatches, noCache: false, note: ': not retried' };
  const kept = await keepForResume(state);
  const progressed = kept && report.received >= PROGRESS_BYTES;
  const failures = progressed ? 1 : count.failures + 1;
  if (failures >= count.maxAttempts || count.attempts >= MAX_ATTEMPTS_TOTAL) {
    const code = err instanceof AgentError ? err.code : 'E_FETCH_NETWORK';
    const give = new AgentError(code, `${errorMessage(err)} (gave up after ${count.attempts} attempts)`);
    return { give, failures, mismatches: count.mismatches, noCache: false, note: ': giving up' };
  }
  const delayMs = err instanceof RetryableError ? err.retryAfterMs : undefined;
  const resumeNote = state.hash.bytes > 0 ? `, will resume at byte ${state.hash.bytes}` : '';
  return { failures, mismatches: count.mismatches, noCache: false, delayMs, note: `: retrying${resumeNote}` };
}

/** Writes out what the failed attempt queued; when that fails the content is unknown and starts again from 0. */
async function keepForResume(state: ContentState): Promise<boolean> {
  try {
    await state.partial.flush();
    return true;
  } catch {
    await restartContent(state);
    return false;
  }
}

async function restartContent(state: ContentState): Promise<void> {
  await state.partial.restart();
  state.hash.reset();
}

function mismatch(url: URL, expected: ExpectedDigest, got: string, bytes: number, earlier: number): AgentError {
  const what = earlier > 0 ? 'content changed upstream' : 'digest mismatch';
  return new AgentError('E_FETCH_HASH_MISMATCH', `${what}: expected ${expected.algorithm} ${expected.digest}, got ${got} (${bytes} bytes)`);
}

function describe(r: AttemptReport, url: URL): string {
  const redirected = r.finalUrl !== url.href ? ` from ${r.finalUrl}` : '';
  const status = r.status === undefined ? 'no response' : `HTTP ${r.status}${redirected}`;
  return r.status === 206 ? `${status} resuming at byte ${r.bodyFrom}` : status;
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AgentError('E_FETCH_URL', `cannot parse the URL '${raw}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AgentError('E_FETCH_URL', `${raw}: only http and https URLs can be fetched`);
  return url;
}

function aborted(url: URL): AgentError {
  return new AgentError('E_FETCH_ABORTED', `${url.href}: download aborted`);
}

/** The URL first, then the reason; keeps the code (a transport error without one becomes E_FETCH_NETWORK). */
function withUrl(url: URL, err: unknown): AgentError {
  const code = err instanceof AgentError ? err.code : 'E_FETCH_NETWORK';
  const e = new AgentError(code, `${url.href}: ${errorMessage(err)}`);
  e.cause = err;
  return e;
}

function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
