// Checks the Python-to-JavaScript regex translation against python3's re: the same matches at the same places.

import { describe, expect, it } from 'vitest';
import { DEFAULT_NEWLINE_RE } from '../../agent/output/newline-re.js';
import { pythonRegexSource } from '../../agent/py/regex.js';
import { python } from '../helpers/python.js';

const PATTERNS = [DEFAULT_NEWLINE_RE, 'a.b', '\\033\\[\\d+m', '\\0', '\\101\\x42', '[]a]+', '[^]a]+', '(?P<q>[\'"]).*?(?P=q)', '[.]+', '\\n|\\r'];
const INPUT = 'a\rb a\nb \x1b[31mred\x1b[0m \x00 AB ]a]a xyz "q" \'r\' ... \r\n\x08\x08 line\rover \x1b[2J\x1b[u\x1b[3;4H end';

describe('pythonRegexSource', () => {
  it('finds what python finds, where python finds it', () => {
    const want = python('import re\nprint(json.dumps([[[m.start(), m.end()] for m in re.finditer(p, arg[1])] for p in arg[0]]))', [
      PATTERNS,
      INPUT,
    ]) as number[][][];
    PATTERNS.forEach((p, i) => {
      const got = [...INPUT.matchAll(new RegExp(pythonRegexSource(p), 'g'))].map((m) => [m.index, m.index + m[0].length]);
      expect([p, got]).toEqual([p, want[i]]);
    });
  });

  it('spells what JavaScript lacks in its own terms', () => {
    expect(pythonRegexSource('\\033\\[2J')).toBe('\\x1b\\[2J');
    expect(pythonRegexSource('a.b')).toBe('a[^\\n]b');
    expect(pythonRegexSource('(?P<x>a)(?P=x)')).toBe('(?<x>a)\\k<x>');
    expect(pythonRegexSource('[.]')).toBe('[.]');
  });
});
