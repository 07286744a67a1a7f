import { afterEach, describe, expect, it, vi } from 'vitest';
import { compactHeap, IdleCompactor } from '../../agent/memory.js';
import { silentLogger } from '../../agent/log.js';

describe('idle heap compaction', () => {
  afterEach(() => vi.useRealTimers());

  it('runs V8 collection without the --expose-gc flag and frees garbage', () => {
    let junk: number[][] | undefined = Array.from({ length: 2000 }, () => Array.from({ length: 500 }, (_, i) => i));
    expect(junk.length).toBe(2000);
    const before = process.memoryUsage().heapUsed;
    junk = undefined;
    expect(compactHeap()).toBe(true);
    expect(process.memoryUsage().heapUsed).toBeLessThan(before - 4_000_000);
  });

  it('compacts once per quiet period, never while busy or right after a command started', () => {
    vi.useFakeTimers();
    let busy = false;
    let started = 0;
    const compact = vi.fn(() => true);
    const c = new IdleCompactor({ busy: () => busy, activity: () => started, logger: silentLogger, quietMs: 1000, compact });

    c.poke(); // connected
    vi.advanceTimersByTime(999);
    expect(compact).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(compact).toHaveBeenCalledTimes(1);

    c.poke(); // e.g. a reconnect with no command since: nothing new to give back
    vi.advanceTimersByTime(1000);
    expect(compact).toHaveBeenCalledTimes(1);

    started++; // a command ran and ended
    c.poke();
    vi.advanceTimersByTime(500);
    started++; // another started within the quiet period and still runs
    busy = true;
    vi.advanceTimersByTime(500);
    expect(compact).toHaveBeenCalledTimes(1);
    busy = false; // it ended
    c.poke();
    vi.advanceTimersByTime(1000);
    expect(compact).toHaveBeenCalledTimes(2);

    started++;
    c.poke();
    c.stop();
    vi.advanceTimersByTime(5000);
    expect(compact).toHaveBeenCalledTimes(2);
  });
});
