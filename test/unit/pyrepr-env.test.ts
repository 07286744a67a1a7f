import { describe, expect, it } from 'vitest';
import { reprBytes, reprStr, reprValue, shellQuote } from '../../agent/process/pyrepr.js';
import { buildEnvironment } from '../../agent/process/environment.js';

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

describe('buildEnvironment', () => {
  const base = { PATH: '/usr/bin', HOME: '/root', PYTHONPATH: '/p', KEEP: 'k' };
  it('deletes None, joins lists, expands ${VAR}, appends PYTHONPATH', () => {
    const env = buildEnvironment(base, { HOME: null, LIST: ['a', 'b'], X: '${HOME}/x${MISSING}', PYTHONPATH: '/mine' }, ':');
    expect(env).toEqual({ PATH: '/usr/bin', PYTHONPATH: '/mine:/p', KEEP: 'k', LIST: 'a:b', X: '/root/x' });
  });
  it('refuses non-string values naming the key', () => {
    expect(() => buildEnvironment(base, { N: 3 }, ':')).toThrow(/key 'N' is incorrect/);
  });
  it('no env: a copy of the worker environment', () => {
    expect(buildEnvironment(base, undefined, ':')).toEqual(base);
  });
});
