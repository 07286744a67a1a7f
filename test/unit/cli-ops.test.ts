// The operator's command line (issue 14, item 7), run as the built bundle: `stop` exits as buildbot-worker's
// stop does (checked against the real buildbot-worker), `help COMMAND`, help whose defaults are the ones the
// config writes, and the start flags the README documents (settings over BBAGENT_* over the file, a rotating log).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIELD_FLAGS, defaultText } from '../../agent/cli/options.js';
import { flagName, parseFieldText } from '../../agent/config/load.js';
import { BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { findExecutable } from '../../scripts/harness/process.js';

const BUILDBOT_WORKER = findExecutable('buildbot-worker');

let tmp: string;
beforeAll(() => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cli-ops-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
const fresh = (): string => path.join(tmp, `w${++counter}`);

type Run = { code: number | null; stdout: string; stderr: string };

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BBAGENT_'))), ...extra };
}

function bbagent(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [BUNDLE, ...args], { encoding: 'utf8', env: cleanEnv(env), cwd: tmp, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function bbagentAsync(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, ...args], { env: cleanEnv(), cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

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

async function until(cond: () => boolean, describe: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(BUILDBOT_WORKER === undefined)('stop exits as buildbot-worker stop does', () => {
  function buildbotWorker(args: string[]): Run {
    const r = spawnSync(BUILDBOT_WORKER!, args, { encoding: 'utf8', cwd: tmp, timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('not running: 0; a stale pidfile: 0; not a worker directory: 1 (both programs)', () => {
    const theirs = fresh();
    const ours = fresh();
    expect(buildbotWorker(['create-worker', '-q', theirs, 'm', 'w', 'p']).code).toBe(0);
    expect(bbagent(['create-worker', '-q', ours, 'm', 'w', 'p']).code).toBe(0);

    const notRunning = [buildbotWorker(['stop', theirs]), bbagent(['stop', ours])];
    expect(notRunning.map((r) => r.code)).toEqual([0, 0]);
    expect(notRunning[0]!.stdout).toBe('worker not running\n');
    expect(notRunning[1]!.stdout).toBe(`bbagent not running in ${ours} (no bbagent.pid)\n`);

    const pid = deadPid();
    writeFileSync(path.join(theirs, 'twistd.pid'), `${pid}`);
    writeFileSync(path.join(ours, 'bbagent.pid'), `${pid}`);
    const stale = [buildbotWorker(['stop', theirs]), bbagent(['stop', ours])];
    expect(stale.map((r) => r.code)).toEqual([0, 0]);
    expect(stale[0]!.stdout).toBe(`worker process ${pid} is dead\n`);
    expect(stale[1]!.stdout).toBe(`bbagent process ${pid} is dead (removed stale bbagent.pid in ${ours})\n`);

    const nowhere = fresh();
    mkdirSync(nowhere);
    expect([buildbotWorker(['stop', nowhere]).code, bbagent(['stop', nowhere]).code]).toEqual([1, 1]);

    // so `stop; start` works under `set -e`
    const script = spawnSync('sh', ['-ec', `"${process.execPath}" "${BUNDLE}" stop -q "${ours}"; echo went-on`], { encoding: 'utf8', env: cleanEnv() });
    expect(script.stdout).toBe('went-on\n');
  });
});

describe('help', () => {
  it("`bbagent help COMMAND` prints the command's help; an unknown one is refused", () => {
    for (const cmd of ['create-worker', 'start', 'stop', 'restart', 'service']) {
      const viaHelp = bbagent(['help', cmd]);
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^Usage: bbagent ${cmd} `));
      expect(viaHelp).toEqual(bbagent([cmd, '--help']));
    }
    expect(bbagent(['help']).stdout).toBe(bbagent(['--help']).stdout);
    expect(bbagent(['help', 'frob'])).toEqual({ code: 2, stdout: '', stderr: "bbagent help: unknown command 'frob' (see 'bbagent --help')\n" });
  });

  it("create-worker --help states each setting's default as the file create-worker writes has it", () => {
    const help = bbagent(['create-worker', '--help']).stdout.replace(/\n +/g, ' ');
    const dir = fresh();
    expect(bbagent(['create-worker', '-q', dir, 'm', 'w', 'p']).code).toBe(0);
    const written = JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')) as Record<string, unknown>;
    const valued = FIELD_FLAGS.filter((f) => f.metavar !== undefined);
    expect(valued.length).toBeGreaterThan(10);
    for (const f of valued) {
      const m = new RegExp(`--${f.flag} \\S+ .*?\\(default ([^;:)]+)`).exec(help);
      expect(m, `--${f.flag}`).not.toBeNull();
      const shown = m![1]!;
      expect(shown).toBe(defaultText(f.field));
      const parsed = parseFieldText(f.field, shown, 'help');
      expect(written[f.field], `--${f.flag}`).toEqual(f.field === 'umask' && typeof parsed === 'number' ? `0o${parsed.toString(8).padStart(3, '0')}` : parsed);
    }
    // the protocol the help names as default is the one written (the issue: help said msgpack, the file pb)
    expect(help).toMatch(new RegExp(`--protocol PROTOCOL .*\\(default ${String(written['protocol'])}\\)`));
  });

  it('every setting flag is the one that messages name for its field', () => {
    for (const f of FIELD_FLAGS) expect(`--${f.flag}`).toBe(flagName(f.field));
  });
});

describe('start flags do what the README says', () => {
  /** `start --nodaemon ARGS` until its output shows `re`, then SIGTERM; resolves with the output. */
  async function foreground(args: string[], re: RegExp, env: Record<string, string> = {}): Promise<string> {
    const child = spawn(process.execPath, [BUNDLE, 'start', '--nodaemon', ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(
        () => re.test(out),
        () => `output: ${out}`,
      );
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    return out;
  }

  it('BBAGENT_* variables override the file, flags override both', async () => {
    const [p0, p1, p2] = [await closedPort(), await closedPort(), await closedPort()];
    const dir = fresh();
    expect(bbagent(['create-worker', '-q', '--maxdelay=1', dir, `127.0.0.1:${p0}`, 'w', 'p']).code).toBe(0);
    await foreground([dir], new RegExp(`Connecting to 127\\.0\\.0\\.1:${p0} \\(pb\\)`));
    const env = { BBAGENT_CONNECTION_STRING: `tcp:host=127.0.0.1:port=${p1}` };
    await foreground([dir], new RegExp(`Connecting to 127\\.0\\.0\\.1:${p1} \\(pb\\)`), env);
    await foreground([`--connection-string=tcp:host=127.0.0.1:port=${p2}`, dir], new RegExp(`Connecting to 127\\.0\\.0\\.1:${p2} \\(pb\\)`), env);
    // the flag changed this run only
    expect(JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8'))).toMatchObject({ masterPort: p0, connectionString: null });
  });

  it('the daemon gets the same setting flags, and keeps a pidfile and a rotating log', async () => {
    const [p0, p2] = [await closedPort(), await closedPort()];
    const dir = fresh();
    expect(bbagent(['create-worker', '-q', '--maxdelay=1', dir, `127.0.0.1:${p0}`, 'w', 'p']).code).toBe(0);
    const log = path.join(dir, 'bbagent.log');
    const started = bbagentAsync(['start', '--log-size=300', '--log-count=2', `--connection-string=tcp:host=127.0.0.1:port=${p2}`, dir]);
    // the child logs an attempt a second (maxdelay 1), each a few lines: past 300 bytes the log rotates
    await until(
      () => existsSync(`${log}.1`) && existsSync(path.join(dir, 'bbagent.pid')),
      () => readdirSync(dir).join(' '),
    );
    const stopped = bbagent(['stop', dir]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/^bbagent process \d+ is dead\n$/);
    await started;
    const logs = readdirSync(dir).filter((f) => f.startsWith('bbagent.log'));
    expect(logs.length).toBeLessThanOrEqual(3); // bbagent.log, .1, .2
    const text = logs.map((f) => readFileSync(path.join(dir, f), 'utf8')).join('');
    expect(text).toContain(`Connecting to 127.0.0.1:${p2} (pb)`);
    expect(text).not.toContain(`127.0.0.1:${p0}`);
  });

  it('a bad setting flag is refused naming the flag, before anything is created', () => {
    const dir = fresh();
    expect(bbagent(['create-worker', '-q', dir, 'm', 'w', 'p']).code).toBe(0);
    for (const [flag, re] of [
      ['--maxdelay=soon', /^--maxdelay: maxdelay must be an integer number of seconds >= 1, got "soon"$/m],
      ['--log-level=loud', /^--log-level: logLevel must be "debug" or "info", got "loud"$/m],
    ] as const) {
      const r = bbagent(['start', flag, dir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    expect(readdirSync(dir).sort()).toEqual(['bbagent.json', 'info']);
  });
});
