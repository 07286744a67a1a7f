// A structural pass over one msgpack message before it is decoded: checks every declared length against the bytes
// present, counts values and nesting against the limits, and reads the top-level `op` and `seq_number`, so that a
// message over the limits is refused without being built in memory, and still answered when it names its request.
// It also runs on a stream of chunks (MessageScanner), to name the request of a message too big to keep whole.

import { MAX_MESSAGE_VALUES, MAX_NESTING } from '../limits.js';

export interface ScanLimits {
  maxValues: number;
  maxNesting: number;
}

export const SCAN_LIMITS: ScanLimits = { maxValues: MAX_MESSAGE_VALUES, maxNesting: MAX_NESTING };

export interface ScanResult {
  /** What is wrong with the message, or undefined when it may be decoded. */
  error: string | undefined;
  /** The top-level `op` and `seq_number`, when they could be read (also from a refused message). */
  op: string | undefined;
  seq: number | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
/** Top-level keys worth reading: short strings. */
const MAX_KEY_BYTES = 32;

/** An op name longer than this is cut (it is only named in the error answer). */
const MAX_OP_BYTES = 256;

const EMPTY = new Uint8Array(0);

class Truncated extends Error {}
/** A value's header (or a key it must read) continues in the next chunk. */
const SHORT = Symbol('short');

/** fixstr, str8, str16, str32 (not bin). */
function isText(b: number): boolean {
  return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}

/** Scans `data` as one msgpack value; never throws. */
export function scanMessage(data: Uint8Array, limits: ScanLimits = SCAN_LIMITS): ScanResult {
  return new MessageScanner(limits, data.length).push(data).end();
}

/**
 * Scans one msgpack value given in chunks (push), then end(). Holds no more than a value's header between chunks
 * (at most a few hundred bytes: the key or op it reads), whatever the chunks' sizes. Without `total`, a container
 * is not checked against the bytes left, which are not known yet.
 */
export class MessageScanner {
  op: string | undefined;
  seq: number | undefined;
  private err: string | undefined;
  /** The offset in the message of the next chunk's first byte (of `carry`'s, when there is one). */
  private base = 0;
  /** The start of a value whose header continues in the next chunk. */
  private carry: Uint8Array | undefined;
  /** Payload bytes (of a string, binary, number or extension) still to pass over, and where that value starts. */
  private skip = 0;
  private skipFrom = 0;
  private values = 0;
  private started = false;
  /** The top-level value is complete. */
  private done = false;
  /** Containers being read: how many values each still holds. */
  private readonly remaining: number[] = [];
  // top-level map bookkeeping: the key just read (when depth is 1 and a value is next)
  private topIsMap = false;
  private topKey: string | undefined;
  private expectValue = false;

  constructor(
    private readonly limits: ScanLimits = SCAN_LIMITS,
    private readonly total?: number,
  ) {}

  /** What is wrong with the message so far; once set, more bytes change nothing. */
  get error(): string | undefined {
    return this.err;
  }

  push(chunk: Uint8Array): this {
    this.scan(chunk, false);
    return this;
  }

  /** The message ended: anything still missing is a truncation. */
  end(): ScanResult {
    this.scan(EMPTY, true);
    return { error: this.err, op: this.op, seq: this.seq };
  }

