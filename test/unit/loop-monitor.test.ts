import { describe, expect, it } from 'vitest';
import { LoopMonitor } from '../../agent/loop-monitor.js';
import { createLogger } from '../../agent/log.js';

/**
 * A monitor on fake clocks whose loop has been quiet for `quietTicks` periods (one loop turn each, no work), so
 * its period has grown toward maxCheckMs; `period(ms, work, turns)` then ends one period of `ms` in which the
 * loop did `work` ms of work in `turns` turns.
 */
function quietLoop(maxCheckMs: number, quietTicks: number) {
  const lines: string[] = [];
  let t = 0;
  let active = 0;
  let turns = 0;
  const m = new LoopMonitor({
    logger: createLogger((l) => lines.push(l), { debug: true }),
    now: () => t,
    activeMs: () => active,
    loopTurns: () => turns,
    checkMs: 50,
    maxCheckMs,
  });
  m.start();
  m.stop();
  const period = (ms: number, work: number, n: number): void => {
    t += ms;
    active += work;
    turns += n;
    m.tick();
  };
  const idle = (ticks: number): void => {
    for (let i = 0; i < ticks; i++) period(m.periodMs, 0, 1);
  };
  idle(quietTicks);
  return { m, lines, period, idle };
}

describe('event loop monitor', () => {
  it('logs a stall of 100 ms or more with its length, and nothing for on-time ticks', () => {
    const lines: string[] = [];
    let t = 0;
    // a loop busy all the time: the period stays at checkMs
    const m = new LoopMonitor({ logger: createLogger((l) => lines.push(l)), now: () => t, activeMs: () => t, checkMs: 50 });
    m.start();
    m.stop();
    t += 52;
    m.tick();
    t += 60;
    m.tick();
    expect(lines).toEqual([]);
    expect(m.periodMs).toBe(50);
    t += 50 + 130;
    m.tick();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\[warn\] event loop blocked for 130 ms/);
    expect(m.maxStallMs).toBe(130);
    expect(m.stalls).toBe(1);
  });

  it('wakes up less while the loop is quiet, and samples finely again once it is busy', () => {
    const lines: string[] = [];
    let t = 0;
    let active = 0;
    const m = new LoopMonitor({ logger: createLogger((l) => lines.push(l)), now: () => t, activeMs: () => active, checkMs: 50, maxCheckMs: 1000 });
    m.start();
    m.stop();
    const periods: number[] = [];
    for (let i = 0; i < 6; i++) {
      t += m.periodMs;
      active += 1; // 1 ms of work per period: quiet
      m.tick();
      periods.push(m.periodMs);
    }
    expect(periods).toEqual([100, 200, 400, 800, 1000, 1000]);
    // a stall that covers the due time of a long period is measured by how late the timer ran
    t += 1000 + 150;
    active += 160;
    m.tick();
    expect(lines.filter((l) => /event loop blocked for 150 ms/.test(l))).toHaveLength(1);
    expect(m.periodMs).toBe(50);
    // work that rises to half the bound at the next period brings the period back to checkMs
    for (let i = 0; i < 3; i++) {
      t += m.periodMs;
      m.tick();
    }
    expect(m.periodMs).toBe(400);
    t += 400;
    active += 30; // 30 ms in 400: 60 ms in the next 800, over half of 100
    m.tick();
    expect(m.periodMs).toBe(50);
    expect(m.stalls).toBe(1);
  });

  it('says so when a long period held enough work for a stall that ended before the timer ran', () => {
    const { m, lines, period } = quietLoop(400, 3);
    expect(m.periodMs).toBe(400);
    period(405, 180, 10); // spread over 10 loop turns: no turn need have held 100 ms
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\[debug\] event loop busy for 180 ms of the last 405 ms/);
    expect(m.stalls).toBe(0);
    expect(m.periodMs).toBe(50);
  });

  it('stays quiet while a command runs and the loop is quiet, and reports its work to onSample', () => {
    let t = 0;
    let active = 0;
    const samples: number[] = [];
    const m = new LoopMonitor({ logger: createLogger(() => {}), now: () => t, activeMs: () => active, checkMs: 50, onSample: (busy) => samples.push(busy) });
    m.start();
    m.stop();
    for (let i = 0; i < 4; i++) {
      t += m.periodMs;
      active += 2; // a step printing a line now and then
      m.tick();
    }
    expect(m.periodMs).toBe(800);
    expect(samples).toEqual([2, 2, 2, 2]);
  });

  it("counts a stall that ended before a long period's due time when the loop turns bound it", () => {
    const { m, lines, period, idle } = quietLoop(1000, 5);
    expect(m.periodMs).toBe(1000);
    // 330 ms of work in 2 turns (and the one the last sample ran in): one turn held at least 110 ms
    period(1000, 330, 2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\[warn\] event loop blocked for 110 ms \(at least: 330 ms of work in 3 loop turns within the last 1000 ms\)/);
    expect(m.stalls).toBe(1);
    expect(m.maxStallMs).toBe(110);
    expect(m.periodMs).toBe(50);
    // the same work spread over many turns (a burst of callbacks) is only a busy period
    idle(5);
    period(1000, 330, 20);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/\[debug\] event loop busy for 330 ms of the last 1000 ms/);
    expect(m.stalls).toBe(1);
  });

  it('sees a real synchronous stall', async () => {
    const lines: string[] = [];
    const m = new LoopMonitor({ logger: createLogger((l) => lines.push(l)), checkMs: 10, maxCheckMs: 20 });
    m.start();
    await new Promise((r) => setTimeout(r, 30));
    const end = performance.now() + 250;
    while (performance.now() < end) {
      // block the loop
    }
    await new Promise((r) => setTimeout(r, 30));
    m.stop();
    expect(m.maxStallMs).toBeGreaterThanOrEqual(150);
    expect(lines.some((l) => /event loop blocked for \d+ ms/.test(l))).toBe(true);
  });

  it('counts a real stall that began and ended within a long period, from the loop turns', async () => {
    const lines: string[] = [];
    let blocked = false;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const m = new LoopMonitor({
      logger: createLogger((l) => lines.push(l)),
      checkMs: 10,
      maxCheckMs: 1000,
      onSample: () => {
        if (blocked) return done();
        if (m.periodMs < 1000) return;
        // the period is 1 s: block the loop for 600 ms from 20 ms on, ending ~380 ms before the next sample
        blocked = true;
        setTimeout(() => {
          const end = performance.now() + 600;
          while (performance.now() < end) {
            // block the loop
          }
        }, 20);
      },
    });
    m.start();
    await finished;
    m.stop();
    expect(lines.filter((l) => /\[warn\] event loop blocked for \d+ ms \(at least: 6\d\d ms of work in \d loop turns/.test(l))).toHaveLength(1);
    expect(m.stalls).toBe(1);
    expect(m.maxStallMs).toBeGreaterThanOrEqual(100);
  });

  it('lengthens its period on a real idle loop (Node counts the loop as idle while it waits)', async () => {
    const m = new LoopMonitor({ logger: createLogger(() => {}), checkMs: 5, maxCheckMs: 40 });
    m.start();
    const until = performance.now() + 2000;
    while (m.periodMs < 40 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
    m.stop();
    expect(m.periodMs).toBe(40);
  });
});
