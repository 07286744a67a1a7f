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

/** The bytes of one scan() call (the carried-over start of a value, then the chunk), read with bounds checks. */
class Cursor {
  pos = 0;
  readonly n: number;
  readonly view: DataView;

  constructor(
    readonly data: Uint8Array,
    /** The offset in the message of data[0]. */
    readonly base: number,
    /** No more bytes will come: a value that needs more is truncated. */
    readonly last: boolean,
  ) {
    this.n = data.length;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  /** Throws SHORT (wait for the next chunk) or Truncated (there is none) unless `k` more bytes are here. */
  need(k: number): void {
    if (this.pos + k <= this.n) return;
    if (!this.last) throw SHORT;
    throw new Truncated(`message truncated: ${k} more bytes declared at offset ${this.base + this.pos}, ${this.n - this.pos} present`);
  }

  u8(): number {
    this.need(1);
    return this.data[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
}

/** One value's header as readHeader() leaves it; one per scanner, reused, so that nothing is allocated per value. */
class Header {
  /** Where a string's or binary's bytes start (-1: the value is neither), and how many there are. */
  strAt = -1;
  strLen = 0;
  /** Bytes after the header of a number or an extension. */
  payload = 0;
  int: number | undefined;
  /** Values a container holds (a map's keys and values both counted); -1: not a container. */
  container = -1;
  map = false;

  /** Only what every value reads: strLen is read for strings, map for containers, which set them. */
  reset(): void {
    this.strAt = -1;
    this.payload = 0;
    this.int = undefined;
    this.container = -1;
  }

  /** A string or binary of `len` bytes, which start at the cursor (after the length was read). */
  string(c: Cursor, len: number): void {
    this.strAt = c.pos;
    this.strLen = len;
  }
}

/** Reads the header that type byte `b` starts into `h`; false when `b` is no msgpack type. */
function readHeader(c: Cursor, b: number, h: Header): boolean {
  h.reset();
  if (b <= 0x7f) h.int = b;
  else if (b <= 0x8f) {
    h.container = (b & 0x0f) * 2;
    h.map = true;
  } else if (b <= 0x9f) h.container = b & 0x0f;
  else if (b <= 0xbf) h.string(c, b & 0x1f);
  else if (b >= 0xe0) h.int = b - 0x100;
  else if (b >= 0xca && b <= 0xd3) readNumber(c, b, h);
  else return readSized(c, b, h);
  return true;
}

/** float 32/64, uint 8-64, int 8-64 (0xca-0xd3). */
function readNumber(c: Cursor, b: number, h: Header): void {
  const { view } = c;
  switch (b) {
    case 0xca:
      h.payload = 4;
      return;
    case 0xcb:
      h.payload = 8;
      return;
    case 0xcc:
      h.int = c.u8();
      return;
    case 0xcd:
      h.int = c.u16();
      return;
    case 0xce:
      h.int = c.u32();
      return;
    case 0xcf:
      c.need(8);
      h.int = view.getUint32(c.pos) * 2 ** 32 + view.getUint32(c.pos + 4);
      c.pos += 8;
      return;
    case 0xd0:
      c.need(1);
      h.int = view.getInt8(c.pos);
      c.pos += 1;
      return;
    case 0xd1:
      c.need(2);
      h.int = view.getInt16(c.pos);
      c.pos += 2;
      return;
    case 0xd2:
      c.need(4);
      h.int = view.getInt32(c.pos);
      c.pos += 4;
      return;
    default:
      c.need(8);
      h.int = view.getInt32(c.pos) * 2 ** 32 + view.getUint32(c.pos + 4);
      c.pos += 8;
  }
}

/** nil, booleans, and the types with a length: bin, str, ext, array, map (0xc0-0xc9, 0xd4-0xdf); false: no type. */
function readSized(c: Cursor, b: number, h: Header): boolean {
  switch (b) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return true;
    case 0xc4:
    case 0xd9:
      h.string(c, c.u8());
      return true;
    case 0xc5:
    case 0xda:
      h.string(c, c.u16());
      return true;
    case 0xc6:
    case 0xdb:
      h.string(c, c.u32());
      return true;
    case 0xc7:
      h.payload = 1 + c.u8();
      return true;
    case 0xc8:
      h.payload = 1 + c.u16();
      return true;
    case 0xc9:
      h.payload = 1 + c.u32();
      return true;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      h.payload = 1 + 2 ** (b - 0xd4);
      return true;
    case 0xdc:
      h.container = c.u16();
      h.map = false;
      return true;
    case 0xdd:
      h.container = c.u32();
      h.map = false;
      return true;
    case 0xde:
      h.container = c.u16() * 2;
      h.map = true;
      return true;
    case 0xdf:
      h.container = c.u32() * 2;
      h.map = true;
      return true;
    default:
      return false;
  }
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
  private valueCount = 0;
  /** The header of the value being read. */
  private readonly header = new Header();
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
    const c = new Cursor(data, this.base, last);
    const n = c.n;
    if (this.skip > 0) {
      const k = Math.min(this.skip, n);
      this.skip -= k;
      c.pos = k;
      if (this.skip > 0) {
        if (last) this.err = `message truncated: the value at offset ${this.skipFrom} needs ${this.skip} more bytes`;
        this.base += n;
        return;
      }
    }
    const start = { at: c.pos };
    try {
      this.err = this.values(c, start);
      if (this.err !== undefined) return;
    } catch (err) {
      if (err !== SHORT) {
        this.err = (err as Error).message;
        return;
      }
      // keep the value's start for the next chunk
      this.carry = data.slice(start.at);
      this.base = c.base + start.at;
      return;
    }
    if (this.done && c.pos < n) {
      this.err =
        this.total !== undefined
          ? `${this.total - (c.base + c.pos)} bytes after the end of the message`
          : `bytes after the end of the message at offset ${c.base + c.pos}`;
      return;
    }
    this.base = c.base + n;
  }

  /**
   * Reads values until the message or the chunk ends; `start.at` is where the value being read starts. Returns what
   * is wrong with the message; throws SHORT when a header continues in the next chunk, Truncated when none comes.
   */
  private values(c: Cursor, start: { at: number }): string | undefined {
    const { limits, remaining, header: h } = this;
    const { data, n, last, base } = c;
    for (;;) {
      while (remaining.length > 0 && remaining[remaining.length - 1] === 0) remaining.pop();
      if (this.started && remaining.length === 0) {
        this.done = true;
        return undefined;
      }
      if (c.pos === n && !last) return undefined;
      const depth = remaining.length;
      // Where this value sits in the top-level map: a key (even position) or the value of `topKey`.
      const atTop = depth === 1 && this.topIsMap;
      const isKey = atTop && !this.expectValue;
      const keyOfValue = atTop && this.expectValue ? this.topKey : undefined;

      if (this.valueCount + 1 > limits.maxValues) return `more than ${limits.maxValues} values in one message`;
      start.at = c.pos;
      const b = c.u8();
      if (!readHeader(c, b, h)) return `invalid msgpack type byte 0x${b.toString(16)} at offset ${base + start.at}`;
      const str = h.strAt >= 0;
      /** Bytes after the header: a string's, a binary's, a number's, an extension's. */
      const payload = str ? h.strLen : h.payload;
      // the text this scan reads (a top-level key, the op) must be here whole; other payloads may be passed over
      const text = str && isText(b);
      const wanted = !text ? 0 : isKey ? (h.strLen <= MAX_KEY_BYTES ? h.strLen : 0) : keyOfValue === 'op' ? Math.min(h.strLen, MAX_OP_BYTES) : 0;
      if (c.pos + wanted > n && !last) throw SHORT;
      let end = c.pos + payload;
      if (end > n) {
        if (last) throw new Truncated(`message truncated: the value at offset ${base + start.at} needs ${end - n} more bytes`);
        this.skip = end - n;
        this.skipFrom = base + start.at;
        end = n;
      }

      // the value is read: count it
      this.valueCount++;
      if (this.started) remaining[depth - 1] = remaining[depth - 1]! - 1;
      this.started = true;
      if (atTop) this.expectValue = !this.expectValue;
      if (isKey) this.topKey = wanted > 0 ? utf8.decode(data.subarray(h.strAt, h.strAt + wanted)) : undefined;
      else if (keyOfValue === 'op' && text) this.op = utf8.decode(data.subarray(h.strAt, h.strAt + wanted));
      else if (keyOfValue === 'seq_number' && h.int !== undefined) this.seq = h.int;
      c.pos = end;
      if (h.container >= 0) {
        const err = this.enter(h, depth, base + c.pos, base + start.at);
        if (err !== undefined) return err;
      }
    }
  }

  /** A container's header was read (`at`: its offset, `after`: the offset after its header). */
  private enter(h: Header, depth: number, after: number, at: number): string | undefined {
    const { container, map } = h;
    // each value takes at least one byte: a header claiming more than the rest of the message is a lie
    if (this.total !== undefined && container > this.total - after) {
      return `a ${map ? 'map' : 'array'} at offset ${at} declares ${map ? container / 2 : container} entries in ${this.total - after} bytes`;
    }
    if (depth + 1 > this.limits.maxNesting) return `values nested deeper than ${this.limits.maxNesting}`;
    if (depth === 0) this.topIsMap = map;
    this.remaining.push(container);
    return undefined;
  }
}
