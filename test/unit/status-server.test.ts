// The control socket and `bbagent status`: a request answered and the connection closed; garbage, an over-long
// request and a silent client cut off; the socket 0600 in a 0700 directory; a stale socket file replaced and a
// live one left alone; a BASEDIR too deep for sun_path served from the short /tmp fallback; the status command's
// exit codes (0 answered, 3 not running, 1 not a worker directory) and its table.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_NOT_RUNNING, statusCommand } from '../../agent/cli/status.js';
import { askAgent, endpointFor, NotRunningError } from '../../agent/control/client.js';
import { MAX_REQUEST_BYTES, REQUEST_TIMEOUT_MS, startControlServer, type ControlHandler, type ControlServer } from '../../agent/control/server.js';
import { collectStatus, type AgentStatus } from '../../agent/control/status.js';
import { silentLogger } from '../../agent/log.js';
import { controlEndpoint, MAX_SOCKET_PATH_BYTES } from '../../platforms/control-endpoint.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-ctl-'));
let counter = 0;
const servers: ControlServer[] = [];

afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A worker directory (bbagent.json present) with a control server whose handler is `handle`. */
async function serve(handle: ControlHandler, basedir = path.join(scratch, `w${++counter}`)): Promise<{ basedir: string; server: ControlServer }> {
  mkdirSync(basedir, { recursive: true });
  writeFileSync(path.join(basedir, 'bbagent.json'), '{}');
  const server = await startControlServer(endpointFor(basedir, 'agent'), handle, silentLogger);
  servers.push(server);
  return { basedir, server };
}

function sampleStatus(): AgentStatus {
  return collectStatus({
    version: '9.9.9',
    startedAt: Date.now() - 65_000,
    loop: { lastLagMs: 1.23, maxStallMs: 45.6, stalls: 0 },
    metricsUrl: () => null,
    draining: () => false,
    workers: () => [
      {
        status: () => ({
          name: 'w1',
          basedir: '/srv/w1',
          connection: {
            state: 'connected',
            master: 'buildbot.example:9989',
            protocol: 'pb',
            connectedSince: Date.now() - 3_600_000,
            lastError: { message: 'lost connection: reset by peer', at: Date.now() - 3_700_000 },
            connects: 3,
            reconnects: 2,
            failedAttempts: 5,
          },
          commands: {
            running: [
              {
                id: '12',
                command: 'shell',
                builder: 'linux-tests',
                workdir: '/srv/w1/linux-tests/build',
                startedAt: Date.now() - 90_000,
                elapsedS: 90,
                outputSentBytes: 123_456,
                outputSpooledBytes: 0,
              },
            ],
            started: { shell: 10, uploadFile: 2 },
            finished: { shell: { success: 8, failure: 1 }, uploadFile: { success: 2 } },
            outputSentBytes: 4_000_000,
            outputSpooledBytes: 1024,
            outputDroppedBytes: 0,
          },
        }),
      },
    ],
  });
}

const statusHandler: ControlHandler = (req) => (req.request === 'status' ? { ok: true, status: sampleStatus() } : { ok: false, error: 'unknown' });

/** What the agent sends back for these bytes (until it closes the connection). */
function exchange(sock: string, bytes: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let got = '';
    s.on('connect', () => bytes !== undefined && s.write(bytes));
    s.on('data', (b: Buffer) => (got += b.toString('utf8')));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

function recordingIO() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l), env: {} }, out, err };
}

