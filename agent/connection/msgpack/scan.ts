// A structural pass over one msgpack message before it is decoded: checks every declared length against the bytes
// present, counts values and nesting against the limits, and reads the top-level `op` and `seq_number`, so that a
// message over the limits is refused without being built in memory, and still answered when it names its request.

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

class Truncated extends Error {}

/** fixstr, str8, str16, str32 (not bin). */
function isText(b: number): boolean {
  return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}

/** Scans `data` as one msgpack value; never throws. */
export function scanMessage(data: Uint8Array, limits: ScanLimits = SCAN_LIMITS): ScanResult {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.length;
  let pos = 0;
  let values = 0;
  let op: string | undefined;
  let seq: number | undefined;
  // containers being read: how many values each still holds
  const remaining: number[] = [];
  // top-level map bookkeeping: the key just read (when depth is 1 and a value is next)
  let topIsMap = false;
  let topKey: string | undefined;
  let expectValue = false;

  const need = (k: number): void => {
    if (pos + k > n) throw new Truncated(`message truncated: ${k} more bytes declared at offset ${pos}, ${n - pos} present`);
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

  try {
    let first = true;
    while (first || remaining.length > 0) {
      const depth = remaining.length;
      if (!first) {
        const left = remaining[depth - 1]!;
        if (left === 0) {
          remaining.pop();
          continue;
        }
        remaining[depth - 1] = left - 1;
      }
      first = false;
      // Where this value sits in the top-level map: a key (even position) or the value of `topKey`.
      const atTop = depth === 1 && topIsMap;
      const isKey = atTop && !expectValue;
      const keyOfValue = atTop && expectValue ? topKey : undefined;
      if (atTop) expectValue = !expectValue;

      if (++values > limits.maxValues) return { error: `more than ${limits.maxValues} values in one message`, op, seq };
      const start = pos;
      const b = u8();
      let str: { at: number; len: number } | undefined;
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
            need(2);
            pos += 2 + data[pos]!;
            break;
          case 0xc8: {
            const len = u16();
            pos += 1 + len;
            break;
          }
          case 0xc9: {
            const len = u32();
            pos += 1 + len;
            break;
          }
          case 0xca:
            pos += 4;
            break;
          case 0xcb:
            pos += 8;
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
            pos += 1 + 2 ** (b - 0xd4);
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
            return { error: `invalid msgpack type byte 0x${b.toString(16)} at offset ${start}`, op, seq };
        }
      if (str) pos = str.at + str.len;
      if (pos > n) throw new Truncated(`message truncated: the value at offset ${start} needs ${pos - n} more bytes`);
      if (container >= 0) {
        // each value takes at least one byte: a header claiming more than the rest of the message is a lie
        if (container > n - pos)
          return { error: `a ${map ? 'map' : 'array'} at offset ${start} declares ${map ? container / 2 : container} entries in ${n - pos} bytes`, op, seq };
        if (depth + 1 > limits.maxNesting) return { error: `values nested deeper than ${limits.maxNesting}`, op, seq };
        if (depth === 0) topIsMap = map;
        remaining.push(container);
      }
      const text = str !== undefined && isText(b);
      if (isKey) topKey = text && str!.len <= MAX_KEY_BYTES ? utf8.decode(data.subarray(str!.at, str!.at + str!.len)) : undefined;
      else if (keyOfValue === 'op' && text) op = utf8.decode(data.subarray(str!.at, str!.at + Math.min(str!.len, MAX_OP_BYTES)));
      else if (keyOfValue === 'seq_number' && int !== undefined) seq = int;
    }
  } catch (err) {
    return { error: (err as Error).message, op, seq };
  }
  if (pos !== n) return { error: `${n - pos} bytes after the end of the message`, op, seq };
  return { error: undefined, op, seq };
}
