// Checks repr(float) and round() against python3's own, for timestamps, extremes and random values.

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pyFloatRepr, roundHalfEven } from '../../agent/py/float.js';

describe('Python floats', () => {
  it('float repr and rounding match python', () => {
    const vals = [
      1795561837.2578204, 1700000000, 1e16, 1.5e16, 1e-5, 0.0001, 123, -1.5, 5e-324, 1.7976931348623157e308, 0.1, 12345678901234567, 2.5, 3.5, 1795561837.5,
      0.5, 1.0000000000000002,
    ];
    for (let i = 0; i < 50; i++) vals.push(Math.random() * 2e9, (Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 40 - 20));
    const py = JSON.parse(
      execFileSync(
        'python3',
        ['-c', 'import json,sys\nv=json.loads(sys.argv[1])\nprint(json.dumps([[repr(float(x)), round(float(x))] for x in v]))', JSON.stringify(vals)],
        {
          encoding: 'utf8',
        },
      ),
    ) as [string, number][];
    vals.forEach((v, i) => {
      expect([v, pyFloatRepr(v)]).toEqual([v, py[i]![0]]);
      if (Math.abs(v) < 1e15) expect([v, roundHalfEven(v)]).toEqual([v, py[i]![1]]);
    });
  });
});