describe('control socket', () => {
  it('answers one request and closes; refuses garbage, over-long and unknown requests; cuts off a silent client', async () => {
    const { server } = await serve(statusHandler);
    const sock = server.endpoint.path;
    const reply = JSON.parse(await exchange(sock, '{"request":"status"}\n')) as { ok: boolean; status: AgentStatus };
    expect(reply.ok).toBe(true);
    expect(reply.status.workers[0]?.name).toBe('w1');
    expect(JSON.parse(await exchange(sock, 'y'.repeat(MAX_REQUEST_BYTES + 10)))).toEqual({
      ok: false,
      error: `the request is longer than ${MAX_REQUEST_BYTES} bytes`,
    });
    expect(JSON.parse(await exchange(sock, '\u0001\u00fe]]\n'))).toEqual({ ok: false, error: 'the request is not JSON' });
    expect(JSON.parse(await exchange(sock, '[1,2]\n'))).toMatchObject({ ok: false, error: expect.stringContaining('"request" string') });
    expect(JSON.parse(await exchange(sock, '{"request":"reboot"}\n'))).toEqual({ ok: false, error: 'unknown' });
    const t0 = Date.now();
    expect(await exchange(sock, undefined)).toBe('');
    expect(Date.now() - t0).toBeLessThan(5000);
    // and it still answers
    expect(await askAgent(server.endpoint, { request: 'status' })).toMatchObject({ ok: true });
  });

  it('a client that trickles bytes, or floods without end, is cut off at the deadline', async () => {
    const { server } = await serve(statusHandler);
    for (const [every, chunk] of [
      [100, 'x'],
      [1, 'y'.repeat(65536)],
    ] as const) {
      const t0 = Date.now();
      const s = net.connect(server.endpoint.path);
      s.on('error', () => {});
      const timer = setInterval(() => s.writable && s.write(chunk), every);
      await new Promise((r) => s.once('close', r));
      clearInterval(timer);
      expect(Date.now() - t0).toBeLessThan(REQUEST_TIMEOUT_MS + 1000);
    }
    expect(await askAgent(server.endpoint, { request: 'status' })).toMatchObject({ ok: true });
  });

  it('a handler that throws is an error reply, not a crash', async () => {
    const { server } = await serve(() => {
      throw new Error('boom');
    });
    expect(await askAgent(server.endpoint, { request: 'status' })).toEqual({ ok: false, error: 'the agent could not answer: boom' });
  });

  it('the socket is 0600 in a 0700 directory, even where the directory was left open', async () => {
    const basedir = path.join(scratch, 'modes');
    mkdirSync(path.join(basedir, '.bbagent', 'run'), { recursive: true });
    chmodSync(path.join(basedir, '.bbagent', 'run'), 0o755);
    const { server } = await serve(statusHandler, basedir);
    expect(statSync(server.endpoint.path).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(basedir, '.bbagent', 'run')).mode & 0o777).toBe(0o700);
  });

  it('replaces the socket file a SIGKILLed agent left; refuses to take over one a live agent answers on', async () => {
    const basedir = path.join(scratch, 'stale');
    const first = await serve(statusHandler, basedir);
    const sock = first.server.endpoint.path;
    await expect(startControlServer(endpointFor(basedir, 'agent'), statusHandler, silentLogger)).rejects.toThrow(/another agent answers there/);
    first.server.close();
    // a process that listens there and is killed with SIGKILL leaves the socket file behind
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise<void>((r) => child.once('exit', () => r()));
    expect(existsSync(sock)).toBe(true);
    await expect(askAgent(endpointFor(basedir, 'agent'), { request: 'status' })).rejects.toBeInstanceOf(NotRunningError);
    const again = await startControlServer(endpointFor(basedir, 'agent'), statusHandler, silentLogger);
    servers.push(again);
    expect(await askAgent(again.endpoint, { request: 'status' })).toMatchObject({ ok: true });
  });

  it('a BASEDIR too deep for sun_path is served from a short owner-only path under /tmp', async () => {
    let deep = path.join(scratch, 'deep');
    while (Buffer.byteLength(path.join(deep, '.bbagent', 'run', 'control.sock')) <= MAX_SOCKET_PATH_BYTES) deep = path.join(deep, 'a-long-directory-name');
    const ep = endpointFor(deep, 'agent');
    expect(ep.path).toMatch(/^\/tmp\/bbagent-\d+\/[0-9a-f]{16}\.sock$/);
    const { server } = await serve(statusHandler, deep);
    expect(server.endpoint.path).toBe(ep.path);
    expect(statSync(path.dirname(ep.path)).mode & 0o777).toBe(0o700);
    expect(await askAgent(endpointFor(deep, 'client'), { request: 'status' })).toMatchObject({ ok: true });
    server.close();
    expect(existsSync(ep.path)).toBe(false);
  });

  it("the /tmp fallback is named by the agent's user; a socket of another user is not asked", async () => {
    const deep = `/srv/${'d'.repeat(120)}/.bbagent/run`;
    expect(controlEndpoint(deep, 'linux', 1234)).toMatchObject({ path: expect.stringMatching(/^\/tmp\/bbagent-1234\/[0-9a-f]{16}\.sock$/), owner: 1234 });
    const { server } = await serve(statusHandler);
    const impostor = { ...server.endpoint, owner: (server.endpoint.owner ?? 0) + 4242 };
    await expect(askAgent(impostor, { request: 'status' })).rejects.toThrow(/does not belong to the agent's user/);
  });

  it('names a pipe on Windows by the directory, case-insensitively', () => {
    const a = controlEndpoint('C:\\Workers\\W1\\.bbagent\\run', 'win32');
    expect(a.path).toMatch(/^\\\\\.\\pipe\\bbagent-[0-9a-f]{16}$/);
    expect(a.dir).toBeNull();
    expect(controlEndpoint('c:\\workers\\w1\\.bbagent\\run', 'win32').path).toBe(a.path);
    expect(controlEndpoint('C:\\Workers\\W2\\.bbagent\\run', 'win32').path).not.toBe(a.path);
  });

  it('nothing listening is NotRunningError', async () => {
    await expect(askAgent(endpointFor(path.join(scratch, 'nobody'), 'client'), { request: 'status' })).rejects.toBeInstanceOf(NotRunningError);
  });
});

