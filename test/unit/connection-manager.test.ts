// Reconnect policy: full-jitter back-off, the stable period that resets it, the restart spread, a refused
// password, maxretries, stop.
import { describe, expect, it } from 'vitest';
import { backoffCapS, reconnectDelay, RESTART_SPREAD_S } from '../../agent/connection/backoff.js';
import { abortableSleep, ConnectionManager, STABLE_PERIOD_MS } from '../../agent/connection/manager.js';
import type { LiveSession, SessionEnd } from '../../agent/connection/protocol.js';
import { AgentError } from '../../agent/errors.js';
import type { Logger } from '../../agent/log.js';

function recordingLogger() {
  const lines: string[] = [];
  const logger: Logger = {
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
    debug: () => {},
  };
  return { lines, logger };
}

describe('backoff', () => {
  it('caps grow by 1.5x from 1 s up to maxdelay', () => {
    expect([0, 1, 2, 3].map((a) => backoffCapS(a, 300))).toEqual([1, 1.5, 2.25, 3.375]);
    expect(backoffCapS(50, 300)).toBe(300);
    expect(backoffCapS(1e9, 300)).toBe(300);
  });

  it('draws the whole delay at random from 0 to the cap (full jitter), not cap + 0-1 s', () => {
    expect(reconnectDelay(3, 300, false, () => 0).delayMs).toBe(0);
    expect(reconnectDelay(3, 300, false, () => 0.5).delayMs).toBe(1688);
    expect(reconnectDelay(3, 300, false, () => 0.999999).delayMs).toBe(3375);
    expect(reconnectDelay(50, 300, false, () => 0.5).delayMs).toBe(150_000);
  });

  it('spreads the first reconnect after the master ended the session over the restart window, capped by maxdelay', () => {
    expect(reconnectDelay(0, 300, true, () => 1).capS).toBe(RESTART_SPREAD_S);
    expect(reconnectDelay(0, 300, true, () => 0.5).delayMs).toBe(22_500);
    expect(reconnectDelay(0, 2, true, () => 1).capS).toBe(2);
    // a longer back-off is kept
    expect(reconnectDelay(20, 300, true, () => 1).capS).toBe(backoffCapS(20, 300));
  });
});

/** A manager over a fake clock: sleep advances it; sessions last as long as the test says. */
function harness(sessions: (attempt: number) => Promise<LiveSession> | LiveSession, opts: { maxretries?: number | null; maxdelayS?: number } = {}) {
  const { lines, logger } = recordingLogger();
  let clock = 0;
  const delays: number[] = [];
  let attempts = 0;
  const m: ConnectionManager = new ConnectionManager({
    describe: 'm:1',
    maxdelayS: opts.maxdelayS ?? 300,
    maxretries: opts.maxretries ?? null,
    logger,
    random: () => 1,
    now: () => clock,
    sleep: async (ms) => {
      delays.push(ms);
      clock += ms;
    },
    connect: async () => sessions(++attempts),
  });
  /** A session that ends after `ms` of the fake clock, for `cause`. */
  const session = (ms: number, cause: SessionEnd['cause']): LiveSession => ({
    // read by the manager once it is attached: the session's time starts then
    get closed(): Promise<SessionEnd> {
      clock += ms;
      return Promise.resolve({ cause, reason: `test ${cause}` });
    },
    close: () => {},
  });
  const held = (): LiveSession => {
    m.stop();
    return { closed: new Promise(() => {}), close: () => {} };
  };
  return { m, lines, delays, session, held, attempts: () => attempts };
}

