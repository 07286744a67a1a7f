// The command line, run as operators run it: the built bundle (node build/bbagent.cjs, built by
// `node scripts/build.mjs`) in temporary directories. Also the rotating log file and the pidfile helpers.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRotatingLog } from '../../agent/cli/logfile.js';
import { checkPidfile, claimPidfile, readPidfile } from '../../agent/cli/pidfile.js';
import { stopWorker } from '../../agent/cli/stop.js';
import { currentPlatform } from '../../platforms/index.js';
import { alive } from '../helpers/procs.js';
import { selfCommand } from '../../agent/cli/start.js';
import { AgentError } from '../../agent/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let tmp: string;
beforeAll(() => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cli-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

let counter = 0;
function freshDir(): string {
  return path.join(tmp, `w${++counter}`);
}

/** Environment without BBAGENT_* settings from the developer's shell. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BBAGENT_')) env[k] = v;
  return { ...env, ...extra };
}

function bbagent(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BUNDLE, ...args], { encoding: 'utf8', env: cleanEnv(env), cwd: tmp, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A refusal: exit code 2, exactly one line on stderr, nothing on stdout. */
function expectRefused(r: { code: number | null; stdout: string; stderr: string }, re: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.endsWith('\n')).toBe(true);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(re);
}

describe('bbagent', () => {
  it('--version prints the package version', () => {
    expect(bbagent(['--version'])).toEqual({ code: 0, stdout: `bbagent ${VERSION}\n`, stderr: '' });
  });

  it('--help prints the usage; no arguments prints it and exits 2', () => {
    const help = bbagent(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: bbagent <command> \[options\]/);
    expect(help.stdout).toContain('create-worker');
    const none = bbagent([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe(help.stdout);
  });

  it('refuses an unknown command or option', () => {
    expectRefused(bbagent(['frobnicate']), /^bbagent: unknown command 'frobnicate'/);
    expectRefused(bbagent(['--frob']), /^bbagent: unknown option '--frob'/);
  });

  it("prints each command's help", () => {
    for (const cmd of ['create-worker', 'start', 'stop', 'restart']) {
      const r = bbagent([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: bbagent ${cmd} `));
    }
  });
});

describe('bbagent create-worker', () => {
  it('creates the directory, bbagent.json and info files, and says so like buildbot-worker', () => {
    const dir = freshDir();
    const r = bbagent(['create-worker', dir, 'master.example:19989', 'w1', 'pw']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      `mkdir ${dir}`,
      `mkdir ${path.join(dir, 'info')}`,
      `Creating ${path.join('info', 'admin')}, you need to edit it appropriately.`,
      `Creating ${path.join('info', 'host')}, you need to edit it appropriately.`,
      `Not creating ${path.join('info', 'access_uri')} - add it if you wish`,
      `Please edit the files in ${path.join(dir, 'info')} appropriately.`,
      `worker configured in ${dir}`,
      '',
    ]);
    expect(readFileSync(path.join(dir, 'info', 'admin'), 'utf8')).toBe('Your Name Here <admin@youraddress.invalid>\n');
    expect(readFileSync(path.join(dir, 'info', 'host'), 'utf8')).toBe('Please put a description of this build host here\n');
    const file = path.join(dir, 'bbagent.json');
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      basedir: dir,
      masterHost: 'master.example',
      masterPort: 19989,
      name: 'w1',
      password: 'pw',
      protocol: 'pb',
      keepalive: 60,
      keepaliveTimeout: null,
      maxdelay: 300,
      maxretries: null,
      umask: null,
      allowShutdown: null,
      deleteLeftoverDirs: false,
      confineToBasedir: false,
      numcpus: null,
      useTls: false,
      tlsCaFile: null,
      connectionString: null,
      masters: [],
      failoverGrace: 60,
      proxyConnectionString: null,
      logSize: 10000000,
      logCount: 10,
      outputRate: null,
      outputBurst: 1048576,
      outputPolicy: 'spool',
      agentOutputRate: null,
      agentOutputBurst: 4194304,
      spoolMaxBytes: 1073741824,
      spoolMaxAgeS: 604800,
      collapseProgress: false,
      outputBatchBytes: null,
      outputBatching: 'aligned',
      deflate: true,
      leanUpdates: true,
      redact: [],
      redactFile: null,
      logLevel: 'info',
      cacheDir: null,
      cacheFastPath: true,
      logFormat: 'text',
      metricsAddr: null,
      metricsAllowRemote: false,
    });
  });

  it('stores every option', () => {
    const dir = freshDir();
    const r = bbagent([
      'create-worker',
      '-q',
      '-r',
      '-k',
      '30',
      '--umask=022',
      '--maxdelay',
      '5',
      '--numcpus',
      '3',
      '--protocol',
      'msgpack_experimental_v7',
      '--maxretries',
      '7',
      '--connection-string',
      'tls:m:1',
      '--use-tls',
      '--tls-ca-file',
      '/etc/ca.pem',
      '--delete-leftover-dirs',
      '--confine-to-basedir',
      '--keepalive-timeout',
      '45',
      '--allow-shutdown',
      'file',
      '-s',
      '1000',
      '-l',
      'None',
      '--log-level=debug',
      '--log-format=json',
      '--metrics-addr=127.0.0.1:9101',
      dir,
      '[::1]:4321',
      'w2',
      'p w',
    ]);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8'))).toEqual({
      basedir: '.',
      masterHost: '::1',
      masterPort: 4321,
      name: 'w2',
      password: 'p w',
      protocol: 'msgpack',
      keepalive: 30,
      keepaliveTimeout: 45,
      maxdelay: 5,
      maxretries: 7,
      umask: '0o022',
      allowShutdown: 'file',
      deleteLeftoverDirs: true,
      confineToBasedir: true,
      numcpus: 3,
      useTls: true,
      tlsCaFile: '/etc/ca.pem',
      connectionString: 'tls:m:1',
      masters: [],
      failoverGrace: 60,
      proxyConnectionString: null,
      logSize: 1000,
      logCount: null,
      outputRate: null,
      outputBurst: 1048576,
      outputPolicy: 'spool',
      agentOutputRate: null,
      agentOutputBurst: 4194304,
      spoolMaxBytes: 1073741824,
      spoolMaxAgeS: 604800,
      collapseProgress: false,
      outputBatchBytes: null,
      outputBatching: 'aligned',
      deflate: true,
      leanUpdates: true,
      redact: [],
      redactFile: null,
      logLevel: 'debug',
      cacheDir: null,
      cacheFastPath: true,
      logFormat: 'json',
      metricsAddr: '127.0.0.1:9101',
      metricsAllowRemote: false,
    });
  });

  it('defaults the port to 9989, accepts --umask 0o22 and 18, and --no-logrotate', () => {
    for (const umask of ['0o22', '18']) {
      const dir = freshDir();
      expect(bbagent(['create-worker', '-q', '-n', `--umask=${umask}`, '--protocol=pb', dir, 'm', 'w:x', 'p']).code).toBe(0);
      const raw = JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8'));
      expect(raw).toMatchObject({ masterHost: 'm', masterPort: 9989, umask: '0o022', logSize: 0, protocol: 'pb', name: 'w:x' });
    }
  });

  const refusals: [string, string[], RegExp][] = [
    ['an unknown option', ['--frob'], /^bbagent create-worker: unknown option '--frob' \(see 'bbagent create-worker --help'\)$/m],
    ['a missing option value', ['--keepalive'], /^bbagent create-worker: Option '-k, --keepalive <value>' argument missing/],
    ['a value on a flag', ['--force=yes'], /^bbagent create-worker: Option '-f, --force' does not take an argument/],
    ['a non-numeric keepalive', ['--keepalive', 'abc'], /^--keepalive: keepalive must be an integer number of seconds >= 0 \(0 disables\), got "abc"$/m],
    ['a bad umask', ['--umask', '0o999'], /^--umask: umask must be an octal umask/],
    ['a bad protocol', ['--protocol', 'http'], /^--protocol: protocol must be "pb" or "msgpack", got "http"$/m],
    ['a bad allow-shutdown', ['--allow-shutdown', 'never'], /^--allow-shutdown: allowShutdown must be "signal", "file" or null, got "never"$/m],
    ['a bad log count', ['-l', '-3'], /^bbagent create-worker: Option '-l' argument is ambiguous \(see/],
    ['a zero maxdelay', ['--maxdelay=0'], /^--maxdelay: maxdelay must be an integer number of seconds >= 1, got "0"$/m],
    ['--no-logrotate with --log-size', ['-n', '-s', '5'], /^bbagent create-worker: --no-logrotate and --log-size cannot be used together/],
  ];
  it.each(refusals)('refuses %s with one line, exit 2, creating nothing', (_what, options, re) => {
    const dir = freshDir();
    // Options last, so a missing value is not taken from the positional arguments.
    expectRefused(bbagent(['create-worker', dir, 'master:9989', 'w', 'p', ...options]), re);
    expect(existsSync(dir)).toBe(false);
  });

  const badArgs: [string, string[], RegExp][] = [
    ['too few arguments', ['m:1', 'w'], /expected 4 arguments BASEDIR MASTERHOST\[:PORT\] WORKERNAME PASSWORD, got 3/],
    ['too many arguments', ['m:1', 'w', 'p', 'extra'], /^bbagent create-worker: unexpected argument 'extra'/],
    ['a bad port', ['m:abc', 'w', 'p'], /^MASTERHOST:PORT argument: masterPort must be an integer from 1 to 65535, got "abc"$/m],
    ['a port out of range', ['m:70000', 'w', 'p'], /masterPort must be an integer from 1 to 65535, got "70000"/],
    ['a URL', ['http://m:1', 'w', 'p'], /^MASTERHOST:PORT argument: expected MASTERHOST\[:PORT\], not a URL/],
    ['a bare IPv6 address', ['::1:99', 'w', 'p'], /enclose an IPv6 address in \[\]/],
    ['an empty host', [':99', 'w', 'p'], /the master host is empty/],
    ['an empty name', ['m', '', 'p'], /^WORKERNAME argument: name must be a non-empty string/],
    ["a ':' in the name with msgpack", ['--protocol=msgpack', 'm', 'a:b', 'p'], /^WORKERNAME argument: name must not contain ':' with protocol msgpack/],
  ];
  it.each(badArgs)('refuses %s with one line, exit 2, creating nothing', (what, args, re) => {
    const dir = freshDir();
    expectRefused(bbagent(['create-worker', dir, ...args]), re);
    expect(existsSync(dir), what).toBe(false);
  });

  it('refuses a directory that already has a config unless --force, and keeps edited info files', () => {
    const dir = freshDir();
    expect(bbagent(['create-worker', '-q', dir, 'm', 'w', 'p1']).code).toBe(0);
    writeFileSync(path.join(dir, 'info', 'admin'), 'Me <me@example.org>\n');
    const again = bbagent(['create-worker', dir, 'm', 'w', 'p2']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`bbagent create-worker: ${path.join(dir, 'bbagent.json')} already exists; use --force to overwrite it\n`);
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')).password).toBe('p1');

    const forced = bbagent(['create-worker', '--force', dir, 'm', 'w', 'p2']);
    expect(forced.code).toBe(0);
    expect(forced.stdout.split('\n')).toEqual([
      'updating existing installation',
      'overwriting existing bbagent.json',
      `Not creating ${path.join('info', 'access_uri')} - add it if you wish`,
      `worker configured in ${dir}`,
      '',
    ]);
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')).password).toBe('p2');
    expect(readFileSync(path.join(dir, 'info', 'admin'), 'utf8')).toBe('Me <me@example.org>\n');
    expect(readdirSync(dir).sort()).toEqual(['bbagent.json', 'info']);
  });

  it('refuses a BASEDIR that is a file', () => {
    const file = path.join(tmp, `file${++counter}`);
    writeFileSync(file, '');
    const r = bbagent(['create-worker', file, 'm', 'w', 'p']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bbagent create-worker: ${file} exists and is not a directory\n`);
  });
});

describe('bbagent start/stop/restart refusals', () => {
  it('start refuses a directory without a config, creating nothing', () => {
    const dir = freshDir();
    mkdirSync(dir);
    expectRefused(bbagent(['start', dir]), new RegExp(`^${escape(path.join(dir, 'bbagent.json'))}: not found`));
    expectRefused(bbagent(['start', '--nodaemon', dir]), /: not found/);
    expectRefused(bbagent(['restart', dir]), /: not found/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('start refuses a bad environment value or a bad config file, creating nothing', () => {
    const dir = freshDir();
    expect(bbagent(['create-worker', '-q', dir, 'm', 'w', 'p']).code).toBe(0);
    expectRefused(bbagent(['start', dir], { BBAGENT_MAXDELAY: 'x' }), /^BBAGENT_MAXDELAY: maxdelay must be an integer number of seconds >= 1, got "x"$/m);
    const file = path.join(dir, 'bbagent.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), masterPort: 'abc' }));
    expectRefused(bbagent(['start', '--nodaemon', dir]), /bbagent\.json: masterPort must be an integer from 1 to 65535, got "abc"$/m);
    expect(readdirSync(dir).sort()).toEqual(['bbagent.json', 'info']);
  });

  it('start and stop refuse extra arguments and unknown options', () => {
    expectRefused(bbagent(['start', 'a', 'b']), /^bbagent start: unexpected argument 'b'/);
    expectRefused(bbagent(['stop', '--nodaemon']), /^bbagent stop: unknown option '--nodaemon'/);
  });

  it('stop without a pidfile says so and exits 0, as buildbot-worker does', () => {
    const dir = freshDir();
    expect(bbagent(['create-worker', '-q', dir, 'm', 'w', 'p']).code).toBe(0);
    const r = bbagent(['stop', dir]);
    expect(r).toEqual({ code: 0, stdout: `bbagent not running in ${dir} (no bbagent.pid)\n`, stderr: '' });
    expect(bbagent(['stop', '-q', dir])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('stop removes a stale pidfile and exits 0', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const pid = deadPid();
    writeFileSync(path.join(dir, 'bbagent.pid'), `${pid}\n`);
    const r = bbagent(['stop', dir]);
    expect(r).toEqual({ code: 0, stdout: `bbagent process ${pid} is dead (removed stale bbagent.pid in ${dir})\n`, stderr: '' });
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  });

  it('stop in a directory that is not a worker directory exits 1', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const r = bbagent(['stop', dir]);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `bbagent stop: invalid worker directory '${dir}' (no bbagent.json or bbagent.pid in it)\n` });
  });

  it('stop terminates the process named in the pidfile', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const victim = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => victim.on('exit', (_c, s) => resolve(s)));
    writeFileSync(path.join(dir, 'bbagent.pid'), `${victim.pid}\n`);
    const r = await bbagentAsync(['stop', dir]);
    expect(r).toEqual({ code: 0, stdout: `bbagent process ${victim.pid} is dead\n`, stderr: '' });
    expect(await exited).toBe('SIGTERM');
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  });
});

// The agent itself runs here against a port where no master listens: it starts, logs, retries, and stops.
describe('bbagent start with the real runtime (no master)', () => {
  it('--nodaemon logs to stdout and bbagent.log, holds the pidfile, and removes it on SIGTERM', async () => {
    const dir = freshDir();
    const port = await closedPort();
    expect(bbagent(['create-worker', '-q', '--maxdelay=1', dir, `127.0.0.1:${port}`, 'w', 'p']).code).toBe(0);
    const child = spawn(process.execPath, [BUNDLE, 'start', '--nodaemon', dir], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until(
      () => /Connecting to/.test(stdout),
      () => `stdout: ${stdout}`,
    );
    expect(readPidfile(path.join(dir, 'bbagent.pid'))).toBe(child.pid);
    expect(readFileSync(path.join(dir, 'bbagent.log'), 'utf8')).toMatch(/\[info\] Starting bbagent/);

    // A second start in the same directory is refused while the first runs.
    const second = bbagent(['start', dir]);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(`bbagent is already running in ${dir} (pid ${child.pid}, see ${path.join(dir, 'bbagent.pid')})\n`);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  });

  it('start daemonizes, reports it has not connected, and stop stops it', async () => {
    const dir = freshDir();
    const port = await closedPort();
    expect(bbagent(['create-worker', '-q', '--maxdelay=1', dir, `127.0.0.1:${port}`, 'w', 'p']).code).toBe(0);
    const started = await bbagentAsync(['start', dir]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    const pid = readPidfile(path.join(dir, 'bbagent.pid'));
    expect(started.stdout).toBe(
      `bbagent started in ${dir} (pid ${pid}) but has not connected to the master within 10 s (still trying); see ${path.join(dir, 'bbagent.log')}\n`,
    );
    const log = readFileSync(path.join(dir, 'bbagent.log'), 'utf8');
    expect(log).toMatch(/Connecting to 127\.0\.0\.1/);
    expect(log.match(/Starting bbagent/g)).toHaveLength(1); // written once, not echoed through stdout too

    const stopped = await bbagentAsync(['stop', dir]);
    expect(stopped).toEqual({ code: 0, stdout: `bbagent process ${pid} is dead\n`, stderr: '' });
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
    expect(readFileSync(path.join(dir, 'bbagent.log'), 'utf8')).toMatch(/bbagent stopped/);
  });

  it('start reports a child that exits at once', async () => {
    const dir = freshDir();
    expect(bbagent(['create-worker', '-q', '--protocol=pb', dir, '127.0.0.1:1', 'w', 'p']).code).toBe(0);
    const r = await bbagentAsync(['start', dir]);
    // The runtime refuses protocols it does not have yet; whatever it says is shown with the exit code.
    if (r.code !== 0) {
      expect(r.stderr).toMatch(new RegExp(`^bbagent failed to start in ${escape(dir)} \\(exit code \\d+\\)`));
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
    } else {
      await bbagentAsync(['stop', dir]);
    }
  });
});

describe('openRotatingLog', () => {
  it('rotates like Twisted LogFile: .1 is the newest, at most maxCount kept', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const file = path.join(dir, 'bbagent.log');
    const log = openRotatingLog(file, 10, 2);
    for (const line of ['aaaaaaaaa', 'bbbbbbbbb', 'ccccccccc', 'ddddddddd']) log.write(line); // 10 bytes each
    log.close();
    expect(readdirSync(dir).sort()).toEqual(['bbagent.log', 'bbagent.log.1', 'bbagent.log.2']);
    expect(readFileSync(file, 'utf8')).toBe('ddddddddd\n');
    expect(readFileSync(`${file}.1`, 'utf8')).toBe('ccccccccc\n');
    expect(readFileSync(`${file}.2`, 'utf8')).toBe('bbbbbbbbb\n');
  });

  it('appends to an existing file, counts its size, and never rotates with maxBytes 0', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const file = path.join(dir, 'bbagent.log');
    writeFileSync(file, 'x'.repeat(50));
    const a = openRotatingLog(file, 40, null);
    a.write('next');
    a.close();
    expect(readFileSync(`${file}.1`, 'utf8')).toBe('x'.repeat(50));
    expect(readFileSync(file, 'utf8')).toBe('next\n');
    const b = openRotatingLog(file, 0, 1);
    for (let i = 0; i < 100; i++) b.write('0123456789');
    b.close();
    b.write('after close is ignored');
    expect(readdirSync(dir).sort()).toEqual(['bbagent.log', 'bbagent.log.1']);
  });
});

describe('pidfile', () => {
  it('claims, refuses a live owner, and replaces a stale or garbled one', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const file = path.join(dir, 'bbagent.pid');
    expect(claimPidfile(file, 4242)).toEqual({ removedStale: null });
    writeFileSync(file, `${process.pid}\n`);
    expect(() => claimPidfile(file, 4243)).toThrow(AgentError);
    expect(() => checkPidfile(file, 4243)).toThrow(/already running/);
    const dead = deadPid();
    writeFileSync(file, `${dead}\n`);
    expect(claimPidfile(file, 4244)).toEqual({ removedStale: dead });
    expect(readPidfile(file)).toBe(4244);
    writeFileSync(file, 'garbage');
    expect(() => readPidfile(file)).toThrow(/expected a process id/);
    expect(claimPidfile(file, 4245)).toEqual({ removedStale: null });
    expect(readPidfile(file)).toBe(4245);
  });

  it('knows when a process started (to within the clock tick and /proc/stat boot time second)', () => {
    const started = currentPlatform().processStartMs(process.pid);
    expect(started).toBeDefined();
    expect(Math.abs(started! - performance.timeOrigin)).toBeLessThan(1500);
    expect(currentPlatform().processStartMs(deadPid())).toBeUndefined();
  });

  it('a pidfile whose pid now belongs to a newer process (a reboot since) is stale: start claims it, stop signals nothing', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const file = path.join(dir, 'bbagent.pid');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = other.pid!;
      const written = new Date(Date.now() - 60_000); // written a minute before that process started
      writeFileSync(file, `${pid}\n`);
      utimesSync(file, written, written);
      const stopped = await stopWorker(dir, 1000);
      expect(stopped).toEqual({ kind: 'not-running', reason: expect.stringMatching(/started after it was written, so it is another program/) });
      expect(existsSync(file)).toBe(false);
      expect(alive(pid)).toBe(true);

      writeFileSync(file, `${pid}\n`);
      utimesSync(file, written, written);
      expect(claimPidfile(file, 4246)).toEqual({ removedStale: pid });
      expect(readPidfile(file)).toBe(4246);
      expect(alive(pid)).toBe(true);

      // Written after the process started: that process may be the agent, so it is refused as before.
      writeFileSync(file, `${pid}\n`);
      expect(() => checkPidfile(file, 4247)).toThrow(/already running/);
      // Unknown start time (a platform without it): refused, as before.
      utimesSync(file, written, written);
      expect(() => checkPidfile(file, 4247, () => undefined)).toThrow(/already running/);
    } finally {
      other.kill('SIGKILL');
    }
  });
});

describe('selfCommand', () => {
  it('re-runs node with the script, or the executable alone when bundled as one', () => {
    const script = BUNDLE;
    expect(selfCommand({ execPath: '/usr/bin/node', argv: ['/usr/bin/node', script, 'start'], execArgv: ['--enable-source-maps'] })).toEqual({
      command: '/usr/bin/node',
      args: ['--enable-source-maps', script],
    });
    // Node SEA: argv[1] repeats the executable.
    expect(selfCommand({ execPath: '/opt/bbagent', argv: ['/opt/bbagent', '/opt/bbagent', 'start'], execArgv: [] })).toEqual({
      command: '/opt/bbagent',
      args: [],
    });
    expect(selfCommand({ execPath: '/opt/bbagent', argv: ['/opt/bbagent'], execArgv: [] })).toEqual({ command: '/opt/bbagent', args: [] });
    expect(selfCommand({ execPath: '/opt/bbagent', argv: ['/opt/bbagent', '/snapshot/x.js'], execArgv: [] }).args).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function bbagentAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, ...args], { env: cleanEnv(), cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    // 'close', not 'exit': the detached agent does not hold these pipes, so they close when the CLI exits.
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A pid that is not running: a child that has exited (pids are not reused this quickly). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** A local TCP port nobody listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function until(cond: () => boolean, describe: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
