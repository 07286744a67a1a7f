// startDelay: the one wrapper for delays that come from the master. A bare setTimeout of 2^31 ms or more fires
// after 1 ms; startDelay chains shorter timers instead, and refresh() restarts the whole delay.
import { describe, expect, it, vi } from 'vitest';
import { BufferManager } from '../../agent/output/buffer.js';
import { MAX_TIMER_DELAY_MS, settleWithin, startDelay, valueWithin } from '../../agent/timers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('startDelay', () => {
  it('a delay of 2^31 ms or more does not fire early (a bare setTimeout would fire at once)', async () => {
    let fired = 0;
    const timers = [2 ** 31, 2 ** 32 + 5, 30 * 86400 * 1000, Number.MAX_SAFE_INTEGER].map((ms) => startDelay(() => fired++, ms));
    await sleep(100);
    expect(fired).toBe(0);
    for (const t of timers) t.cancel();
  });

  it('Infinity never fires; NaN and negative delays are refused', async () => {
    let fired = false;
    const t = startDelay(() => (fired = true), Infinity);
    await sleep(30);
    expect(fired).toBe(false);
    t.cancel();
    expect(() => startDelay(() => {}, NaN)).toThrow(RangeError);
    expect(() => startDelay(() => {}, -1)).toThrow(/>= 0/);
  });

  it('a long delay runs as a chain of shorter timers and fires once, after the whole delay', async () => {
    const t0 = performance.now();
    const at = await new Promise<number>((resolve) => startDelay(() => resolve(performance.now()), 120, { maxChunkMs: 25 }));
    expect(at - t0).toBeGreaterThanOrEqual(110); // Node times from its cached loop clock: a few ms early is possible
  });

  it('refresh restarts the whole delay, in the chain as on the short path', async () => {
    for (const maxChunkMs of [25, MAX_TIMER_DELAY_MS]) {
      let firedAt: number | undefined;
      const t0 = performance.now();
      const t = startDelay(() => (firedAt = performance.now()), 100, { maxChunkMs });
      await sleep(60);
      t.refresh(); // now due at ~160
      await sleep(60);
      expect(firedAt, `chunk ${maxChunkMs}`).toBeUndefined();
      await sleep(150);
      expect(firedAt! - t0, `chunk ${maxChunkMs}`).toBeGreaterThanOrEqual(150);
    }
  });

  it('cancel stops it, and a fired timer ignores refresh', async () => {
    let n = 0;
    const t = startDelay(() => n++, 20, { maxChunkMs: 5 });
    t.cancel();
    await sleep(50);
    expect(n).toBe(0);
    const u = startDelay(() => n++, 5);
    await sleep(30);
    u.refresh();
    await sleep(30);
    expect(n).toBe(1);
  });

  it("the master's buffer_timeout of 2^31 ms or more does not flush output at once", async () => {
    const sent: unknown[] = [];
    const buf = new BufferManager((items) => sent.push(items), 64 * 1024, 2 ** 31);
    buf.append({ kind: 'text', key: 'stdout', chunk: { text: 'a\n', indexes: [1], times: [0] } });
    await sleep(100);
    expect(sent).toEqual([]);
    buf.flush();
    expect(sent).toHaveLength(1);
  });
});

describe('startDelay refresh on the output path', () => {
  it('restarts the same Node timer instead of creating a new one at each refresh', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      const t = startDelay(() => {}, 60_000);
      for (let i = 0; i < 100; i++) t.refresh();
      t.cancel();
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('settleWithin: the one bounded wait of the agent', () => {
  const never = new Promise<number>(() => {});

  it('the value, or why there is none: too slow, rejected, aborted; never rejects itself', async () => {
    expect(await settleWithin(Promise.resolve(7), 1000)).toEqual({ ok: true, value: 7 });
    expect(await settleWithin(never, 20)).toEqual({ ok: false, why: 'not done within 0.02 s' });
    expect(await settleWithin(Promise.reject(new Error('disk full')), 1000)).toEqual({ ok: false, why: 'disk full' });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 10);
    expect(await settleWithin(never, 60_000, ac.signal)).toEqual({ ok: false, why: 'aborted' });
    expect(await settleWithin(Promise.resolve(1), 1000, ac.signal)).toEqual({ ok: false, why: 'aborted' });
    expect(await settleWithin(never, NaN)).toMatchObject({ ok: false });
    expect(await valueWithin(new Promise<string>(() => {}), 10, 'fallback')).toBe('fallback');
    expect(await valueWithin(Promise.resolve('v'), 10, 'fallback')).toBe('v');
  });
});
