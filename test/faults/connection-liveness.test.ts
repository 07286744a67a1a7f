// Item 4 of issue 10: a half-open link (the proxy between agent and a real Buildbot master blackholes both
// directions and leaves both sockets open) is noticed and replaced within keepalive + 30 s, on both protocols,
// for an idle agent and for one in the middle of a build. The test uses keepalive 4 s; the default's figure
// (60 s -> within 90 s) is computed in test/unit/liveness.test.ts. Each agent has a master of its own: the 3.7
// msgpack master attaches workers one at a time under one lock, its 10 s check of a worker's old connection
// included, so links that die together on one msgpack master come back 10 s apart (see docs/compatibility.md).
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, type Protocol } from '../../scripts/harness/master.js';
import { pollUntil } from '../../scripts/harness/process.js';
import { FaultProxy } from './helpers/tcp-proxy.js';

const PASSWORD = 'pw';
const KEEPALIVE_S = 4;
/** The bound. */
const BOUND_MS = (KEEPALIVE_S + 30) * 1000;
const haveBuildbot = existsSync('/usr/bin/buildbot');

/** Time of the first log line matching `re` written after `since` (the agent's own ISO timestamps). */
function lineAfter(output: string, re: RegExp, since: number): { at: number; line: string } | undefined {
  for (const line of output.split('\n')) {
    const m = /^(\S+) \[\w+\] (.*)$/.exec(line);
    if (!m || !re.test(m[2]!)) continue;
    const at = Date.parse(m[1]!);
    if (at >= since) return { at, line };
  }
  return undefined;
}

/** Stalls of the agent's event loop of 200 ms or more (agent/loop-monitor.ts logs those of 100 ms and more). */
function longStalls(output: string): string[] {
  return [...output.matchAll(/event loop blocked for (\d+) ms/g)].filter((m) => Number(m[1]) >= 200).map((m) => m[0]);
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  await Promise.allSettled(cleanups.map((c) => c()));
});

describe.skipIf(!haveBuildbot)('half-open link', () => {
  it.concurrent.each<Protocol>(['pb', 'msgpack'])(
    '%s: an idle agent and one mid-build are reconnected within keepalive + 30 s',
    async (protocol) => {
      const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-liveness-${protocol}-`));
      const agents = await Promise.all(
        ['idle', 'busy'].map(async (name) => {
          const master = await BuildbotMaster.start({
            dir: path.join(scratch, `master-${name}`),
            protocol,
            workers: [{ name, password: PASSWORD }],
            builders: [
              { name: 'sleepy', workernames: [name], steps: `[steps.ShellCommand(name='sleepy', command='echo started; sleep 300', logEnviron=False)]` },
            ],
          });
          cleanups.push(() => master.stop());
          const proxy = await FaultProxy.start(master.protocolPort);
          cleanups.push(() => proxy.close());
          const worker = await BbagentWorker.start({
            dir: path.join(scratch, name),
            masterPort: proxy.port,
            name,
            password: PASSWORD,
            protocol,
            createArgs: [`--keepalive=${KEEPALIVE_S}`],
          });
          cleanups.push(() => worker.stop());
          await master.waitForWorker(name);
          return { name, master, proxy, worker, pid: worker.pid };
        }),
      );
      const busy = agents[1]!;
      const buildid = await busy.master.waitForBuildStarted(await busy.master.forceBuild('sleepy'));
      await busy.master.waitForLogText(buildid, 'sleepy', 'started', { timeoutMs: 30_000 });

      // the link dies silently for both agents at once
      const t0 = Date.now();
      for (const a of agents) a.proxy.blackholeAll();

      const results = await Promise.all(
        agents.map(async (a) => {
          // the master attaches the new connection (after its own 10 s check of the old one) and says so
          const attached = await pollUntil(() => lineAfter(a.worker.output, /^message from master: attached$/, t0), {
            timeoutMs: BOUND_MS + 20_000,
            what: `${protocol} agent ${a.name} to be attached again after the blackhole`,
            details: () => a.worker.output.slice(-3000),
          });
          const dropped = lineAfter(a.worker.output, /dropping the connection/, t0);
          return { ...a, reconnectMs: attached.at - t0, dropped };
        }),
      );
      for (const r of results) {
        console.log(
          `${protocol} ${r.name}: link dead at 0 s, dropped at ${((r.dropped!.at - t0) / 1000).toFixed(1)} s, attached again at ${(r.reconnectMs / 1000).toFixed(1)} s (bound ${BOUND_MS / 1000} s)`,
        );
        // noticed by the liveness check, with a line saying why, within keepalive + its timeout (+ 1 s of timer slack)
        expect(r.dropped?.line).toMatch(/no data from the master for [\d.]+ s, none within 4 s of a keepalive: the link is dead/);
        expect(r.dropped!.at - t0).toBeLessThanOrEqual((KEEPALIVE_S + KEEPALIVE_S + 1) * 1000);
        expect(r.reconnectMs).toBeLessThanOrEqual(BOUND_MS);
        // a new connection through the proxy, by the same agent process
        expect(r.proxy.links.length).toBeGreaterThanOrEqual(2);
        expect(r.worker.running).toBe(true);
        expect(r.worker.pid).toBe(r.pid);
        expect((await r.master.worker(r.name))?.connected_to.length).toBe(1);
      }
      // The idle agent's loop never stalled. The busy one kills its step when the connection goes, and the
      // process-tree walk (platforms/posix/tree.ts) reads /proc synchronously: reported, not asserted here.
      expect(longStalls(agents[0]!.worker.output)).toEqual([]);
      const busyStalls = longStalls(busy.worker.output);
      if (busyStalls.length) console.log(`${protocol} busy: ${busyStalls.join(', ')} (killing the step at connection loss)`);
      // the build that was running is over: the master gave it up with the old connection, nothing hangs
      await pollUntil(async () => ((await busy.master.get<{ builds: { complete: boolean }[] }>(`/builds/${buildid}`)).builds[0]?.complete ? true : undefined), {
        timeoutMs: 30_000,
        what: `build ${buildid} to end after the link died`,
      });
      expect(busy.worker.running).toBe(true);
    },
    120_000,
  );
});
