// Banana, the s-expression framing under Perspective Broker (twisted/spread/banana.py): a streaming decoder,
// an encoder, the "pb" vocabulary, dialect negotiation and the limits Twisted enforces on both ends.

import { AgentError } from '../../errors.js';
import { PyFloat } from '../../py/values.js';
import { MAX_NESTING, MESSAGE_LIMITS, type MessageLimits } from '../limits.js';

/** Twisted's banana.SIZE_LIMIT: the longest STRING (bytes) or LIST (elements) either side accepts. */
export const SIZE_LIMIT = 640 * 1024;
/** Twisted's _PREFIX_LIMIT: at most 64 base-128 header digits (so integers stay below 2^448). */
export const PREFIX_LIMIT = 64;
/**
 * How deep lists may nest. Twisted has no such limit, but its unjelly recursion would fail long before;
 * Buildbot's deepest messages nest about 10 levels. Keeps a hostile stream from exhausting our stack.
 */
export const MAX_DEPTH = MAX_NESTING;

const LIST = 0x80;
const INT = 0x81;
const STRING = 0x82;
const NEG = 0x83;
const FLOAT = 0x84;
const LONGINT = 0x85;
const LONGNEG = 0x86;
const VOCAB = 0x87;

/** banana.Banana.outgoingVocabulary (dialect "pb"): index -> word. */
export const PB_VOCABULARY: readonly string[] = [
  '', // 0 is not a word
  'None',
  'class',
  'dereference',
  'reference',
  'dictionary',
  'function',
  'instance',
  'list',
  'module',
  'persistent',
  'tuple',
  'unpersistable',
  'copy',
  'cache',
  'cached',
  'remote',
  'local',
  'lcache',
  'version',
  'login',
  'password',
  'challenge',
  'logged_in',
  'not_logged_in',
  'cachemessage',
  'message',
  'answer',
  'error',
  'decref',
  'decache',
  'uncache',
];

const VOCAB_BYTES: readonly Buffer[] = PB_VOCABULARY.map((w) => Buffer.from(w, 'latin1'));
const VOCAB_INDEX = new Map<string, number>(PB_VOCABULARY.map((w, i) => [w, i] as [string, number]).filter(([w]) => w !== ''));
const LONGEST_WORD = Math.max(...PB_VOCABULARY.map((w) => w.length));

/** One Banana expression: raw byte strings, integers (bigint beyond 2^53), floats (PyFloat: FLOAT) and lists. */
export type Sexp = Buffer | number | bigint | PyFloat | Sexp[];

export type Dialect = 'pb' | 'none';

/** The dialects this side speaks, in order of preference (Banana.knownDialects). */
export const KNOWN_DIALECTS: readonly Dialect[] = ['pb', 'none'];

function bananaError(message: string): AgentError {
  return new AgentError('E_BANANA', message);
}

// 2^448: the magnitude Twisted refuses to encode (_largestLongInt = 2**(64*7) - 1).
const INT_LIMIT = 1n << BigInt(7 * PREFIX_LIMIT);

/** Streaming Banana decoder: feed it bytes as they arrive, get back the complete top-level expressions. */
export class BananaDecoder {
  /** Header digits of the element being read (each 0..127, least significant first). */
  private digits: number[] = [];
  /** A STRING or FLOAT body being read. */
  private body: { type: typeof STRING | typeof FLOAT; buf: Buffer; got: number } | undefined;
  private readonly stack: { size: number; items: Sexp[] }[] = [];
  /** Input not yet looked at: kept while negotiation pauses the decoder after the dialect offer. */
  private held: Buffer[] = [];
  private broken: AgentError | undefined;
  /** Wire bytes and values of the top-level expression being read, against `limits`. */
  private exprBytes = 0;
  private exprValues = 0;

