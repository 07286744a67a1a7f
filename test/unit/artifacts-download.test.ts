// agent/artifacts/download.ts against an in-test HTTP origin on loopback (test/helpers/http-origin.ts): Range and
// ETag, a drop mid-body (resumed: proven by the origin's log of Range requests and bytes sent), a lying
// Content-Length, 429 + Retry-After, 503, 404, content that changes between attempts, 416, an idle timeout, abort,
// progress events and the atomic publish. Waits between attempts go through an injected sleep that only records.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { download, type DownloadOptions, type DownloadProgress } from '../../agent/artifacts/download.js';
import { AgentError } from '../../agent/errors.js';
import { HttpOrigin, sha256, sha512 } from '../helpers/http-origin.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const MiB = 1024 * 1024;
const CONTENT = randomBytes(4 * MiB);

let dir: string;
let origin: HttpOrigin;
let logger: RecordingLogger;
let sleeps: number[];

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-'));
  origin = await HttpOrigin.start(CONTENT);
  logger = new RecordingLogger();
  sleeps = [];
});

afterEach(async () => {
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

function options(over: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    url: origin.url(),
    expected: { algorithm: 'sha256', digest: sha256(CONTENT) },
    dest: path.join(dir, 'out.bin'),
    logger,
    random: () => 0.5,
    sleep: async (ms) => void sleeps.push(ms),
    ...over,
  };
}

/** The error download() rejected with (fails the test when it resolved). */
async function failure(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

const leftovers = (): string[] => readdirSync(dir).filter((n) => n !== 'out.bin');

describe('download: the plain case', () => {
  it('(a) fetches, verifies sha256 while streaming, publishes atomically and reports the result', async () => {
    const events: DownloadProgress[] = [];
    const r = await download(options({ onProgress: (p) => events.push(p) }));
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(r).toMatchObject({
      algorithm: 'sha256',
      digest: sha256(CONTENT),
      bytes: CONTENT.length,
      attempts: 1,
      resumedBytes: 0,
      receivedBytes: CONTENT.length,
    });
    expect(r.seconds).toBeGreaterThan(0);
    expect(leftovers()).toEqual([]);
    expect(origin.log).toHaveLength(1);
    expect(origin.log[0]!.headers.range).toBeUndefined();
    expect(origin.log[0]!.headers['accept-encoding']).toBe('identity');
    const states = events.map((e) => e.state).filter((s, i, a) => s !== a[i - 1]);
    expect(states).toEqual(['connecting', 'downloading', 'verifying', 'done']);
    expect(events.at(-1)).toMatchObject({ state: 'done', bytes: CONTENT.length, total: CONTENT.length });
    expect(logger.lines.some((l) => l.includes(`fetch ${origin.url()}: attempt 1: HTTP 200`) && l.includes('sha256 ok'))).toBe(true);
  });

  it('verifies sha512 (upper-case hex accepted) and replaces an existing destination', async () => {
    writeFileSync(path.join(dir, 'out.bin'), 'old');
    const r = await download(options({ expected: { algorithm: 'sha512', digest: sha512(CONTENT).toUpperCase() } }));
    expect(r.digest).toBe(sha512(CONTENT));
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
  });

  it('a missing destination directory fails naming the URL and the partial file', async () => {
    const err = await failure(download(options({ dest: path.join(dir, 'no', 'out.bin') })));
    expect(err.code).toBe('E_FETCH_WRITE');
    expect(err.message).toMatch(new RegExp(`^${origin.url().replace(/[.]/g, '\\.')}: cannot create .*/no/out\\.bin\\.partial-\\d+-[0-9a-f]{12}: .*ENOENT`));
    expect(origin.log).toHaveLength(0);
  });

  it('refuses a bad digest or URL before any request', async () => {
    expect((await failure(download(options({ expected: { algorithm: 'sha256', digest: 'abc' } })))).code).toBe('E_FETCH_DIGEST');
    expect((await failure(download(options({ url: 'ftp://127.0.0.1/x' })))).code).toBe('E_FETCH_URL');
    expect(origin.log).toHaveLength(0);
    expect(leftovers()).toEqual([]);
  });
});

describe('download: resume and retry', () => {
  it('(b) a drop mid-body resumes with Range + If-Range: only the missing bytes are sent again', async () => {
    origin.plan({ kind: 'drop', bytes: 3 * MiB });
    const events: DownloadProgress[] = [];
    const r = await download(options({ onProgress: (p) => events.push(p) }));
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log.map((l) => [l.status, l.headers.range, l.headers['if-range']])).toEqual([
      [200, undefined, undefined],
      [206, `bytes=${3 * MiB}-`, origin.etag],
    ]);
    expect(origin.totalSent()).toBe(CONTENT.length); // nothing sent twice
    expect(r).toMatchObject({ attempts: 2, resumedBytes: 3 * MiB, receivedBytes: CONTENT.length });
    expect(sleeps).toEqual([750]); // first backoff: ceiling 1 s, equal jitter with random() = 0.5
    expect(events.some((e) => e.state === 'retrying' && e.retryInMs === 750 && e.bytes === 3 * MiB)).toBe(true);
    expect(logger.lines.some((l) => l.includes('attempt 1: HTTP 200') && l.includes('will resume at byte 3145728'))).toBe(true);
    expect(logger.lines.some((l) => l.includes('attempt 2: HTTP 206 resuming at byte 3145728'))).toBe(true);
  });

  it('If-Range names Last-Modified when the ETag is weak, and is left out when there is no validator (the digest still guards)', async () => {
    origin.validators = 'weak-etag+date';
    origin.plan({ kind: 'drop', bytes: MiB });
    await download(options());
    origin.validators = 'none';
    origin.plan({ kind: 'drop', bytes: 2 * MiB });
    const r = await download(options());
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log.map((l) => [l.status, l.headers.range, l.headers['if-range']])).toEqual([
      [200, undefined, undefined],
      [206, `bytes=${MiB}-`, origin.lastModified],
      [200, undefined, undefined],
      [206, `bytes=${2 * MiB}-`, undefined],
    ]);
  });

  it('drops that each keep >= 1 MiB do not use up maxAttempts; the hash state carries across three resumes', async () => {
    origin.plan({ kind: 'drop', bytes: MiB }, { kind: 'drop', bytes: MiB }, { kind: 'drop', bytes: MiB });
    const r = await download(options({ maxAttempts: 2 }));
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log.map((l) => l.headers.range)).toEqual([undefined, `bytes=${MiB}-`, `bytes=${2 * MiB}-`, `bytes=${3 * MiB}-`]);
    expect(r).toMatchObject({ attempts: 4, resumedBytes: 6 * MiB, receivedBytes: CONTENT.length });
    expect(sleeps).toEqual([750, 750, 750]); // progress starts the backoff again too
  });

  it('drops that keep less than 1 MiB count as failures in a row', async () => {
    origin.plan({ kind: 'drop', bytes: 1000 }, { kind: 'drop', bytes: 1000 });
    const err = await failure(download(options({ maxAttempts: 2 })));
    expect(err.code).toBe('E_FETCH_SHORT_BODY');
    expect(err.message).toMatch(/body ended after 1000 of \d+ bytes .*\(gave up after 2 attempts\)$/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('(c) a body shorter than its Content-Length is a retryable transport error (then resumed)', async () => {
    origin.plan({ kind: 'short', bytes: MiB });
    const r = await download(options());
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(r.attempts).toBe(2);
    expect(origin.log[1]!.headers.range).toBe(`bytes=${MiB}-`);
    expect(logger.lines.some((l) => l.includes(`body ended after ${MiB} of ${CONTENT.length} bytes`))).toBe(true);
  });

  it('(d) 429 with Retry-After in seconds or as an HTTP date: the wait is the server’s (capped)', async () => {
    const wall = Date.parse('2026-12-07T08:00:00Z');
    origin.plan(
      { kind: 'status', status: 429, headers: { 'Retry-After': '7' } },
      { kind: 'status', status: 429, headers: { 'Retry-After': new Date(wall + 5000).toUTCString() } },
      { kind: 'status', status: 429, headers: { 'Retry-After': '86400' } },
    );
    const events: DownloadProgress[] = [];
    const r = await download(options({ wallNow: () => wall, onProgress: (e) => events.push(e) }));
    expect(r.attempts).toBe(4);
    expect(sleeps).toEqual([7000, 5000, 120_000]);
    expect(events.find((e) => e.state === 'retrying')).toMatchObject({ attempt: 1, reason: 'HTTP 429 Too Many Requests', retryInMs: 7000 });
  });

  it('(d) 503 then 200; 408 and 500 too, with growing jittered backoff', async () => {
    origin.plan({ kind: 'status', status: 503 }, { kind: 'status', status: 408 }, { kind: 'status', status: 500 });
    const r = await download(options({ random: () => 0 }));
    expect(r.attempts).toBe(4);
    expect(sleeps).toEqual([500, 1000, 2000]);
    expect(logger.lines.filter((l) => l.includes(': retrying'))).toHaveLength(3);
  });

  it('gives up after maxAttempts failures in a row, naming the URL and the last status; no partial left', async () => {
    origin.plan(...Array.from({ length: 5 }, () => ({ kind: 'status' as const, status: 502 })));
    const err = await failure(download(options({ maxAttempts: 3 })));
    expect(err.code).toBe('E_FETCH_HTTP');
    expect(err.message).toBe(`${origin.url()}: HTTP 502 Bad Gateway (gave up after 3 attempts)`);
    expect(origin.log).toHaveLength(3);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('(e) 404 fails at once with the URL and the status, no retry, the old destination kept', async () => {
    writeFileSync(path.join(dir, 'out.bin'), 'old');
    origin.plan({ kind: 'status', status: 404 });
    const err = await failure(download(options()));
    expect(err.code).toBe('E_FETCH_HTTP');
    expect(err.message).toBe(`${origin.url()}: HTTP 404 Not Found`);
    expect(origin.log).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(readdirSync(dir)).toEqual(['out.bin']);
    expect(readFileSync(path.join(dir, 'out.bin'), 'utf8')).toBe('old');
    expect(logger.lines.some((l) => l.includes('attempt 1: HTTP 404') && l.includes('not retried'))).toBe(true);
  });

  it('an idle body (no byte for idleTimeoutMs) is retried and resumed', async () => {
    origin.plan({ kind: 'stall', bytes: 2 * MiB });
    const r = await download(options({ idleTimeoutMs: 300 }));
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log[1]!.headers.range).toBe(`bytes=${2 * MiB}-`);
    expect(logger.lines.some((l) => l.includes('no data for 0.3 s'))).toBe(true);
  });

  it('a refused connection is retried, then fails naming the URL', async () => {
    const url = origin.url();
    await origin.close();
    const err = await failure(download(options({ url, maxAttempts: 2 })));
    expect(err.code).toBe('E_FETCH_NETWORK');
    expect(err.message).toMatch(new RegExp(`^${url.replace(/[.]/g, '\\.')}: connect ECONNREFUSED .*gave up after 2 attempts`));
    expect(sleeps).toHaveLength(1);
    origin = await HttpOrigin.start(CONTENT); // for afterEach
  });
});

describe('download: content that changes upstream', () => {
  it('(f) a wrong digest after a complete body: one retry from byte 0 bypassing caches, then both digests', async () => {
    const other = randomBytes(MiB);
    origin.setContent(other);
    const events: DownloadProgress[] = [];
    const err = await failure(download(options({ onProgress: (e) => events.push(e) })));
    expect(err.code).toBe('E_FETCH_HASH_MISMATCH');
    expect(err.message).toBe(`${origin.url()}: content changed upstream: expected sha256 ${sha256(CONTENT)}, got ${sha256(other)} (${other.length} bytes)`);
    expect(origin.log).toHaveLength(2);
    expect(origin.log[1]!.headers.range).toBeUndefined();
    expect(origin.log[1]!.headers['cache-control']).toBe('no-cache');
    expect(events.map((e) => e.state).filter((st, i, a) => st !== a[i - 1])).toEqual([
      'connecting',
      'downloading',
      'verifying',
      'retrying',
      'connecting',
      'downloading',
      'verifying',
    ]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('(f) a wrong digest once (a stale copy), right the second time: succeeds', async () => {
    const good = CONTENT;
    origin.setContent(randomBytes(1000));
    const r = await download(options({ onProgress: (e) => e.state === 'retrying' && origin.setContent(good) }));
    expect(r.attempts).toBe(2);
    expect(readFileSync(r.path).equals(good)).toBe(true);
  });

  it('(f) content replaced between a drop and the resume: If-Range gets a 200 and the download restarts from byte 0', async () => {
    const next = randomBytes(2 * MiB);
    const oldEtag = origin.etag;
    origin.plan({ kind: 'drop', bytes: MiB });
    const r = await download(
      options({ expected: { algorithm: 'sha256', digest: sha256(next) }, onProgress: (e) => e.state === 'retrying' && origin.setContent(next) }),
    );
    expect(readFileSync(r.path).equals(next)).toBe(true);
    expect(origin.log.map((l) => [l.status, l.headers.range, l.headers['if-range']])).toEqual([
      [200, undefined, undefined],
      [200, `bytes=${MiB}-`, oldEtag],
    ]);
    expect(r.resumedBytes).toBe(0);
  });

  it('a server that ignores Range (200 to a Range request) is read again from byte 0', async () => {
    origin.plan({ kind: 'drop', bytes: MiB }, { kind: 'ignore-range' });
    const r = await download(options());
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log[1]!.status).toBe(200);
    expect(r).toMatchObject({ attempts: 2, resumedBytes: 0, receivedBytes: MiB + CONTENT.length });
  });

  it('416 to a Range request falls back to byte 0 at once', async () => {
    origin.plan({ kind: 'drop', bytes: MiB }, { kind: 'status', status: 416 });
    const r = await download(options());
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log.map((l) => [l.status, l.headers.range])).toEqual([
      [200, undefined],
      [416, `bytes=${MiB}-`],
      [200, undefined],
    ]);
    expect(sleeps).toEqual([750]); // the drop waits; the 416 goes on at once
  });
});

describe('download: abort and limits', () => {
  it('an AbortSignal stops a stalled body at once (not after the 60 s idle timeout) and removes the partial', async () => {
    origin.plan({ kind: 'stall', bytes: MiB });
    const ctl = new AbortController();
    const p = download(options({ signal: ctl.signal, onProgress: (e) => e.state === 'downloading' && ctl.abort() }));
    const err = await failure(p);
    expect(err.code).toBe('E_FETCH_ABORTED');
    expect(err.message).toBe(`${origin.url()}: download aborted`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an abort during the wait between attempts ends the download', async () => {
    origin.plan({ kind: 'status', status: 503 });
    const ctl = new AbortController();
    const err = await failure(download(options({ signal: ctl.signal, sleep: async () => ctl.abort() })));
    expect(err.code).toBe('E_FETCH_ABORTED');
    expect(origin.log).toHaveLength(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('maxBytes: a larger Content-Length fails before the body', async () => {
    const err = await failure(download(options({ maxBytes: MiB })));
    expect(err.code).toBe('E_FETCH_TOO_LARGE');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a request header HTTP does not allow fails at once, naming the URL', async () => {
    const err = await failure(download(options({ headers: { 'X-Bad': 'a\nb' } })));
    expect(err.code).toBe('E_FETCH_HEADERS');
    expect(err.message).toMatch(new RegExp(`^${origin.url().replace(/[.]/g, '\\.')}: cannot send the request: `));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the caller’s partialPath is used and removed on failure', async () => {
    origin.plan({ kind: 'status', status: 403 });
    const partialPath = path.join(dir, '.partial-key');
    await failure(download(options({ partialPath })));
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('download: redirects', () => {
  it('follows a redirect (each attempt starts again at the URL asked for) and logs where the content came from', async () => {
    origin.plan(
      { kind: 'status', status: 302, headers: { Location: '/elsewhere.bin' } },
      { kind: 'drop', bytes: MiB },
      { kind: 'status', status: 301, headers: { Location: '/elsewhere.bin' } },
    );
    const r = await download(options({ headers: { Authorization: 'Bearer t' } }));
    expect(readFileSync(r.path).equals(CONTENT)).toBe(true);
    expect(origin.log.map((l) => [l.url, l.status, l.headers.range, l.headers.authorization])).toEqual([
      ['/file.bin', 302, undefined, 'Bearer t'],
      ['/elsewhere.bin', 200, undefined, 'Bearer t'],
      ['/file.bin', 301, `bytes=${MiB}-`, 'Bearer t'],
      ['/elsewhere.bin', 206, `bytes=${MiB}-`, 'Bearer t'],
    ]);
    expect(r.attempts).toBe(2);
    expect(logger.lines.some((l) => l.includes(`attempt 2: HTTP 206 from ${origin.url('/elsewhere.bin')} resuming at byte ${MiB}`))).toBe(true);
  });

  it('does not send the caller’s headers to another origin', async () => {
    const mirror = await HttpOrigin.start(CONTENT);
    try {
      origin.plan({ kind: 'status', status: 307, headers: { Location: mirror.url('/m.bin') } });
      await download(options({ headers: { Authorization: 'Bearer t' } }));
      expect(origin.log[0]!.headers.authorization).toBe('Bearer t');
      expect(mirror.log.map((l) => [l.url, l.headers.authorization])).toEqual([['/m.bin', undefined]]);
    } finally {
      await mirror.close();
    }
  });

  it('a redirect loop fails after MAX_REDIRECTS, without retries', async () => {
    origin.plan(...Array.from({ length: 20 }, () => ({ kind: 'status' as const, status: 302, headers: { Location: '/file.bin' } })));
    const err = await failure(download(options()));
    expect(err.code).toBe('E_FETCH_REDIRECT');
    expect(err.message).toBe(`${origin.url()}: more than 10 redirects (last to /file.bin)`);
    expect(origin.log).toHaveLength(11);
  });
});