describe('ConnectionManager', () => {
  it('retries a refused password with one clear line per attempt, then gives up at maxretries', async () => {
    const h = harness(
      () => {
        throw new AgentError('E_AUTH', "master refused worker 'w'");
      },
      { maxretries: 2 },
    );
    expect(await h.m.run()).toBe('gave-up');
    expect(h.lines.filter((l) => l.startsWith('error master refused'))).toHaveLength(3);
    expect(h.delays).toEqual([1500, 2250]);
  });

  it('gives up at once on a build whose ws library the deflate bound does not fit (no retry can mend it)', async () => {
    const h = harness(() => {
      throw new AgentError('E_WS_INTERNALS', 'the ws library no longer works as inflate.ts expects');
    });
    expect(await h.m.run()).toBe('gave-up');
    expect(h.attempts()).toBe(1);
    expect(h.lines).toContain('error the ws library no longer works as inflate.ts expects');
  });

  it('a master that accepts and drops at once is retried with growing delays, not every 1-2 s', async () => {
    const h = harness((n) => (n <= 8 ? h.session(100, 'local') : h.held()));
    expect(await h.m.run()).toBe('stopped');
    // cap 1.5^n s for the n-th short session in a row (random() = 1 draws the cap)
    expect(h.delays).toEqual([1500, 2250, 3375, 5063, 7594, 11391, 17086, 25629]);
  });

  it('resets the back-off only after a session stayed attached for the stable period', async () => {
    const h = harness((n) => {
      if (n <= 3) return h.session(1000, 'local');
      if (n === 4) return h.session(STABLE_PERIOD_MS, 'local');
      if (n === 5) return h.session(STABLE_PERIOD_MS - 1, 'local');
      return h.held();
    });
    await h.m.run();
    // three short sessions grow the cap; the stable one resets it; a session one ms short of stable counts as short
    expect(h.delays).toEqual([1500, 2250, 3375, 1000, 1500]);
  });

  it('spreads the reconnects after the master ended a session over the restart window, until one succeeds', async () => {
    const h = harness((n) => {
      if (n === 1) return h.session(STABLE_PERIOD_MS, 'master');
      // the master is still restarting
      if (n <= 3) throw new AgentError('E_REFUSED', 'refused');
      if (n === 4) return h.session(STABLE_PERIOD_MS, 'liveness');
      return h.held();
    });
    await h.m.run();
    // refused attempts keep the window; a session that ended otherwise does not
    expect(h.delays).toEqual([RESTART_SPREAD_S * 1000, RESTART_SPREAD_S * 1000, RESTART_SPREAD_S * 1000, 1000]);
    expect(h.lines).toContain('info reconnecting in 45.0 s (drawn from 0-45.0 s, back-off step 0, spread because the master ended the session)');
  });

  it('reconnects quickly after its own liveness check dropped a stable session', async () => {
    const h = harness((n) => (n === 1 ? h.session(STABLE_PERIOD_MS * 2, 'liveness') : h.held()));
    await h.m.run();
    expect(h.delays).toEqual([1000]);
    expect(h.lines.some((l) => /^warn lost connection to m:1 after 120\.0 s attached: test liveness$/.test(l))).toBe(true);
  });

  it('logs every attempt and every delay', async () => {
    const h = harness((n) => {
      if (n === 1) throw new AgentError('E_REFUSED', 'refused');
      return h.held();
    });
    await h.m.run();
    expect(h.lines.filter((l) => l.startsWith('info Connecting to m:1'))).toEqual(['info Connecting to m:1 (attempt 1)', 'info Connecting to m:1 (attempt 2)']);
    expect(h.lines).toContain('info reconnecting in 1.5 s (drawn from 0-1.5 s, back-off step 1)');
  });
});

describe('abortableSleep', () => {
  it('leaves no listener on the signal once a sleep ended, however many sleeps there were', async () => {
    const ctl = new AbortController();
    let added = 0;
    let removed = 0;
    const add = ctl.signal.addEventListener.bind(ctl.signal);
    const remove = ctl.signal.removeEventListener.bind(ctl.signal);
    ctl.signal.addEventListener = ((...a: Parameters<typeof add>) => {
      added++;
      add(...a);
    }) as typeof add;
    ctl.signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
      removed++;
      remove(...a);
    }) as typeof remove;
    for (let i = 0; i < 20; i++) await abortableSleep(0, ctl.signal);
    expect(added).toBe(20);
    expect(removed).toBe(20);
    const pending = abortableSleep(60_000, ctl.signal);
    ctl.abort();
    await pending;
    await abortableSleep(60_000, ctl.signal); // an aborted signal ends a sleep at once
  });
});