  /**
   * @param dialect null while negotiating: the decoder stops after the first top-level expression (the
   *   dialect offer or choice) and keeps the bytes after it until selectDialect() is called.
   * @param limits the largest top-level expression accepted (Twisted bounds only each string and list, so an
   *   endless list of lists would otherwise grow the heap without bound).
   */
  constructor(
    private dialectValue: Dialect | null = null,
    private limits: MessageLimits = MESSAGE_LIMITS,
  ) {}

  /** Changes the limits for expressions that start from now on (PB: tighter before the login). */
  setLimits(limits: MessageLimits): void {
    this.limits = limits;
  }

  get dialect(): Dialect | null {
    return this.dialectValue;
  }

  /** Whether an earlier error left the stream unusable (every later feed() throws it again). */
  get failed(): AgentError | undefined {
    return this.broken;
  }

  /** Switches to a dialect (VOCAB tokens become legal for "pb"); call feed() to decode bytes held since. */
  selectDialect(d: Dialect): void {
    this.dialectValue = d;
  }

  /** Decodes what it can; throws AgentError E_BANANA on malformed input, after which the decoder stays broken. */
  feed(chunk?: Uint8Array): Sexp[] {
    if (this.broken) throw this.broken;
    if (chunk && chunk.length) this.held.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    const out: Sexp[] = [];
    try {
      while (this.held.length) {
        const buf = this.held.shift()!;
        const used = this.consume(buf, out);
        if (used < buf.length) {
          // paused for negotiation: keep the rest, in order, for after selectDialect()
          this.held.unshift(buf.subarray(used));
          break;
        }
      }
    } catch (err) {
      this.broken = err instanceof AgentError ? err : bananaError(`banana decoder failed: ${String(err)}`);
      this.held = [];
      throw this.broken;
    }
    return out;
  }

  /** Consumes bytes of `buf`; returns how many (fewer than all only when pausing for negotiation). */
  private consume(buf: Buffer, out: Sexp[]): number {
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (this.dialectValue === null && out.length > 0) return i;
      const body = this.body;
      if (body) {
        const take = Math.min(body.buf.length - body.got, n - i);
        buf.copy(body.buf, body.got, i, i + take);
        body.got += take;
        i += take;
        if (body.got < body.buf.length) return i;
        this.body = undefined;
        this.emit(body.type === STRING ? body.buf : new PyFloat(body.buf.readDoubleBE(0)), out);
        continue;
      }
      const b = buf[i++]!;
      if (b < 0x80) {
        if (this.digits.length >= PREFIX_LIMIT) throw bananaError(`malformed banana element: more than ${PREFIX_LIMIT} bytes of header`);
        this.digits.push(b);
        continue;
      }
      const header = this.header();
      const headerBytes = this.digits.length + 1;
      this.digits = [];
      switch (b) {
        case LIST: {
          const size = this.limited(header, 'list');
          if (this.stack.length >= MAX_DEPTH) throw bananaError(`banana lists nested deeper than ${MAX_DEPTH}`);
          this.count(headerBytes);
          if (size === 0) this.emit([], out);
          else this.stack.push({ size, items: [] });
          break;
        }
        case STRING: {
          const len = this.limited(header, 'string');
          // counted as declared, before the body is allocated
          this.count(headerBytes + len);
          if (n - i >= len) {
            this.emit(Buffer.from(buf.subarray(i, i + len)), out);
            i += len;
          } else {
            this.body = { type: STRING, buf: Buffer.allocUnsafe(len), got: 0 };
          }
          break;
        }
        case FLOAT:
          this.count(headerBytes + 8);
          // Twisted ignores any header digits before FLOAT (none are sent)
          if (n - i >= 8) {
            this.emit(new PyFloat(buf.readDoubleBE(i)), out);
            i += 8;
          } else {
            this.body = { type: FLOAT, buf: Buffer.allocUnsafe(8), got: 0 };
          }
          break;
        case INT:
        case LONGINT:
          this.count(headerBytes);
          this.emit(header, out);
          break;
        case NEG:
        case LONGNEG:
          this.count(headerBytes);
          this.emit(typeof header === 'bigint' ? -header : header === 0 ? 0 : -header, out);
          break;
        case VOCAB: {
          this.count(headerBytes);
          if (this.dialectValue !== 'pb') throw bananaError('banana VOCAB token received outside the "pb" dialect');
          const word = typeof header === 'number' ? VOCAB_BYTES[header] : undefined;
          if (!word || header === 0) throw bananaError(`unknown banana VOCAB index ${String(header)}`);
          this.emit(word, out);
          break;
        }
        default:
          throw bananaError(`invalid banana type byte 0x${b.toString(16)}`);
      }
    }
    return i;
  }

  private header(): number | bigint {
    const d = this.digits;
    if (d.length <= 7) {
      let v = 0;
      for (let k = d.length - 1; k >= 0; k--) v = v * 128 + d[k]!;
      return v;
    }
    let v = 0n;
    for (let k = d.length - 1; k >= 0; k--) v = (v << 7n) | BigInt(d[k]!);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private limited(v: number | bigint, what: string): number {
    if (typeof v === 'bigint' || v > SIZE_LIMIT) throw bananaError(`banana ${what} too long: ${String(v)} > ${SIZE_LIMIT}`);
    return v;
  }

  /** One more value of `bytes` wire bytes in the current top-level expression. */
  private count(bytes: number): void {
    this.exprBytes += bytes;
    this.exprValues++;
    const { maxBytes, maxValues } = this.limits;
    if (this.exprBytes > maxBytes) throw bananaError(`banana message too large: more than ${maxBytes} bytes in one expression`);
    if (this.exprValues > maxValues) throw bananaError(`banana message too large: more than ${maxValues} values in one expression`);
  }

  private emit(item: Sexp, out: Sexp[]): void {
    let value = item;
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) {
        out.push(value);
        this.exprBytes = 0;
        this.exprValues = 0;
        return;
      }
      top.items.push(value);
      if (top.items.length < top.size) return;
      this.stack.pop();
      value = top.items;
    }
  }
}