describe('bbagent status', () => {
  it('prints the table: connection, commands, output, running commands', async () => {
    const { basedir } = await serve(statusHandler);
    const { io, out } = recordingIO();
    expect(await statusCommand([basedir], io)).toBe(0);
    const text = out.join('\n');
    expect(text).toMatch(/^bbagent 9\.9\.9, pid \d+, up 1m0[45]s, RSS [0-9.]+ MiB, event loop lag 1\.2 ms \(longest stall 45\.6 ms\)$/m);
    expect(text).toContain("worker 'w1' in /srv/w1");
    expect(text).toMatch(/^ {2}master {6}buildbot\.example:9989 \(pb\)$/m);
    expect(text).toMatch(/^ {2}state {7}connected since \S+Z \(1h00m ago\)$/m);
    expect(text).toMatch(/^ {2}reconnects {2}2 \(failed attempts 5\)$/m);
    expect(text).toMatch(/^ {2}last error {2}lost connection: reset by peer \(1h01m ago\)$/m);
    expect(text).toMatch(/^ {2}commands {4}12 started, 11 ended \(success 10, failure 1\), 1 running$/m);
    expect(text).toMatch(/^ {2}output {6}3\.8 MiB sent, 1\.0 KiB spooled, 0 B dropped$/m);
    expect(text).toMatch(/^ {4}BUILDER +COMMAND +ID +ELAPSED +SENT +WORKDIR$/m);
    expect(text).toMatch(/^ {4}linux-tests +shell +12 +1m30s +120\.6 KiB +\/srv\/w1\/linux-tests\/build$/m);
  });

  it('--json prints the reply as JSON', async () => {
    const { basedir } = await serve(statusHandler);
    const { io, out } = recordingIO();
    expect(await statusCommand(['--json', basedir], io)).toBe(0);
    const parsed = JSON.parse(out.join('\n')) as AgentStatus;
    expect(parsed.format).toBe(1);
    expect(parsed.workers[0]?.commands.running[0]?.builder).toBe('linux-tests');
  });

  it('exit 3 when no agent runs in a worker directory; 1 for a directory that is no worker directory; 2 for a bad flag', async () => {
    const basedir = path.join(scratch, 'idle');
    mkdirSync(basedir);
    writeFileSync(path.join(basedir, 'bbagent.json'), '{}');
    const idle = recordingIO();
    expect(await statusCommand([basedir], idle.io)).toBe(EXIT_NOT_RUNNING);
    expect(EXIT_NOT_RUNNING).toBe(3);
    expect(idle.out).toEqual([`bbagent not running in ${basedir}`]);
    const stray = recordingIO();
    expect(await statusCommand([path.join(scratch, 'nowhere')], stray.io)).toBe(1);
    expect(stray.err[0]).toMatch(/invalid worker directory/);
    expect(await statusCommand(['--frob'], recordingIO().io)).toBe(2);
  });

  it('an agent that refuses is exit 1 with its reason', async () => {
    const { basedir } = await serve(() => ({ ok: false, error: 'not today' }));
    const { io, err } = recordingIO();
    expect(await statusCommand([basedir], io)).toBe(1);
    expect(err).toEqual(['bbagent status: the agent refused: not today']);
  });
});
