// Banana's streaming decoder (twisted/spread/banana.py dataReceived): bytes in as they arrive, complete top-level
// expressions out, within Twisted's limits and ours, pausing after the dialect offer until a dialect is chosen.

import { AgentError } from '../../errors.js';
import { PyFloat } from '../../py/values.js';
import { MESSAGE_LIMITS, type MessageLimits } from '../limits.js';
import {
  bananaError,
  FLOAT,
  INT,
  LIST,
  LONGINT,
  LONGNEG,
  MAX_DEPTH,
  NEG,
  PREFIX_LIMIT,
  SIZE_LIMIT,
  STRING,
  VOCAB,
  VOCAB_BYTES,
  type Dialect,
  type Sexp,
} from './banana.js';

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

  /**
   * Decodes what it can; throws AgentError E_BANANA on malformed input, after which the decoder stays broken.
   * Nothing decoded refers to `chunk`'s memory: its byte strings are copies.
   */
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
          // a copy: the caller may fill `chunk`'s memory again (a socket's one read buffer)
          this.held.unshift(Buffer.from(buf.subarray(used)));
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