/** Collects encoded bytes: small header bytes are batched, large string bodies are kept as they are. */
class Writer {
  private readonly parts: Buffer[] = [];
  private small: number[] = [];

  byte(b: number): void {
    this.small.push(b);
  }

  bytes(b: Buffer): void {
    if (b.length < 64) {
      for (const x of b) this.small.push(x);
      return;
    }
    this.flushSmall();
    this.parts.push(b);
  }

  uint(n: number | bigint): void {
    if (typeof n === 'bigint') {
      if (n === 0n) this.byte(0);
      while (n > 0n) {
        this.byte(Number(n & 0x7fn));
        n >>= 7n;
      }
      return;
    }
    if (n === 0) this.byte(0);
    // not bitwise: those are 32-bit in JavaScript
    while (n > 0) {
      this.byte(n % 128);
      n = Math.floor(n / 128);
    }
  }

  finish(): Buffer {
    this.flushSmall();
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
  }

  private flushSmall(): void {
    if (this.small.length) this.parts.push(Buffer.from(this.small));
    this.small = [];
  }
}

export interface EncodeOptions {
  /** Send vocabulary words as VOCAB tokens (only once dialect "pb" was selected). Default true. */
  vocab?: boolean;
}

/** Encodes one expression; throws AgentError E_BANANA for what Twisted would refuse to send or receive. */
export function encode(sexp: Sexp, opts: EncodeOptions = {}): Buffer {
  const w = new Writer();
  encodeInto(w, sexp, opts.vocab ?? true, 0);
  return w.finish();
}

const INT_MAX = 2 ** 31 - 1;
const INT_MIN = -(2 ** 31);

