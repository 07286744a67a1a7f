// Connection-level behaviour over both protocols against a real master: master-initiated shutdown,
// worker-initiated graceful shutdown (PB), and PB over TLS with a self-signed CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type Protocol } from '../../scripts/harness/master.js';

const PASSWORD = 'pw';
const protocols: Protocol[] = ['msgpack', 'pb'];

describe.each(protocols)('connection over %s', (protocol) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-proto-${protocol}-`));
  let master: BuildbotMaster;

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol,
      workers: ['w-kill', 'w-graceful'].map((name) => ({ name, password: PASSWORD })),
      builders: [
        {
          name: 'graceful',
          workernames: ['w-graceful'],
          steps: `[steps.ShellCommand(name='work', command='echo started; sleep 6; echo done', logEnviron=False)]`,
        },
      ],
      // the master's keepalive (3600 s in 3.7, not configurable) every second, to see the agent answer it
      extraConfig: `from buildbot.worker.protocols import pb as _kp, msgpack as _km\n_kp.Connection.keepalive_interval = 1\n_km.Connection.keepalive_interval = 1`,
    });
  });

  afterAll(async () => {
    await master?.stop();
  });

  it('keepalives both ways, then master-initiated shutdown (kill) stops the agent cleanly', async () => {
    const w = await BbagentWorker.start({
      dir: path.join(scratch, 'w-kill'),
      masterPort: master.protocolPort,
      name: 'w-kill',
      password: PASSWORD,
      protocol,
      createArgs: ['--keepalive=1'],
    });
    await master.waitForWorker('w-kill');
    // master -> worker: PB print("keepalive"), msgpack's keepalive op; both answered (the master drops a
    // worker whose keepalive fails). worker -> master (PB only): avatar.keepalive() every second
    await w.waitForOutput(
      protocol === 'pb' ? /message from master: keepalive[^]*message from master: keepalive/ : /keepalive from master[^]*keepalive from master/,
    );
    expect(w.output).not.toMatch(/keepalive failed|error sending keepalive/);
    expect((await master.worker('w-kill'))?.connected_to.length).toBe(1);
    await master.controlWorker('w-kill', 'kill', 'test');
    expect(await w.exited).toBe(0);
    expect(w.output).toContain('worker shutting down on command from master');
  });

  it.runIf(protocol === 'pb')('worker-initiated graceful shutdown (SIGHUP): the running build finishes, then the master stops the agent', async () => {
    const w = await BbagentWorker.start({
      dir: path.join(scratch, 'w-graceful'),
      masterPort: master.protocolPort,
      name: 'w-graceful',
      password: PASSWORD,
      protocol,
      createArgs: ['--allow-shutdown=signal'],
    });
    await master.waitForWorker('w-graceful');
    const brid = await master.forceBuild('graceful');
    const buildid = await master.waitForBuildStarted(brid);
    await master.waitForStepStarted(buildid, 'work');
    w.signal('SIGHUP');
    const build = await master.waitForBuild(brid);
    expect(build.results).toBe(Results.SUCCESS);
    expect(channelText(findLog(findStep(build, 'work')), 'o')).toBe('started\ndone\n');
    expect(await w.exited).toBe(0);
    expect(w.output).toContain('Telling the master we want to shutdown');
  });
});

/** A private CA and a certificate for 127.0.0.1 signed by it, made with openssl. */
function makePki(dir: string): void {
  execFileSync('mkdir', ['-p', dir]);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bbagent test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'master.key', '-out', 'master.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', 'master.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'master.pem', '-days', '2', '-extfile', 'san.ext');
}

describe('msgpack over wss:// (the 3.7 master speaks plain ws: a TLS-terminating proxy in front, as deployed)', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-wss-'));
  const pki = path.join(scratch, 'pki');
  let master: BuildbotMaster;
  let proxy: tls.Server;
  let w: BbagentWorker | undefined;

  beforeAll(async () => {
    makePki(pki);
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'msgpack',
      workers: [{ name: 'wss', password: PASSWORD }],
      builders: [{ name: 'hello', workernames: ['wss'], steps: `[steps.ShellCommand(name='hello', command='echo over wss', logEnviron=False)]` }],
    });
    proxy = tls.createServer({ key: readFileSync(path.join(pki, 'master.key')), cert: readFileSync(path.join(pki, 'master.pem')) }, (client) => {
      const upstream = net.connect(master.protocolPort, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    await w?.stop();
    proxy?.close();
    await master?.stop();
  });

  it('connects with wss://, verifies the proxy against the CA, and runs a build', async () => {
    w = await BbagentWorker.start({
      dir: path.join(scratch, 'wss'),
      masterPort: (proxy.address() as net.AddressInfo).port,
      name: 'wss',
      password: PASSWORD,
      protocol: 'msgpack',
      createArgs: ['--use-tls', `--tls-ca-file=${pki}/ca.pem`],
    });
    await master.waitForWorker('wss');
    const build = await master.runBuild('hello');
    expect(channelText(findLog(findStep(build, 'hello')), 'o')).toBe('over wss\n');
    expect(w.output).toContain('(msgpack, TLS)');
  });
});

describe('PB over TLS with a self-signed CA', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-tls-'));
  const pki = path.join(scratch, 'pki');
  let master: BuildbotMaster;
  let w: BbagentWorker | undefined;

  beforeAll(async () => {
    makePki(pki);
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      workers: [{ name: 'tls', password: PASSWORD }],
      builders: [{ name: 'hello', workernames: ['tls'], steps: `[steps.ShellCommand(name='hello', command='echo over tls', logEnviron=False)]` }],
      // the harness binds tcp:N; serve the same port over TLS instead
      extraConfig: `c['protocols']['pb']['port'] = c['protocols']['pb']['port'].replace('tcp:', 'ssl:', 1) + ':privateKey=${pki}/master.key:certKey=${pki}/master.pem'`,
    });
  });

  afterAll(async () => {
    await w?.stop();
    await master?.stop();
  });

  it('connects, verifies the master against the CA, and runs a build', async () => {
    w = await BbagentWorker.start({
      dir: path.join(scratch, 'tls'),
      masterPort: master.protocolPort,
      name: 'tls',
      password: PASSWORD,
      protocol: 'pb',
      createArgs: ['--use-tls', `--tls-ca-file=${pki}/ca.pem`],
    });
    await master.waitForWorker('tls');
    const build = await master.runBuild('hello');
    expect(channelText(findLog(findStep(build, 'hello')), 'o')).toBe('over tls\n');
  });

  it('refuses a master whose certificate the CA did not sign', async () => {
    const other = path.join(scratch, 'other-ca.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(scratch, 'other.key'), '-out', other, '-days', '2', '-subj', '/CN=other CA'],
      { stdio: 'pipe' },
    );
    const bad = await BbagentWorker.start({
      dir: path.join(scratch, 'tls-bad'),
      masterPort: master.protocolPort,
      name: 'tls',
      password: PASSWORD,
      protocol: 'pb',
      createArgs: ['--use-tls', `--tls-ca-file=${other}`],
    });
    try {
      await bad.waitForOutput(/certificate|self.signed|verify/i, 20_000);
      expect(bad.running).toBe(true);
    } finally {
      await bad.stop();
    }
  });
});
