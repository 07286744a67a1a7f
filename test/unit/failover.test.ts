// Failover policy (connection/failover.ts, manager.ts) over a fake clock: the first master that accepts wins, a
// lost master is retried for the grace period before the next is tried, each master backs off on its own, and the
// worker goes back to an earlier master only when it accepts again and the worker is idle.
import { describe, expect, it } from 'vitest';
import { IdleGate, PROBE_INTERVAL_MS, probeIntervalMs, type IdleSource, type MasterTarget } from '../../agent/connection/failover.js';
import { ConnectionManager } from '../../agent/connection/manager.js';
import type { LiveSession, SessionEnd } from '../../agent/connection/protocol.js';
import { AgentError } from '../../agent/errors.js';
import type { Logger } from '../../agent/log.js';

const GRACE_MS = 60_000;

type Behaviour = (attempt: number) => LiveSession | 'refuse';

/** Masters m0, m1, ... whose connect/probe follow the test's script, over one fake clock. */
function world(n: number, opts: { idle?: IdleSource; random?: number } = {}) {
  const lines: string[] = [];
  const logger: Logger = {
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
    debug: (m) => lines.push(`debug ${m}`),
  };
  let clock = 0;
  const attempts: { master: number; at: number }[] = [];
  const probes: { master: number; at: number }[] = [];
  const behaviour: Behaviour[] = Array.from({ length: n }, () => () => 'refuse');
  const reachable: boolean[] = Array.from({ length: n }, () => false);
  const targets: MasterTarget[] = behaviour.map((_, i) => ({
    describe: `m${i}`,
    connect: async () => {
      const count = attempts.filter((a) => a.master === i).length + 1;
      attempts.push({ master: i, at: clock });
      const s = (behaviour[i] as Behaviour)(count);
      if (s === 'refuse') throw new AgentError('E_REFUSED', `m${i} refused`);
      return s;
    },
    probe: async () => {
      probes.push({ master: i, at: clock });
      if (!reachable[i]) throw new AgentError('E_REFUSED', `m${i} refused`);
    },
  }));
  const m: ConnectionManager = new ConnectionManager({
    masters: targets,
    failoverGraceMs: GRACE_MS,
    ...(opts.idle ? { idle: opts.idle } : {}),
    maxdelayS: 300,
    maxretries: null,
    logger,
    random: () => opts.random ?? 1,
    now: () => clock,
    // a macrotask per sleep: a background check loop must not starve the test
    sleep: async (ms, signal) => {
      await new Promise((r) => setImmediate(r));
      if (!signal.aborted) clock += ms;
    },
  });
  /** A session the master ends after `ms`. */
  const endsAfter = (ms: number, cause: SessionEnd['cause'] = 'master'): LiveSession => ({
    get closed(): Promise<SessionEnd> {
      clock += ms;
      return Promise.resolve({ cause, reason: `test ${cause}` });
    },
    close: () => {},
  });
  /** A session that lasts until the worker closes it. */
  const open = (): LiveSession & { closedByUs: () => boolean } => {
    let resolve!: (e: SessionEnd) => void;
    let closed = false;
    const p = new Promise<SessionEnd>((r) => (resolve = r));
    return {
      closed: p,
      close: () => {
        closed = true;
        resolve({ cause: 'local', reason: 'closed by the worker' });
      },
      closedByUs: () => closed,
    };
  };
  /** The test is over once this session attaches: the manager stops. */
  const last = (): LiveSession => {
    m.stop();
    return { closed: new Promise(() => {}), close: () => {} };
  };
  return { m, lines, attempts, probes, behaviour, reachable, endsAfter, open, last, clock: () => clock };
}

