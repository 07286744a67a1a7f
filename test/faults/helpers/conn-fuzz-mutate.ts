// Mutations for the protocol fuzz, from a seeded generator so that a failure can be replayed: byte-level
// (flip, insert, delete, overwrite, splice) and structure-level (replace, drop, duplicate, retype and nest
// values of a decoded msgpack map or of a Banana/Jelly s-expression).
import { atom, type Sexp } from '../../../agent/connection/pb/banana.js';
import { PyFloat } from '../../../agent/py/values.js';

/** mulberry32: a small seeded generator. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x87, 0x90, 0xc0, 0xc1, 0xc4, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff];

/** 1-4 byte-level mutations of `data`. */
export function mutateBytes(data: Uint8Array, rng: Rng): Buffer {
  let b = Buffer.from(data);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const at = b.length ? rng.int(b.length) : 0;
    switch (rng.int(6)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        if (b.length) b[at] = rng.pick(INTERESTING_BYTES);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), Buffer.from([rng.int(256)]), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(8))]);
        break;
      case 4:
        // truncate
        b = b.subarray(0, at);
        break;
      default: {
        // splice a chunk of itself somewhere else
        const from = rng.int(Math.max(1, b.length));
        const chunk = b.subarray(from, from + 1 + rng.int(16));
        b = Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]);
      }
    }
  }
  return b;
}

// ---- structure-level: msgpack values ----

type Value = unknown;

function scalarPool(strings: readonly string[]): Value[] {
  return [
    null,
    true,
    false,
    0,
    -1,
    1,
    127,
    128,
    255,
    65_535,
    2 ** 31 - 1,
    2 ** 31,
    -(2 ** 31),
    2 ** 32,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    1.5,
    -0.0,
    1e308,
    NaN,
    Infinity,
    '',
    '.',
    '..',
    'x',
    'é\u0000\uffff',
    '\ud800',
    'a'.repeat(5000),
    new Uint8Array(0),
    new Uint8Array([0, 255, 1]),
    [],
    {},
    ...strings,
  ];
}

