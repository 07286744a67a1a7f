// The msgpack protocol layer against an in-process WebSocket peer that speaks like the 3.7 master.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { constants as zlibConstants, createDeflateRaw } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { decode, encode } from '@msgpack/msgpack';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import { shellCommand } from '../../agent/commands/shell.js';
import type { CommandDefinition } from '../../agent/commands/types.js';
import { Worker } from '../../agent/worker/worker.js';
import { connectMsgpack } from '../../agent/connection/msgpack/connect.js';
import { MsgpackSession } from '../../agent/connection/msgpack/session.js';
import { MAX_MESSAGE_BYTES } from '../../agent/connection/limits.js';
import { silentLogger } from '../../agent/log.js';
import { RecordingLogger } from '../helpers/recording-logger.js';
import { currentPlatform } from '../../platforms/index.js';

type Msg = Record<string, unknown>;

const MiB = 1024 * 1024;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A master's compressor with context takeover: each message becomes one compressed, unmasked binary frame. */
class MasterDeflater {
  private readonly z = createDeflateRaw();
  private out: Buffer[] = [];
  constructor() {
    this.z.on('data', (c: Buffer) => this.out.push(c));
  }

  async frame(parts: Iterable<Uint8Array>): Promise<Buffer> {
    for (const p of parts) if (!this.z.write(p)) await new Promise((r) => this.z.once('drain', r));
    await new Promise<void>((r) => this.z.flush(zlibConstants.Z_SYNC_FLUSH, () => r()));
    const data = Buffer.concat(this.out);
    this.out = [];
    // RFC 7692: the 00 00 ff ff a sync flush ends with is left out
    const payload = data.subarray(0, data.length - 4);
    const head = payload.length < 126 ? Buffer.from([0xc2, payload.length]) : Buffer.concat([Buffer.from([0xc2, 127]), Buffer.alloc(4), u32(payload.length)]);
    return Buffer.concat([head, payload]);
  }
}

class FakeMaster {
  readonly wss: WebSocketServer;
  sock: WebSocket | undefined;
  /** The TCP socket under `sock`. */
  tcp: Socket | undefined;
  readonly received: Msg[] = [];
  private waiters: (() => void)[] = [];
  private seq = 0;

