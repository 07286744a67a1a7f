import { describe, expect, it } from 'vitest';
import { LoopMonitor } from '../../agent/loop-monitor.js';
import { createLogger } from '../../agent/log.js';

describe('event loop monitor', () => {
  it('logs a stall of 100 ms or more with its length, and nothing for on-time ticks', () => {
    const lines: string[] = [];
    let t = 0;
    const m = new LoopMonitor({ logger: createLogger((l) => lines.push(l)), now: () => t, checkMs: 50 });
    m.start();
    m.stop();
    t += 52;
    m.tick();
    t += 60;
    m.tick();
    expect(lines).toEqual([]);
    t += 50 + 130;
    m.tick();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\[warn\] event loop blocked for 130 ms/);
    expect(m.maxStallMs).toBe(130);
  });

  it('sees a real synchronous stall', async () => {
    const lines: string[] = [];
    const m = new LoopMonitor({ logger: createLogger((l) => lines.push(l)), checkMs: 10 });
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
});
