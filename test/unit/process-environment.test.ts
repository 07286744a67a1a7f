// Checks the child's environment as buildbot-worker builds it from the worker's and the step's `env`.

import { describe, expect, it } from 'vitest';
import { buildEnvironment } from '../../agent/process/environment.js';

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
