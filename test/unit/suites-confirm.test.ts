// Confirm-failures with an injected runner: every failure is rerun under the policy and classified, known
// intermittents are not rerun, failures past the cap are left unconfirmed, and a runner that throws stops it.
import { describe, expect, it } from 'vitest';
import type { RunOutcome } from '../../agent/suites/classify.js';
import { confirmFailures } from '../../agent/suites/confirm.js';
import { seeded } from '../helpers/seeded.js';

function recordingRunner(outcomeOf: (test: string, attempt: number) => RunOutcome) {
  const calls: string[] = [];
  return {
    calls,
    runOne: async (test: string, attempt: number): Promise<RunOutcome> => {
      calls.push(`${test}#${attempt}`);
      return outcomeOf(test, attempt);
    },
  };
}

describe('confirmFailures', () => {
  it('reruns each failure K times and classifies it', async () => {
    const rand = seeded(3);
    const r = recordingRunner((test) => (test === 'broken' ? 'fail' : rand() < 0.3 ? 'fail' : 'pass'));
    const { classified, unconfirmed } = await confirmFailures(['broken', 'flaky'], { policy: { reruns: 9 }, runOne: r.runOne });
    expect(classified.get('broken')).toMatchObject({ kind: 'regression', reruns: 9, failures: 9 });
    expect(classified.get('flaky')).toMatchObject({ kind: 'intermittent', reruns: 9 });
    expect(r.calls.filter((c) => c.startsWith('broken#'))).toEqual(Array.from({ length: 9 }, (_, i) => `broken#${i + 1}`));
    expect(unconfirmed).toEqual([]);
  });

  it('stops at the first pass when the policy says so', async () => {
    const r = recordingRunner((_test, attempt) => (attempt < 3 ? 'fail' : 'pass'));
    const { classified } = await confirmFailures(['t'], { policy: { reruns: 9, stopAtFirstPass: true }, runOne: r.runOne });
    expect(r.calls).toEqual(['t#1', 't#2', 't#3']);
    expect(classified.get('t')).toMatchObject({ kind: 'intermittent', reruns: 3, failures: 2 });
  });

  it('does not rerun a known intermittent, and leaves failures past the cap unconfirmed', async () => {
    const r = recordingRunner(() => 'fail');
    const tests = ['known', 'a', 'b', 'c'];
    const { classified, unconfirmed } = await confirmFailures(tests, {
      policy: { reruns: 2 },
      runOne: r.runOne,
      knownIntermittent: (t) => t === 'known',
      maxTests: 2,
    });
    expect(classified.get('known')).toEqual({ kind: 'known-intermittent', reruns: 0, failures: 0 });
    expect([...classified.keys()]).toEqual(['known', 'a', 'b']);
    expect(unconfirmed).toEqual(['c']);
    expect(r.calls).toEqual(['a#1', 'a#2', 'b#1', 'b#2']);
  });

  it('passes on a runner that cannot run the test', async () => {
    const runOne = async (): Promise<RunOutcome> => {
      throw new Error('spawn failed');
    };
    await expect(confirmFailures(['t'], { policy: { reruns: 3 }, runOne })).rejects.toThrow('spawn failed');
  });
});
