// The msgpack protocol layer against an in-process WebSocket peer that speaks like the 3.7 master.
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { decode, encode } from '@msgpack/msgpack';
import { shellCommand } from '../../agent/commands/shell.js';
import { Bot } from '../../agent/connection/bot.js';
import { connectMsgpack } from '../../agent/connection/msgpack/connect.js';
import { MsgpackSession } from '../../agent/connection/msgpack/session.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';

type Msg = Record<string, unknown>;

class FakeMaster {
  readonly wss: WebSocketServer;
  sock: WebSocket | undefined;
  readonly received: Msg[] = [];
  private waiters: (() => void)[] = [];
  private seq = 0;

  constructor(password: string) {
    this.wss = new WebSocketServer({
      port: 0,
      verifyClient: (info, cb) => {
        const auth = info.req.headers.authorization ?? '';
        if (auth === `Basic ${Buffer.from(`w1:${password}`).toString('base64')}`) cb(true);
        else cb(false, 401, 'Unauthorized');
      },
    });
    this.wss.on('connection', (s) => {
      this.sock = s;
      s.on('message', (d) => {
        this.received.push(decode(d as Buffer) as Msg);
        this.waiters.splice(0).forEach((w) => w());
      });
    });
  }

  get port(): number {
    return (this.wss.address() as AddressInfo).port;
  }

  send(op: string, fields: Msg = {}): number {
    const seq = this.seq++;
    this.sock!.send(encode({ op, ...fields, seq_number: seq }));
    return seq;
  }

  async waitFor(pred: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.find(pred);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`timed out; received: ${JSON.stringify(this.received).slice(0, 2000)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  /** Answers every worker request with None, as the master does for update/complete. */
  autoRespond(): void {
    this.sock!.on('message', (d) => {
      const m = decode(d as Buffer) as Msg;
      if (m['op'] !== 'response') this.sock!.send(encode({ op: 'response', seq_number: m['seq_number'], result: null }));
    });
  }

  close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    return new Promise((r) => this.wss.close(() => r()));
  }
}

let master: FakeMaster | undefined;
afterEach(async () => {
  await master?.close();
  master = undefined;
});

function makeBot(onShutdown = () => {}) {
  const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-mp-'));
  return new Bot({
    env: { basedir, platform: currentPlatform(), logger: silentLogger, environ: { PATH: process.env['PATH'] ?? '' }, now: () => Date.now() / 1000 },
    commands: [shellCommand],
    collectInfo: async () => ({ basedir, system: 'posix' }),
    logger: silentLogger,
    onShutdownRequest: onShutdown,
  });
}

describe('msgpack session', () => {
  it('refuses a wrong password with E_AUTH', async () => {
    master = new FakeMaster('right');
    await expect(
      connectMsgpack({ host: '127.0.0.1', port: master.port, name: 'w1', password: 'wrong', tls: false, handshakeTimeoutMs: 5000 }),
    ).rejects.toMatchObject({ code: 'E_AUTH', message: expect.stringContaining("refused worker 'w1'") });
  });

  it('answers the attach ops and runs a shell command with well-formed updates', async () => {
    master = new FakeMaster('pw');
    const ws = await connectMsgpack({ host: '127.0.0.1', port: master.port, name: 'w1', password: 'pw', tls: false, handshakeTimeoutMs: 5000 });
    new MsgpackSession(ws, makeBot(), silentLogger);
    await new Promise((r) => setTimeout(r, 50));
    master.autoRespond();
    const s0 = master.send('print', { message: 'attached' });
    await master.waitFor((m) => m['op'] === 'response' && m['seq_number'] === s0 && m['result'] === null);
    const s1 = master.send('get_worker_info');
    const info = await master.waitFor((m) => m['op'] === 'response' && m['seq_number'] === s1);
    expect(info['result']).toMatchObject({ system: 'posix' });
    const s2 = master.send('set_worker_settings', {
      args: {
        newline_re: '(\\r\\n|\\r(?=.)|\\033\\[u|\\033\\[[0-9]+;[0-9]+[Hf]|\\033\\[2J|\\x08+)',
        max_line_length: 4096,
        buffer_timeout: 5,
        buffer_size: 65536,
      },
    });
    expect((await master.waitFor((m) => m['seq_number'] === s2 && m['op'] === 'response'))['is_exception']).toBeUndefined();
    const s3 = master.send('set_worker_settings', { args: { newline_re: 'x' } });
    expect(await master.waitFor((m) => m['seq_number'] === s3 && m['op'] === 'response')).toMatchObject({
      is_exception: true,
      result: 'message did not contain obligatory settings for worker',
    });
    const s4 = master.send('bogus_op');
    expect(await master.waitFor((m) => m['seq_number'] === s4 && m['op'] === 'response')).toMatchObject({
      is_exception: true,
      result: 'Command bogus_op does not exist.',
    });
    const s5 = master.send('start_command', { command_id: '7', command_name: 'nope', args: {} });
    expect(await master.waitFor((m) => m['seq_number'] === s5 && m['op'] === 'response')).toMatchObject({
      is_exception: true,
      result: "unrecognized WorkerCommand 'nope'",
    });

    master.send('start_command', {
      builder_name: 'b',
      command_id: '8',
      command_name: 'shell',
      args: { workdir: os.tmpdir(), command: 'echo hi; printf tail', logEnviron: false },
    });
    const complete = await master.waitFor((m) => m['op'] === 'complete' && m['command_id'] === '8');
    expect(complete['args']).toBeNull();
    const updates = master.received.filter((m) => m['op'] === 'update' && m['command_id'] === '8').flatMap((m) => m['args'] as [string, unknown][]);
    const stdout = updates.filter(([k]) => k === 'stdout').map(([, v]) => v as [string, number[], number[]]);
    expect(stdout.map((v) => v[0]).join('')).toBe('hi\ntail\n');
    for (const [text, idx, times] of stdout) {
      expect(text.endsWith('\n')).toBe(true); // the 3.7 master drops text without a final newline
      expect(idx).toEqual([...text].flatMap((c, i) => (c === '\n' ? [i] : [])));
      expect(times).toHaveLength(idx.length);
    }
    expect(updates.filter(([k]) => k === 'rc')).toEqual([['rc', 0]]);
    // the worker's own requests are numbered from 0, seq_number last
    const own = master.received.filter((m) => m['op'] !== 'response');
    expect(own.map((m) => m['seq_number'])).toEqual(own.map((_, i) => i));
    expect(Object.keys(own[0]!)).toEqual(['op', 'args', 'command_id', 'seq_number']);
  });

  it('shutdown: answers, then asks the agent to stop', async () => {
    master = new FakeMaster('pw');
    const ws = await connectMsgpack({ host: '127.0.0.1', port: master.port, name: 'w1', password: 'pw', tls: false, handshakeTimeoutMs: 5000 });
    let stopped = false;
    new MsgpackSession(
      ws,
      makeBot(() => (stopped = true)),
      silentLogger,
    );
    await new Promise((r) => setTimeout(r, 50));
    const s = master.send('shutdown');
    await master.waitFor((m) => m['op'] === 'response' && m['seq_number'] === s);
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(true);
  });
});
