// Checks the Python renderings of the header lines: repr() of str, bytes and values, and shell_quote.

import { describe, expect, it } from 'vitest';
import { reprBytes, reprStr, reprValue } from '../../agent/py/repr.js';
import { shellQuote } from '../../agent/py/shlex.js';
import { python } from '../helpers/python.js';

describe('Python renderings', () => {
  it('repr of bytes and str', () => {
    expect(reprBytes('make all')).toBe("b'make all'");
    expect(reprBytes("it's")).toBe(`b"it's"`);
    expect(reprBytes(`'"`)).toBe(`b'\\'"'`);
    expect(reprBytes('é\n')).toBe("b'\\xc3\\xa9\\n'");
    expect(reprStr('é')).toBe("'é'");
  });
  it('repr of dicts and lists', () => {
    expect(reprValue({})).toBe('{}');
    expect(reprValue({ mylog: 'my.log', o: { filename: 'x', follow: true } })).toBe("{'mylog': 'my.log', 'o': {'filename': 'x', 'follow': True}}");
    expect(reprValue([1, null, 'a'])).toBe("[1, None, 'a']");
  });
  it('shlex quoting as buildbot-worker shell_quote', () => {
    expect(shellQuote(['echo', 'hello world', '', "it's", 'a=b,c/d'])).toBe(`echo 'hello world' "" 'it'"'"'s' a=b,c/d`);
  });
});

describe('against python3', () => {
  const STRS = [
    'plain',
    "it's",
    'say "hi"',
    `both ' and "`,
    '\t\n\r\\',
    '\x00\x1b\x7f',
    '\x85\xa0\xad',
    'é ü ß 日本',
    '\u200b\u2028\u2029\u3000',
    '\ufeff\uffff\ue000',
    '\u{1f600}\u{e0001}\u{10ffff}',
    '\udc80\ud800',
    '\u0378',
  ];

  it("reprStr is python's repr() of str", () => {
    const want = python('print(json.dumps([repr(s) for s in arg]))', STRS) as string[];
    STRS.forEach((s, i) => expect([s, reprStr(s)]).toEqual([s, want[i]]));
  });

  it("reprBytes is python's repr() of the UTF-8 bytes", () => {
    const plain = STRS.filter((s) => !/[\ud800-\udfff]/u.test(s));
    const want = python('print(json.dumps([repr(s.encode("utf-8")) for s in arg]))', plain) as string[];
    plain.forEach((s, i) => expect([s, reprBytes(s)]).toEqual([s, want[i]]));
  });

  it("reprValue is python's repr() of the same dict, list and float values", () => {
    const v = { a: [1, 0.5, 1e-7, 1.5e300, null, true, false], "it's": { x: 'y' } };
    const want = python('print(json.dumps(repr(arg)))', v) as string;
    expect(reprValue(v)).toBe(want);
  });

  it("shellQuote is buildbot-worker's shell_quote (shlex.quote, '' shown as \"\")", () => {
    const args = ['echo', '', 'a b', "it's", 'a=b,c/d@%+:', '$HOME', 'é', '*', 'x\ny', '-n'];
    const want = python('import shlex\nprint(json.dumps(" ".join(shlex.quote(a) if a else \'""\' for a in arg)))', args) as string;
    expect(shellQuote(args)).toBe(want);
  });
});