  private scan(chunk: Uint8Array, last: boolean): void {
    if (this.err !== undefined) return;
    let data = chunk;
    if (this.carry) {
      data = new Uint8Array(this.carry.length + chunk.length);
      data.set(this.carry);
      data.set(chunk, this.carry.length);
      this.carry = undefined;
    }
    const n = data.length;
    const base = this.base;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const limits = this.limits;
    const remaining = this.remaining;
    let pos = 0;

    if (this.skip > 0) {
      const k = Math.min(this.skip, n);
      this.skip -= k;
      pos = k;
      if (this.skip > 0) {
        if (last) this.err = `message truncated: the value at offset ${this.skipFrom} needs ${this.skip} more bytes`;
        this.base += n;
        return;
      }
    }

    const need = (k: number): void => {
      if (pos + k <= n) return;
      if (!last) throw SHORT;
      throw new Truncated(`message truncated: ${k} more bytes declared at offset ${base + pos}, ${n - pos} present`);
    };
    const u8 = (): number => {
      need(1);
      return data[pos++]!;
    };
    const u16 = (): number => {
      need(2);
      const v = view.getUint16(pos);
      pos += 2;
      return v;
    };
    const u32 = (): number => {
      need(4);
      const v = view.getUint32(pos);
      pos += 4;
      return v;
    };

    let start = pos;
    try {
      for (;;) {
        while (remaining.length > 0 && remaining[remaining.length - 1] === 0) remaining.pop();
        if (this.started && remaining.length === 0) {
          this.done = true;
          break;
        }
        if (pos === n && !last) break;
        const depth = remaining.length;
        // Where this value sits in the top-level map: a key (even position) or the value of `topKey`.
        const atTop = depth === 1 && this.topIsMap;
        const isKey = atTop && !this.expectValue;
        const keyOfValue = atTop && this.expectValue ? this.topKey : undefined;

        if (this.values + 1 > limits.maxValues) {
          this.err = `more than ${limits.maxValues} values in one message`;
          return;
        }
        start = pos;
        const b = u8();
        let str: { at: number; len: number } | undefined;
        /** Bytes after the header: a string's, a binary's, a number's, an extension's. */
        let payload = 0;
        let int: number | undefined;
        let container = -1;
        let map = false;
        if (b <= 0x7f) int = b;
        else if (b <= 0x8f) {
          container = (b & 0x0f) * 2;
          map = true;
        } else if (b <= 0x9f) container = b & 0x0f;
        else if (b <= 0xbf) str = { at: pos, len: b & 0x1f };
        else if (b >= 0xe0) int = b - 0x100;
        else
          switch (b) {
            case 0xc0:
            case 0xc2:
            case 0xc3:
              break;
            case 0xc4:
            case 0xd9: {
              const len = u8();
              str = { at: pos, len };
              break;
            }
            case 0xc5:
            case 0xda: {
              const len = u16();
              str = { at: pos, len };
              break;
            }
            case 0xc6:
            case 0xdb: {
              const len = u32();
              str = { at: pos, len };
              break;
            }
            case 0xc7:
              payload = 1 + u8();
              break;
            case 0xc8:
              payload = 1 + u16();
              break;
            case 0xc9:
              payload = 1 + u32();
              break;
            case 0xca:
              payload = 4;
              break;
            case 0xcb:
              payload = 8;
              break;
            case 0xcc:
              int = u8();
              break;
            case 0xcd:
              int = u16();
              break;
            case 0xce:
              int = u32();
              break;
            case 0xcf:
              need(8);
              int = view.getUint32(pos) * 2 ** 32 + view.getUint32(pos + 4);
              pos += 8;
              break;
            case 0xd0:
              need(1);
              int = view.getInt8(pos);
              pos += 1;
              break;
            case 0xd1:
              need(2);
              int = view.getInt16(pos);
              pos += 2;
              break;
            case 0xd2:
              need(4);
              int = view.getInt32(pos);
              pos += 4;
              break;
            case 0xd3:
              need(8);
              int = view.getInt32(pos) * 2 ** 32 + view.getUint32(pos + 4);
              pos += 8;
              break;
            case 0xd4:
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
              payload = 1 + 2 ** (b - 0xd4);
              break;
            case 0xdc:
              container = u16();
              break;
            case 0xdd:
              container = u32();
              break;
            case 0xde:
              container = u16() * 2;
              map = true;
              break;
            case 0xdf:
              container = u32() * 2;
              map = true;
              break;
            default:
              this.err = `invalid msgpack type byte 0x${b.toString(16)} at offset ${base + start}`;
              return;
          }
        if (str) payload = str.len;
        // the text this scan reads (a top-level key, the op) must be here whole; other payloads may be passed over
        const text = str !== undefined && isText(b);
        const wanted = !text ? 0 : isKey ? (str!.len <= MAX_KEY_BYTES ? str!.len : 0) : keyOfValue === 'op' ? Math.min(str!.len, MAX_OP_BYTES) : 0;
        if (pos + wanted > n && !last) throw SHORT;
        let end = pos + payload;
        if (end > n) {
          if (last) throw new Truncated(`message truncated: the value at offset ${base + start} needs ${end - n} more bytes`);
          this.skip = end - n;
          this.skipFrom = base + start;
          end = n;
        }

        // the value is read: count it
        this.values++;
        if (this.started) remaining[depth - 1] = remaining[depth - 1]! - 1;
        this.started = true;
        if (atTop) this.expectValue = !this.expectValue;
        if (isKey) this.topKey = wanted > 0 ? utf8.decode(data.subarray(str!.at, str!.at + wanted)) : undefined;
        else if (keyOfValue === 'op' && text) this.op = utf8.decode(data.subarray(str!.at, str!.at + wanted));
        else if (keyOfValue === 'seq_number' && int !== undefined) this.seq = int;
        pos = end;
        if (container >= 0) {
          // each value takes at least one byte: a header claiming more than the rest of the message is a lie
          if (this.total !== undefined && container > this.total - (base + pos)) {
            this.err = `a ${map ? 'map' : 'array'} at offset ${base + start} declares ${map ? container / 2 : container} entries in ${this.total - (base + pos)} bytes`;
            return;
          }
          if (depth + 1 > limits.maxNesting) {
            this.err = `values nested deeper than ${limits.maxNesting}`;
            return;
          }
          if (depth === 0) this.topIsMap = map;
          remaining.push(container);
        }
      }
    } catch (err) {
      if (err !== SHORT) {
        this.err = (err as Error).message;
        return;
      }
      // keep the value's start for the next chunk
      this.carry = data.slice(start);
      this.base = base + start;
      return;
    }
    if (this.done && pos < n) {
      this.err =
        this.total !== undefined
          ? `${this.total - (base + pos)} bytes after the end of the message`
          : `bytes after the end of the message at offset ${base + pos}`;
      return;
    }
    this.base = base + n;
  }
}