/** INT/NEG within 32 bits, LONGINT/LONGNEG beyond, as Banana._encode chooses. */
function encodeInt(w: Writer, v: number | bigint): void {
  if (typeof v === 'bigint') {
    const mag = v < 0n ? -v : v;
    if (mag >= INT_LIMIT) throw bananaError(`integer too large to send: ${v}`);
    if (mag <= BigInt(Number.MAX_SAFE_INTEGER)) {
      encodeInt(w, Number(v));
      return;
    }
    w.uint(mag);
    w.byte(v < 0n ? LONGNEG : LONGINT);
    return;
  }
  const mag = v < 0 ? -v : v;
  w.uint(mag);
  if (v < 0) w.byte(v < INT_MIN ? LONGNEG : NEG);
  else w.byte(v > INT_MAX ? LONGINT : INT);
}

function encodeInto(w: Writer, x: Sexp, vocab: boolean, depth: number): void {
  if (Buffer.isBuffer(x)) {
    if (vocab && x.length <= LONGEST_WORD) {
      const idx = VOCAB_INDEX.get(x.toString('latin1'));
      if (idx !== undefined) {
        w.uint(idx);
        w.byte(VOCAB);
        return;
      }
    }
    if (x.length > SIZE_LIMIT) throw bananaError(`byte string too long to send: ${x.length} bytes > ${SIZE_LIMIT}`);
    w.uint(x.length);
    w.byte(STRING);
    w.bytes(x);
  } else if (typeof x === 'number') {
    if (Number.isSafeInteger(x)) encodeInt(w, x);
    else encodeFloat(w, x);
  } else if (typeof x === 'bigint') {
    encodeInt(w, x);
  } else if (x instanceof PyFloat) {
    encodeFloat(w, x.value);
  } else if (Array.isArray(x)) {
    if (x.length > SIZE_LIMIT) throw bananaError(`list too long to send: ${x.length} elements > ${SIZE_LIMIT}`);
    if (depth >= MAX_DEPTH) throw bananaError(`lists nested deeper than ${MAX_DEPTH} cannot be sent`);
    w.uint(x.length);
    w.byte(LIST);
    for (const e of x) encodeInto(w, e, vocab, depth + 1);
  } else {
    throw bananaError(`banana cannot send ${describeValue(x)}`);
  }
}

function encodeFloat(w: Writer, v: number): void {
  const b = Buffer.allocUnsafe(9);
  b[0] = FLOAT;
  b.writeDoubleBE(v, 1);
  w.bytes(b);
}

function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x === 'object') return `an object of type ${(x as object).constructor?.name ?? 'Object'}`;
  return `a ${typeof x}`;
}

/** Bytes of an ASCII atom (command names, type tags). */
export function atom(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** The server's first bytes: LIST["pb", "none"], never with VOCAB. */
export function dialectOffer(): Buffer {
  return encode(
    KNOWN_DIALECTS.map((d) => atom(d)),
    { vocab: false },
  );
}

/**
 * The client's side of negotiation (Banana.callExpressionReceived): picks the first offered dialect it knows
 * and returns it with the bare STRING to send back. Throws E_BANANA if the peer offers nothing we speak.
 */
export function chooseDialect(offer: Sexp): { dialect: Dialect; reply: Buffer } {
  const offered = Array.isArray(offer) ? offer : [];
  for (const o of offered) {
    if (!Buffer.isBuffer(o)) continue;
    const name = o.toString('latin1');
    const known = KNOWN_DIALECTS.find((d) => d === name);
    if (known) return { dialect: known, reply: encode(atom(known), { vocab: false }) };
  }
  throw bananaError(`the peer offers no banana dialect we speak (offered: ${describeOffer(offer)}; we speak ${KNOWN_DIALECTS.join(', ')})`);
}

function describeOffer(offer: Sexp): string {
  if (!Array.isArray(offer)) return Buffer.isBuffer(offer) ? JSON.stringify(offer.toString('latin1')) : String(offer);
  return offer.map((o) => (Buffer.isBuffer(o) ? JSON.stringify(o.toString('latin1')) : '?')).join(', ') || 'nothing';
}
