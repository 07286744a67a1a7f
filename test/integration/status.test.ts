// `bbagent status` and the metrics during real builds on a REAL Buildbot 3.7 master: one agent with two workers
// (PB and msgpack) runs in the foreground with --metrics-addr on port 0, --log-format json and --log-level debug;
// while a shell step sleeps on each, status shows both connected and the commands running; after the builds the
// metrics show the commands counted and their output; garbage and silent clients on the control socket are cut
// off without harm; the socket is owner-only; the debug lines appear as JSON; once the agent stopped, status
// exits 3.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results } from '../../scripts/harness/master.js';
import { ManagedProcess, pollUntil, runCommand } from '../../scripts/harness/process.js';

const haveBuildbot = existsSync('/usr/bin/buildbot');
const SLEEPY = "[steps.ShellCommand(name='sleepy', command='echo start; sleep 4; echo done', logEnviron=False)]";
const env = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BBAGENT_')));

/** Runs the bundle to its end: exit code and stdout (status's exit code is what is tested). */
function bbagent(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, ...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

interface Status {
  metricsUrl: string | null;
  workers: {
    name: string;
    connection: { state: string; master: string; protocol: string; connectedSince: number | null; reconnects: number };
    commands: {
      running: { command: string; builder: string | null; workdir: string | null; elapsedS: number }[];
      started: Record<string, number>;
      outputSentBytes: number;
    };
  }[];
}

async function status(dir: string): Promise<Status> {
  const r = await bbagent(['status', '--json', dir]);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as Status;
}

/** A metric's value from the text format (the first sample whose line starts with `sample`). */
function sample(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Sends `bytes` on the control socket and collects what comes back until the agent closes. */
function rawExchange(sock: string, bytes: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let got = '';
    s.on('connect', () => {
      if (bytes !== undefined) s.write(bytes);
    });
    s.on('data', (b: Buffer) => (got += b.toString('utf8')));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

describe.skipIf(!haveBuildbot)('bbagent status and metrics during a real build', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-status-it-'));
  const dir = path.join(scratch, 'w');
  const mpDir = path.join(scratch, 'w-mp');
  const sock = path.join(dir, '.bbagent', 'run', 'control.sock');
  let master: BuildbotMaster;
  let agent: ManagedProcess | undefined;

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      alsoProtocol: 'msgpack',
      workers: [
        { name: 'st', password: 'status-pw' },
        { name: 'st-mp', password: 'status-pw' },
      ],
      builders: [
        { name: 'slow', workernames: ['st'], steps: SLEEPY },
        { name: 'slow-mp', workernames: ['st-mp'], steps: SLEEPY },
      ],
    });
    await runCommand(process.execPath, [BUNDLE, 'create-worker', '-q', dir, `127.0.0.1:${master.portFor('pb')}`, 'st', 'status-pw'], { env: env() });
    // a second worker in the same agent, over msgpack: status lists both
    const config = JSON.parse(readFileSync(path.join(dir, 'bbagent.json'), 'utf8')) as Record<string, unknown>;
    config['workers'] = [{ basedir: mpDir, name: 'st-mp', protocol: 'msgpack', masterPort: master.portFor('msgpack') }];
    writeFileSync(path.join(dir, 'bbagent.json'), JSON.stringify(config));
    agent = await ManagedProcess.spawn({
      command: process.execPath,
      args: [BUNDLE, 'start', '--nodaemon', '--metrics-addr=127.0.0.1:0', '--log-format=json', '--log-level=debug', '--keepalive=1', dir],
      cwd: dir,
      env: env(),
      label: 'bbagent st',
    });
    await Promise.all([master.waitForWorker('st'), master.waitForWorker('st-mp')]);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(15_000);
    await master?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('shows both connections, the running commands (builder over PB, workdir over msgpack), and the metrics count the builds', async () => {
    const idle = await status(dir);
    expect(idle.workers.map((w) => w.name)).toEqual(['st', 'st-mp']);
    const [pb, mp] = idle.workers;
    expect(pb!.connection).toMatchObject({ state: 'connected', master: `127.0.0.1:${master.portFor('pb')}`, protocol: 'pb', reconnects: 0 });
    expect(mp!.connection).toMatchObject({ state: 'connected', master: `127.0.0.1:${master.portFor('msgpack')}`, protocol: 'msgpack', reconnects: 0 });
    expect(pb!.connection.connectedSince).toBeLessThanOrEqual(Date.now());
    expect(idle.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const scrape = async (): Promise<string> => (await fetch(idle.metricsUrl!)).text();
    const before = await scrape();
    expect(sample(before, 'bbagent_connection_up{worker="st"')).toBe(1);
    expect(sample(before, 'bbagent_connection_up{worker="st-mp"')).toBe(1);
    const pbMaster = `127.0.0.1:${master.portFor('pb')}`;
    expect(sample(before, `bbagent_commands_finished_total{worker="st",master="${pbMaster}",command="shell",result="success"}`)).toBeUndefined();

    const requests = await Promise.all([master.forceBuild('slow'), master.forceBuild('slow-mp')]);
    const builds = await Promise.all(requests.map((r) => master.waitForBuildStarted(r)));
    await Promise.all(builds.map((b) => master.waitForLogText(b, 'sleepy', 'start')));
    const busy = await status(dir);
    const [pbRunning, mpRunning] = busy.workers.map((w) => w.commands.running);
    expect(pbRunning).toHaveLength(1);
    expect(pbRunning![0]).toMatchObject({ command: 'shell', builder: 'slow', workdir: path.join(dir, 'slow', 'build') });
    expect(pbRunning![0]!.elapsedS).toBeGreaterThan(0);
    // msgpack names no builder: the workdir shows it
    expect(mpRunning).toHaveLength(1);
    expect(mpRunning![0]).toMatchObject({ command: 'shell', builder: null, workdir: path.join(mpDir, 'slow-mp', 'build') });
    expect(mpRunning![0]!.elapsedS).toBeGreaterThan(0);
    expect(sample(await scrape(), `bbagent_commands_running{worker="st",master="${pbMaster}"}`)).toBe(1);
    // the human form names the same
    const table = await bbagent(['status', dir]);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/state\s+connected since/);
    expect(table.out).toMatch(/slow\s+shell\s+\S+\s+[0-9.]+ s/);

    for (const r of requests) expect((await master.waitForBuild(r)).results).toBe(Results.SUCCESS);
    const after = await scrape();
    for (const [worker, protocol] of [
      ['st', 'pb'],
      ['st-mp', 'msgpack'],
    ] as const) {
      const labels = `worker="${worker}",master="127.0.0.1:${master.portFor(protocol)}"`;
      expect(sample(after, `bbagent_commands_finished_total{${labels},command="shell",result="success"}`)).toBeGreaterThanOrEqual(1);
      expect(sample(after, `bbagent_output_sent_bytes_total{${labels}}`)).toBeGreaterThan(0);
      expect(sample(after, `bbagent_output_batch_bytes_count{${labels}}`)).toBeGreaterThan(0);
    }
    expect(sample(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect((await status(dir)).workers.every((w) => w.commands.running.length === 0)).toBe(true);
  }, 60_000);

  it('the socket is owner-only, and garbage or a silent client does not hurt the agent', async () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(sock)).mode & 0o777).toBe(0o700);
    // an over-long request with no newline is refused and closed; so is one that is not JSON
    expect(JSON.parse(await rawExchange(sock, 'x'.repeat(100_000)))).toMatchObject({ ok: false, error: expect.stringContaining('longer than') });
    expect(JSON.parse(await rawExchange(sock, '\u0000\u00ff{{{\n'))).toMatchObject({ ok: false, error: 'the request is not JSON' });
    expect(JSON.parse(await rawExchange(sock, '{"request":"nonsense"}\n'))).toMatchObject({ ok: false });
    // a client that never sends anything is cut off (REQUEST_TIMEOUT_MS), and meanwhile status answers
    const silent = rawExchange(sock, undefined);
    expect((await status(dir)).workers[0]!.connection.state).toBe('connected');
    expect(await silent).toBe('');
    expect(agent!.running).toBe(true);
  }, 30_000);

  it('logs JSON lines, debug ones included', async () => {
    const lines = await pollUntil(
      () => {
        const ls = agent!.capturedOutput.split('\n').filter((l) => l.trim() !== '');
        const keepalive = ls.some((l) => l.includes("master replied to keepalive, everything's fine"));
        // the build ended: after 3 s with no command the heap is compacted, which is logged at debug
        const compacted = ls.some((l) => l.includes('idle: heap compacted'));
        return keepalive && compacted ? ls : undefined;
      },
      { timeoutMs: 10_000, what: 'the debug lines of a keepalive reply and a heap compaction', details: () => agent!.capturedOutput.slice(-2000) },
    );
    for (const l of lines) expect(Object.keys(JSON.parse(l) as object)).toEqual(['time', 'level', 'msg']);
    expect(lines.map((l) => (JSON.parse(l) as { level: string }).level)).toContain('debug');
  }, 20_000);

  it('once the agent stopped, status says it is not running and exits 3', async () => {
    agent!.signal('SIGTERM');
    await agent!.exited;
    const r = await bbagent(['status', dir]);
    expect(r.code).toBe(3);
    expect(r.out).toContain(`bbagent not running in ${dir}`);
    expect(existsSync(sock)).toBe(false);
  }, 30_000);
});
