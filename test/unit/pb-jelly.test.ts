// Jelly subset: the spec's examples, the shapes the 3.7 master sends (from the transcripts), references,
// failures both ways, and refusals with E_JELLY.
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_VALUES } from '../../agent/connection/limits.js';
import { encode, type Sexp } from '../../agent/connection/pb/banana.js';
import { CopiedFailure, CopyableFailure, jelly, JellyInstance, unjelly, Unpersistable, type JellyPeer } from '../../agent/connection/pb/jelly.js';
import { PyFloat, PyTuple } from '../../agent/py/values.js';

const hex = (s: string): string => s.replace(/\s+/g, '');
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const u = (s: string): Sexp => [b('unicode'), Buffer.from(s, 'utf8')];
const wire = (v: unknown): string => encode(jelly(v)).toString('hex');

describe('jelly encode (spec §2 byte examples)', () => {
  it.each<[string, unknown, string]>([
    ['text', 'héllo', '02 80 07 82 75 6e 69 63 6f 64 65 06 82 68 c3 a9 6c 6c 6f'],
    ['None', null, '01 80 01 87'],
    ['undefined as None', undefined, '01 80 01 87'],
    ['True', true, '02 80 07 82 62 6f 6f 6c 65 61 6e 04 82 74 72 75 65'],
    ['list', [1, 'a'], '03 80 08 87 01 81 02 80 07 82 75 6e 69 63 6f 64 65 01 82 61'],
    ['tuple', new PyTuple([1, 2]), '03 80 0b 87 01 81 02 81'],
    ['empty tuple', new PyTuple([]), '01 80 0b 87'],
    ['dict', { rc: 0 }, '02 80 05 87 02 80 02 80 07 82 75 6e 69 63 6f 64 65 02 82 72 63 00 81'],
    ['empty dict', {}, '01 80 05 87'],
    ['bytes', b('root'), '04 82 72 6f 6f 74'],
    ['float', new PyFloat(1.5), '84 3f f8 00 00 00 00 00 00'],
  ])('%s', (_n, value, bytes) => {
    expect(wire(value)).toBe(hex(bytes));
  });

  it('encodes the update of a log item like the capture', () => {
    const v = new PyTuple([[[{ log: new PyTuple(['mylog', 'logline3\n']) }, 0]]]);
    expect(jelly(v)).toEqual([b('tuple'), [b('list'), [b('list'), [b('dictionary'), [u('log'), [b('tuple'), u('mylog'), u('logline3\n')]]], 0]]]);
  });

  it('writes U+FFFD for lone surrogates (the master decodes UTF-8 strictly)', () => {
    expect(jelly('a\ud800b')).toEqual([b('unicode'), Buffer.from('a\ufffdb', 'utf8')]);
  });

  it('encodes Maps with non-text keys and bigint', () => {
    expect(jelly(new Map<unknown, unknown>([[1, 'x']]))).toEqual([b('dictionary'), [1, u('x')]]);
    expect(jelly(2n ** 60n)).toBe(2n ** 60n);
  });

  it('refuses what has no jelly form', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    for (const v of [() => 1, Symbol('x'), new Date(), cyclic]) {
      expect(() => jelly(v)).toThrow(expect.objectContaining({ code: 'E_JELLY' }));
    }
  });

  it('sends a repeated (non-cyclic) value twice', () => {
    const shared = { a: 1 };
    expect(unjelly(jelly([shared, shared]))).toEqual([{ a: 1 }, { a: 1 }]);
  });

  it('writes a CopyableFailure with the state keys and types of the capture', () => {
    const f = new CopyableFailure({
      type: 'builtins.NotADirectoryError',
      value: "[Errno 20] Not a directory: '/x'",
      traceback: 'Traceback (most recent call last):\n',
      parents: ['builtins.NotADirectoryError', 'builtins.OSError', 'builtins.Exception', 'builtins.BaseException', 'builtins.object'],
      unsafeTracebacks: true,
      pickled: true,
    });
    const s = jelly(f) as Sexp[];
    expect(s[0]).toEqual(b('twisted.spread.pb.CopyableFailure'));
    const dict = s[1] as Sexp[];
    expect(dict[0]).toEqual(b('dictionary'));
    const keys = dict.slice(1).map((p) => ((p as Sexp[])[0] as Sexp[])[1]!.toString());
    expect(keys).toEqual(['count', 'type', 'value', 'captureVars', 'frames', 'stack', 'tb', 'parents', 'pickled', 'unsafeTracebacks', 'traceback']);
    const entry = (k: string): Sexp => (dict.slice(1).find((p) => ((p as Sexp[])[0] as Sexp[])[1]!.toString() === k) as Sexp[])[1]!;
    // `type` is raw bytes, everything else textual is unicode
    expect(entry('type')).toEqual(b('builtins.NotADirectoryError'));
    expect(entry('value')).toEqual(u("[Errno 20] Not a directory: '/x'"));
    expect(entry('captureVars')).toEqual([b('boolean'), b('false')]);
    expect(entry('frames')).toEqual([b('list')]);
    expect(entry('tb')).toEqual([b('None')]);
    expect(entry('pickled')).toBe(1);
    expect(entry('unsafeTracebacks')).toEqual([b('boolean'), b('true')]);
    // and it reads back as a CopiedFailure
    const back = unjelly(s) as CopiedFailure;
    expect(back).toBeInstanceOf(CopiedFailure);
    expect(back.type).toBe('builtins.NotADirectoryError');
    expect(back.check('builtins.OSError')).toBe(true);
  });

  it('leaves out `pickled` for a synchronous error', () => {
    const f = new CopyableFailure({ type: 'x.Y', value: 'v', traceback: 'Traceback unavailable\n', parents: ['x.Y'], unsafeTracebacks: false });
    const keys = ((jelly(f) as Sexp[])[1] as Sexp[]).slice(1).map((p) => ((p as Sexp[])[0] as Sexp[])[1]!.toString());
    expect(keys).not.toContain('pickled');
  });
});

