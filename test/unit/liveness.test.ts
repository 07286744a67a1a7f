// The liveness check on a fake clock: probes one keepalive apart, any byte counts as an answer, silence after a
// probe ends the session; and the bound the default configuration gives for noticing and replacing a dead link.
import { describe, expect, it } from 'vitest';
import { backoffCapS } from '../../agent/connection/backoff.js';
import { Liveness, LIVENESS_TIMEOUT_MAX_S, livenessTimeoutS, type LivenessTimers } from '../../agent/connection/liveness.js';
import { STABLE_PERIOD_MS } from '../../agent/connection/manager.js';
import { CONFIG_DEFAULTS } from '../../agent/config/schema.js';

/** A fake clock: timers fire in order as run(untilMs) advances time. */
class FakeClock implements LivenessTimers {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  now(): number {
    return this.t;
  }
  /** Runs timers due up to `untilMs`; `each` runs at every whole millisecond step where asked (data arriving). */
  run(untilMs: number, onStep?: (t: number) => void): void {
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > untilMs) break;
      if (onStep) for (let s = this.t + 1; s <= next.at; s++) onStep(s);
      this.t = next.at;
      this.timers.shift();
      next.fn();
    }
    this.t = untilMs;
  }
  get pending(): number {
    return this.timers.length;
  }
}

function monitor(keepaliveS: number, clock: FakeClock, answer: (probeAt: number) => boolean) {
  const probes: number[] = [];
  const dead: { at: number; reason: string }[] = [];
  const l: Liveness = new Liveness({
    keepaliveS,
    timers: clock,
    probe: () => {
      probes.push(clock.t);
      // the master's answer arrives 5 ms later, if it answers
      if (answer(clock.t)) clock.setTimeout(() => l.activity(), 5);
    },
    onDead: (reason) => dead.push({ at: clock.t, reason }),
  });
  l.start();
  return { l, probes, dead };
}

describe('liveness', () => {
  it('probes once per keepalive interval while the master answers', () => {
    const clock = new FakeClock();
    const { probes, dead } = monitor(60, clock, () => true);
    clock.run(10 * 60_000);
    expect(probes).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((k) => k * 60_000));
    expect(dead).toEqual([]);
  });

  it('drops a master silent for the timeout after a probe, saying why', () => {
    const clock = new FakeClock();
    const { probes, dead } = monitor(60, clock, (at) => at < 180_000);
    clock.run(600_000);
    expect(probes).toEqual([60_000, 120_000, 180_000]);
    expect(dead).toEqual([
      { at: 180_000 + LIVENESS_TIMEOUT_MAX_S * 1000, reason: 'no data from the master for 75.0 s, none within 15 s of a keepalive: the link is dead' },
    ]);
    // stopped: nothing left scheduled
    expect(clock.pending).toBe(0);
  });

  it('counts any data from the master as an answer', () => {
    const clock = new FakeClock();
    const { l, dead } = monitor(10, clock, () => false);
    // the keepalive answers never come, but the master streams something every second
    clock.run(120_000, (t) => {
      if (t % 1000 === 0) l.activity();
    });
    expect(dead).toEqual([]);
  });

  it('a configured keepaliveTimeout replaces the automatic one (a master known to stall longer)', () => {
    const clock = new FakeClock();
    const dead: number[] = [];
    const l = new Liveness({ keepaliveS: 60, timeoutS: 40, timers: clock, probe: () => {}, onDead: () => dead.push(clock.t) });
    l.start();
    clock.run(60_000 + 39_999);
    expect(dead).toEqual([]);
    clock.run(200_000);
    expect(dead).toEqual([100_000]);
    expect(livenessTimeoutS(60, 40)).toBe(40);
    expect(livenessTimeoutS(60, null)).toBe(LIVENESS_TIMEOUT_MAX_S);
  });

  it('keepalive 0 disables the check', () => {
    const clock = new FakeClock();
    const { probes, dead } = monitor(0, clock, () => false);
    clock.run(3_600_000);
    expect(probes).toEqual([]);
    expect(dead).toEqual([]);
  });

  it('waits one interval for an answer, between 3 and 15 s', () => {
    expect([0.05, 1, 4, 15, 60, 600].map((k) => livenessTimeoutS(k))).toEqual([3, 3, 4, 15, 15, 15]);
  });

  it('notices a link that dies at any moment within keepalive + timeout (worst case: just after an answer)', () => {
    for (const keepaliveS of [1, 3, 60, 600]) {
      const clock = new FakeClock();
      // the link dies 6 ms after the second probe, just after its answer came in
      const diesAt = 2 * keepaliveS * 1000 + 6;
      const { dead } = monitor(keepaliveS, clock, (at) => at < diesAt);
      clock.run(diesAt + 10 * keepaliveS * 1000);
      expect(dead).toHaveLength(1);
      // probes go out one interval apart, but never while the last one's timeout is still running
      expect(dead[0]!.at - diesAt).toBeLessThanOrEqual((Math.max(keepaliveS, livenessTimeoutS(keepaliveS)) + livenessTimeoutS(keepaliveS)) * 1000);
    }
  });

  it('the default configuration replaces a dead link within keepalive + 30 s, and within 2 minutes', () => {
    const keepaliveS = CONFIG_DEFAULTS.keepalive;
    // noticed (above), then the first reconnect after a liveness drop of a session that was stable (back-off
    // step 0) or young (step 1), then the master's own check of the old connection before it accepts the new
    // one (buildbot.worker.manager WorkerManager.PING_TIMEOUT, 10 s), then a login over loopback or a LAN
    const noticedS = keepaliveS + livenessTimeoutS(keepaliveS);
    const reconnectS = backoffCapS(1, CONFIG_DEFAULTS.maxdelay);
    const masterCheckS = 10;
    const loginS = 2;
    const totalS = noticedS + reconnectS + masterCheckS + loginS;
    expect(totalS).toBeLessThanOrEqual(keepaliveS + 30);
    expect(totalS).toBeLessThanOrEqual(120);
    expect(keepaliveS).toBe(60);
    // a session younger than the stable period counts one back-off step up
    expect(STABLE_PERIOD_MS).toBe(60_000);
  });
});

describe('liveness on real timers', () => {
  it('a keepalive of 2^31 ms or more does not probe at once (Node timers would wrap to 1 ms)', async () => {
    let probes = 0;
    const l = new Liveness({ keepaliveS: 2 ** 31 / 1000 + 1, probe: () => probes++, onDead: () => {} });
    l.start();
    await new Promise((r) => setTimeout(r, 50));
    l.stop();
    expect(probes).toBe(0);
  });
});
