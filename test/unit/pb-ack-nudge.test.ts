// The PB no-op that carries our acknowledgement when the master's bytes arrived, an answer is still due and we
// had nothing to send (ack-nudge.ts): when it goes out, and when it must not.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ackNudger } from '../../agent/connection/pb/ack-nudge.js';

function target(awaiting: boolean) {
  const t = { awaitingAnswers: awaiting, noops: 0, sendNoop: () => void t.noops++ };
  return t;
}

describe('PB acknowledgement nudge', () => {
  it('sends one no-op after a turn in which the master wrote, an answer is due and we wrote nothing', async () => {
    const t = target(true);
    const n = ackNudger(t);
    n.received();
    n.received();
    expect(t.noops).toBe(0);
    await nextTurn();
    await nextTurn();
    expect(t.noops).toBe(1);
  });

  it('sends nothing when we wrote in that turn (our bytes carry the acknowledgement)', async () => {
    const t = target(true);
    const n = ackNudger(t);
    n.received();
    n.wrote();
    await nextTurn();
    await nextTurn();
    expect(t.noops).toBe(0);
  });

  it('sends nothing when no answer is due', async () => {
    const t = target(false);
    const n = ackNudger(t);
    n.received();
    await nextTurn();
    await nextTurn();
    expect(t.noops).toBe(0);
  });

  it('a write before the bytes arrived does not count', async () => {
    const t = target(true);
    const n = ackNudger(t);
    n.wrote();
    n.received();
    await nextTurn();
    await nextTurn();
    expect(t.noops).toBe(1);
  });
});
