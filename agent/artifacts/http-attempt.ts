// One attempt of a download: connect (connect.ts), send GET (with Range + If-Range when part of the content is
// kept), follow redirects, read the status, and stream the body into the partial file while hashing it. It
// reports what happened (AttemptReport) and throws on any failure; whether to try again is download.ts's choice,
// by the error's type (retry.ts). The body state it continues from outlives the attempt (ContentState).

import http from 'node:http';
import type net from 'node:net';
import { AgentError, errorMessage } from '../errors.js';
import { connect } from './connect.js';
import type { StreamHash } from './hashing.js';
import type { PartialFile } from './partial-file.js';
import type { ProgressMeter } from './progress.js';
import { proxyFor, portOf, unbracket, type ProxyEnv } from './proxy.js';
import { RetryableError, isRetryableStatus, parseRetryAfter } from './retry.js';

/** Redirects one attempt follows before it fails (curl's --max-redirs default is 50; browsers stop near 20). */
export const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface AttemptInput {
  url: URL;
  env: ProxyEnv;
  /** Extra request headers (e.g. Authorization); not sent on after a redirect to another origin. */
  headers: Record<string, string>;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  ca?: string | Buffer | Array<string | Buffer>;
  signal?: AbortSignal;
  /** Ask caches on the way for a fresh copy (after a hash mismatch). */
  noCache: boolean;
  maxBytes?: number;
  wallNow: () => number;
}

/** What one download keeps across its attempts: the partial file, the hash of its content, what the server said. */
export interface ContentState {
  partial: PartialFile;
  hash: StreamHash;
  /** A strong ETag, else Last-Modified, for If-Range. */
  validator?: string;
  total?: number;
  /** The server said Accept-Ranges: none. */
  rangesRefused: boolean;
}

/** What an attempt did, filled in as it goes (so a failed attempt can be logged too). */
export interface AttemptReport {
  status?: number;
  /** The URL that answered (after redirects). */
  finalUrl: string;
  /** The byte this attempt asked to start at (Range), 0 for a whole-body request. */
  rangeFrom: number;
  /** The byte the body started at (the Range start on a 206, 0 on a 200). */
  bodyFrom: number;
  /** Body bytes received in this attempt. */
  received: number;
}

interface Exchange {
  res: http.IncomingMessage;
  /** Stops the idle timer and the abort listener and closes the connection. */
  close(): void;
}

/** Runs one attempt; on return the whole content is in `state` (not yet verified). */
export async function runAttempt(input: AttemptInput, state: ContentState, meter: ProgressMeter, report: AttemptReport): Promise<void> {
  if (state.rangesRefused && state.hash.bytes > 0) await restart(state);
  report.rangeFrom = state.hash.bytes;
  const ex = await follow(input, state, report);
  try {
    await acceptStatus(ex.res, input, state, report);
    meter.setTotal(state.total);
    meter.enter('downloading', meter.currentAttempt, {});
    await streamBody(ex.res, input, state, meter, report);
  } finally {
    ex.close();
  }
}

async function restart(state: ContentState): Promise<void> {
  await state.partial.restart();
  state.hash.reset();
}

/** Sends the request, following redirects; returns the first response that is not a redirect. */
async function follow(input: AttemptInput, state: ContentState, report: AttemptReport): Promise<Exchange> {
  let url = input.url;
  for (let hop = 0; ; hop++) {
    report.finalUrl = url.href;
    const ex = await send(url, input, state, url.origin === input.url.origin);
    const status = ex.res.statusCode ?? 0;
    const location = ex.res.headers.location;
    if (!REDIRECTS.has(status) || location === undefined) return ex;
    ex.close();
    if (hop >= MAX_REDIRECTS) throw new AgentError('E_FETCH_REDIRECT', `more than ${MAX_REDIRECTS} redirects (last to ${location})`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new AgentError('E_FETCH_REDIRECT', `redirect ${status} to an unreadable Location '${location}'`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new AgentError('E_FETCH_REDIRECT', `redirect ${status} to unsupported ${next.href}`);
    url = next;
  }
}

function requestHeaders(url: URL, input: AttemptInput, state: ContentState, sameOrigin: boolean): Record<string, string> {
  const headers: Record<string, string> = { ...(sameOrigin ? input.headers : {}) };
  headers['Host'] = url.host;
  headers['Accept-Encoding'] = 'identity'; // the digest is of the bytes as stored, never of a re-encoding
  headers['Connection'] = 'close';
  headers['User-Agent'] ??= 'bbagent';
  const from = state.hash.bytes;
  if (from > 0) {
    headers['Range'] = `bytes=${from}-`;
    if (state.validator !== undefined) headers['If-Range'] = state.validator;
  }
  if (input.noCache) {
    headers['Cache-Control'] = 'no-cache';
    headers['Pragma'] = 'no-cache';
  }
  return headers;
}

/** One request/response exchange on a fresh connection, watched by the idle timeout and the abort signal. */
async function send(url: URL, input: AttemptInput, state: ContentState, sameOrigin: boolean): Promise<Exchange> {
  const proxy = proxyFor(url, input.env);
  const conn = await connect(url, proxy, { connectTimeoutMs: input.connectTimeoutMs, signal: input.signal, ca: input.ca });
  const headers = requestHeaders(url, input, state, sameOrigin);
  if (conn.absoluteForm && proxy?.authorization !== undefined) headers['Proxy-Authorization'] = proxy.authorization;
  const target = conn.absoluteForm ? `${url.origin}${url.pathname}${url.search}` : `${url.pathname}${url.search}`;
  const socket: net.Socket = conn.socket;
  let req: http.ClientRequest;
  try {
    req = http.request({ host: unbracket(url.hostname), port: portOf(url), path: target, method: 'GET', headers, createConnection: () => socket });
  } catch (err) {
    socket.destroy(); // e.g. a caller's header with a character HTTP does not allow
    throw new AgentError('E_FETCH_HEADERS', `cannot send the request: ${errorMessage(err)}`);
  }
  let res: http.IncomingMessage | undefined;
  const fail = (err: Error): void => void (res ?? req).destroy(err);
  const onAbort = (): void => fail(new AgentError('E_FETCH_ABORTED', 'aborted'));
  socket.setTimeout(input.idleTimeoutMs, () => fail(new RetryableError('E_FETCH_TIMEOUT', `no data for ${input.idleTimeoutMs / 1000} s`)));
  input.signal?.addEventListener('abort', onAbort, { once: true });
  const close = (): void => {
    input.signal?.removeEventListener('abort', onAbort);
    socket.setTimeout(0);
    socket.destroy();
  };
  req.on('error', () => {}); // a late error (after the response) must not crash the process; the body loop sees it
  try {
    res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.end();
      if (input.signal?.aborted) onAbort();
    });
  } catch (err) {
    close();
    throw err;
  }
  res.on('error', () => {}); // errors reach the body loop through its iterator
  return { res, close };
}

