// The msgpack structural scan and decodeMessage's limits: every declared length checked, values and nesting
// counted before anything is built, and the envelope (op, seq_number) read even from a refused message.
import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_VALUES, MAX_NESTING } from '../../agent/connection/limits.js';
import { decodeMessage, RefusedMessage } from '../../agent/connection/msgpack/codec.js';
import { MessageScanner, scanMessage, type ScanResult } from '../../agent/connection/msgpack/scan.js';

const ok = { error: undefined };

describe('msgpack scan', () => {
  it('passes every kind of value the encoder writes, and reads op and seq_number', () => {
    const msg = {
      op: 'start_command',
      args: {
        s: 'x'.repeat(40),
        long: 'y'.repeat(70_000),
        bin: new Uint8Array(300),
        big: new Uint8Array(70_000),
        ints: [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32, -1, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31) - 1, -(2 ** 40)],
        floats: [1.5, -0.25, 1e300],
        flags: [true, false, null],
        nested: [[[{ a: [1, { b: 2 }] }]]],
        many: Array.from({ length: 70_000 }, (_, i) => i % 3),
        map16: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
        date: new Date(1_700_000_000_000),
      },
      seq_number: 70_000,
    };
    expect(scanMessage(encode(msg))).toEqual({ ...ok, op: 'start_command', seq: 70_000 });
    expect(scanMessage(encode({ op: 'x', seq_number: 3 }))).toEqual({ ...ok, op: 'x', seq: 3 });
    expect(scanMessage(encode([1, 2, 3]))).toEqual({ ...ok, op: undefined, seq: undefined });
    expect(scanMessage(encode('just a string'))).toEqual({ ...ok, op: undefined, seq: undefined });
  });

  it('reads op and seq_number only at the top level', () => {
    expect(scanMessage(encode({ args: { op: 'inner', seq_number: 9 }, op: 'outer', seq_number: 1 }))).toEqual({ ...ok, op: 'outer', seq: 1 });
  });

  it('refuses more values than the limit without building them', () => {
    // an array of 0x90 (empty arrays): 1 byte each on the wire, a whole JS array each once decoded
    const n = 100_001;
    const data = Buffer.alloc(5 + n, 0x90);
    data[0] = 0xdd;
    data.writeUInt32BE(n, 1);
    expect(scanMessage(data, { maxValues: 100_000, maxNesting: 10 }).error).toBe('more than 100000 values in one message');
    expect(scanMessage(data, { maxValues: 100_002, maxNesting: 10 }).error).toBeUndefined();
  });

  it('refuses nesting deeper than the limit', () => {
    const deep = Buffer.alloc(MAX_NESTING + 2, 0x91);
    deep[deep.length - 1] = 0xc0;
    expect(scanMessage(deep).error).toBe(`values nested deeper than ${MAX_NESTING}`);
    expect(scanMessage(deep.subarray(2)).error).toBeUndefined();
  });

  it('refuses declared lengths beyond the message: strings, binaries, arrays, maps, extensions', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['str32 of 4 GiB', Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), /truncated/],
      ['bin16', Buffer.from([0xc5, 0x01, 0x00, 0x00]), /truncated/],
      ['array32 of 4 G entries', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]), /declares 4294967295 entries in 1 bytes/],
      ['map16', Buffer.from([0xde, 0x00, 0x10, 0xc0, 0xc0]), /declares 16 entries in 2 bytes/],
      ['ext32', Buffer.from([0xc9, 0x00, 0x10, 0x00, 0x00, 0x01]), /truncated/],
      ['float64 cut short', Buffer.from([0xcb, 0x00, 0x00]), /truncated/],
      ['the never-used byte 0xc1', Buffer.from([0xc1]), /invalid msgpack type byte 0xc1/],
      ['bytes after the value', Buffer.from([0xc0, 0xc0]), /1 bytes after the end/],
      ['nothing at all', Buffer.alloc(0), /truncated/],
    ];
    for (const [what, data, re] of cases) expect(scanMessage(data).error, what).toMatch(re);
  });

  it('still names the request of a message it refuses', () => {
    const data = Buffer.from(encode({ op: 'start_command', seq_number: 12, args: [1, 2, 3] }));
    // corrupt the args array's header into a 4 G-entry array32: the envelope keys before it were already read
    const at = data.indexOf(0x93);
    const broken = Buffer.concat([data.subarray(0, at), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), data.subarray(at + 1)]);
    expect(scanMessage(broken)).toMatchObject({ op: 'start_command', seq: 12, error: expect.stringMatching(/declares 4294967295 entries/) });
  });
});