  constructor(password: string, opts: { deflate?: boolean } = {}) {
    this.wss = new WebSocketServer({
      port: 0,
      perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
      verifyClient: (info, cb) => {
        const auth = info.req.headers.authorization ?? '';
        if (auth === `Basic ${Buffer.from(`w1:${password}`).toString('base64')}`) cb(true);
        else cb(false, 401, 'Unauthorized');
      },
    });
    this.wss.on('connection', (s, req) => {
      this.sock = s;
      this.tcp = req.socket;
      s.on('message', (d, isBinary) => {
        if (!isBinary) return;
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

function makeBot(onShutdown = () => {}, commands: readonly CommandDefinition[] = [shellCommand]) {
  const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-mp-'));
  return new Worker({
    env: { basedir, platform: currentPlatform(), logger: silentLogger, environ: { PATH: process.env['PATH'] ?? '' }, now: () => Date.now() / 1000 },
    commands,
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

  it("names the write op after the upload's kind: update_upload_file_write or update_upload_directory_write", async () => {
    master = new FakeMaster('pw');
    const ws = await connectMsgpack({ host: '127.0.0.1', port: master.port, name: 'w1', password: 'pw', tls: false, handshakeTimeoutMs: 5000 });
    new MsgpackSession(
      ws,
      makeBot(() => {}, COMMAND_TABLE),
      silentLogger,
    );
    await new Promise((r) => setTimeout(r, 50));
    master.autoRespond();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-mp-up-'));
    writeFileSync(path.join(dir, 'f.txt'), 'content\n');
    master.send('start_command', { command_id: 'f', command_name: 'upload_file', args: { path: path.join(dir, 'f.txt'), blocksize: 16384, maxsize: null } });
    master.send('start_command', { command_id: 'd', command_name: 'upload_directory', args: { path: dir, blocksize: 16384, maxsize: null, compress: null } });
    await master.waitFor((m) => m['op'] === 'complete' && m['command_id'] === 'f');
    await master.waitFor((m) => m['op'] === 'complete' && m['command_id'] === 'd');
    const ops = (id: string): string[] =>
      master!.received.filter((m) => m['command_id'] === id && String(m['op']).startsWith('update_upload')).map((m) => String(m['op']));
    expect(ops('f')).toEqual(['update_upload_file_write', 'update_upload_file_close']);
    expect(ops('d')).toEqual(['update_upload_directory_write', 'update_upload_directory_unpack']);
  });

  // Without permessage-deflate each block is framed by MaskedFrameWriter on the connection's socket, in buffers
  // it reuses; with deflate ws frames it. Either way the master's ws server accepts the frames and every block
  // arrives intact, in order.
  for (const deflate of [false, true]) {
    it(`sends a many-block upload's bytes unchanged (${deflate ? 'with' : 'without'} permessage-deflate)`, async () => {
      master = new FakeMaster('pw', { deflate });
      const opts = { host: '127.0.0.1', port: master.port, name: 'w1', password: 'pw', tls: false, handshakeTimeoutMs: 5000, deflate };
      const ws = await connectMsgpack(opts, (ws, socket) => {
        new MsgpackSession(
          ws,
          makeBot(() => {}, COMMAND_TABLE),
          silentLogger,
          socket ? { socket } : {},
        );
        return ws;
      });
      expect(ws.extensions).toBe(deflate ? 'permessage-deflate' : '');
      await new Promise((r) => setTimeout(r, 50));
      master.autoRespond();
      const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-mp-up-'));
      const content = randomBytes(3 * MiB + 12345);
      writeFileSync(path.join(dir, 'big.bin'), content);
      master.send('start_command', {
        command_id: 'u',
        command_name: 'upload_file',
        args: { path: path.join(dir, 'big.bin'), blocksize: 65536, maxsize: null },
      });
      await master.waitFor((m) => m['op'] === 'complete' && m['command_id'] === 'u');
      const blocks = master.received.filter((m) => m['op'] === 'update_upload_file_write').map((m) => m['args'] as Uint8Array);
      expect(blocks.length).toBeGreaterThan(40);
      expect(Buffer.concat(blocks).equals(content)).toBe(true);
    });

    // Updates go out from the connection's slabs: masked into them by MaskedFrameWriter without deflate, handed
    // to ws (and its compressor) in them with deflate; either way each text arrives as the command wrote it.
    it(`sends a fast command's output unchanged through reused buffers (${deflate ? 'with' : 'without'} permessage-deflate)`, async () => {
      master = new FakeMaster('pw', { deflate });
      const opts = { host: '127.0.0.1', port: master.port, name: 'w1', password: 'pw', tls: false, handshakeTimeoutMs: 5000, deflate };
      await connectMsgpack(opts, (ws, socket) => {
        new MsgpackSession(ws, makeBot(), silentLogger, socket ? { socket, leanUpdates: true } : { leanUpdates: true });
        return ws;
      });
      await new Promise((r) => setTimeout(r, 50));
      master.autoRespond();
      master.send('start_command', { command_id: 'o', command_name: 'shell', args: { workdir: os.tmpdir(), command: 'seq 1 400000', logEnviron: false } });
      await master.waitFor((m) => m['op'] === 'complete' && m['command_id'] === 'o', 20_000);
      const updates = master.received.filter((m) => m['op'] === 'update' && m['command_id'] === 'o');
      const stdout = updates.flatMap((m) => (m['args'] as [string, [string]][]).filter(([k]) => k === 'stdout').map(([, v]) => v[0]));
      expect(stdout.join('')).toBe(Array.from({ length: 400000 }, (_, i) => `${i + 1}\n`).join(''));
      expect(Math.max(...stdout.map((t) => t.length))).toBeGreaterThan(100_000);
    });
  }
});

describe('msgpack session: limits and liveness', () => {
  const connect = async (opts: { deflate?: boolean; keepaliveS?: number; attachTimeoutMs?: number } = {}) => {
    const logger = new RecordingLogger();
    const before = master!.sock;
    const ws = await connectMsgpack({
      host: '127.0.0.1',
      port: master!.port,
      name: 'w1',
      password: 'pw',
      tls: false,
      handshakeTimeoutMs: 5000,
      ...(opts.deflate ? { deflate: true } : {}),
    });
    const session = new MsgpackSession(ws, makeBot(), logger, {
      keepaliveS: opts.keepaliveS ?? 0,
      ...(opts.attachTimeoutMs ? { attachTimeoutMs: opts.attachTimeoutMs } : {}),
    });
    await until(() => master!.sock !== undefined && master!.sock !== before);
    return { session, logger };
  };
  /** The master side's view of the close: the code the worker sent. */
  const masterClose = (): Promise<number> => new Promise((r) => master!.sock!.once('close', (code) => r(code)));

  it('answers a message over the limits with an error when it names its request, and keeps the link', async () => {
    master = new FakeMaster('pw');
    const { session } = await connect();
    // {op: 'start_command', seq_number: 41, args: <array32 claiming 4 G entries>}
    const head = Buffer.from(encode({ op: 'start_command', seq_number: 41 }));
    head[0] = 0x83;
    master.sock!.send(Buffer.concat([head, encode('args'), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])]));
    expect(await master.waitFor((m) => m['seq_number'] === 41)).toMatchObject({
      op: 'response',
      is_exception: true,
      result: expect.stringMatching(
        /^message refused by the worker: undecodable msgpack message \(\d+ bytes\): a array at offset \d+ declares 4294967295 entries/,
      ),
    });
    const s = master.send('print', { message: 'still there' });
    await master.waitFor((m) => m['seq_number'] === s && m['op'] === 'response');
    expect(session.isClosed).toBe(false);
  });

  it('fails its own request when the answer to it cannot be decoded', async () => {
    master = new FakeMaster('pw');
    const { session } = await connect();
    const pending = session.request('update', { args: [] });
    const req = await master.waitFor((m) => m['op'] === 'update');
    const head = Buffer.from(encode({ op: 'response', seq_number: req['seq_number'] }));
    head[0] = 0x83;
    master.sock!.send(Buffer.concat([head, encode('result'), Buffer.from([0xc1])]));
    await expect(pending).rejects.toMatchObject({ code: 'E_MSGPACK_DECODE', message: expect.stringContaining('invalid msgpack type byte 0xc1') });
    expect(session.isClosed).toBe(false);
  });

  it('drops the connection (1007) over a message whose request it cannot tell', async () => {
    master = new FakeMaster('pw');
    const { session, logger } = await connect();
    const code = masterClose();
    master.sock!.send(Buffer.from([0x82, 0xa2, 0x6f, 0x70, 0xc1]));
    expect(await code).toBe(1007);
    expect(await session.closed).toMatchObject({ cause: 'local', reason: expect.stringContaining('cannot tell which request') });
    expect(logger.lines.some((l) => l.startsWith('error dropping the connection: cannot tell which request'))).toBe(true);
  });

  it('drops the connection (1003) over a text message', async () => {
    master = new FakeMaster('pw');
    const { session } = await connect();
    const code = masterClose();
    master.sock!.send('{"op": "print"}');
    expect(await code).toBe(1003);
    expect((await session.closed).cause).toBe('local');
  });

  it('closes with 1009 on a message over the frame limit, and says so', async () => {
    master = new FakeMaster('pw');
    const { session, logger } = await connect();
    const code = masterClose();
    master.sock!.send(Buffer.alloc(MAX_MESSAGE_BYTES + 1));
    expect(await code).toBe(1009);
    const end = await session.closed;
    expect(end).toMatchObject({
      cause: 'local',
      reason: `the master sent a message larger than ${MAX_MESSAGE_BYTES} bytes: closing with 1009 (message too big)`,
    });
    expect(logger.lines.some((l) => l.startsWith('error dropping the connection: the master sent a message larger than'))).toBe(true);
  });

  it('answers a deflate bomb with an error and keeps the link, the compression context and bounded memory', async () => {
    master = new FakeMaster('pw', { deflate: true });
    const { session, logger } = await connect({ deflate: true });
    expect(master.sock!.extensions).toContain('permessage-deflate');
    // The master's side of the compression context (context takeover, as ws and autobahn default to), written as
    // frames by hand: ws would have to hold the bomb whole to compress it.
    const frames = new MasterDeflater();
    // text that does not compress, which the third message repeats: it can only be sent as a reference into the
    // bomb's end, so it decodes only if the bomb was inflated to its end
    const tail = randomBytes(3072).toString('base64');
    const bombZeros = 200 * MiB;
    const one = await frames.frame([encode({ op: 'print', message: 'one', seq_number: 100 })]);
    // as the 3.7 master writes a request: seq_number last, after the big argument
    const head = Buffer.concat([Buffer.from([0x84]), encode('op'), encode('start_command'), encode('args'), Buffer.from([0xc6]), u32(bombZeros)]);
    const end = Buffer.concat([encode('note'), encode(tail), encode('seq_number'), encode(101)]);
    const bomb = await frames.frame(
      (function* () {
        yield head;
        const zeros = Buffer.alloc(MiB);
        for (let i = 0; i < bombZeros / MiB; i++) yield zeros;
        yield end;
      })(),
    );
    const three = await frames.frame([encode({ op: 'start_command', command_id: '9', command_name: tail, args: {}, seq_number: 102 })]);
    expect(bomb.length).toBeLessThan(MiB);
    expect(three.length).toBeLessThan(tail.length / 4);

    let peak = process.memoryUsage().rss;
    const before = peak;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    try {
      master.tcp!.write(Buffer.concat([one, bomb, three]));
      expect(await master.waitFor((m) => m['seq_number'] === 100, 20_000)).toMatchObject({ op: 'response', result: null });
      expect(await master.waitFor((m) => m['seq_number'] === 101, 20_000)).toMatchObject({
        op: 'response',
        is_exception: true,
        result: `message refused by the worker: message of ${head.length + bombZeros + end.length} bytes (after decompression) is larger than ${MAX_MESSAGE_BYTES}`,
      });
      expect(await master.waitFor((m) => m['seq_number'] === 102, 20_000)).toMatchObject({
        op: 'response',
        is_exception: true,
        result: `unrecognized WorkerCommand '${tail}'`,
      });
    } finally {
      clearInterval(sampler);
    }
    expect(session.isClosed).toBe(false);
    expect(logger.lines.filter((l) => l.startsWith('error'))).toEqual([]);
    expect(logger.lines).toContainEqual(expect.stringMatching(/^warn refused the master's start_command \(seq 101\): message of \d+ bytes/));
    // the bomb inflated to 200 MiB; at most the 16 MiB limit of it was ever held
    expect((peak - before) / MiB).toBeLessThan(100);
  });

  it('ignores, with a log line, a deflate bomb that names no request, and keeps the link', async () => {
    master = new FakeMaster('pw', { deflate: true });
    const { session, logger } = await connect({ deflate: true });
    // 64 MiB of zeros: about 64 KiB on the wire (ws compresses it itself: context takeover on both sides)
    master.sock!.send(Buffer.alloc(64 * MiB), { compress: true });
    const s = master.send('print', { message: 'after the bomb' });
    expect(await master.waitFor((m) => m['seq_number'] === s)).toMatchObject({ op: 'response', result: null });
    expect(session.isClosed).toBe(false);
    expect(logger.lines).toContainEqual(
      `error ignored a message of the master that names no request to answer (op unreadable, seq_number unreadable): message of ${64 * MiB} bytes (after decompression) is larger than ${MAX_MESSAGE_BYTES}`,
    );
  });

  it('drops a connection the master opened but never attached (it speaks first once it has)', async () => {
    master = new FakeMaster('pw');
    const { session } = await connect({ attachTimeoutMs: 300 });
    expect(await session.closed).toMatchObject({ cause: 'liveness', reason: 'the master opened the connection but did not attach the worker within 0.3 s' });
    // a master that speaks in time keeps the session
    const { session: second } = await connect({ attachTimeoutMs: 300 });
    const s = master.send('print', { message: 'attached' });
    await master.waitFor((m) => m['seq_number'] === s && m['op'] === 'response');
    expect(await Promise.race([second.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('open'), 600))])).toBe('open');
    second.close();
  });

  it('pings the master and drops a link on which the master stopped answering', async () => {
    master = new FakeMaster('pw');
    const { session, logger } = await connect({ keepaliveS: 1 });
    // healthy: pongs come back (two pings' worth)
    await until(() => logger.lines.some((l) => l.includes('sending WebSocket pings every 1 seconds')));
    const healthy = await Promise.race([session.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('open'), 2500))]);
    expect(healthy).toBe('open');
    // half-open: the master reads nothing more, so answers nothing
    const started = Date.now();
    master.tcp!.pause();
    const end = await session.closed;
    expect(end).toMatchObject({
      cause: 'liveness',
      reason: expect.stringMatching(/^no data from the master for [\d.]+ s, none within 3 s of a keepalive: the link is dead$/),
    });
    // at most one interval to the next ping, then the timeout (3 s at least)
    expect(Date.now() - started).toBeLessThan(3000 + 3000 + 1500);
    expect(logger.lines.some((l) => l.startsWith('error dropping the connection: no data from the master'))).toBe(true);
  });
});

async function until(pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
