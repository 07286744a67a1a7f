// Bounds permessage-deflate on the msgpack WebSocket without losing the link: a message that inflates past the
// message limit is inflated to its end but not kept, and ws delivers a short notice in its place.
//
// Why a patch: ws inflates a compressed message whole and closes the connection (1009) once it passes maxPayload,
// ending every running step with it; its receiver cannot skip one message. Written against ws 8.23.0
// (lib/receiver.js, lib/permessage-deflate.js), whose Receiver calls the negotiated extension's
// `decompress(data, fin, callback)` once per frame of a compressed message, reads no further frame until the
// callback, adds up what the callbacks returned (closing with 1009 past maxPayload) and delivers that as one
// message, in order. So this file replaces `decompress` on the connection's extension instance with an inflater of
// its own, which mirrors ws's (one zlib InflateRaw per connection with the negotiated window, the 00 00 ff ff
// trailer after each message, a reset after each message without context takeover) but keeps at most the limit:
// past it, it goes on inflating to keep the compression context that later messages refer to, only reading the
// message's `op` and `seq_number` as the bytes pass (MessageScanner), and answers ws with a notice: a buffer that
// starts with this process's random tag, which the master cannot forge. The notice travels in the message stream
// itself, so it cannot be matched with the wrong message. Inflating costs CPU however little is kept: a message
// that inflates past MAX_INFLATED_MESSAGE_BYTES closes the link with 1009, as ws did at the limit.
// ws's own InflateRaw is then never created, nor its concurrency limiter used for inflation (it guards servers
// with thousands of connections; the agent has one per worker). Memory: the kept chunks (up to the limit), then
// one zlib output chunk at a time, dropped as soon as the scanner saw it.
// checkWsInternals() runs ws's own Receiver and PerMessageDeflate against what this relies on, before the first
// connection that offers deflate: a ws that changed fails the start with E_WS_INTERNALS instead of misbehaving.

import { randomBytes } from 'node:crypto';
import { constants as zlibConstants, createInflateRaw, type InflateRaw } from 'node:zlib';
import type WebSocket from 'ws';
import * as wsModule from 'ws';
import { AgentError } from '../../errors.js';
import { MessageScanner } from './scan.js';

/** ws's extension name, and its key in the connection's extensions. */
const EXTENSION = 'permessage-deflate';
/** RFC 7692 7.2.2: the end of each message's compressed data, which the sender leaves out. */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** zlib output chunk. ws uses zlib's 16 KiB; a deflate bomb costs a quarter of the thread-pool round trips. */
export const INFLATE_CHUNK_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

const NOTICE_TAG = randomBytes(16);

/** What the session learns of a message that inflated past the limit. */
export interface InflateNotice {
  /** Its size once inflated. */
  bytes: number;
  op: string | undefined;
  seq: number | undefined;
}

/** The notice ws delivers instead of a message over the limit; undefined for every other message. */
export function readInflateNotice(data: Uint8Array): InflateNotice | undefined {
  if (data.length <= NOTICE_TAG.length || !NOTICE_TAG.equals(data.subarray(0, NOTICE_TAG.length))) return undefined;
  const n = JSON.parse(Buffer.from(data.subarray(NOTICE_TAG.length)).toString('utf8')) as { bytes: number; op?: string; seq?: number };
  return { bytes: n.bytes, op: n.op, seq: n.seq };
}

function notice(n: InflateNotice): Buffer {
  return Buffer.concat([NOTICE_TAG, Buffer.from(JSON.stringify(n), 'utf8')]);
}

/** The link cannot go on: the compressed stream is broken (1007) or a message inflates past the ceiling (1009). */
export class InflateError extends AgentError {
  constructor(
    readonly closeCode: 1007 | 1009,
    message: string,
  ) {
    super('E_MSGPACK_INFLATE', message);
  }
}

export interface InflateLimits {
  /** A message up to this many bytes (inflated) is delivered; a bigger one becomes a notice. */
  keepBytes: number;
  /** A message that inflates past this closes the link. */
  maxBytes: number;
}

type Callback = (err: Error | null, result?: Buffer) => void;

/** What this file uses of ws's PerMessageDeflate instance. */
interface DeflateExtension {
  params: Record<string, unknown> | null;
  decompress(data: Buffer, fin: boolean, callback: Callback): void;
  cleanup(): void;
}

/** The ws internals checkWsInternals() tries (injected by its test). */
export interface WsInternals {
  Receiver: new (options: Record<string, unknown>) => NodeJS.WritableStream & { write(chunk: Buffer): boolean };
  PerMessageDeflate: new (options: Record<string, unknown>) => DeflateExtension & { accept(offers: Record<string, unknown[]>[]): unknown };
}

