// Item 5 of issue 10: after a real Buildbot master restarts, a fleet must not come back in one wave. 200
// simulated agents run the agent's real ConnectionManager in this process; each attempt opens a real TCP
// connection to the master's PB port and counts as connected once the master's first Banana bytes (its dialect
// offer) arrive. The master is stopped, left down for 5 s and started again; every attempt's time is recorded.
// Pass: at most 10% of the agents attempt in any one second (sliding window), and every agent is connected again.
import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS } from '../../agent/config/schema.js';
import { ConnectionManager } from '../../agent/connection/manager.js';
import type { LiveSession, SessionEnd } from '../../agent/connection/protocol.js';
import { AgentError } from '../../agent/errors.js';
import { silentLogger } from '../../agent/log.js';
import { BuildbotMaster } from '../../scripts/harness/master.js';
import { pollUntil } from '../../scripts/harness/process.js';

const AGENTS = 200;
const MAX_SHARE_PER_SECOND = 0.1;
/** An attempt that sees nothing from the master within this long failed (the master answers at once). */
const FIRST_BYTES_TIMEOUT_MS = 10_000;
/** How long the master stays down between stop and start. */
const DOWNTIME_MS = 5000;
const haveBuildbot = existsSync('/usr/bin/buildbot');

class SimulatedAgent {
  readonly attempts: number[] = [];
  live: { socket: net.Socket; since: number } | undefined;
  readonly manager: ConnectionManager;
  readonly done: Promise<unknown>;

  constructor(port: number) {
    this.manager = new ConnectionManager({
      describe: `127.0.0.1:${port} (simulated)`,
      maxdelayS: CONFIG_DEFAULTS.maxdelay,
      maxretries: null,
      logger: silentLogger,
      connect: () => this.connect(port),
    });
    this.done = this.manager.run();
  }

  private connect(port: number): Promise<LiveSession> {
    this.attempts.push(performance.now());
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      let closing = false;
      const timer = setTimeout(() => fail('no bytes from the master'), FIRST_BYTES_TIMEOUT_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new AgentError('E_CONNECT', why));
      };
      socket.once('error', (err) => fail(err.message));
      socket.once('data', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        const closed = new Promise<SessionEnd>((r) =>
          socket.once('close', () => {
            this.live = undefined;
            r(closing ? { cause: 'local', reason: 'stopped' } : { cause: 'master', reason: 'the master closed the connection' });
          }),
        );
        this.live = { socket, since: performance.now() };
        resolve({
          closed,
          close: () => {
            closing = true;
            socket.destroy();
          },
        });
      });
    });
  }
}

/** The most values of `times` (ms) inside any window of `windowMs`. */
function maxInWindow(times: number[], windowMs: number): { count: number; at: number } {
  const t = [...times].sort((a, b) => a - b);
  let best = { count: 0, at: 0 };
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    if (hi - lo + 1 > best.count) best = { count: hi - lo + 1, at: t[lo]! };
  }
  return best;
}

let agents: SimulatedAgent[] = [];
let master: BuildbotMaster | undefined;
afterAll(async () => {
  for (const a of agents) a.manager.stop();
  await Promise.allSettled(agents.map((a) => a.done));
  await master?.stop();
});

describe.skipIf(!haveBuildbot)('reconnect herd', () => {
  it(`${AGENTS} agents come back after a master restart with at most ${MAX_SHARE_PER_SECOND * 100}% attempting in any one second`, async () => {
    master = await BuildbotMaster.start({
      dir: path.join(mkdtempSync(path.join(os.tmpdir(), 'bbagent-herd-')), 'master'),
      protocol: 'pb',
      workers: [{ name: 'w', password: 'pw' }],
      builders: [{ name: 'b', workernames: ['w'], steps: "[steps.ShellCommand(command='true')]" }],
    });
    const port = master.protocolPort;
    agents = Array.from({ length: AGENTS }, () => new SimulatedAgent(port));
    await pollUntil(() => (agents.every((a) => a.live) ? true : undefined), { timeoutMs: 60_000, what: `${AGENTS} agents to connect` });

    const restartAt = performance.now();
    // a restart with some downtime (a real one takes seconds to minutes): early attempts are refused
    await master.stop();
    await new Promise((r) => setTimeout(r, DOWNTIME_MS));
    await master.restart();
    const upAt = performance.now();
    // a session that began after the stop is a new one: the master's port can answer before its start-up has
    // finished (before upAt), so counting from upAt would miss an agent that came back in that moment
    const back = (): number => agents.filter((a) => a.live && a.live.since > restartAt).length;
    const allBack = await pollUntil(() => (back() === AGENTS ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: `${AGENTS} agents to connect again after the restart`,
    }).catch(() => false);
    const allBackAt = performance.now();

    const attempts = agents.flatMap((a) => a.attempts.filter((t) => t >= restartAt));
    const peak = maxInWindow(attempts, 1000);
    const perSecond = new Map<number, number>();
    for (const t of attempts) perSecond.set(Math.floor((t - restartAt) / 1000), (perSecond.get(Math.floor((t - restartAt) / 1000)) ?? 0) + 1);
    console.log(
      `master down ${((upAt - restartAt) / 1000).toFixed(1)} s; ${attempts.length} attempts by ${AGENTS} agents; ${back()} back after ` +
        `${((allBackAt - restartAt) / 1000).toFixed(1)} s; at most ${peak.count} attempts in one second (at ${((peak.at - restartAt) / 1000).toFixed(1)} s); ` +
        `per second: ${[...perSecond]
          .sort((a, b) => a[0] - b[0])
          .map(([s, n]) => `${s}:${n}`)
          .join(' ')}`,
    );
    expect(attempts.length).toBeGreaterThanOrEqual(AGENTS);
    expect(peak.count).toBeLessThanOrEqual(AGENTS * MAX_SHARE_PER_SECOND);
    expect(allBack).toBe(true);
  }, 180_000);
});
