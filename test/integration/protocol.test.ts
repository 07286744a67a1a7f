// Connection-level behaviour over both protocols against a real master: master-initiated shutdown,
// worker-initiated graceful shutdown (PB), and PB over TLS with a self-signed CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from './bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type Protocol } from './harness/master.js';

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
    });
  });

  afterAll(async () => {
    await master?.stop();
  });

  it('master-initiated shutdown (kill) stops the agent cleanly', async () => {
    const w = await BbagentWorker.start({ dir: path.join(scratch, 'w-kill'), masterPort: master.protocolPort, name: 'w-kill', password: PASSWORD, protocol });
    await master.waitForWorker('w-kill');
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

describe('PB over TLS with a self-signed CA', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-tls-'));
  const pki = path.join(scratch, 'pki');
  let master: BuildbotMaster;
  let w: BbagentWorker | undefined;

  beforeAll(async () => {
    execFileSync('mkdir', ['-p', pki]);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bbagent test CA');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'master.key', '-out', 'master.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(path.join(pki, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    ssl('x509', '-req', '-in', 'master.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'master.pem', '-days', '2', '-extfile', 'san.ext');
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
