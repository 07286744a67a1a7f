// The fetch retry policy (agent/artifacts/retry.ts) and progress meter (agent/artifacts/progress.ts) as pure
// functions: Retry-After parsing and its cap, the jittered backoff's bounds, which errors are transient, and
// the progress rate and throttling on a fake clock.
import { describe, expect, it } from 'vitest';
import { ProgressMeter, PROGRESS_INTERVAL_MS, type DownloadProgress } from '../../agent/artifacts/progress.js';
import {
  BACKOFF_MAX_MS,
  RETRY_AFTER_MAX_MS,
  RetryableError,
  backoffDelay,
  isRetryable,
  isRetryableStatus,
  parseRetryAfter,
} from '../../agent/artifacts/retry.js';
import { AgentError } from '../../agent/errors.js';

describe('retry policy', () => {
  const now = Date.parse('2026-12-07T08:00:00Z');

  it('Retry-After: delta seconds, an HTTP date, a past date (0), garbage (none), a cap', () => {
    expect(parseRetryAfter('12', now)).toBe(12_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Mon, 07 Dec 2026 08:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Mon, 07 Dec 2026 07:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('999999', now)).toBe(RETRY_AFTER_MAX_MS);
  });

  it('backoff doubles per failure within [ceiling/2, ceiling) and stops growing at the cap', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, () => 0))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(1, () => 0.999999)).toBe(1000);
    expect(backoffDelay(40, () => 0.999999)).toBe(BACKOFF_MAX_MS);
    expect(backoffDelay(40, () => 0)).toBe(BACKOFF_MAX_MS / 2);
  });

  it('retries 408, 429 and 5xx only; transient socket errors but not unknown errors or final AgentErrors', () => {
    expect([408, 429, 500, 503, 599].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 410, 416, 304, 600].some(isRetryableStatus)).toBe(false);
    const sys = (code: string): Error => Object.assign(new Error(code), { code });
    expect(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN', 'HPE_INVALID_CHUNK_SIZE'].every((c) => isRetryable(sys(c)))).toBe(true);
    expect(['ENOTFOUND', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ENOSPC'].some((c) => isRetryable(sys(c)))).toBe(false);
    expect(isRetryable(new Error('bug'))).toBe(false);
    expect(isRetryable(new RetryableError('E_FETCH_HTTP', 'HTTP 503'))).toBe(true);
    expect(isRetryable(new AgentError('E_FETCH_HTTP', 'HTTP 404'))).toBe(false);
  });
});

describe('progress meter', () => {
  it('reports state changes at once, bytes at most every PROGRESS_INTERVAL_MS, and a rate over recent time', () => {
    let t = 0;
    const seen: DownloadProgress[] = [];
    const m = new ProgressMeter(
      (p) => seen.push(p),
      () => t,
    );
    m.enter('connecting', 1);
    m.setTotal(10_000);
    m.enter('downloading', 1);
    t = 10;
    m.update(100); // too soon after the state change
    expect(seen.map((p) => p.state)).toEqual(['connecting', 'downloading']);
    t = PROGRESS_INTERVAL_MS + 10;
    m.update(1000);
    t = 1000;
    m.update(4000);
    expect(seen.slice(2).map((p) => [p.bytes, p.rate])).toEqual([
      [1000, undefined], // not yet 0.5 s of samples
      [4000, 4000], // (4000 - 0) bytes over 1 s
    ]);
    expect(seen.at(-1)).toMatchObject({ total: 10_000, attempt: 1 });
    m.enter('retrying', 1, { reason: 'HTTP 503', retryInMs: 500 });
    expect(seen.at(-1)).toMatchObject({ state: 'retrying', reason: 'HTTP 503', retryInMs: 500, bytes: 4000 });
  });
});
