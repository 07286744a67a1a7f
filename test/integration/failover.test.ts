// Failover between two real Buildbot masters that both know the worker (same name and password): bbagent
// attaches to the first; the first stops while the worker is idle and the agent is on the second within the
// bound (grace + back-off) and a build runs there; the first comes back while a build runs on the second: that
// build finishes there, and only then (the worker idle) does the agent go back to the first.

import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDLE_SETTLE_MS } from '../../agent/connection/failover.js';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results } from '../../scripts/harness/master.js';

const NAME = 'fw';
const PASSWORD = 'failover-pw';
const GRACE_S = 3;
/** maxdelay the harness's create-worker sets: the back-off's cap. */
const MAXDELAY_S = 2;
/** Lost at t: on the second master by t + grace + one back-off + a connection, with room for a loaded machine. */
const FAILOVER_BOUND_MS = (GRACE_S + MAXDELAY_S) * 1000 + 10_000;
/** Long enough for the first master to restart and be checked while the build runs on the second. */
const STEP_S = 8;

describe('failover between two real masters', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-failover-'));
  let first: BuildbotMaster;
  let second: BuildbotMaster;
  let agent: BbagentWorker | undefined;

  beforeAll(async () => {
    const spec = (dir: string) => ({
      dir: path.join(scratch, dir),
      protocol: 'pb' as const,
      workers: [{ name: NAME, password: PASSWORD }],
      builders: [{ name: 'b', workernames: [NAME], steps: `[steps.ShellCommand(name='work', command='sleep ${STEP_S}; echo done-on-${dir}')]` }],
    });
    [first, second] = await Promise.all([BuildbotMaster.start(spec('first')), BuildbotMaster.start(spec('second'))]);
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([first?.stop(), second?.stop()]);
  });

  it('fails over to the second master when the first is gone, and goes back only when idle', async () => {
    const p1 = first.portFor('pb');
    const p2 = second.portFor('pb');
    agent = await BbagentWorker.start({
      dir: path.join(scratch, 'agent'),
      masterPort: p1,
      name: NAME,
      password: PASSWORD,
      protocol: 'pb',
      createArgs: ['--master', `127.0.0.1:${p2}`],
      config: { failoverGrace: GRACE_S },
    });
    await first.waitForWorker(NAME);
    await agent.waitForOutput(new RegExp(`masters in order of preference: 127\\.0\\.0\\.1:${p1}, 127\\.0\\.0\\.1:${p2} \\(failover grace 3 s\\)`));

    // the first master goes away while the worker is idle
    const lostAt = Date.now();
    await first.stop();
    await second.waitForWorker(NAME, true, FAILOVER_BOUND_MS);
    expect(Date.now() - lostAt).toBeLessThan(FAILOVER_BOUND_MS);
    await agent.waitForOutput(
      new RegExp(
        `failing over from 127\\.0\\.0\\.1:${p1} \\(pb\\) to 127\\.0\\.0\\.1:${p2} \\(pb\\): it has not come back within the failover grace of 3\\.0 s`,
      ),
    );

    // a build runs on the second; the first comes back meanwhile
    const brid = await second.forceBuild('b');
    await second.waitForBuildStarted(brid);
    await first.restart();
    await agent.waitForOutput(
      new RegExp(`preferred master 127\\.0\\.0\\.1:${p1} \\(pb\\) accepts connections again; going back once this worker is idle`),
      STEP_S * 1000 + 10_000,
    );
    const build = await second.waitForBuild(brid);
    // the build finished on the second: leaving mid-build would have ended it in RETRY or EXCEPTION
    expect(build.results).toBe(Results.SUCCESS);
    // not gone yet: the worker is idle only IDLE_SETTLE_MS after its last command ended
    expect(agent.output).not.toMatch(/moving back to the preferred master/);
    await first.waitForWorker(NAME, true, IDLE_SETTLE_MS + 15_000);
    await second.waitForWorker(NAME, false);
    await agent.waitForOutput(
      new RegExp(
        `moving back to the preferred master 127\\.0\\.0\\.1:${p1} \\(pb\\): it accepts connections again and this worker is idle; leaving 127\\.0\\.0\\.1:${p2} \\(pb\\)`,
      ),
    );

    // and builds run on the first again
    const again = await first.forceBuild('b');
    expect((await first.waitForBuild(again)).results).toBe(Results.SUCCESS);
  }, 90_000);
});
