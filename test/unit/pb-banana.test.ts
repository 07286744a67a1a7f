// Banana codec: the spec's test vectors (generated with Twisted's encoder), round trips, streaming at every
// split point, limits, and hostile input that must fail with E_BANANA and never hang or throw anything else.
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { chooseDialect, dialectOffer, encode, MAX_DEPTH, PB_VOCABULARY, SIZE_LIMIT, type Sexp } from '../../agent/connection/pb/banana.js';
import { BananaDecoder } from '../../agent/connection/pb/banana-decoder.js';
import { PyFloat } from '../../agent/py/values.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Decodes a complete buffer in dialect pb, expecting exactly one expression. */
function decodeOne(bytes: Buffer, dialect: 'pb' | 'none' = 'pb'): Sexp {
  const d = new BananaDecoder(dialect);
  const out = d.feed(bytes);
  expect(out).toHaveLength(1);
  return out[0]!;
}

function feedBytewise(bytes: Buffer, dialect: 'pb' | 'none' = 'pb'): Sexp[] {
  const d = new BananaDecoder(dialect);
  const out: Sexp[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...d.feed(bytes.subarray(i, i + 1)));
  return out;
}

// spec §1.1 / §2 / §3 vectors: [value, bytes]
const VECTORS: [string, Sexp, string][] = [
  ['0', 0, '00 81'],
  ['1', 1, '01 81'],
  ['127', 127, '7f 81'],
  ['128', 128, '00 01 81'],
  ['300', 300, '2c 02 81'],
  ['2^31-1', 2 ** 31 - 1, '7f 7f 7f 7f 07 81'],
  ['2^31 (LONGINT)', 2 ** 31, '00 00 00 00 08 85'],
  ['-1', -1, '01 83'],
  ['-2^31', -(2 ** 31), '00 00 00 00 08 83'],
  ['-2^31-1 (LONGNEG)', -(2 ** 31) - 1, '01 00 00 00 08 86'],
  ['1.5', new PyFloat(1.5), '84 3f f8 00 00 00 00 00 00'],
  ["b''", b(''), '00 82'],
  ["b'root'", b('root'), '04 82 72 6f 6f 74'],
  ['[]', [], '00 80'],
  ["b'message' (VOCAB)", b('message'), '1a 87'],
  ['(version 6)', [b('version'), 6], '02 80 13 87 06 81'],
  ['"héllo" as jelly unicode', [b('unicode'), Buffer.from('héllo', 'utf8')], '02 80 07 82 75 6e 69 63 6f 64 65 06 82 68 c3 a9 6c 6c 6f'],
  ['None', [b('None')], '01 80 01 87'],
  ['True', [b('boolean'), b('true')], '02 80 07 82 62 6f 6f 6c 65 61 6e 04 82 74 72 75 65'],
  ["[1,'a']", [b('list'), 1, [b('unicode'), b('a')]], '03 80 08 87 01 81 02 80 07 82 75 6e 69 63 6f 64 65 01 82 61'],
  ['(1,2)', [b('tuple'), 1, 2], '03 80 0b 87 01 81 02 81'],
  ['()', [b('tuple')], '01 80 0b 87'],
  ["{'rc':0}", [b('dictionary'), [[b('unicode'), b('rc')], 0]], '02 80 05 87 02 80 02 80 07 82 75 6e 69 63 6f 64 65 02 82 72 63 00 81'],
  ['{}', [b('dictionary')], '01 80 05 87'],
  ['(remote 3)', [b('remote'), 3], '02 80 10 87 03 81'],
  [
    'keepalive call',
    [b('message'), 23, 2, b('keepalive'), 1, [b('tuple')], [b('dictionary')]],
    '07 80 1a 87 17 81 02 81 09 82 6b 65 65 70 61 6c 69 76 65 01 81 01 80 0b 87 01 80 05 87',
  ],
  ['answer None', [b('answer'), 10, [b('None')]], '03 80 1b 87 0a 81 01 80 01 87'],
  ['answer 0', [b('answer'), 3, 0], '03 80 1b 87 03 81 00 81'],
  [
    'login call',
    [b('message'), 1, b('root'), b('login'), 1, [b('tuple'), b('w1')], [b('dictionary')]],
    '07 80 1a 87 01 81 04 82 72 6f 6f 74 14 87 01 81 02 80 0b 87 02 82 77 31 01 80 05 87',
  ],
  [
    'update rc 0',
    [b('message'), 7, 3, b('update'), 1, [b('tuple'), [b('list'), [b('list'), [b('dictionary'), [[b('unicode'), b('rc')], 0]], 0]]], [b('dictionary')]],
    '07 80 1a 87 07 81 03 81 06 82 75 70 64 61 74 65 01 81 02 80 0b 87 02 80 08 87 03 80 08 87 02 80 05 87 02 80 02 80 07 82 75 6e 69 63 6f 64 65 02 82 72 63 00 81 00 81 01 80 05 87',
  ],
  [
    'complete None',
    [b('message'), 10, 3, b('complete'), 1, [b('tuple'), [b('None')]], [b('dictionary')]],
    '07 80 1a 87 0a 81 03 81 08 82 63 6f 6d 70 6c 65 74 65 01 81 02 80 0b 87 01 80 01 87 01 80 05 87',
  ],
  [
    'login answer (pb-01 capture)',
    [b('answer'), 1, [b('tuple'), hex('d2fd1526e4b1452b658bf4e4e8e4f9be'), [b('remote'), 1]]],
    '03 80 1b 87 01 81 03 80 0b 87 10 82 d2 fd 15 26 e4 b1 45 2b 65 8b f4 e4 e8 e4 f9 be 02 80 10 87 01 81',
  ],
];