describe('jelly decode', () => {
  it('decodes the startCommand args of the capture', () => {
    const sexp: Sexp = [
      b('dictionary'),
      [u('workdir'), u('build')],
      [u('env'), [b('dictionary'), [u('MYVAR'), u('myvalue')]]],
      [u('want_stdout'), [b('boolean'), b('true')]],
      [u('logfiles'), [b('dictionary')]],
      [u('timeout'), 1200],
      [u('maxTime'), [b('None')]],
      [u('command'), [b('list'), u('echo'), [b('tuple'), u('obfuscated'), u('real'), u('XXXX')]]],
      [u('blocksize'), 262144],
      [u('mode'), 416],
      [u('elapsed'), new PyFloat(0.5)],
    ];
    expect(unjelly(sexp)).toEqual({
      workdir: 'build',
      env: { MYVAR: 'myvalue' },
      want_stdout: true,
      logfiles: {},
      timeout: 1200,
      maxTime: null,
      command: ['echo', new PyTuple(['obfuscated', 'real', 'XXXX'])],
      blocksize: 262144,
      mode: 416,
      elapsed: 0.5,
    });
  });

  it('keeps raw strings as bytes and accepts byte keys (Python 2 masters)', () => {
    expect(unjelly(b('abc'))).toEqual(b('abc'));
    expect(unjelly([b('dictionary'), [b('k'), b('v')]])).toEqual({ k: b('v') });
    expect(unjelly([b('dictionary'), [1, u('x')]])).toEqual(new Map([[1, 'x']]));
  });

  it('stores a "__proto__" key as data', () => {
    const o = unjelly([b('dictionary'), [u('__proto__'), u('x')]]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value).toBe('x');
  });

  it('resolves reference/dereference to one shared value', () => {
    // [l, l] as Twisted writes it
    const shared = unjelly([b('list'), [b('reference'), 1, [b('list'), 1]], [b('dereference'), 1]]) as unknown[][];
    expect(shared).toEqual([[1], [1]]);
    expect(shared[0]).toBe(shared[1]);
  });

  it('refuses a value that contains itself (Buildbot never sends one; every copy of it would loop)', () => {
    // l = []; l.append(l)
    expect(() => unjelly([b('reference'), 1, [b('list'), [b('dereference'), 1]]])).toThrow(
      expect.objectContaining({ code: 'E_JELLY', message: 'jelly reference 1 contains itself (a cycle), which is not accepted' }),
    );
    expect(() => unjelly([b('reference'), 2, [b('dictionary'), [u('me'), [b('dereference'), 2]]]])).toThrow(/contains itself/);
  });

  it('bounds shared references by their expanded size: a chain that doubles at each level is refused', () => {
    // r0 = [1]; r(k) = [r(k-1), r(k-1)]: 2 wire values per level, 2^k values once expanded
    const chain = (levels: number): Sexp => {
      let inner: Sexp = [b('reference'), 0, [b('list'), 1]];
      for (let k = 1; k <= levels; k++) inner = [b('reference'), k, [b('list'), inner, [b('dereference'), k - 1]]];
      return inner;
    };
    expect(() => unjelly(chain(10), undefined, { maxValues: 10_000 })).not.toThrow();
    expect(() => unjelly(chain(40))).toThrow(
      expect.objectContaining({
        code: 'E_JELLY',
        message: `jelly message too large: more than ${MAX_MESSAGE_VALUES} values once shared references are expanded`,
      }),
    );
    // what the limit leaves through is shared, not copied
    const ok = unjelly(chain(3)) as unknown[];
    expect(ok[0]).toBe(ok[1]);
  });

  it('decodes remote/local through the peer, and refuses them without one', () => {
    const peer: JellyPeer = { remoteReference: (n) => ({ remote: n }), localObject: (n) => ({ local: n }) };
    expect(unjelly([b('tuple'), [b('remote'), 71], [b('local'), 2]], peer)).toEqual(new PyTuple([{ remote: 71 }, { local: 2 }]));
    expect(() => unjelly([b('remote'), 1])).toThrow(expect.objectContaining({ code: 'E_JELLY' }));
  });

  it('decodes the UnauthorizedLogin failure of a bad password (pb-04)', () => {
    const state: Sexp = [
      b('dictionary'),
      [u('count'), 71],
      [u('type'), b('twisted.cred.error.UnauthorizedLogin')],
      [u('value'), u('')],
      [u('captureVars'), [b('boolean'), b('false')]],
      [u('frames'), [b('list')]],
      [u('stack'), [b('list')]],
      [u('tb'), [b('None')]],
      [u('parents'), [b('list'), u('twisted.cred.error.UnauthorizedLogin'), u('twisted.cred.error.LoginFailed'), u('builtins.object')]],
      [u('pickled'), 1],
      [u('unsafeTracebacks'), [b('boolean'), b('true')]],
      [u('traceback'), u('Traceback (most recent call last):\n...')],
    ];
    const f = unjelly([b('twisted.spread.pb.CopyableFailure'), state]) as CopiedFailure;
    expect(f).toBeInstanceOf(CopiedFailure);
    expect(f.type).toBe('twisted.cred.error.UnauthorizedLogin');
    expect(f.check('twisted.cred.error.LoginFailed')).toBe(true);
    expect(f.traceback).toContain('Traceback');
  });

  it('decodes other copyables generically and unpersistables', () => {
    expect(unjelly([b('buildbot.Thing'), [b('dictionary'), [u('a'), 1]]])).toEqual(new JellyInstance('buildbot.Thing', { a: 1 }));
    expect(unjelly([b('unpersistable'), b('References cannot be serialized')])).toEqual(new Unpersistable('References cannot be serialized'));
  });

  it('refuses unknown and insecure types with E_JELLY', () => {
    const bad: Sexp[] = [
      [b('instance'), b('x')],
      [b('class'), b('os.system')],
      [b('function'), b('os.system')],
      [b('module'), b('os')],
      [b('set'), 1],
      [b('nodots'), 1],
      [b('a.b')], // copyable without state
      [],
      [1, 2],
      [b('boolean'), b('maybe')],
      [b('unicode')],
      [b('dictionary'), [u('k')]],
      [b('dereference'), 9],
      [b('reference'), b('x'), 1],
      [b('reference'), 1, [b('reference'), 1, 2]],
    ];
    for (const s of bad) expect(() => unjelly(s), JSON.stringify(s)).toThrow(expect.objectContaining({ code: 'E_JELLY' }));
  });

  it('round-trips the values Buildbot exchanges', () => {
    const v = {
      s: 'tëxt',
      n: -12,
      big: 2n ** 63n,
      f: new PyFloat(2),
      yes: true,
      no: false,
      none: null,
      bytes: b('\x00\xff'),
      list: [1, [2, 'x']],
      tuple: new PyTuple([1, new PyTuple([])]),
      nested: { a: { b: [] } },
    };
    expect(unjelly(jelly(v))).toEqual({ ...v, f: 2 });
  });
});