/** Decides from the status whether the body is the content (from 0 or from the kept bytes) or a failure. */
async function acceptStatus(res: http.IncomingMessage, input: AttemptInput, state: ContentState, report: AttemptReport): Promise<void> {
  const status = res.statusCode ?? 0;
  report.status = status;
  const asked = report.rangeFrom > 0;
  if (status === 200) {
    if (asked) await restart(state); // the server sends the whole content (If-Range failed, or no ranges)
    remember(res, state);
    state.total = contentLength(res);
  } else if (status === 206 && asked) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    if (range === null || Number(range[1]) !== report.rangeFrom) {
      await restart(state);
      throw new RetryableError('E_FETCH_RANGE', `206 with Content-Range '${res.headers['content-range'] ?? ''}' for bytes=${report.rangeFrom}-`);
    }
    if (range[3] !== '*') state.total = Number(range[3]);
    if (res.headers.etag !== undefined) remember(res, state);
    report.bodyFrom = report.rangeFrom;
  } else if (status === 416 && asked) {
    await restart(state);
    throw new RetryableError('E_FETCH_RANGE', `HTTP 416 for bytes=${report.rangeFrom}-: starting again from byte 0`, 0);
  } else if (isRetryableStatus(status)) {
    throw new RetryableError(
      'E_FETCH_HTTP',
      `HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd(),
      parseRetryAfter(headerOf(res, 'retry-after'), input.wallNow()),
    );
  } else {
    throw new AgentError('E_FETCH_HTTP', `HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd());
  }
  if (input.maxBytes !== undefined && state.total !== undefined && state.total > input.maxBytes) {
    throw new AgentError('E_FETCH_TOO_LARGE', `the content is ${state.total} bytes, more than the limit of ${input.maxBytes}`);
  }
}

function headerOf(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The validator a resume may name in If-Range: a strong ETag, else Last-Modified (weak ETags are not allowed there). */
function remember(res: http.IncomingMessage, state: ContentState): void {
  const etag = res.headers.etag;
  state.validator = etag !== undefined && !etag.startsWith('W/') ? etag : res.headers['last-modified'];
  state.rangesRefused = res.headers['accept-ranges']?.trim().toLowerCase() === 'none';
}

function contentLength(res: http.IncomingMessage): number | undefined {
  const v = res.headers['content-length'];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Appends the body to the partial file and the hash; a body that ends early is a retryable short body. */
async function streamBody(res: http.IncomingMessage, input: AttemptInput, state: ContentState, meter: ProgressMeter, report: AttemptReport): Promise<void> {
  const expected = contentLength(res);
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      state.hash.update(chunk);
      report.received += chunk.length;
      await state.partial.append(chunk);
      meter.update(state.hash.bytes);
      if (input.maxBytes !== undefined && state.hash.bytes > input.maxBytes) {
        throw new AgentError('E_FETCH_TOO_LARGE', `the content is more than the limit of ${input.maxBytes} bytes`);
      }
    }
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw shortBody(report.received, expected, errorMessage(err));
  }
  if (expected !== undefined && report.received < expected) throw shortBody(report.received, expected, 'the connection closed');
}

function shortBody(received: number, expected: number | undefined, why: string): RetryableError {
  const of = expected === undefined ? '' : ` of ${expected}`;
  return new RetryableError('E_FETCH_SHORT_BODY', `body ended after ${received}${of} bytes (${why})`);
}