describe('banana encode', () => {
  it.each(VECTORS)('%s', (_name, value, bytes) => {
    expect(encode(value).toString('hex')).toBe(hex(bytes).toString('hex'));
  });

  it('encodes a 200-byte string with a two-digit header', () => {
    const s = Buffer.alloc(200, 0x61);
    expect(encode(s).subarray(0, 3).toString('hex')).toBe('480182');
  });

  it('does not use VOCAB when told not to (dialect negotiation)', () => {
    expect(encode(b('message'), { vocab: false }).toString('hex')).toBe(hex('07 82').toString('hex') + b('message').toString('hex'));
    expect(dialectOffer().toString('hex')).toBe(hex('02 80 02 82 70 62 04 82 6e 6f 6e 65').toString('hex'));
  });

  it('encodes integers beyond 2^53 as bigint LONGINT/LONGNEG', () => {
    const big = 2n ** 64n + 5n;
    expect(decodeOne(encode(big))).toBe(big);
    expect(decodeOne(encode(-big))).toBe(-big);
    expect(decodeOne(encode(2n ** 447n))).toBe(2n ** 447n);
    expect(() => encode(2n ** 448n)).toThrow(expect.objectContaining({ code: 'E_BANANA' }));
  });

  it('sends non-integer and unsafe numbers as FLOAT, PyFloat always as FLOAT', () => {
    expect(encode(0.25)[0]).toBe(0x84);
    expect(encode(2 ** 60)[0]).toBe(0x84);
    expect(encode(new PyFloat(2))[0]).toBe(0x84);
    expect(encode(-0).toString('hex')).toBe('0081');
    expect((decodeOne(encode(new PyFloat(NaN))) as PyFloat).value).toBeNaN();
  });

  it('refuses what Twisted would refuse', () => {
    expect(() => encode(Buffer.alloc(SIZE_LIMIT + 1))).toThrow(expect.objectContaining({ code: 'E_BANANA' }));
    expect(() => encode(new Array<Sexp>(SIZE_LIMIT + 1).fill(0))).toThrow(expect.objectContaining({ code: 'E_BANANA' }));
    expect(() => encode({} as unknown as Sexp)).toThrow(expect.objectContaining({ code: 'E_BANANA' }));
    expect(encode(Buffer.alloc(SIZE_LIMIT)).length).toBe(SIZE_LIMIT + 4);
  });
});

