// The PB layer against a fake master on a real loopback socket, written with our own Banana/Jelly and scripted
// from the captures (transcripts/pb-0*.txt): dialect, version, cred login with the attach calls served while
// `respond` is pending, commands with update/complete/write/read, reference counting (the real master refuses
// more than 1024 live references per connection), errors, keepalives, shutdown, and garbage on the wire.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import { Worker } from '../../agent/worker/worker.js';
import { MAX_MESSAGE_VALUES, PRELOGIN_LIMITS, PRELOGIN_MAX_TOTAL_BYTES } from '../../agent/connection/limits.js';
import { atom, dialectOffer, encode, type Sexp } from '../../agent/connection/pb/banana.js';
import { BananaDecoder } from '../../agent/connection/pb/banana-decoder.js';
import { connectPb, type PbSession } from '../../agent/connection/pb/connect.js';
import { challengeResponse } from '../../agent/connection/pb/login.js';
import { CopiedFailure, CopyableFailure, jelly, Jellyable, unjelly } from '../../agent/connection/pb/jelly.js';
import { PyFloat, PyTuple } from '../../agent/py/values.js';
import type { Logger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A reference to one of the worker's objects, as the fake master holds it. */
class WorkerRef {
  constructor(readonly luid: number) {}
}

/** One of the fake master's objects, sent as `[remote, luid]` (counted like Broker.registerReference). */
class MasterRef extends Jellyable {
  constructor(
    private readonly master: FakeMaster,
    readonly luid: number,
  ) {
    super();
  }
  jellyFor(): Sexp {
    this.master.incref(this.luid);
    return [atom('remote'), this.luid];
  }
}

interface Call {
  reqId: number;
  objectId: number | string;
  method: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** The raw s-expression of the arguments tuple. */
  rawArgs: Sexp;
}

type Handler = (c: Call) => unknown;

/** The real master's MAX_BROKER_REFS: it refuses new registrations beyond this many live objects. */
const MAX_BROKER_REFS = 1024;

class FakeMaster {
  readonly server: net.Server;
  sock: net.Socket | undefined;
  /** Every expression the worker sent, in order (after the bare dialect string). */
  readonly received: Sexp[] = [];
  /** Raw bytes from the worker. */
  raw = Buffer.alloc(0);
  readonly calls: Call[] = [];
  readonly decrefs: number[] = [];
  /** luid -> live reference count, for the master's own objects. */
  readonly refs = new Map<number, number>();
  maxLiveRefs = 0;
  private nextLuid = 1;
  private reqId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private waiters: (() => void)[] = [];
  private decoder = new BananaDecoder(null);
  readonly handlers = new Map<string, Handler>();
  /** The worker's builder objects from setBuilderList. */
  builders: Record<string, WorkerRef> = {};
  challenge = Buffer.from('d2fd1526e4b1452b658bf4e4e8e4f9be', 'hex');
  readonly listening: Promise<void>;
  avatarLuid = 0;
  loginDone = false;

  constructor(
    readonly password: string,
    private readonly opts: { builders?: [string, string][]; coalesce?: boolean; onAttached?: () => void; tls?: { key: Buffer; cert: Buffer } } = {},
  ) {
    this.server = opts.tls ? tls.createServer(opts.tls, (s) => this.accept(s)) : net.createServer((s) => this.accept(s));
    this.listening = new Promise((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.handlers.set('login', () => new PyTuple([this.challenge, this.newRef()]));
    this.handlers.set('respond', (c) => this.respond(c));
    this.handlers.set('update', () => 0);
    this.handlers.set('complete', () => null);
    this.handlers.set('keepalive', () => null);
    this.handlers.set('shutdown', () => null);
    for (const m of ['write', 'close', 'utime', 'unpack']) this.handlers.set(m, () => null);
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  newRef(): MasterRef {
    return new MasterRef(this, this.nextLuid++);
  }

  incref(luid: number): void {
    this.refs.set(luid, (this.refs.get(luid) ?? 0) + 1);
    const live = [...this.refs.values()].filter((n) => n > 0).length;
    this.maxLiveRefs = Math.max(this.maxLiveRefs, live);
  }

  get liveRefs(): number[] {
    return [...this.refs].filter(([, n]) => n > 0).map(([l]) => l);
  }

  private accept(s: net.Socket): void {
    this.sock = s;
    s.setNoDelay(true);
    s.on('error', () => {});
    if (this.opts.coalesce) {
      // offer and version in one write: the worker must not lose the version while it negotiates
      s.write(Buffer.concat([dialectOffer(), encode([atom('version'), 6])]));
    } else {
      s.write(dialectOffer());
    }
    s.on('data', (chunk: Buffer) => {
      this.raw = Buffer.concat([this.raw, chunk]);
      let exprs = this.decoder.feed(chunk);
      while (exprs.length) {
        for (const e of exprs) this.onExpression(e);
        exprs = this.decoder.dialect ? this.decoder.feed() : [];
      }
      this.waiters.splice(0).forEach((w) => w());
    });
  }

  private onExpression(e: Sexp): void {
    if (this.decoder.dialect === null) {
      expect(e).toEqual(b('pb'));
      this.decoder.selectDialect('pb');
      if (!this.opts.coalesce) this.send([atom('version'), 6]);
      return;
    }
    this.received.push(e);
    const l = e as Sexp[];
    const cmd = (l[0] as Buffer).toString();
    if (cmd === 'message') {
      const [, reqId, objectId, method, , args, kwargs] = l;
      const peer = { remoteReference: (n: number) => new WorkerRef(n), localObject: (n: number) => ({ local: n }) };
      const call: Call = {
        reqId: reqId as number,
        objectId: Buffer.isBuffer(objectId) ? objectId.toString() : (objectId as number),
        method: (method as Buffer).toString(),
        args: (unjelly(args!, peer) as PyTuple).items as unknown[],
        kwargs: unjelly(kwargs!, peer) as Record<string, unknown>,
        rawArgs: args!,
      };
      this.calls.push(call);
      const h = this.handlers.get(call.method);
      if (call.objectId !== 'root' && typeof call.objectId === 'number' && !(this.refs.get(call.objectId) ?? 0)) {
        this.sendError(call.reqId, 'twisted.spread.pb.Error', 'Invalid Object ID');
        return;
      }
      if (!h) {
        this.sendError(call.reqId, 'twisted.spread.flavors.NoSuchMethod', `No such method: remote_${call.method}`);
        return;
      }
      new Promise((resolve) => resolve(h(call))).then(
        (v) => this.send([atom('answer'), call.reqId, jelly(v)]),
        (err: Error) => this.sendError(call.reqId, 'builtins.Exception', err.message),
      );
    } else if (cmd === 'answer' || cmd === 'error') {
      const p = this.pending.get(l[1] as number);
      if (!p) return; // an answer to a message the test sent by hand
      this.pending.delete(l[1] as number);
      const peer = { remoteReference: (n: number) => new WorkerRef(n), localObject: (n: number) => ({ local: n }) };
      const v = unjelly(l[2]!, peer);
      if (cmd === 'answer') p.resolve(v);
      else p.reject(v);
    } else if (cmd === 'decref') {
      const luid = l[1] as number;
      this.decrefs.push(luid);
      const n = this.refs.get(luid);
      // the real master raises KeyError for an unknown luid and drops the connection
      if (!n) throw new Error(`decref of unknown master object ${luid}`);
      this.refs.set(luid, n - 1);
    }
  }

  private async respond(c: Call): Promise<unknown> {
    const [response, mind] = c.args as [Buffer, WorkerRef];
    if (!response.equals(challengeResponse(this.challenge, Buffer.from(this.password)))) {
      // pb-04: the master drops the mind, then answers with UnauthorizedLogin
      this.send([atom('decref'), mind.luid]);
      throw Object.assign(new Error(''), { unauthorized: true });
    }
    // pb-01: attach before answering respond
    expect(await this.call(mind.luid, 'print', [], { message: 'attached' })).toBeNull();
    const info = await this.call(mind.luid, 'getWorkerInfo');
    expect(info).toMatchObject({ system: 'posix' });
    const builders = this.opts.builders ?? [['builder1', 'builder1']];
    this.builders = (await this.call(mind.luid, 'setBuilderList', [builders.map(([n, d]) => new PyTuple([n, d]))])) as Record<string, WorkerRef>;
    for (let i = 0; i < builders.length; i++) await this.call(mind.luid, 'print', [], { message: 'attached' });
    this.loginDone = true;
    this.opts.onAttached?.();
    const avatar = this.newRef();
    this.avatarLuid = avatar.luid;
    return avatar;
  }

  sendError(reqId: number, type: string, value: string): void {
    const f = new CopyableFailure({
      type,
      value,
      traceback: 'Traceback unavailable\n',
      parents: [type, 'builtins.object'],
      unsafeTracebacks: false,
      pickled: true,
    });
    this.send([atom('error'), reqId, jelly(f)]);
  }

  send(sexp: Sexp): void {
    this.sock!.write(encode(sexp));
  }

  /** Calls a worker object; resolves with the answer, rejects with the CopiedFailure of an error. */
  call(objectId: number, method: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Promise<unknown> {
    const reqId = ++this.reqId;
    const p = new Promise((resolve, reject) => this.pending.set(reqId, { resolve, reject }));
    this.send([atom('message'), reqId, objectId, b(method), 1, jelly(new PyTuple(args)), jelly(kwargs)]);
    return p;
  }

  async waitFor<T>(pred: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = pred();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; calls: ${this.calls.map((c) => `${c.objectId}.${c.method}`).join(' ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  callsTo(luid: number, method?: string): Call[] {
    return this.calls.filter((c) => c.objectId === luid && (method === undefined || c.method === method));
  }

  close(): Promise<void> {
    this.sock?.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

// the worker's error answers come back as `error`: make the unauthorized case look like pb-04
function patchUnauthorized(master: FakeMaster): void {
  const orig = master.sendError.bind(master);
  master.sendError = (reqId, type, value) => orig(reqId, value === '' ? 'twisted.cred.error.UnauthorizedLogin' : type, value);
}

let master: FakeMaster | undefined;
let session: PbSession | undefined;
afterEach(async () => {
  session?.close();
  session = undefined;
  await master?.close();
  master = undefined;
});

function makeBot(logger: Logger, onShutdown = () => {}) {
  const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-pb-'));
  const worker = new Worker({
    env: { basedir, platform: currentPlatform(), logger, environ: { PATH: process.env['PATH'] ?? '', HOME: basedir }, now: () => Date.now() / 1000 },
    commands: COMMAND_TABLE,
    collectInfo: async () => ({ basedir, system: 'posix', numcpus: 2, worker_commands: { shell: '3.1' } }),
    logger,
    onShutdownRequest: onShutdown,
  });
  return { worker, basedir };
}

const endpoint = (m: FakeMaster, password = 'pass', keepaliveS = 0) => ({
  host: '127.0.0.1',
  port: m.port,
  name: 'w1',
  password,
  keepaliveS,
  handshakeTimeoutMs: 5000,
});

async function attach(opts: ConstructorParameters<typeof FakeMaster>[1] = {}, keepaliveS = 0) {
  master = new FakeMaster('pass', opts);
  await master.listening;
  patchUnauthorized(master);
  const logger = new RecordingLogger();
  let shutdowns = 0;
  const { worker, basedir } = makeBot(logger, () => shutdowns++);
  session = await connectPb(endpoint(master, 'pass', keepaliveS), worker, logger);
  return { m: master, worker, basedir, logger, s: session, shutdowns: () => shutdowns };
}

/** Starts a command on builder1 and waits for its `complete`; returns the update dicts and the complete call. */
async function runCommand(m: FakeMaster, name: string, args: Record<string, unknown>, extra: { writer?: MasterRef; reader?: MasterRef } = {}) {
  const ref = m.newRef();
  const full: Record<string, unknown> = { ...args };
  if (extra.writer) full['writer'] = extra.writer;
  if (extra.reader) full['reader'] = extra.reader;
  const answer = await m.call(m.builders['builder1']!.luid, 'startCommand', [ref, '35', name, full]);
  expect(answer).toBeNull();
  const complete = await m.waitFor(() => m.callsTo(ref.luid, 'complete')[0], `complete of ${name}`);
  const updates = m.callsTo(ref.luid, 'update').flatMap((c) => {
    // one call per batch: [[{key: value}, 0], [{key: value}, 0], ...]
    const entries = c.args[0] as [Record<string, unknown>, number][];
    return entries.map(([dict, num]) => {
      expect(num).toBe(0);
      expect(Object.keys(dict)).toHaveLength(1);
      return dict;
    });
  });
  return { ref, updates, complete, rawUpdates: m.callsTo(ref.luid, 'update').map((c) => c.rawArgs) };
}

describe('pb session: login', () => {
  it('negotiates, logs in with the bytes of the capture, and serves the attach calls during respond', async () => {
    const { m, s } = await attach();
    expect(m.loginDone).toBe(true);
    // pb-01: bare "pb", (version 6), login message -- byte for byte
    const start = Buffer.from(
      '02827062' + '02801387' + '0681' + '07801a870181' + '04827' + '26f6f74' + '1487' + '0181' + '02800b87' + '02827731' + '01800587',
      'hex',
    );
    expect(m.raw.subarray(0, start.length).toString('hex')).toBe(start.toString('hex'));
    // respond with the MD5 of the capture's challenge, the mind as (remote 1), then decref 1 of the challenger
    const respond = m.calls.find((c) => c.method === 'respond')!;
    expect(respond.objectId).toBe(1);
    expect((respond.args[0] as Buffer).toString('hex')).toBe('d7337b7cacca84e4379b25a65c0acaf0');
    expect(respond.args[1]).toEqual(new WorkerRef(1));
    const afterRespond = m.received.slice(m.received.findIndex((e) => (e as Sexp[])[3]?.toString() === 'respond') + 1);
    expect(afterRespond[0]).toEqual([b('decref'), 1]);
    // builders are the next luids, in setBuilderList order
    expect(m.builders).toEqual({ builder1: new WorkerRef(2) });
    expect(m.liveRefs).toEqual([m.avatarLuid]);
    expect(s).toBeDefined();
  });

  it('keeps bytes that arrive in the same read as the dialect offer', async () => {
    const { m } = await attach({ coalesce: true });
    expect(m.loginDone).toBe(true);
  });

  it('refuses a wrong password with E_AUTH naming the worker', async () => {
    master = new FakeMaster('right');
    await master.listening;
    patchUnauthorized(master);
    const logger = new RecordingLogger();
    await expect(connectPb(endpoint(master, 'wrong'), makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_AUTH',
      message: expect.stringContaining("refused worker 'w1'"),
    });
  });

  it('reports other login refusals as E_LOGIN', async () => {
    master = new FakeMaster('pass');
    await master.listening;
    master.handlers.set('respond', () => {
      throw new Error('rejecting duplicate worker');
    });
    const logger = new RecordingLogger();
    await expect(connectPb(endpoint(master), makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_LOGIN',
      message: expect.stringContaining('rejecting duplicate worker'),
    });
  });

  it('fails with E_REFUSED when nothing listens, and E_HANDSHAKE when the master never answers', async () => {
    const logger = new RecordingLogger();
    const probe = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => probe.once('listening', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await expect(connectPb({ ...endpoint({ port } as FakeMaster) }, makeBot(logger).worker, logger)).rejects.toMatchObject({ code: 'E_REFUSED' });

    const silent = net.createServer((s) => s.on('error', () => {})).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    const p2 = (silent.address() as net.AddressInfo).port;
    await expect(connectPb({ ...endpoint({ port: p2 } as FakeMaster), handshakeTimeoutMs: 200 }, makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_HANDSHAKE',
    });
    await new Promise((r) => silent.close(r));
  });

  it('rejects garbage during the handshake with E_BANANA and closes', async () => {
    const srv = net.createServer((s) => {
      s.on('error', () => {});
      s.write(Buffer.from([0x02, 0x80, 0x99, 0x99]));
    });
    srv.listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const logger = new RecordingLogger();
    await expect(connectPb(endpoint({ port: (srv.address() as net.AddressInfo).port } as FakeMaster), makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_BANANA',
    });
    expect(logger.lines.some((l) => l.startsWith('error PB protocol error'))).toBe(true);
    await new Promise((r) => srv.close(r));
  });

  it('refuses a master speaking another PB version', async () => {
    const srv = net.createServer((s) => {
      s.on('error', () => {});
      s.write(dialectOffer());
      s.once('data', () => s.write(encode([atom('version'), 5])));
    });
    srv.listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const logger = new RecordingLogger();
    await expect(connectPb(endpoint({ port: (srv.address() as net.AddressInfo).port } as FakeMaster), makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_PB_PROTOCOL',
      message: expect.stringContaining('version'),
    });
    await new Promise((r) => srv.close(r));
  });
});

describe('pb session: TLS', () => {
  it('logs in over TLS with the given CA, and refuses a master whose certificate it cannot verify', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-pb-tls-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const creds = { key: readFileSync(key), cert: readFileSync(cert) };
    master = new FakeMaster('pass', { tls: creds });
    await master.listening;
    const logger = new RecordingLogger();
    session = await connectPb({ ...endpoint(master), tls: { ca: creds.cert } }, makeBot(logger).worker, logger);
    expect(master.loginDone).toBe(true);
    expect(await master.call(1, 'print', [], { message: 'over tls' })).toBeNull();
    await expect(connectPb({ ...endpoint(master), tls: {} }, makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_CONNECT',
      message: expect.stringContaining('certificate'),
    });
  });
});

describe('pb session: commands', () => {
  it('runs a shell command: one key per update entry, rc int, elapsed float, complete None, then decref', async () => {
    const { m, basedir } = await attach();
    const { ref, updates, complete, rawUpdates } = await runCommand(m, 'shell', {
      workdir: 'build',
      env: { MYVAR: 'myvalue' },
      want_stdout: true,
      want_stderr: true,
      logfiles: {},
      timeout: 1200,
      maxTime: null,
      sigtermTime: null,
      usePTY: false,
      logEnviron: false,
      initial_stdin: null,
      interruptSignal: 'KILL',
      command: 'echo out1; echo err1 >&2; echo $MYVAR',
    });
    const text = (k: string) =>
      updates
        .filter((u) => k in u)
        .map((u) => u[k] as string)
        .join('');
    expect(text('stdout')).toBe('out1\nmyvalue\n');
    expect(text('stderr')).toBe('err1\n');
    expect(text('header')).toContain(`in dir ${path.join(basedir, 'builder1', 'build')}`);
    expect(updates.filter((u) => 'rc' in u)).toEqual([{ rc: 0 }]);
    expect(typeof updates.find((u) => 'elapsed' in u)!['elapsed']).toBe('number');
    // elapsed goes as a FLOAT on the wire, rc as an INT
    const floats = (x: Sexp): number => (x instanceof PyFloat ? 1 : Array.isArray(x) ? x.reduce<number>((n, y) => n + floats(y), 0) : 0);
    expect(rawUpdates.reduce<number>((n, r) => n + floats(r), 0)).toBe(1); // elapsed only: rc is an INT
    expect(complete.args).toEqual([null]);
    // the RemoteCommand reference is released once `complete` was answered
    await m.waitFor(() => m.decrefs.includes(ref.luid), 'decref of the command');
    expect(m.liveRefs).toEqual([m.avatarLuid]);
  });

  it('sends ("obfuscated", real, fake) as real to the process and fake in the header', async () => {
    const { m } = await attach();
    const { updates } = await runCommand(m, 'shell', {
      workdir: 'build',
      command: ['echo', 'hello', new PyTuple(['obfuscated', 'real-secret', 'XXXX'])],
      logEnviron: false,
    });
    const text = (k: string) =>
      updates
        .filter((u) => k in u)
        .map((u) => u[k] as string)
        .join('');
    expect(text('stdout')).toBe('hello real-secret\n');
    expect(text('header')).toContain('echo hello XXXX');
    expect(text('header')).not.toContain('real-secret');
  });

  it('uploads through the writer, downloads through the reader, and releases both', async () => {
    const { m, basedir } = await attach();
    writeFileSync(path.join(basedir, 'builder1', 'up.txt'), 'upload-content\n');
    const writer = m.newRef();
    const written: Buffer[] = [];
    m.handlers.set('write', (c) => {
      written.push(c.args[0] as Buffer);
      return null;
    });
    const up = await runCommand(m, 'uploadFile', { workdir: '.', maxsize: null, blocksize: 262144, keepstamp: true, workersrc: 'up.txt' }, { writer });
    expect(Buffer.concat(written).toString()).toBe('upload-content\n');
    expect(m.callsTo(writer.luid).map((c) => c.method)).toEqual(['write', 'close', 'utime']);
    const utime = m.callsTo(writer.luid, 'utime')[0]!;
    // (tuple atime mtime) of FLOATs
    const utimeArg = (utime.rawArgs as Sexp[])[1] as Sexp[];
    expect(utimeArg[0]).toEqual(b('tuple'));
    expect(utimeArg[1]).toBeInstanceOf(PyFloat);
    expect(up.complete.args).toEqual([null]);
    expect(up.updates.filter((u) => 'rc' in u)).toEqual([{ rc: 0 }]);

    const reader = m.newRef();
    const chunks = [b('download content\n'), b('line2\n'), Buffer.alloc(0)];
    const lengths: number[] = [];
    m.handlers.set('read', (c) => {
      lengths.push(c.args[0] as number);
      return chunks.shift() ?? Buffer.alloc(0);
    });
    const down = await runCommand(m, 'downloadFile', { workdir: '.', maxsize: null, blocksize: 16384, mode: 416, workerdest: 'dl.txt' }, { reader });
    expect(down.complete.args).toEqual([null]);
    expect(readFileSync(path.join(basedir, 'builder1', 'dl.txt'), 'utf8')).toBe('download content\nline2\n');
    expect(lengths.every((l) => l === 16384)).toBe(true);
    expect(m.callsTo(reader.luid).map((c) => c.method)).toEqual(['read', 'read', 'read', 'close']);
    await m.waitFor(() => m.liveRefs.length === 1, 'all references released');
    expect(m.liveRefs).toEqual([m.avatarLuid]);
  });

  it('treats a unicode "" read answer as end of file', async () => {
    const { m, basedir } = await attach();
    const reader = m.newRef();
    let n = 0;
    m.handlers.set('read', () => (n++ === 0 ? b('abc') : ''));
    const down = await runCommand(m, 'downloadFile', { workdir: '.', maxsize: null, blocksize: 16384, mode: null, workerdest: 'u.txt' }, { reader });
    expect(down.complete.args).toEqual([null]);
    expect(readFileSync(path.join(basedir, 'builder1', 'u.txt'), 'utf8')).toBe('abc');
  });

  it('sends stat as a tuple and files as a list', async () => {
    const { m, basedir } = await attach();
    writeFileSync(path.join(basedir, 'builder1', 'f.txt'), 'x');
    const st = await runCommand(m, 'stat', { file: 'f.txt', logEnviron: false });
    const stat = st.updates.find((u) => 'stat' in u)!['stat'];
    expect(stat).toBeInstanceOf(PyTuple);
    expect((stat as PyTuple).items).toHaveLength(10);
    const ls = await runCommand(m, 'listdir', { dir: '.' });
    expect(ls.updates.find((u) => 'files' in u)!['files']).toEqual(['f.txt']);
  });

  it('completes with a CopyableFailure shaped like the capture of "bad-workdir"', async () => {
    const { m, basedir } = await attach();
    writeFileSync(path.join(basedir, 'builder1', 'afile'), 'x');
    const { complete, updates } = await runCommand(m, 'shell', { workdir: 'afile/sub', command: 'true', logEnviron: false });
    const f = complete.args[0] as CopiedFailure;
    expect(f).toBeInstanceOf(CopiedFailure);
    expect(f.type).toBe('builtins.NotADirectoryError');
    expect(f.value).toContain('Not a directory');
    expect(f.parents).toEqual(['builtins.NotADirectoryError', 'builtins.OSError', 'builtins.Exception', 'builtins.BaseException', 'builtins.object']);
    expect(f.state).toMatchObject({ pickled: 1, unsafeTracebacks: true, captureVars: false, frames: [], stack: [], tb: null });
    expect(f.state['type']).toEqual(b('builtins.NotADirectoryError'));
    expect(f.traceback).toMatch(/^Traceback \(most recent call last\):\n[^]*builtins\.NotADirectoryError: /);
    expect(updates.filter((u) => 'rc' in u)).toEqual([]);
  });

  it('answers an unknown command with an UnknownCommand error and releases its reference', async () => {
    const { m } = await attach();
    const ref = m.newRef();
    const err = (await m.call(m.builders['builder1']!.luid, 'startCommand', [ref, '61', 'bogus', { x: 1 }]).catch((e: unknown) => e)) as CopiedFailure;
    expect(err).toBeInstanceOf(CopiedFailure);
    expect(err.type).toBe('buildbot_worker.base.UnknownCommand');
    expect(err.value).toBe("unrecognized WorkerCommand 'bogus'");
    expect(err.parents).toEqual([
      'buildbot_worker.base.UnknownCommand',
      'twisted.spread.pb.Error',
      'builtins.Exception',
      'builtins.BaseException',
      'builtins.object',
    ]);
    expect(err.state).toMatchObject({ unsafeTracebacks: false, traceback: 'Traceback unavailable\n' });
    expect(err.state).not.toHaveProperty('pickled');
    await m.waitFor(() => m.decrefs.includes(ref.luid), 'decref of the refused command');
    // missing arguments: ValueError, as buildbot-worker's Command.setup raises
    const err2 = (await m
      .call(m.builders['builder1']!.luid, 'startCommand', [m.newRef(), '62', 'shell', { workdir: 'x' }])
      .catch((e: unknown) => e)) as CopiedFailure;
    expect(err2.type).toBe('builtins.ValueError');
    expect(err2.value).toContain('missing args: command');
    await m.waitFor(() => m.liveRefs.length === 1, 'all references released');
  });

  it('answers unknown methods with NoSuchMethod and unknown objects with Invalid Object ID', async () => {
    const { m, logger } = await attach();
    const e1 = (await m.call(1, 'getSlaveInfo').catch((e: unknown) => e)) as CopiedFailure;
    expect(e1.type).toBe('twisted.spread.flavors.NoSuchMethod');
    expect(e1.value).toBe('No such method: remote_getSlaveInfo');
    const e2 = (await m.call(99, 'print', [], { message: 'x' }).catch((e: unknown) => e)) as CopiedFailure;
    expect(e2.type).toBe('twisted.spread.pb.Error');
    expect(e2.value).toBe('Invalid Object ID');
    const e3 = (await m.call(1, 'print').catch((e: unknown) => e)) as CopiedFailure;
    expect(e3.type).toBe('builtins.TypeError');
    expect(logger.lines.some((l) => l.includes('getSlaveInfo'))).toBe(true);
    // the legacy calls still work
    expect(await m.call(1, 'getCommands')).toMatchObject({ shell: '3.1', uploadFile: '3.1' });
    expect(typeof (await m.call(1, 'getVersion'))).toBe('string');
    // a call with an unknown jelly type in its arguments: an error answer, the session goes on
    const reqId = 900;
    const answered = new Promise<Sexp>((resolve) => {
      const n = m.received.length;
      void m.waitFor(() => m.received.slice(n).find((e) => (e as Sexp[])[1] === reqId), 'error 900').then(resolve);
    });
    m.send([atom('message'), reqId, 1, b('print'), 1, [atom('tuple'), [b('instance'), b('os.system')]], [atom('dictionary')]]);
    const errSexp = (await answered) as Sexp[];
    expect(errSexp[0]).toEqual(b('error'));
    expect((unjelly(errSexp[2]!) as CopiedFailure).type).toBe('twisted.spread.jelly.InsecureJelly');
    expect(await m.call(1, 'print', [], { message: 'still alive' })).toBeNull();
  });

  it('interrupts the running command of a builder', async () => {
    const { m } = await attach();
    const ref = m.newRef();
    await m.call(m.builders['builder1']!.luid, 'startCommand', [ref, '63', 'shell', { workdir: '.', command: 'echo started; sleep 30', logEnviron: false }]);
    expect(await m.call(m.builders['builder1']!.luid, 'interruptCommand', ['63', 'interrupt test'])).toBeNull();
    await m.waitFor(() => m.callsTo(ref.luid, 'complete')[0], 'complete after interrupt');
    const rc = m.callsTo(ref.luid, 'update').flatMap((c) => (c.args[0] as [Record<string, unknown>, number][]).flatMap(([d]) => ('rc' in d ? [d['rc']] : [])));
    expect(rc).toEqual([-1]);
  });

  it('releases every reference: 1100 commands in one connection stay under the master limit of 1024', async () => {
    const { m } = await attach();
    for (let i = 0; i < 1100; i++) {
      const ref = m.newRef();
      await m.call(m.builders['builder1']!.luid, 'startCommand', [ref, String(i), 'stat', { file: 'nothing-here', logEnviron: false }]);
      await m.waitFor(() => m.decrefs.includes(ref.luid), `decref of command ${i}`);
      expect(m.liveRefs.length).toBeLessThan(MAX_BROKER_REFS);
    }
    expect(m.liveRefs).toEqual([m.avatarLuid]);
  }, 60_000);
});

describe('pb session: life cycle', () => {
  it('sends keepalives to the avatar and answers the master keepalive print', async () => {
    const { m } = await attach({}, 0.05);
    await m.waitFor(() => m.callsTo(m.avatarLuid, 'keepalive').length >= 2 || undefined, 'two keepalives');
    expect(await m.call(1, 'print', [], { message: 'keepalive' })).toBeNull();
  });

  it('master shutdown: answers None, then asks the agent to stop', async () => {
    const { m, shutdowns } = await attach();
    expect(await m.call(1, 'shutdown')).toBeNull();
    await m.waitFor(() => shutdowns() > 0 || undefined, 'shutdown request');
  });

  it('worker-initiated shutdown calls the avatar', async () => {
    const { m, s } = await attach();
    await s.requestShutdown();
    expect(m.callsTo(m.avatarLuid, 'shutdown')).toHaveLength(1);
    m.handlers.delete('shutdown');
    await expect(s.requestShutdown()).rejects.toMatchObject({ code: 'E_REMOTE' });
  });

  it('garbage after login: logs the error, closes the connection, kills nothing else', async () => {
    const { m, s, logger } = await attach();
    const ref = m.newRef();
    await m.call(m.builders['builder1']!.luid, 'startCommand', [ref, '70', 'shell', { workdir: '.', command: 'sleep 30', logEnviron: false }]);
    m.sock!.write(Buffer.from([0x05, 0x80, 0x01, 0x99]));
    const closed = await s.closed;
    expect(closed.reason).toContain('type byte 0x99');
    expect(logger.lines.some((l) => l.startsWith('error PB protocol error') && l.includes('0x99'))).toBe(true);
  });

  it('an oversized string from the master closes the connection without waiting for it', async () => {
    const { m, s, logger } = await attach();
    m.sock!.write(Buffer.from([0x01, 0x00, 0x28, 0x82]));
    expect((await s.closed).reason).toContain('string too long');
    expect(logger.lines.some((l) => l.includes('string too long'))).toBe(true);
  });

  it('connection loss fails the pending calls and resolves closed', async () => {
    const { m, s } = await attach();
    const ref = m.newRef();
    // never answered: the worker's calls are pending when the connection goes
    m.handlers.set('update', () => new Promise(() => {}));
    m.handlers.set('complete', () => new Promise(() => {}));
    await m.call(m.builders['builder1']!.luid, 'startCommand', [ref, '80', 'shell', { workdir: '.', command: 'echo hi', logEnviron: false }]);
    await m.waitFor(() => m.callsTo(ref.luid, 'complete').length > 0 || undefined, 'complete');
    m.sock!.destroy();
    expect((await s.closed).reason).toBeTruthy();
    await expect(s.requestShutdown()).rejects.toMatchObject({ code: 'E_CONNECTION_LOST' });
  });

  it('answers unknown broker commands with didNotUnderstand and ignores stray answers', async () => {
    const { m } = await attach();
    const n = m.received.length;
    m.send([b('frobnicate'), 1]);
    m.send([atom('answer'), 4242, [atom('None')]]);
    m.send([atom('decref'), 777]);
    await m.waitFor(() => m.received.slice(n).find((e) => (e as Sexp[])[0]?.toString() === 'didNotUnderstand'), 'didNotUnderstand');
    expect(await m.call(1, 'print', [], { message: 'ok' })).toBeNull();
  });

  it('handles setBuilderList again: same objects for kept builders, removed ones dropped', async () => {
    const { m } = await attach({
      builders: [
        ['a', 'a'],
        ['b', 'b'],
      ],
    });
    expect(m.builders).toEqual({ a: new WorkerRef(2), b: new WorkerRef(3) });
    const again = await m.call(1, 'setBuilderList', [[new PyTuple(['b', 'b']), new PyTuple(['c', 'c'])]]);
    expect(again).toEqual({ b: new WorkerRef(3), c: new WorkerRef(4) });
    const err = (await m.call(2, 'startBuild').catch((e: unknown) => e)) as unknown;
    // builder a is still in the worker's table until the master releases it, and answers harmlessly
    expect(err).toBeNull();
  });
});

describe('pb session: limits and liveness', () => {
  /** A server that offers the dialect, then writes what `feed` gives it until the worker hangs up. */
  async function rawMaster(feed: (s: net.Socket) => void): Promise<{ port: number; sent: () => number; close: () => Promise<void> }> {
    let sent = 0;
    const srv = net.createServer((s) => {
      s.on('error', () => {});
      s.write(dialectOffer());
      const write = s.write.bind(s);
      s.write = ((chunk: Buffer, ...rest: never[]) => {
        sent += chunk.length;
        return write(chunk, ...rest);
      }) as typeof s.write;
      feed(s);
    });
    srv.listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    return { port: (srv.address() as net.AddressInfo).port, sent: () => sent, close: () => new Promise((r) => srv.close(() => r())) };
  }

  /** Writes `chunk` again and again while the socket takes it, until it closes. */
  function flood(s: net.Socket, chunk: Buffer): void {
    const more = (): void => {
      while (!s.destroyed && s.write(chunk));
      if (!s.destroyed) s.once('drain', more);
    };
    more();
  }

  it('refuses an endless list before the login, having read little of it', async () => {
    // LIST of 655360 elements (the most Twisted allows), then INT 0 forever
    const header = Buffer.from([0x00, 0x00, 0x28, 0x80]);
    const m = await rawMaster((s) => {
      s.write(header);
      flood(s, Buffer.alloc(64 * 1024, 0).fill(Buffer.from([0x00, 0x81])));
    });
    const logger = new RecordingLogger();
    await expect(connectPb({ ...endpoint({ port: m.port } as FakeMaster) }, makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_BANANA',
      message: `banana message too large: more than ${PRELOGIN_LIMITS.maxValues} values in one expression`,
    });
    await m.close();
  });

  it('refuses more than PRELOGIN_MAX_TOTAL_BYTES before the login completed', async () => {
    // small, valid expressions that ask for nothing: [version, 6] again and again
    const m = await rawMaster((s) => flood(s, Buffer.concat(Array.from({ length: 10_000 }, () => encode([atom('version'), 6])))));
    const logger = new RecordingLogger();
    await expect(connectPb({ ...endpoint({ port: m.port } as FakeMaster) }, makeBot(logger).worker, logger)).rejects.toMatchObject({
      code: 'E_PB_PROTOCOL',
      message: `master at 127.0.0.1:${m.port} sent more than ${PRELOGIN_MAX_TOTAL_BYTES} bytes before the login of worker 'w1' completed`,
    });
    await m.close();
  });

  it('after the login: an expression over MAX_MESSAGE_VALUES ends the connection', async () => {
    const { m, s } = await attach();
    // [[0 x 655360], [0 x 655360]]: 1,310,723 values in 2.6 MB
    const half = Buffer.concat([Buffer.from([0x00, 0x00, 0x28, 0x80]), Buffer.alloc(2 * 655_360, 0).fill(Buffer.from([0x00, 0x81]))]);
    m.sock!.write(Buffer.concat([Buffer.from([0x02, 0x80]), half, half]));
    expect(await s.closed).toMatchObject({ cause: 'local', reason: `banana message too large: more than ${MAX_MESSAGE_VALUES} values in one expression` });
  });

  it('after the login: shared references that would expand exponentially get an error answer, and the link stays', async () => {
    const { m, s } = await attach();
    let inner: Sexp = [atom('reference'), 0, [atom('list'), 1]];
    for (let k = 1; k <= 40; k++) inner = [atom('reference'), k, [atom('list'), inner, [atom('dereference'), k - 1]]];
    // print(message=<2^40 values once expanded>) on the Worker (luid 1)
    const answer = new Promise<Sexp[]>((resolve) => {
      const check = (): void => {
        const e = m.received.find((x) => Array.isArray(x) && (x[0] as Buffer).toString() === 'error' && x[1] === 999);
        if (e) resolve(e as Sexp[]);
        else setTimeout(check, 10);
      };
      check();
    });
    m.send([atom('message'), 999, 1, b('print'), 1, [atom('tuple'), inner], [atom('dictionary')]]);
    const failure = unjelly((await answer)[2]!) as CopiedFailure;
    expect(failure.type).toBe('twisted.spread.jelly.InsecureJelly');
    expect(failure.value).toBe(`jelly message too large: more than ${MAX_MESSAGE_VALUES} values once shared references are expanded`);
    expect(await m.call(1, 'print', [], { message: 'still there' })).toBeNull();
    expect(await Promise.race([s.closed, 'open'])).toBe('open');
  });

  it('drops a master that stops answering keepalives (a half-open link), saying why', async () => {
    const { m, s, logger } = await attach({}, 1);
    await m.waitFor(() => m.callsTo(m.avatarLuid, 'keepalive').length >= 1 || undefined, 'a first keepalive');
    // from now on the master is silent
    m.handlers.set('keepalive', () => new Promise(() => {}));
    const started = Date.now();
    const end = await s.closed;
    expect(end).toMatchObject({
      cause: 'liveness',
      reason: expect.stringMatching(/^no data from the master for [\d.]+ s, none within 3 s of a keepalive: the link is dead$/),
    });
    expect(Date.now() - started).toBeLessThan(3000 + 3000 + 1500);
    expect(logger.lines.some((l) => l.startsWith(`warn dropping the connection to master at 127.0.0.1:${m.port}: no data from the master`))).toBe(true);
  });

  it('says the master ended a session it closed', async () => {
    const { m, s } = await attach();
    m.sock!.end();
    expect(await s.closed).toMatchObject({ cause: 'master', reason: 'the master closed the connection' });
  });
});
