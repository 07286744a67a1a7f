import { afterEach, describe, expect, it, vi } from 'vitest';
import { bulkBytes, collectGarbage, compactHeap, IdleCompactor, type IdleCompactorOptions } from '../../agent/memory.js';
import { silentLogger } from '../../agent/log.js';

/** An IdleCompactor whose garbage measure and collection are stubs on `s` (a collection leaves `s.left`). */
function stubbedCompactor(s: { busy: boolean; bulk: number; left: number; t: number; active: number }, extra: Partial<IdleCompactorOptions>) {
  const measured = vi.fn(() => s.bulk);
  const collect = vi.fn(() => {
    s.bulk = s.left;
    return true;
  });
  const c = new IdleCompactor({
    busy: () => s.busy,
    activity: () => 0,
    logger: silentLogger,
    bulk: measured,
    collect,
    checkBusyMs: 100,
    boundBytes: 50,
    now: () => s.t,
    activeMs: () => s.active,
    ...extra,
  });
  return { c, measured, collect };
}

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
    const c = new IdleCompactor({ busy: () => busy, activity: () => started, logger: silentLogger, quietMs: 1000, startQuietMs: 200, compact });

    c.poke(); // connected: the first compaction comes after startQuietMs
    vi.advanceTimersByTime(199);
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

  it('while a command runs, measures after each 100 ms of loop work and collects once the garbage grew by the bound', () => {
    const s = { busy: false, bulk: 10, left: 12, t: 0, active: 0 };
    const { c, measured, collect } = stubbedCompactor(s, { minIntervalMs: 250 });
    s.bulk = 1000;
    c.sample(500); // idle: never measured
    expect(measured).not.toHaveBeenCalled();
    s.busy = true;
    for (let i = 0; i < 50; i++) c.sample(1); // a quiet step: 50 ms of work, nothing measured yet
    expect(measured).not.toHaveBeenCalled();
    s.bulk = 20;
    c.sample(50); // 100 ms of work: the base
    expect(measured).toHaveBeenCalledTimes(1);
    s.bulk = 69;
    s.t += 100;
    c.sample(100);
    expect(collect).not.toHaveBeenCalled();
    s.bulk = 70;
    s.t += 100;
    c.sample(100);
    expect(collect).toHaveBeenCalledTimes(1);
    s.bulk = 61; // 49 over what the collection left
    s.t += 300;
    c.sample(100);
    expect(collect).toHaveBeenCalledTimes(1);
    s.bulk = 62;
    s.t += 100;
    c.sample(100);
    expect(collect).toHaveBeenCalledTimes(2);
    s.bulk = 100; // over the bound again at once: not within minIntervalMs of the last collection
    s.t += 100;
    c.sample(100);
    expect(collect).toHaveBeenCalledTimes(2);
    s.t += 200;
    c.sample(100);
    expect(collect).toHaveBeenCalledTimes(3);
    expect(c.collections).toBe(3);
    c.stop();
    s.bulk = 10_000;
    c.sample(1000);
    expect(collect).toHaveBeenCalledTimes(3);
  });

  it('measures dead Buffers and large strings, and a collection frees them', async () => {
    // flat 1 MiB strings (large-object space) and Buffers (ArrayBuffer memory, when this runs on the main thread)
    let junk: unknown[] | undefined = [
      ...Array.from({ length: 8 }, (_, i) => Buffer.alloc(1024 * 1024, 97 + i).toString('latin1')),
      ...Array.from({ length: 8 }, () => Buffer.alloc(1024 * 1024, 1)),
    ];
    expect(junk.length).toBe(16);
    const before = bulkBytes();
    junk = undefined;
    expect(collectGarbage()).toBe(true);
    // an ArrayBuffer's memory is given back by V8's sweeper, which may finish on another thread after the
    // collection returns (seen under load): give it a few turns, collecting again, up to 5 s
    const target = before - 7 * 1024 * 1024;
    for (const deadline = Date.now() + 5000; bulkBytes() >= target && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      collectGarbage();
    }
    expect(bulkBytes()).toBeLessThan(target);
  });

  it("a command's start arms a guard that bounds a short, fast command's garbage before the loop monitor samples, and backs off while the loop is quiet", () => {
    vi.useFakeTimers();
    const s = { busy: true, bulk: 0, left: 0, t: 0, active: 0 };
    const { c, measured, collect } = stubbedCompactor(s, { minIntervalMs: 0, now: () => Date.now() });
    // a fast download: the loop works all the time and its buffers pile up; nothing else samples
    c.commandStarted();
    s.active = 200;
    vi.advanceTimersByTime(250);
    expect(measured).toHaveBeenCalledTimes(1); // the base
    s.bulk = 60;
    s.active = 400;
    vi.advanceTimersByTime(250);
    expect(collect).toHaveBeenCalledTimes(1);
    // the loop goes quiet: the guard backs off (500, 1000, 2000, 2000 ms) and measures nothing more
    const fired = measured.mock.calls.length;
    vi.advanceTimersByTime(250 + 500 + 1000 + 2000 + 2000);
    expect(measured).toHaveBeenCalledTimes(fired);
    expect(vi.getTimerCount()).toBe(1);
    // another command starts: back to 250 ms at once
    c.commandStarted();
    s.active += 150;
    vi.advanceTimersByTime(2000);
    expect(measured.mock.calls.length).toBeGreaterThan(fired);
    // no command runs: the guard ends
    s.busy = false;
    vi.advanceTimersByTime(2000);
    expect(vi.getTimerCount()).toBe(0);
    c.commandStarted();
    c.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});