describe('banana decode', () => {
  it.each(VECTORS)('%s', (_name, value, bytes) => {
    expect(decodeOne(hex(bytes))).toEqual(value);
  });

  it.each(VECTORS)('%s, fed one byte at a time', (_name, value, bytes) => {
    expect(feedBytewise(hex(bytes))).toEqual([value]);
  });

  it('maps every VOCAB token back to its word', () => {
    for (let i = 1; i < PB_VOCABULARY.length; i++) {
      expect(decodeOne(Buffer.from([i, 0x87]))).toEqual(b(PB_VOCABULARY[i]!));
    }
  });

  it('decodes many expressions from one chunk and an expression split at every byte', () => {
    const exprs: Sexp[] = VECTORS.map(([, v]) => v).filter((v) => Array.isArray(v));
    const wire = Buffer.concat(exprs.map((e) => encode(e)));
    expect(new BananaDecoder('pb').feed(wire)).toEqual(exprs);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new BananaDecoder('pb');
      expect([...d.feed(wire.subarray(0, cut)), ...d.feed(wire.subarray(cut))]).toEqual(exprs);
    }
  });

  it('round-trips a large nested structure with big strings split across chunks', () => {
    const blob = Buffer.alloc(300_000);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 7) & 0xff;
    const value: Sexp = [b('message'), 99, [b('tuple'), blob, [b('list'), 1, -5, 2 ** 40, new PyFloat(3.25), b('')]], 2n ** 70n];
    const wire = encode(value);
    const d = new BananaDecoder('pb');
    const out: Sexp[] = [];
    for (let i = 0; i < wire.length; i += 1000) out.push(...d.feed(wire.subarray(i, i + 1000)));
    expect(out).toEqual([value]);
  });

  it('pauses after the dialect offer and keeps what came with it', () => {
    // the offer and the (version 6) that follows it arrive in one read
    const wire = Buffer.concat([dialectOffer(), hex('02 80 13 87 06 81')]);
    const d = new BananaDecoder(null);
    const first = d.feed(wire);
    expect(first).toEqual([[b('pb'), b('none')]]);
    const { dialect, reply } = chooseDialect(first[0]!);
    expect(dialect).toBe('pb');
    expect(reply.toString('hex')).toBe('02827062');
    d.selectDialect(dialect);
    expect(d.feed()).toEqual([[b('version'), 6]]);
  });

  it('refuses an offer without a known dialect', () => {
    expect(() => chooseDialect([b('xml')])).toThrow(expect.objectContaining({ code: 'E_BANANA', message: expect.stringContaining('"xml"') }));
  });

  it('accepts 64 header digits and exactly SIZE_LIMIT, refuses more', () => {
    expect(decodeOne(Buffer.concat([Buffer.alloc(64, 0), Buffer.from([0x81])]))).toBe(0);
    const tooLong = Buffer.concat([Buffer.alloc(65, 0), Buffer.from([0x81])]);
    expect(() => new BananaDecoder('pb').feed(tooLong)).toThrow(expect.objectContaining({ code: 'E_BANANA', message: expect.stringContaining('64') }));
    // 65 digit bytes without a type byte yet: refused as soon as they arrive
    expect(() => new BananaDecoder('pb').feed(Buffer.alloc(65, 1))).toThrow(expect.objectContaining({ code: 'E_BANANA' }));
    const limit = encode(Buffer.alloc(SIZE_LIMIT, 1));
    expect((decodeOne(limit) as Buffer).length).toBe(SIZE_LIMIT);
    const over = Buffer.from([0x01, 0x00, 0x28, 0x82]); // 655361
    expect(() => new BananaDecoder('pb').feed(over)).toThrow(
      expect.objectContaining({ code: 'E_BANANA', message: expect.stringContaining('string too long') }),
    );
    const overList = Buffer.from([0x01, 0x00, 0x28, 0x80]);
    expect(() => new BananaDecoder('pb').feed(overList)).toThrow(
      expect.objectContaining({ code: 'E_BANANA', message: expect.stringContaining('list too long') }),
    );
  });

  it('refuses bad type bytes, unknown VOCAB, VOCAB outside dialect pb, and too deep nesting', () => {
    const bad = (bytes: Buffer, dialect: 'pb' | 'none' = 'pb', msg = ''): void => {
      expect(() => new BananaDecoder(dialect).feed(bytes)).toThrow(expect.objectContaining({ code: 'E_BANANA', message: expect.stringContaining(msg) }));
    };
    bad(Buffer.from([0x88]), 'pb', 'type byte 0x88');
    bad(Buffer.from([0x00, 0xff]), 'pb', 'type byte 0xff');
    bad(Buffer.from([0x20, 0x87]), 'pb', 'VOCAB index 32');
    bad(Buffer.from([0x00, 0x87]), 'pb', 'VOCAB index 0');
    bad(Buffer.from([0x01, 0x87]), 'none', 'outside');
    bad(Buffer.from(Array.from({ length: (MAX_DEPTH + 1) * 2 }, (_, i) => (i % 2 ? 0x80 : 0x01))), 'pb', 'nested');
  });

  it('stays broken after an error', () => {
    const d = new BananaDecoder('pb');
    expect(() => d.feed(Buffer.from([0x88]))).toThrow(AgentError);
    expect(d.failed?.code).toBe('E_BANANA');
    expect(() => d.feed(hex('00 81'))).toThrow(AgentError);
  });

  it('decodes NEG 0 as 0, not -0', () => {
    expect(Object.is(decodeOne(Buffer.from([0x00, 0x83])), 0)).toBe(true);
  });
});

