// Timers for the output pipeline's tests (agent/output/buffer.ts's Timers): nothing fires until the test says so.
import type { Timers } from '../../agent/output/buffer.js';

export interface FakeTimers {
  timers: Timers;
  /** The armed timers, in the order they were set. */
  pending: { cb: () => void; ms: number; id: number }[];
  /** Fires every armed timer (those it arms meanwhile wait for the next call). */
  fire: () => void;
}

export function fakeTimers(): FakeTimers {
  const pending: { cb: () => void; ms: number; id: number }[] = [];
  let next = 0;
  const timers: Timers = {
    setTimeout: (cb, ms) => {
      pending.push({ cb, ms, id: next });
      return next++;
    },
    clearTimeout: (h) => {
      const i = pending.findIndex((p) => p.id === h);
      if (i >= 0) pending.splice(i, 1);
    },
  };
  return { timers, pending, fire: () => pending.splice(0).forEach((p) => p.cb()) };
}