// the named exports (ESM) or the statics of the exported class (CommonJS, the bundle)
const wsLib = wsModule as unknown as WsInternals;

/** One connection's inflater, called by ws's Receiver one frame at a time. */
class BoundedInflater {
  private zlib: InflateRaw | undefined;
  /** The current message's callback, until it is called. */
  private pending: Callback | undefined;
  /** The current message: inflated bytes so far, and those kept (none once it passed keepBytes). */
  private total = 0;
  private kept: Buffer[] = [];
  /** Set once the current message passed keepBytes: reads its op and seq_number as it goes by. */
  private scanner: MessageScanner | undefined;
  private failure: InflateError | undefined;
  private closed = false;

  constructor(
    private readonly windowBits: number,
    private readonly noContextTakeover: boolean,
    private readonly limits: InflateLimits,
    /** Ends the link, before ws learns of the error (ws itself would close without a code). */
    private readonly fatal: (err: InflateError) => void,
  ) {}

  decompress(data: Buffer, fin: boolean, callback: Callback): void {
    if (this.closed) return;
    const z = (this.zlib ??= this.open());
    let called = false;
    const done: Callback = (err, result) => {
      if (called) return;
      called = true;
      if (this.pending === done) this.pending = undefined;
      if (err) this.fatal(err as InflateError);
      callback(err, result);
    };
    this.pending = done;
    z.write(data);
    if (fin) z.write(TRAILER);
    z.flush(() => {
      // answered already (an error), or the link is gone
      if (this.pending !== done) return;
      if (this.failure) {
        this.discard(z);
        done(this.failure);
        return;
      }
      let result: Buffer = EMPTY;
      if (fin) {
        result = this.scanner ? notice({ bytes: this.total, op: this.scanner.op, seq: this.scanner.seq }) : Buffer.concat(this.kept);
        this.total = 0;
        this.kept = [];
        this.scanner = undefined;
      }
      // as ws: a final deflate block ended the stream (the next message gets a new one); no context takeover resets
      if (z.readableEnded) this.discard(z);
      else if (fin && this.noContextTakeover) z.reset();
      done(null, result);
    });
  }

  /** ws released the connection (its cleanup()). */
  close(): void {
    this.closed = true;
    this.pending = undefined;
    this.kept = [];
    if (this.zlib) this.discard(this.zlib);
  }

  private open(): InflateRaw {
    const z = createInflateRaw({ windowBits: this.windowBits, chunkSize: INFLATE_CHUNK_BYTES });
    z.on('data', (chunk: Buffer) => this.data(z, chunk));
    z.on('error', (err) => {
      // zlib closed its handle
      if (z !== this.zlib) return;
      this.zlib = undefined;
      this.pending?.(this.failure ?? new InflateError(1007, `the master sent compressed data that does not inflate (${err.message})`));
    });
    return z;
  }

  private discard(z: InflateRaw): void {
    if (z === this.zlib) this.zlib = undefined;
    z.close();
  }

  private data(z: InflateRaw, chunk: Buffer): void {
    if (z !== this.zlib || this.failure) return;
    this.total += chunk.length;
    if (this.total > this.limits.maxBytes) {
      this.failure = new InflateError(1009, `the master sent a message that inflates past ${this.limits.maxBytes} bytes: closing with 1009 (message too big)`);
      // as ws: reset, not close, so that the pending flush still calls back (or an error is emitted)
      z.reset();
      return;
    }
    if (!this.scanner) {
      if (this.total <= this.limits.keepBytes) {
        this.kept.push(chunk);
        return;
      }
      // over the limit: the bytes kept so far go to the scanner and are let go
      this.scanner = new MessageScanner();
      for (const k of this.kept) this.scan(k);
      this.kept = [];
    }
    this.scan(chunk);
  }

  private scan(chunk: Buffer): void {
    const s = this.scanner!;
    if (s.error === undefined && (s.op === undefined || s.seq === undefined)) s.push(chunk);
  }
}

function wsChanged(what: string): AgentError {
  return new AgentError(
    'E_WS_INTERNALS',
    `the ws library no longer works as agent/connection/msgpack/inflate.ts expects (written against ws 8.23.0): ${what}. ` +
      'Build with that ws version or update the file; meanwhile set deflate to false',
  );
}

/**
 * Tries what this file relies on against ws's own classes; throws E_WS_INTERNALS naming the first difference.
 * Synchronous and in memory: a fake extension answers a real Receiver.
 */
