// buildbot-worker's --proxy-connection-string: one bbagent reaches a real master through an in-test HTTP CONNECT
// proxy with two workers, one over PB and one over msgpack; a build runs on each, and the proxy counted their
// tunnels. A proxy that refuses the tunnel (407) stops the worker with a line naming the proxy.

import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, findLog, findStep, stdioText } from '../../scripts/harness/master.js';
import { startConnectProxy, type TestProxy } from '../helpers/connect-proxy.js';

const PASSWORD = 'proxy-pw';

describe('masters reached through an HTTP CONNECT proxy', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-proxy-'));
  let master: BuildbotMaster;
  let proxy: TestProxy;
  const agents: BbagentWorker[] = [];

  beforeAll(async () => {
    proxy = await startConnectProxy();
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      alsoProtocol: 'msgpack',
      workers: [
        { name: 'p-pb', password: PASSWORD },
        { name: 'p-mp', password: PASSWORD },
      ],
      builders: [
        { name: 'b-pb', workernames: ['p-pb'], steps: `[steps.ShellCommand(name='work', command='echo through-pb')]` },
        { name: 'b-mp', workernames: ['p-mp'], steps: `[steps.ShellCommand(name='work', command='echo through-msgpack')]` },
      ],
    });
  });

  afterAll(async () => {
    for (const a of agents) await a.stop();
    await master?.stop();
    await proxy?.close();
  });

  it('runs a PB build and a msgpack build through the proxy', async () => {
    const via = `tcp:host=127.0.0.1:port=${proxy.port}`;
    const agent = await BbagentWorker.start({
      dir: path.join(scratch, 'agent'),
      masterPort: master.portFor('pb'),
      name: 'p-pb',
      password: PASSWORD,
      protocol: 'pb',
      createArgs: ['--proxy-connection-string', via],
      config: {
        basedir: 'p-pb',
        workers: [{ basedir: 'p-mp', name: 'p-mp', protocol: 'msgpack', masterPort: master.portFor('msgpack') }],
      },
    });
    agents.push(agent);
    await Promise.all([master.waitForWorker('p-pb'), master.waitForWorker('p-mp')]);
    await agent.waitForOutput(new RegExp(`\\[p-mp\\] Connected to 127\\.0\\.0\\.1:\\d+ \\(msgpack, via HTTP proxy 127\\.0\\.0\\.1:${proxy.port}\\)`));
    // every connection of the agent went through the proxy: one tunnel per worker
    expect(proxy.tunnels).toBe(2);
    expect(proxy.requests.map((r) => r.target).sort()).toEqual([`127.0.0.1:${master.portFor('msgpack')}`, `127.0.0.1:${master.portFor('pb')}`].sort());

    const [pb, mp] = await Promise.all([master.forceBuild('b-pb'), master.forceBuild('b-mp')]);
    const [pbBuild, mpBuild] = await Promise.all([master.waitForBuild(pb), master.waitForBuild(mp)]);
    expect(pbBuild.results).toBe(Results.SUCCESS);
    expect(mpBuild.results).toBe(Results.SUCCESS);
    expect(stdioText(findLog(findStep(pbBuild, 'work')))).toContain('through-pb');
    expect(stdioText(findLog(findStep(mpBuild, 'work')))).toContain('through-msgpack');
    // the builds went over the same tunnels
    expect(proxy.tunnels).toBe(2);
  }, 60_000);

  it('a proxy that refuses the tunnel stops the worker with a line naming the proxy', async () => {
    proxy.refuseWith = 407;
    const agent = await BbagentWorker.start({
      dir: path.join(scratch, 'refused'),
      masterPort: master.portFor('pb'),
      name: 'p-pb',
      password: PASSWORD,
      protocol: 'pb',
      config: { proxyConnectionString: `http://127.0.0.1:${proxy.port}`, maxretries: 0 },
    });
    agents.push(agent);
    expect(await agent.exited).toBe(1);
    expect(agent.output).toContain(
      `HTTP proxy 127.0.0.1:${proxy.port}: refused the tunnel with HTTP 407 Proxy Authentication Required: the proxy wants credentials`,
    );
    expect(agent.output).toMatch(/giving up after 1 failed connection attempts/);
    proxy.refuseWith = undefined;
  }, 30_000);
});