function isMap(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** One structural mutation somewhere inside `v` (a copy is returned; `v` is not changed). */
export function mutateValue(v: Value, rng: Rng, strings: readonly string[], depth = 0): Value {
  const pool = scalarPool(strings);
  // descend into a child most of the time
  if (Array.isArray(v) && v.length && depth < 12 && rng.chance(0.6)) {
    const out = [...(v as Value[])];
    const i = rng.int(out.length);
    out[i] = mutateValue(out[i], rng, strings, depth + 1);
    return out;
  }
  if (isMap(v) && Object.keys(v).length && depth < 12 && rng.chance(0.6)) {
    const out: Record<string, Value> = { ...v };
    const k = rng.pick(Object.keys(out));
    out[k] = mutateValue(out[k], rng, strings, depth + 1);
    return out;
  }
  switch (rng.int(8)) {
    case 0:
      return rng.pick(pool);
    case 1:
      if (typeof v === 'string') {
        const cut = rng.int(v.length + 1);
        return rng.chance(0.5) ? v.slice(0, cut) : v.slice(0, cut) + rng.pick(['\u0000', '/', '..', '\ud83d', 'x'.repeat(rng.int(100))]) + v.slice(cut);
      }
      if (typeof v === 'number') return rng.pick([v + 1, v - 1, -v, v * 2 ** 20, v + 0.5]);
      return rng.pick(pool);
    case 2:
      if (Array.isArray(v)) {
        const out = [...(v as Value[])];
        if (out.length && rng.chance(0.5)) out.splice(rng.int(out.length), 1);
        else out.splice(rng.int(out.length + 1), 0, rng.pick(pool));
        return out;
      }
      if (isMap(v)) {
        const out: Record<string, Value> = { ...v };
        const keys = Object.keys(out);
        if (keys.length && rng.chance(0.5)) delete out[rng.pick(keys)];
        else out[rng.pick([...strings, 'x', '', '__proto__', 'constructor'])] = rng.pick(pool);
        return out;
      }
      return [v];
    case 3:
      // retype: wrap, unwrap, map <-> array
      if (Array.isArray(v)) return Object.fromEntries((v as Value[]).map((x, i) => [String(i), x]));
      if (isMap(v)) return Object.values(v);
      return { [rng.pick(strings.length ? strings : ['x'])]: v };
    case 4: {
      // nest deeper
      let out: Value = v;
      const levels = 1 + rng.int(40);
      for (let i = 0; i < levels; i++) out = [out];
      return out;
    }
    case 5:
      // duplicate into a list of copies
      return Array.from({ length: 1 + rng.int(8) }, () => v);
    case 6:
      return typeof v === 'string' ? new TextEncoder().encode(v) : v instanceof Uint8Array ? new TextDecoder().decode(v) : rng.pick(pool);
    default:
      return undefined;
  }
}

// ---- structure-level: Banana/Jelly s-expressions ----

const JELLY_TAGS = [
  'None',
  'unicode',
  'list',
  'tuple',
  'dictionary',
  'boolean',
  'reference',
  'dereference',
  'remote',
  'local',
  'unpersistable',
  'copy',
  'class',
  'module',
  'instance',
  'function',
  'twisted.spread.pb.CopyableFailure',
  'buildbot.foo.Bar',
  'cached',
  'true',
  'false',
];

function sexpPool(strings: readonly string[]): Sexp[] {
  return [
    0,
    -1,
    1,
    2,
    3,
    2 ** 31,
    -(2 ** 31) - 1,
    2n ** 64n,
    -(2n ** 200n),
    2n ** 447n,
    new PyFloat(1.5),
    new PyFloat(NaN),
    Buffer.alloc(0),
    Buffer.from('x'),
    Buffer.from([0xff, 0xfe, 0x00]),
    Buffer.alloc(3000, 0x61),
    [],
    [atom('None')],
    [atom('unicode'), Buffer.from('é\u0000', 'utf8')],
    [atom('unicode'), Buffer.from([0xc3, 0x28])],
    [atom('list')],
    [atom('dictionary')],
    [atom('tuple')],
    [atom('boolean'), atom('maybe')],
    [atom('reference'), 1, [atom('list')]],
    [atom('dereference'), 7],
    [atom('remote'), 99],
    [atom('local'), 1],
    [atom('local'), 12345],
    [atom('unpersistable'), Buffer.from('why')],
    ...strings.map((s) => [atom('unicode'), Buffer.from(s, 'utf8')] as Sexp),
    ...strings.map((s) => Buffer.from(s, 'utf8')),
  ];
}

/** One structural mutation somewhere inside `x` (a copy is returned). */
export function mutateSexp(x: Sexp, rng: Rng, strings: readonly string[], depth = 0): Sexp {
  if (Array.isArray(x) && x.length && depth < 12 && rng.chance(0.65)) {
    const out = [...x];
    // the tag (index 0) less often than the contents
    const i = out.length > 1 && rng.chance(0.85) ? 1 + rng.int(out.length - 1) : 0;
    out[i] = mutateSexp(out[i]!, rng, strings, depth + 1);
    return out;
  }
  const pool = sexpPool(strings);
  switch (rng.int(7)) {
    case 0:
      return rng.pick(pool);
    case 1:
      if (Buffer.isBuffer(x)) {
        if (rng.chance(0.5)) return atom(rng.pick(JELLY_TAGS));
        const b = Buffer.from(x);
        if (b.length) b[rng.int(b.length)] = rng.int(256);
        return rng.chance(0.3) ? b.subarray(0, rng.int(b.length + 1)) : b;
      }
      if (typeof x === 'number') return rng.pick([x + 1, x - 1, -x, x * 1024, 0]);
      if (typeof x === 'bigint') return -x;
      return rng.pick(pool);
    case 2:
      if (Array.isArray(x)) {
        const out = [...x];
        if (out.length && rng.chance(0.5)) out.splice(rng.int(out.length), 1);
        else out.splice(rng.int(out.length + 1), 0, rng.pick(pool));
        return out;
      }
      return [x];
    case 3: {
      let out: Sexp = x;
      const levels = 1 + rng.int(30);
      for (let i = 0; i < levels; i++) out = rng.chance(0.5) ? [atom('list'), out] : [out];
      return out;
    }
    case 4:
      return Array.isArray(x) ? [atom(rng.pick(JELLY_TAGS)), ...x.slice(1)] : [atom(rng.pick(JELLY_TAGS)), x];
    case 5:
      // a shared value used many times
      return [
        atom('list'),
        [atom('reference'), 900 + rng.int(5), x],
        ...Array.from({ length: rng.int(20) }, () => [atom('dereference'), 900 + rng.int(6)] as Sexp),
      ];
    default:
      return Array.isArray(x) ? [...x, ...x] : rng.pick(pool);
  }
}
