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

  it('gives the same lines whichever way a text is cut into reads, with or without long lines', () => {
    // plain lines (no newline_re characters, none too long), then \r, ESC sequences and lines over the limit
    // (not a run of backspaces: one cut inside it makes two newlines, with buildbot-worker too)
    const text = 'alpha\nbeta gamma\n' + 'x'.repeat(25) + '\nde\rlta\r\n\x1b[2Jeps\x08ilon\nzeta\n' + 'y'.repeat(9) + '\n';
    const whole = new LineBoundaryFinder(12, re()).append(text, 1)!;
    for (const step of [1, 3, 7, 16]) {
      const f = new LineBoundaryFinder(12, re());
      let got = '';
      const indexes: number[] = [];
      for (let i = 0; i < text.length; i += step) {
        const c = f.append(text.slice(i, i + step), 1);
        if (c) {
          indexes.push(...c.indexes.map((x) => x + got.length));
          got += c.text;
          expect(c.times).toHaveLength(c.indexes.length);
        }
      }
      expect(got).toBe(whole.text);
      expect(indexes).toEqual(whole.indexes);
    }
    expect(whole.text.split('\n').every((l) => l.length < 12)).toBe(true);
  });

  it("keeps the time a partial line began, and applies a newline_re of the master's own", () => {
    const f = new LineBoundaryFinder(4096, pythonRegexToJs(';'));
    expect(f.append('a;b', 1)).toEqual({ text: 'a\n', indexes: [1], times: [1] });
    expect(f.append('c\nd\n', 2)).toEqual({ text: 'bc\nd\n', indexes: [2, 4], times: [1, 2] });
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