/** A small deterministic PRNG, so failures can be reproduced. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomSexp(r: () => number, depth = 0): Sexp {
  const k = Math.floor(r() * (depth > 4 ? 5 : 7));
  switch (k) {
    case 0:
      return Math.floor((r() - 0.5) * 2 ** 40);
    case 1:
      return Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
    case 2:
      return b(PB_VOCABULARY[1 + Math.floor(r() * 31)]!);
    case 3:
      return new PyFloat((r() - 0.5) * 1e6);
    case 4:
      return BigInt(Math.floor(r() * 2 ** 30)) * 2n ** 60n;
    default:
      return Array.from({ length: Math.floor(r() * 6) }, () => randomSexp(r, depth + 1));
  }
}

describe('banana fuzz', () => {
  it('round-trips random expressions fed in random pieces', () => {
    const r = rng(42);
    for (let n = 0; n < 300; n++) {
      const exprs = Array.from({ length: 1 + Math.floor(r() * 4) }, () => [randomSexp(r)] as Sexp);
      const wire = Buffer.concat(exprs.map((e) => encode(e)));
      const d = new BananaDecoder('pb');
      const out: Sexp[] = [];
      let i = 0;
      while (i < wire.length) {
        const len = 1 + Math.floor(r() * 20);
        out.push(...d.feed(wire.subarray(i, i + len)));
        i += len;
      }
      expect(out).toEqual(exprs);
    }
  });

  it('random and truncated byte streams only ever throw AgentError E_BANANA, and return promptly', () => {
    const r = rng(7);
    const started = Date.now();
    for (let n = 0; n < 2000; n++) {
      const len = Math.floor(r() * 200);
      // bias towards small header values so lists and strings are plausible
      const bytes = Buffer.from(Array.from({ length: len }, () => (r() < 0.5 ? Math.floor(r() * 8) : 0x80 + Math.floor(r() * 10))));
      const d = new BananaDecoder(r() < 0.5 ? 'pb' : 'none');
      try {
        for (let i = 0; i < bytes.length; i += 7) d.feed(bytes.subarray(i, i + 7));
      } catch (err) {
        expect(err).toBeInstanceOf(AgentError);
        expect((err as AgentError).code).toBe('E_BANANA');
      }
    }
    // truncations of a valid stream: never an error, just nothing (or less) decoded
    const wire = encode([
      b('message'),
      1,
      2,
      b('print'),
      1,
      [b('tuple')],
      [
        b('dictionary'),
        [
          [b('unicode'), b('message')],
          [b('unicode'), b('hi')],
        ],
      ],
    ]);
    for (let cut = 0; cut < wire.length; cut++) expect(new BananaDecoder('pb').feed(wire.subarray(0, cut))).toEqual([]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('random garbage with huge headers fails fast instead of waiting for 640 KiB', () => {
    const d = new BananaDecoder('pb');
    expect(() => d.feed(Buffer.from([0x7f, 0x7f, 0x7f, 0x82]))).toThrow(expect.objectContaining({ code: 'E_BANANA' }));
  });
});

describe('banana message limits', () => {
  const limits = { maxBytes: 1000, maxValues: 100 };
  const list = (n: number): Buffer => encode(Array.from({ length: n }, () => 0));

  it('refuses an expression over the value limit, counting as it reads (not after)', () => {
    const d = new BananaDecoder('pb', limits);
    expect(d.feed(list(99))).toHaveLength(1);
    // a list header of 200 and values that keep coming: refused at the 101st value
    expect(() => d.feed(Buffer.concat([Buffer.from([0x48, 0x01, 0x80]), Buffer.alloc(200, 0).fill(Buffer.from([0x00, 0x81]))]))).toThrow(
      expect.objectContaining({ code: 'E_BANANA', message: 'banana message too large: more than 100 values in one expression' }),
    );
  });

  it('refuses an expression over the byte limit, counting a string as declared before reading it', () => {
    const d = new BananaDecoder('pb', limits);
    // the header alone declares 2000 bytes: refused before they arrive
    expect(() => d.feed(Buffer.from([0x50, 0x0f, 0x82]))).toThrow(/more than 1000 bytes in one expression/);
  });

  it('counts each top-level expression on its own', () => {
    const d = new BananaDecoder('pb', limits);
    const many = Buffer.concat(Array.from({ length: 50 }, () => list(90)));
    expect(d.feed(many)).toHaveLength(50);
  });

  it('setLimits applies to the next expressions (PB widens them after the login)', () => {
    const d = new BananaDecoder('pb', limits);
    expect(() => new BananaDecoder('pb', limits).feed(list(500))).toThrow(/more than 100 values/);
    d.setLimits({ maxBytes: 10_000, maxValues: 1000 });
    expect(d.feed(list(500))).toHaveLength(1);
  });
});