describe('failover between several masters', () => {
  it('attaches to the first master that accepts, in order, without waiting between them', async () => {
    const w = world(3);
    w.behaviour[2] = () => w.last();
    await w.m.run();
    expect(w.attempts).toEqual([
      { master: 0, at: 0 },
      { master: 1, at: 0 },
      { master: 2, at: 0 },
    ]);
    expect(w.lines).toContain('warn failing over from m0 to m1: it does not accept the worker');
    expect(w.lines).toContain('warn failing over from m1 to m2: it does not accept the worker');
  });

  it('retries a lost master for the grace period, then moves to the next and says why', async () => {
    const w = world(2, { random: 0.25 });
    w.behaviour[0] = (n) => (n === 1 ? w.endsAfter(120_000) : 'refuse');
    w.behaviour[1] = () => w.last();
    await w.m.run();
    const lostAt = 120_000;
    const onFirst = w.attempts.filter((a) => a.master === 0).slice(1);
    // retried within the grace, the last retry at its end at the latest
    expect(onFirst.length).toBeGreaterThan(1);
    for (const a of onFirst) expect(a.at - lostAt).toBeLessThanOrEqual(GRACE_MS);
    expect(onFirst.at(-1)?.at).toBe(lostAt + GRACE_MS);
    // then the second master, at once
    expect(w.attempts.at(-1)).toEqual({ master: 1, at: lostAt + GRACE_MS });
    expect(w.lines).toContain('warn failing over from m0 to m1: it has not come back within the failover grace of 60.0 s');
  });

  it('stays with a lost master that comes back within the grace period', async () => {
    const w = world(2);
    w.behaviour[0] = (n) => (n === 1 ? w.endsAfter(120_000) : n === 2 ? 'refuse' : w.last());
    await w.m.run();
    expect(w.attempts.map((a) => a.master)).toEqual([0, 0, 0]);
    expect(w.lines.some((l) => l.includes('failing over'))).toBe(false);
  });

  it('backs off per master: each master waits by its own failures, and the list is tried in order', async () => {
    const w = world(2);
    w.behaviour[1] = (n) => (n === 4 ? w.last() : 'refuse');
    await w.m.run();
    // random() = 1 draws each cap: 1.5 s after a master's first failure, 2.25 s after its second, ...
    expect(w.attempts).toEqual([
      { master: 0, at: 0 },
      { master: 1, at: 0 },
      { master: 0, at: 1500 },
      { master: 1, at: 1500 },
      { master: 0, at: 3750 },
      { master: 1, at: 3750 },
      { master: 0, at: 7125 },
      { master: 1, at: 7125 },
    ]);
    expect(w.lines).toContain('warn failing over from m1 to m0: it does not accept the worker; trying it in 2.3 s (its own back-off)');
    expect(w.lines.some((l) => l.startsWith('info reconnecting'))).toBe(false);
  });

  it('goes back to the preferred master only when the worker is idle, checking it in the background', async () => {
    let idle = false;
    let idleWaits = 0;
    const source: IdleSource = {
      isIdle: () => idle,
      whenIdle: async () => {
        idleWaits++;
        // the build on the second master ends
        idle = true;
      },
    };
    const w = world(2, { idle: source });
    const onSecond = w.open();
    w.behaviour[0] = (n) => {
      if (n === 1) {
        // the preferred master is back from now on, while the worker is busy on the second
        w.reachable[0] = true;
        return 'refuse';
      }
      return w.last();
    };
    w.behaviour[1] = () => onSecond;
    await w.m.run();
    // the first check is one probe interval after attaching; the worker was busy then, so it waited for idle
    expect(w.probes[0]).toEqual({ master: 0, at: PROBE_INTERVAL_MS });
    expect(w.m.attachedTo).toBeUndefined(); // stopped
    expect(idleWaits).toBe(1);
    expect(onSecond.closedByUs()).toBe(true);
    expect(w.attempts.map((a) => a.master)).toEqual([0, 1, 0]);
    expect(w.lines).toContain('info preferred master m0 accepts connections again; going back once this worker is idle');
    expect(w.lines).toContain('info moving back to the preferred master m0: it accepts connections again and this worker is idle; leaving m1');
  });

  it('checks an unreachable preferred master with its own back-off, never disturbing the attached session', async () => {
    const source: IdleSource = { isIdle: () => true, whenIdle: async () => {} };
    const w = world(2, { idle: source });
    const session = w.open();
    w.behaviour[1] = () => session;
    const run = w.m.run();
    // let the watch run a while on the fake clock, then stop
    for (let i = 0; i < 200 && w.probes.length < 12; i++) await new Promise((r) => setImmediate(r));
    w.m.stop();
    await run;
    expect(w.probes.length).toBeGreaterThanOrEqual(12);
    expect(w.probes.every((p) => p.master === 0)).toBe(true);
    // probes come at the probe interval, but never before the master's back-off allows (random() = 1: caps)
    const gaps = w.probes.slice(1).map((p, i) => p.at - (w.probes[i] as { at: number }).at);
    for (const g of gaps) expect(g % PROBE_INTERVAL_MS).toBe(0);
    // once its back-off (1.5^n s) passes the probe interval, checks of the gone master thin out
    expect(gaps).toEqual([...gaps].sort((a, b) => a - b));
    expect(gaps.at(-1)).toBeGreaterThan(PROBE_INTERVAL_MS);
    expect(w.attempts.map((a) => a.master)).toEqual([0, 1]); // the session stayed until the stop
  });
});

describe('probeIntervalMs', () => {
  it('checks at the pace of the grace, within 1-30 s', () => {
    expect([0, 3000, 60_000].map(probeIntervalMs)).toEqual([1000, 3000, PROBE_INTERVAL_MS]);
  });
});

describe('IdleGate', () => {
  it('is idle only when no command runs and none ended within the settle time', async () => {
    let clock = 0;
    const host = { runningCount: 1 };
    const gate = new IdleGate(
      host,
      () => clock,
      async (ms) => void (clock += ms),
      10_000,
    );
    expect(gate.isIdle()).toBe(false);
    const ctl = new AbortController();
    let done = false;
    const waiting = gate.whenIdle(ctl.signal).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    clock = 5000;
    host.runningCount = 0;
    gate.commandsEnded();
    expect(gate.isIdle()).toBe(false); // between two steps of a build
    await waiting;
    expect(clock).toBe(15_000);
    expect(gate.isIdle()).toBe(true);
  });
});
