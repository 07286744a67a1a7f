import { describe, expect, it } from 'vitest';
import { LineBoundaryFinder } from '../../agent/output/lines.js';
import { DEFAULT_NEWLINE_RE, pythonRegexToJs } from '../../agent/output/newline-re.js';

const re = () => pythonRegexToJs(DEFAULT_NEWLINE_RE);

describe('LineBoundaryFinder (cases from worker-internals-experiments.txt)', () => {
  it('returns whole lines and keeps the partial one', () => {
    const f = new LineBoundaryFinder(4096, re());
    expect(f.append('out1\nerr', 1.0)).toEqual({ text: 'out1\n', indexes: [4], times: [1.0] });
    expect(f.append('or\n', 2.0)).toEqual({ text: 'error\n', indexes: [5], times: [1.0] });
    expect(f.append('tail', 3.0)).toBeNull();
    expect(f.flush()).toEqual({ text: 'tail\n', indexes: [4], times: [3.0] });
    expect(f.flush()).toBeNull();
  });

  it('treats \\r followed by a character as a newline; a trailing \\r waits', () => {
    const f = new LineBoundaryFinder(4096, re());
    expect(f.append('abc\rdef\r', 1.0)).toEqual({ text: 'abc\n', indexes: [3], times: [1.0] });
    expect(f.append('\nxyz', 2.0)).toEqual({ text: 'def\n', indexes: [3], times: [1.0] });
    expect(f.flush()).toEqual({ text: 'xyz\n', indexes: [3], times: [2.0] });
  });

  it('turns backspaces and ESC[2J into newlines', () => {
    const f = new LineBoundaryFinder(4096, re());
    expect(f.append('progress\x08\x08\x08done\x1b[2Jcleared\n', 1.0)).toEqual({
      text: 'progress\ndone\ncleared\n',
      indexes: [8, 13, 21],
      times: [1.0, 1.0, 1.0],
    });
  });

  it('cuts long lines without losing data (buildbot-worker 3.7 loses the middle)', () => {
    const f = new LineBoundaryFinder(10, re());
    const r = f.append('0123456789abcdefghijklmnopqrstuvwxyz\n', 1.0)!;
    expect(r.text.replace(/\n/g, '')).toBe('0123456789abcdefghijklmnopqrstuvwxyz');
    expect(
      r.text
        .split('\n')
        .slice(0, -1)
        .every((l) => l.length <= 9),
    ).toBe(true);
    expect(r.indexes).toEqual([...r.text].flatMap((c, i) => (c === '\n' ? [i] : [])));
    expect(r.times).toHaveLength(r.indexes.length);
  });

  it('cuts a long unterminated tail as it arrives and keeps times consistent', () => {
    const f = new LineBoundaryFinder(10, re());
    const r = f.append('0123456789abcdefghijkl', 1.0)!;
    expect(r.text).toBe('012345678\n9abcdefgh\n');
    expect(r.times).toEqual([1.0, 1.0]);
    expect(f.flush()).toEqual({ text: 'ijkl\n', indexes: [4], times: [1.0] });
  });

  it('never splits a surrogate pair', () => {
    const f = new LineBoundaryFinder(4, re());
    const r = f.append('ab😀cdef\n', 1)!;
    for (const line of r.text.split('\n')) expect(line).toBe(Buffer.from(line, 'utf8').toString('utf8'));
    expect(r.text.replace(/\n/g, '')).toBe('ab😀cdef');
  });

  it('Python . semantics: \\r\\r gives an empty line', () => {
    const f = new LineBoundaryFinder(4096, re());
    expect(f.append('a\r\rb\n', 1)?.text).toBe('a\n\nb\n');
  });
});

describe('pythonRegexToJs', () => {
  it('translates octal escapes, dots and named groups', () => {
    expect(pythonRegexToJs('\\033\\[2J').source).toBe('\\x1b\\[2J');
    expect(pythonRegexToJs('a.b').test('a\rb')).toBe(true);
    expect(pythonRegexToJs('(?P<x>a)(?P=x)').test('aa')).toBe(true);
    expect(pythonRegexToJs('[.]').test('x')).toBe(false);
  });
  it('refuses a bad pattern with a clear error', () => {
    expect(() => pythonRegexToJs('(')).toThrow(/newline_re "\(" is not a usable regex/);
  });
});