export function checkWsInternals(lib: WsInternals = wsLib): void {
  if (typeof lib.Receiver !== 'function' || typeof lib.PerMessageDeflate !== 'function') throw wsChanged('it no longer exports Receiver and PerMessageDeflate');
  // the extension: a client's instance reads the server's answer into `params`, which is where the window is read
  const pmd = new lib.PerMessageDeflate({});
  pmd.accept([{ server_no_context_takeover: [true], server_max_window_bits: ['10'] }]);
  if (typeof pmd.decompress !== 'function' || typeof pmd.cleanup !== 'function') throw wsChanged('PerMessageDeflate has no decompress() or cleanup()');
  if (pmd.params?.['server_no_context_takeover'] !== true || pmd.params['server_max_window_bits'] !== 10)
    throw wsChanged(`PerMessageDeflate.params reads a server answer as ${JSON.stringify(pmd.params)}`);

  // the receiver: a fragmented compressed message, then a whole one, fed at once
  const calls: string[] = [];
  const queue: (() => void)[] = [];
  const ext: DeflateExtension = {
    params: {},
    decompress: (data, fin, callback) => {
      calls.push(`${data.toString('latin1')}${fin ? '.' : ''}`);
      queue.push(() => callback(null, fin ? Buffer.from(`inflated ${calls.length}`) : EMPTY));
    },
    cleanup: () => {},
  };
  const receiver = new lib.Receiver({ extensions: { [EXTENSION]: ext }, isServer: false, maxPayload: 64, binaryType: 'nodebuffer' });
  const messages: string[] = [];
  const errors: string[] = [];
  receiver.on('message', (data: unknown, isBinary: boolean) =>
    messages.push(Buffer.isBuffer(data) && isBinary ? data.toString('latin1') : `not a binary buffer`),
  );
  receiver.on('error', (err: Error) => errors.push(err.message));
  const frame = (b0: number, payload: string): Buffer => Buffer.concat([Buffer.from([b0, payload.length]), Buffer.from(payload, 'latin1')]);
  // FIN+RSV1+binary is 0xc2; without FIN 0x42; a continuation with FIN 0x80
  receiver.write(Buffer.concat([frame(0x42, 'ab'), frame(0x80, 'cd'), frame(0xc2, 'ef')]));
  while (queue.length > 0) {
    if (queue.length > 1) throw wsChanged('its Receiver asks to inflate the next frame before the last one was answered');
    queue.shift()!();
  }
  const got = JSON.stringify({ calls, messages, errors });
  const want = JSON.stringify({ calls: ['ab', 'cd.', 'ef.'], messages: ['inflated 2', 'inflated 3'], errors: [] });
  if (got !== want) throw wsChanged(`its Receiver, given two compressed messages (one in two frames), did ${got}, not ${want}`);
}

let checked: AgentError | null | undefined;

/** checkWsInternals() once per process: the problem found, or undefined. */
export function wsInternalsProblem(): AgentError | undefined {
  if (checked === undefined) {
    try {
      checkWsInternals();
      checked = null;
    } catch (err) {
      checked = err instanceof AgentError ? err : wsChanged(String(err));
    }
  }
  return checked ?? undefined;
}

/**
 * Puts the bounded inflater into a connection that negotiated permessage-deflate (nothing to do otherwise). Call
 * when the socket opens, before its first message is read; throws E_WS_INTERNALS if the extension is not as
 * expected.
 */
export function boundInflation(ws: WebSocket, limits: InflateLimits): void {
  if (!ws.extensions.split(/,\s*/).includes(EXTENSION)) return;
  const problem = wsInternalsProblem();
  if (problem) throw problem;
  const ext = (ws as unknown as { _extensions?: Record<string, DeflateExtension | undefined> })._extensions?.[EXTENSION];
  if (!ext || typeof ext.decompress !== 'function' || typeof ext.cleanup !== 'function' || typeof ext.params !== 'object' || ext.params === null)
    throw wsChanged('the connection has no permessage-deflate extension object with decompress(), cleanup() and params');
  // the master is the server: its window and context takeover
  const bits = ext.params['server_max_window_bits'];
  const inflater = new BoundedInflater(
    typeof bits === 'number' ? bits : zlibConstants.Z_DEFAULT_WINDOWBITS,
    ext.params['server_no_context_takeover'] === true,
    limits,
    (err) => ws.close(err.closeCode, err.message.slice(0, 100)),
  );
  const cleanup = ext.cleanup.bind(ext);
  ext.decompress = (data, fin, callback) => inflater.decompress(data, fin, callback);
  ext.cleanup = () => {
    inflater.close();
    cleanup();
  };
}
