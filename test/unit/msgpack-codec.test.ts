// The msgpack encoding of update items: Python-typed status values (PyFloat, PyTuple) go on the wire exactly as
// the plain JS values always went (msgpack has no tuples; a JS number goes as float64 unless it is integral), and
// the str(Failure) text `complete` carries.
import { describe, expect, it } from 'vitest';
import { decode } from '@msgpack/msgpack';
import type { StatusValue } from '../../agent/output/types.js';
import { encodeMessage, wireFailure, wireUpdateArgs, wireValue } from '../../agent/connection/msgpack/codec.js';
import { PyFloat, PyTuple } from '../../agent/py/values.js';

/** The bytes of one `update` message carrying one status item. */
function updateHex(key: string, value: StatusValue): string {
  const args = wireUpdateArgs([{ kind: 'status', key, value }]);
  return Buffer.from(encodeMessage({ op: 'update', args, command_id: 'c', seq_number: 3 })).toString('hex');
}

// map of 4: op 'update', args [[key, value]], command_id 'c', seq_number 3
const HEAD = '84a26f70a6757064617465a4617267739192';
const TAIL = 'aa636f6d6d616e645f6964a163aa7365715f6e756d62657203';
const STAT = [16877, 123, 2049, 2, 1000, 1000, 4096, 1700000000, 1700000001, 1700000002];

describe('msgpack status values', () => {
  it('a PyFloat goes as its number: float64 (cb) when fractional, an integer when integral', () => {
    expect(updateHex('elapsed', new PyFloat(1.5))).toBe(`${HEAD}a7656c6170736564cb3ff8000000000000${TAIL}`);
    expect(updateHex('elapsed', new PyFloat(2))).toBe(`${HEAD}a7656c617073656402${TAIL}`);
    // exactly the bytes of the plain numbers
    expect(updateHex('elapsed', new PyFloat(1.5))).toBe(updateHex('elapsed', 1.5));
    expect(updateHex('elapsed', new PyFloat(2))).toBe(updateHex('elapsed', 2));
  });

  it('a PyTuple goes as an array, as the plain list did', () => {
    const want = `${HEAD}a4737461749acd41ed7bcd080102cd03e8cd03e8cd1000ce6553f100ce6553f101ce6553f102${TAIL}`;
    expect(updateHex('stat', new PyTuple(STAT))).toBe(want);
    expect(updateHex('stat', STAT)).toBe(want);
  });

  it('markers nested in lists and maps are converted; values without markers are passed through unchanged', () => {
    const files = ['a', 'b'];
    expect(wireValue(files)).toBe(files);
    const m = { a: [1, 2], b: 'x' };
    expect(wireValue(m)).toBe(m);
    const nested = { t: [new PyTuple([1, new PyFloat(0.5)])], n: null };
    expect(wireValue(nested)).toEqual({ t: [[1, 0.5]], n: null });
    expect(decode(encodeMessage({ v: wireValue(nested) }))).toEqual({ v: { t: [[1, 0.5]], n: null } });
    // a map key named __proto__ stays a key
    const odd = JSON.parse('{"__proto__": [1], "x": 1}') as Record<string, unknown>;
    odd['x'] = new PyFloat(1.25);
    expect(Object.keys(wireValue(odd) as object)).toEqual(['__proto__', 'x']);
  });

  it('rc, text and file lists keep their bytes', () => {
    expect(updateHex('rc', 0)).toBe(`${HEAD}a2726300${TAIL}`);
    expect(updateHex('files', ['a', 'b'])).toBe(`${HEAD}a566696c657392a161a162${TAIL}`);
  });
});

describe('msgpack complete', () => {
  it('carries str(Failure) of the Python worker, or None', () => {
    expect(wireFailure(null)).toBeNull();
    expect(wireFailure({ type: 'FileNotFoundError', message: "[Errno 2] No such file or directory: '/x'", traceback: 'a.ts:1:f\nb.ts:2:g' })).toBe(
      "[Failure instance: Traceback: <class 'FileNotFoundError'>: [Errno 2] No such file or directory: '/x'\na.ts:1:f\nb.ts:2:g\n]",
    );
  });
});