describe('msgpack scan in chunks', () => {
  const whole: [string, Uint8Array][] = [
    [
      'every kind of value',
      encode({
        op: 'start_command',
        args: { s: 'x'.repeat(40), ints: [0, 255, 65_536, 2 ** 40, -129], f: [1.5, 1e300], b: new Uint8Array(300), d: new Date(0) },
        seq_number: 7,
      }),
    ],
    ['a long op', encode({ seq_number: 3, op: 'o'.repeat(300) })],
    ['an array, no envelope', encode([1, [2, [3]], 'x'])],
    ['bytes after the end', Buffer.from([0x81, 0xa2, 0x6f, 0x70, 0xa1, 0x78, 0xc0])],
    ['a str32 claiming 4 GiB', Buffer.concat([Buffer.from(encode({ op: 'print', seq_number: 1 })), Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])])],
    ['cut short', encode({ op: 'print', seq_number: 2, message: 'hello' }).subarray(0, 20)],
    ['0xc1', Buffer.from([0x82, 0xa2, 0x6f, 0x70, 0xc1])],
  ];
  const chunked = (data: Uint8Array, cuts: number[]): ScanResult => {
    const s = new MessageScanner(undefined, data.length);
    let at = 0;
    for (const c of [...cuts, data.length]) {
      s.push(data.subarray(at, c));
      at = c;
    }
    return s.end();
  };

  it('finds what the whole scan finds, wherever the chunks are cut', () => {
    for (const [what, data] of whole) {
      const expected = scanMessage(data);
      for (let cut = 0; cut <= data.length; cut++) expect(chunked(data, [cut]), `${what}, cut at ${cut}`).toEqual(expected);
      expect(
        chunked(
          data,
          Array.from({ length: data.length }, (_, i) => i),
        ),
        `${what}, byte by byte`,
      ).toEqual(expected);
    }
  });

  it('reads seq_number after a value bigger than any chunk', () => {
    const big = Buffer.from(encode({ op: 'start_command', args: { data: new Uint8Array(1_000_000), text: 'y'.repeat(300_000) }, seq_number: 99 }));
    const s = new MessageScanner();
    for (let at = 0; at < big.length; at += 65_536) s.push(big.subarray(at, at + 65_536));
    expect([s.op, s.seq, s.error]).toEqual(['start_command', 99, undefined]);
    expect(s.end()).toEqual({ error: undefined, op: 'start_command', seq: 99 });
  });
});

describe('decodeMessage', () => {
  it('decodes an envelope', () => {
    expect(decodeMessage(encode({ op: 'print', message: 'hi', seq_number: 4 }))).toEqual({ op: 'print', message: 'hi', seq_number: 4 });
  });

  it('refuses with what it could read of the envelope, and a stable code', () => {
    const refused = (data: Uint8Array): RefusedMessage => {
      try {
        decodeMessage(data);
      } catch (err) {
        expect(err).toBeInstanceOf(RefusedMessage);
        return err as RefusedMessage;
      }
      throw new Error('decodeMessage accepted the message');
    };
    const tooMany = Buffer.concat([
      Buffer.from([0x83, 0xa2, 0x6f, 0x70, 0xa1, 0x78, 0xaa]),
      Buffer.from('seq_number'),
      Buffer.from([0x05, 0xa4]),
      Buffer.from('args'),
      Buffer.from([0xdd]),
      (() => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(MAX_MESSAGE_VALUES + 1);
        return b;
      })(),
      Buffer.alloc(MAX_MESSAGE_VALUES + 1, 0xc0),
    ]);
    expect(refused(tooMany)).toMatchObject({ code: 'E_MSGPACK_LIMIT', op: 'x', seq: 5 });
    expect(refused(Buffer.from([0xc1]))).toMatchObject({ code: 'E_MSGPACK_DECODE', op: undefined, seq: undefined });
    expect(refused(encode([1, 2]))).toMatchObject({ code: 'E_MSGPACK_ENVELOPE', message: 'message is not a map' });
    expect(refused(encode({ seq_number: 3 }))).toMatchObject({ code: 'E_MSGPACK_ENVELOPE', op: undefined, seq: 3 });
    expect(refused(encode({ op: 'print', seq_number: 1.5 }))).toMatchObject({ code: 'E_MSGPACK_ENVELOPE', op: 'print', seq: undefined });
  });
});
