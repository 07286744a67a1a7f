// Recorded durations: a run's results become samples (skips left out), the median damps an outlier, old entries
// age out, the file round-trips byte-identically in code-unit order, a flat map is read too, a malformed file is a
// clear error naming it, and the snapshot id changes with the durations and not with their order.
import { describe, expect, it } from 'vitest';
import { chunkTests } from '../../agent/suites/chunk.js';
import { durationsOf, emptyHistory, formatHistory, parseHistory, recordRun, snapshotId, type TimedResult } from '../../agent/suites/durations.js';

const pass = (name: string, duration_s: number): TimedResult => ({ name, status: 'pass', duration_s });

describe('recordRun and durationsOf', () => {
  it('keeps the last samples of each test and balances on their median', () => {
    let h = emptyHistory();
    for (const t of [1, 2, 100, 3, 4, 5]) h = recordRun(h, [pass('a', t), { name: 's', status: 'skip', duration_s: 9 }], 5);
    expect(h.runs).toBe(6);
    expect(h.tests.get('a')!.samples).toEqual([2, 100, 3, 4, 5]);
    expect(durationsOf(h)).toEqual(new Map([['a', 4]]));
    expect(h.tests.has('s')).toBe(false);
    expect(durationsOf(recordRun(emptyHistory(), [pass('b', 1), pass('b', 2)])).get('b')).toBe(1.5);
  });

  it('drops a test not seen in maxAge runs, and does not change the history it was given', () => {
    let h = recordRun(emptyHistory(), [pass('old', 1), pass('kept', 1)]);
    const before = formatHistory(h);
    for (let i = 0; i < 3; i++) h = recordRun(h, [pass('kept', 2)], 5, 3);
    expect(h.tests.has('old')).toBe(true);
    h = recordRun(h, [pass('kept', 2)], 5, 3);
    expect(h.tests.has('old')).toBe(false);
    expect(parseHistory(before, 'before.json').tests.has('old')).toBe(true);
  });
});

describe('the durations file', () => {
  it('round-trips byte-identically, keys in code-unit order, a test named __proto__ included', () => {
    const h = recordRun(emptyHistory(), [pass('z', 1.5), pass('é', 2), pass('B', 0.25), pass('__proto__', 3), pass('a', 1e-7)]);
    const text = formatHistory(h);
    expect(Object.keys(JSON.parse(text).tests)).toEqual(['B', '__proto__', 'a', 'z', 'é']);
    expect(formatHistory(parseHistory(text, 'd.json'))).toBe(text);
    expect(durationsOf(parseHistory(text, 'd.json'))).toEqual(durationsOf(h));
  });

  it('reads a flat {id: seconds} map as one sample each, and chunking balances on it', () => {
    const h = parseHistory('{"t/a": 10, "t/b": 6, "t/c": 5, "t/d": 3}', 'flat.json');
    expect(durationsOf(h).get('t/b')).toBe(6);
    expect(chunkTests(['t/a', 't/b', 't/c', 't/d'], { total: 2, this: 1, durations: durationsOf(h) })).toEqual(['t/a', 't/d']);
  });

  it.each([
    ['not json', 'bad.json: not JSON'],
    ['[1]', 'bad.json: expected a JSON object'],
    ['{"t": -1}', 'bad.json: the duration of test "t" is not a number of seconds >= 0'],
    ['{"bbagent_durations": 2}', 'bad.json: unknown bbagent_durations version 2'],
    ['{"bbagent_durations": 1, "runs": 1, "tests": {"t": {"samples": ["1"], "last_run": 1}}}', 'bad.json: test "t" needs "samples"'],
    ['{"bbagent_durations": 1, "runs": -1, "tests": {}}', 'bad.json: "runs" must be an integer >= 0'],
  ])('rejects %s with E_SUITE_DURATIONS_FILE naming the file', (text, message) => {
    expect(() => parseHistory(text, 'bad.json')).toThrow(
      expect.objectContaining({ code: 'E_SUITE_DURATIONS_FILE', message: expect.stringContaining(message) }),
    );
  });
});

describe('snapshotId', () => {
  it('is the same for the same durations in any order, and differs when one changes', () => {
    const a = new Map([
      ['x', 1],
      ['y', 2],
    ]);
    const b = new Map([
      ['y', 2],
      ['x', 1],
    ]);
    expect(snapshotId(a)).toBe(snapshotId(b));
    expect(snapshotId(a)).toMatch(/^[0-9a-f]{16}$/);
    expect(snapshotId(new Map([...a, ['x', 1.5]]))).not.toBe(snapshotId(a));
  });
});
