// Banana, the s-expression framing under Perspective Broker (twisted/spread/banana.py): the tokens, the "pb"
// vocabulary, the limits Twisted enforces on both ends, the encoder and dialect negotiation (the streaming
// decoder is in banana-decoder.ts).

import { AgentError } from '../../errors.js';
import { PyFloat } from '../../py/values.js';
import { MAX_NESTING } from '../limits.js';

/** Twisted's banana.SIZE_LIMIT: the longest STRING (bytes) or LIST (elements) either side accepts. */
export const SIZE_LIMIT = 640 * 1024;
/** Twisted's _PREFIX_LIMIT: at most 64 base-128 header digits (so integers stay below 2^448). */
export const PREFIX_LIMIT = 64;
/**
 * How deep lists may nest. Twisted has no such limit, but its unjelly recursion would fail long before;
 * Buildbot's deepest messages nest about 10 levels. Keeps a hostile stream from exhausting our stack.
 */
export const MAX_DEPTH = MAX_NESTING;

export const LIST = 0x80;
export const INT = 0x81;
export const STRING = 0x82;
export const NEG = 0x83;
export const FLOAT = 0x84;
export const LONGINT = 0x85;
export const LONGNEG = 0x86;
export const VOCAB = 0x87;

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

/** Vocabulary words as bytes, by index (what a VOCAB token decodes to). */
export const VOCAB_BYTES: readonly Buffer[] = PB_VOCABULARY.map((w) => Buffer.from(w, 'latin1'));
const VOCAB_INDEX = new Map<string, number>(PB_VOCABULARY.map((w, i) => [w, i] as [string, number]).filter(([w]) => w !== ''));
const LONGEST_WORD = Math.max(...PB_VOCABULARY.map((w) => w.length));

/** One Banana expression: raw byte strings, integers (bigint beyond 2^53), floats (PyFloat: FLOAT) and lists. */
export type Sexp = Buffer | number | bigint | PyFloat | Sexp[];

export type Dialect = 'pb' | 'none';

/** The dialects this side speaks, in order of preference (Banana.knownDialects). */
export const KNOWN_DIALECTS: readonly Dialect[] = ['pb', 'none'];

export function bananaError(message: string): AgentError {
  return new AgentError('E_BANANA', message);
}

// 2^448: the magnitude Twisted refuses to encode (_largestLongInt = 2**(64*7) - 1).
const INT_LIMIT = 1n << BigInt(7 * PREFIX_LIMIT);

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

  /** The encoding in pieces: large byte strings stay the caller's buffers (an upload block is not copied). */
  finishParts(): Buffer[] {
    this.flushSmall();
    return this.parts;
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
  const parts = encodeParts(sexp, opts);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** `encode` in pieces to write one after the other, without copying the byte strings of 64 bytes or more. */
export function encodeParts(sexp: Sexp, opts: EncodeOptions = {}): Buffer[] {
  const w = new Writer();
  encodeInto(w, sexp, opts.vocab ?? true, 0);
  return w.finishParts();
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
