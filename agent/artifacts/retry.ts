// The fetch retry policy: which failures are worth another attempt (connection resets, timeouts, 408, 429, 5xx,
// a short body), how long to wait (jittered exponential backoff, or the server's Retry-After, capped), and the
// error type that marks a failure as transient. The transport (http-attempt.ts) only reports; this decides.

import { AgentError, type ErrorCode } from '../errors.js';

/** The first backoff delay; each further failure without progress doubles it. */
export const BACKOFF_BASE_MS = 1_000;
/** Backoff never waits longer than this between two attempts (before jitter). */
export const BACKOFF_MAX_MS = 30_000;
/** A Retry-After longer than this is cut to it: a build step should fail in minutes, not wait for hours. */
export const RETRY_AFTER_MAX_MS = 120_000;
/** Attempts in a row that may fail without progress before the download gives up (see download.ts). */
export const DEFAULT_MAX_ATTEMPTS = 5;
/** A hard cap on attempts of one download, progress or not: a link that drops every few MiB still ends. */
export const MAX_ATTEMPTS_TOTAL = 50;
/** An attempt that kept at least this many new bytes made progress: the count of failures starts again. */
export const PROGRESS_BYTES = 1024 * 1024;

/** A failure another attempt may cure. `retryAfterMs` is the server's wish (Retry-After), already capped. */
export class RetryableError extends AgentError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(code, message);
  }
}

/** HTTP statuses worth another attempt: 408 Request Timeout, 429 Too Many Requests and every 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/**
 * Transport errors (Node's `code`) that a later attempt may not meet: resets, refusals, timeouts, unreachable
 * networks, a DNS server that did not answer (EAI_AGAIN; a name that does not exist, ENOTFOUND, is final), and
 * a response the HTTP parser could not read (HPE_*: a proxy or a server that broke off mid-message).
 */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'UND_ERR_SOCKET',
]);

/** Whether `err` (from an attempt) is worth another attempt. Unknown errors are not: they are bugs or final. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableError) return true;
  if (err instanceof AgentError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return TRANSIENT_CODES.has(code) || code.startsWith('HPE_');
}

/**
 * Retry-After (RFC 9110 10.2.3) as a delay in ms from `wallNow`: delta-seconds or an HTTP date; undefined when
 * absent or unreadable; never negative; capped at RETRY_AFTER_MAX_MS.
 */
export function parseRetryAfter(value: string | undefined, wallNow: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    // an HTTP date names its day and month (IMF-fixdate and the two obsolete forms); Date.parse alone takes '-5'
    const at = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : NaN;
    if (Number.isNaN(at)) return undefined;
    ms = at - wallNow;
  }
  return Math.min(Math.max(0, ms), RETRY_AFTER_MAX_MS);
}

/**
 * The wait before the next attempt after `failures` (>= 1) failures in a row: "equal jitter" over an exponential
 * ceiling, i.e. uniformly in [ceiling/2, ceiling), so a herd of agents spreads out yet nobody retries at once.
 */
export function backoffDelay(failures: number, random: () => number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
