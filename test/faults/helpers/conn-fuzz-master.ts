// Fuzzing fake masters for a real bbagent process over loopback, one per protocol. Each logs the agent in as a
// 3.7 master does (PB: dialect, version, cred login with the attach calls; msgpack: Basic auth, print and
// get_worker_info), answers every call of the agent with None, and then sends what the fuzz gives it: requests
// whose answers it matches by number, or raw bytes. A connection the agent drops is counted; the next one is
// logged in again.
import { decode, encode as mpEncode } from '@msgpack/msgpack';
import net from 'node:net';
import { constants as zlibConstants, createDeflateRaw } from 'node:zlib';
import { WebSocketServer, type WebSocket } from 'ws';
import { atom, dialectOffer, encode, type Sexp } from '../../../agent/connection/pb/banana.js';
import { BananaDecoder } from '../../../agent/connection/pb/banana-decoder.js';

/** Structure-mutated requests bigger than this are not sent (the targeted cases send the big ones). */
const MAX_FUZZ_FRAME_BYTES = 256 * 1024;

/** How a request ended: answered (answer or error), or its connection closed first. */
export type Outcome = { kind: 'answer' | 'error'; at: number } | { kind: 'closed'; at: number };

interface Pending {
  resolve: (o: Outcome) => void;
}

/** What both fake masters offer the fuzz driver. */
export interface FuzzMaster {
  readonly port: number;
  /** Connections that completed the login, in total. */
  readonly logins: number;
  /** Connections the agent opened, in total. */
  readonly connections: number;
  /** When the latest login completed (ms, Date.now()). */
  readonly lastLoginAt: number;
  /** Resolves once `count` logins completed in total. */
  waitForLogins(count: number, timeoutMs: number): Promise<void>;
  /** Whether a logged-in connection is open now. */
  readonly ready: boolean;
  /** Resolves once a logged-in connection is open. */
  waitReady(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

class Waiters {
  private list: (() => void)[] = [];
  wake(): void {
    this.list.splice(0).forEach((w) => w());
  }
  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        this.list.push(r);
        setTimeout(r, 50);
      });
    }
  }
}

// ---- PB ----

const NONE: Sexp = [atom('None')];
const CHALLENGER_LUID = 1;
const AVATAR_LUID = 2;

class PbConnection {
  private readonly decoder = new BananaDecoder(null);
  private reqId = 0;
  readonly pending = new Map<number, Pending>();
  loggedIn = false;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    private readonly master: FuzzPbMaster,
  ) {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('close', () => {
      this.closed = true;
      const at = Date.now();
      for (const p of this.pending.values()) p.resolve({ kind: 'closed', at });
      this.pending.clear();
      master.connectionClosed(this);
    });
    socket.write(dialectOffer());
    const hostile = master.takeHostileLogin();
    if (hostile) hostile(socket);
  }

  private receive(chunk: Buffer): void {
    let exprs: Sexp[];
    try {
      exprs = this.decoder.feed(chunk);
      while (exprs.length) {
        for (const e of exprs) this.expression(e);
        exprs = this.decoder.dialect ? this.decoder.feed() : [];
      }
    } catch (err) {
      this.master.agentErrors.push(`the agent sent bad Banana: ${(err as Error).message}`);
      this.socket.destroy();
    }
  }

  private expression(e: Sexp): void {
    if (this.decoder.dialect === null) {
      this.decoder.selectDialect('pb');
      this.send([atom('version'), 6]);
      return;
    }
    if (!Array.isArray(e) || !Buffer.isBuffer(e[0])) return;
    const cmd = e[0].toString('latin1');
    if (cmd === 'message') {
      const [, reqId, objId, method, answerFlag, args] = e;
      const name = Buffer.isBuffer(method) ? method.toString('utf8') : '';
      if (objId !== undefined && Buffer.isBuffer(objId) && objId.toString() === 'root' && name === 'login') {
        this.send([atom('answer'), reqId!, [atom('tuple'), Buffer.alloc(16, 7), [atom('remote'), CHALLENGER_LUID]]]);
        return;
      }
      if (name === 'respond') {
        const mind = (Array.isArray(args) && Array.isArray(args[2]) ? args[2][1] : undefined) as number;
        void this.attach(mind, reqId as number);
        return;
      }
      if (answerFlag !== 0) this.send([atom('answer'), reqId!, NONE]);
      return;
    }
    if (cmd === 'answer' || cmd === 'error') {
      const p = this.pending.get(e[1] as number);
      if (!p) return;
      this.pending.delete(e[1] as number);
      p.resolve({ kind: cmd, at: Date.now() });
    }
    // version, decref, didNotUnderstand: nothing to do
  }

  /** The master's attach before it answers respond (pb-01): print, getWorkerInfo, setBuilderList. */
  private async attach(mind: number, respondId: number): Promise<void> {
    const calls: [string, Sexp, Sexp][] = [
      [
        'print',
        [atom('tuple')],
        [
          atom('dictionary'),
          [
            [atom('unicode'), Buffer.from('message')],
            [atom('unicode'), Buffer.from('attached')],
          ],
        ],
      ],
      ['getWorkerInfo', [atom('tuple')], [atom('dictionary')]],
      ['setBuilderList', this.master.builderListArgs, [atom('dictionary')]],
    ];
    for (const [method, args, kw] of calls) {
      const o = await this.call(mind, method, args, kw);
      if (o.kind !== 'answer') {
        if (o.kind === 'error') this.master.agentErrors.push(`the agent answered ${method} at login with an error`);
        return;
      }
    }
    this.send([atom('answer'), respondId, [atom('remote'), AVATAR_LUID]]);
    this.loggedIn = true;
    this.master.loggedIn(this);
  }

  call(objId: number | string, method: string, args: Sexp, kwargs: Sexp): Promise<Outcome> {
    const p = this.sendMessage((id) => [atom('message'), id, typeof objId === 'number' ? objId : atom(objId), Buffer.from(method, 'utf8'), 1, args, kwargs]);
    if (!p) throw new Error(`cannot encode a call of ${method}`);
    return p;
  }

  /**
   * Sends a request built around a fresh request id; resolves when it is answered or the connection closes.
   * Undefined when the request cannot be encoded (our encoder refuses what Twisted would).
   */
  sendMessage(build: (reqId: number) => Sexp): Promise<Outcome> | undefined {
    if (this.closed) return Promise.resolve({ kind: 'closed', at: Date.now() });
    const id = ++this.reqId;
    let bytes: Buffer;
    try {
      bytes = encode(build(id));
    } catch {
      return undefined;
    }
    if (bytes.length > MAX_FUZZ_FRAME_BYTES) return undefined;
    const p = new Promise<Outcome>((resolve) => this.pending.set(id, { resolve }));
    this.socket.write(bytes);
    return p;
  }

  /** Sends `bytes` expecting an answer to request `reqId` (see nextReqId), or none. */
  requestRaw(bytes: Buffer, reqId: number | undefined): Promise<Outcome> | undefined {
    let p: Promise<Outcome> | undefined;
    if (reqId !== undefined) p = new Promise<Outcome>((resolve) => this.pending.set(reqId, { resolve }));
    this.sendRaw(bytes);
    return p;
  }

  nextReqId(): number {
    return ++this.reqId;
  }

  /** Whatever the agent does next, this resolves when the connection closes. */
  closedOutcome(): Promise<Outcome> {
    if (this.closed) return Promise.resolve({ kind: 'closed', at: Date.now() });
    return new Promise((resolve) => this.socket.once('close', () => resolve({ kind: 'closed', at: Date.now() })));
  }

  send(sexp: Sexp): void {
    if (!this.closed) this.socket.write(encode(sexp));
  }

  sendRaw(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }
}

export class FuzzPbMaster implements FuzzMaster {
  readonly agentErrors: string[] = [];
  connections = 0;
  logins = 0;
  lastLoginAt = 0;
  current: PbConnection | undefined;
  private readonly waiters = new Waiters();
  private hostileLogin: ((s: net.Socket) => void) | undefined;

  /** The next connection gets `act` right after the dialect offer (a hostile peer before the login). */
  setHostileLogin(act: (s: net.Socket) => void): void {
    this.hostileLogin = act;
  }

  takeHostileLogin(): ((s: net.Socket) => void) | undefined {
    const h = this.hostileLogin;
    this.hostileLogin = undefined;
    return h;
  }

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    /** setBuilderList's argument tuple, as the recorded master sent it. */
    readonly builderListArgs: Sexp,
  ) {}

  static async start(builderListArgs: Sexp): Promise<FuzzPbMaster> {
    // connections arrive only once the master below exists
    const server = net.createServer((s) => {
      master.connections++;
      new PbConnection(s, master);
    });
    await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1' }, () => r()));
    const master = new FuzzPbMaster(server, (server.address() as net.AddressInfo).port, builderListArgs);
    return master;
  }

  loggedIn(c: PbConnection): void {
    this.current = c;
    this.logins++;
    this.lastLoginAt = Date.now();
    this.waiters.wake();
  }

  connectionClosed(c: PbConnection): void {
    if (this.current === c) this.current = undefined;
    this.waiters.wake();
  }

  get ready(): boolean {
    return this.current !== undefined && !this.current.closed;
  }

  waitForLogins(count: number, timeoutMs: number): Promise<void> {
    return this.waiters.until(() => this.logins >= count && this.ready, timeoutMs, `PB login number ${count}`);
  }

  waitReady(timeoutMs: number): Promise<void> {
    return this.waiters.until(() => this.ready, timeoutMs, 'a logged-in PB connection');
  }

  async close(): Promise<void> {
    this.current?.socket.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// ---- msgpack ----

type Msg = Record<string, unknown>;

class MsgpackConnection {
  private seq = 0;
  readonly pending = new Map<number, Pending>();
  loggedIn = false;
  closed = false;

  constructor(
    readonly ws: WebSocket,
    readonly tcp: net.Socket,
    private readonly master: FuzzMsgpackMaster,
  ) {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return;
      let m: Msg;
      try {
        m = decode(data as Buffer) as Msg;
      } catch (err) {
        master.agentErrors.push(`the agent sent undecodable msgpack: ${(err as Error).message}`);
        return;
      }
      if (m['op'] === 'response') {
        const p = this.pending.get(m['seq_number'] as number);
        if (!p) return;
        this.pending.delete(m['seq_number'] as number);
        p.resolve({ kind: m['is_exception'] ? 'error' : 'answer', at: Date.now() });
        return;
      }
      ws.send(mpEncode({ op: 'response', seq_number: m['seq_number'], result: null }), { compress: false });
    });
    ws.on('close', () => {
      this.closed = true;
      const at = Date.now();
      for (const p of this.pending.values()) p.resolve({ kind: 'closed', at });
      this.pending.clear();
      master.connectionClosed(this);
    });
    void this.attach();
  }

  private async attach(): Promise<void> {
    for (const op of ['print', 'get_worker_info']) {
      const o = await this.request(op === 'print' ? { op, message: 'attached' } : { op });
      if (o?.kind !== 'answer') return;
    }
    this.loggedIn = true;
    this.master.loggedIn(this);
  }

  /**
   * Sends a request with a fresh seq_number; resolves when it is answered or the connection closes. Undefined
   * when the message cannot be encoded (nested deeper than the encoder goes).
   */
  request(msg: Msg): Promise<Outcome> | undefined {
    if (this.closed) return Promise.resolve({ kind: 'closed', at: Date.now() });
    const seq = this.seq;
    let bytes: Uint8Array;
    try {
      bytes = mpEncode({ ...msg, seq_number: seq });
    } catch {
      return undefined;
    }
    // mutations can compound into huge messages; the targeted cases cover those
    if (bytes.length > MAX_FUZZ_FRAME_BYTES) return undefined;
    this.seq++;
    const p = new Promise<Outcome>((resolve) => this.pending.set(seq, { resolve }));
    // uncompressed: deflate is negotiated for the bomb, and would only cost time on every request
    this.ws.send(bytes, { compress: false });
    return p;
  }

  /** Sends `bytes` as one binary message, with a seq_number to expect an answer for (or none). */
  requestRaw(bytes: Uint8Array, expectSeq: number | undefined, opts: { compress?: boolean } = {}): Promise<Outcome> | undefined {
    let p: Promise<Outcome> | undefined;
    if (expectSeq !== undefined) p = new Promise<Outcome>((resolve) => this.pending.set(expectSeq, { resolve }));
    this.ws.send(bytes, { binary: true, compress: opts.compress ?? false });
    return p;
  }

  /** Writes a frame made by hand (compressedFrame) to the socket, expecting an answer to `expectSeq` (or none). */
  requestFrame(frame: Buffer, expectSeq: number | undefined): Promise<Outcome> | undefined {
    let p: Promise<Outcome> | undefined;
    if (expectSeq !== undefined) p = new Promise<Outcome>((resolve) => this.pending.set(expectSeq, { resolve }));
    this.tcp.write(frame);
    return p;
  }

  /** The next seq_number this connection would give a request. */
  takeSeq(): number {
    return this.seq++;
  }

  /** Whatever the agent does next, this resolves when the connection closes. */
  closedOutcome(): Promise<Outcome> {
    if (this.closed) return Promise.resolve({ kind: 'closed', at: Date.now() });
    return new Promise((resolve) => this.ws.once('close', () => resolve({ kind: 'closed', at: Date.now() })));
  }
}

/**
 * One binary message compressed by a fresh compressor (so it refers to nothing sent before, whatever the agent's
 * context), as one unmasked frame: for messages ws would have to hold whole to compress (a deflate bomb). The parts
 * are streamed, so a bomb costs this process its compressed size.
 */
export async function compressedFrame(parts: Iterable<Uint8Array>): Promise<Buffer> {
  const z = createDeflateRaw();
  const out: Buffer[] = [];
  z.on('data', (c: Buffer) => out.push(c));
  for (const p of parts) if (!z.write(p)) await new Promise((r) => z.once('drain', r));
  await new Promise<void>((r) => z.flush(zlibConstants.Z_SYNC_FLUSH, () => r()));
  z.close();
  // RFC 7692: the 00 00 ff ff a sync flush ends with is left out
  const data = Buffer.concat(out);
  const payload = data.subarray(0, data.length - 4);
  const head = Buffer.alloc(10);
  head[0] = 0xc2; // FIN, RSV1 (compressed), binary
  head[1] = 127;
  head.writeBigUInt64BE(BigInt(payload.length), 2);
  return Buffer.concat([head, payload]);
}

export class FuzzMsgpackMaster implements FuzzMaster {
  readonly agentErrors: string[] = [];
  connections = 0;
  logins = 0;
  lastLoginAt = 0;
  current: MsgpackConnection | undefined;
  private readonly waiters = new Waiters();

  private constructor(
    private readonly wss: WebSocketServer,
    readonly port: number,
  ) {}

  /** With `deflate`, permessage-deflate is accepted (the agent offers it), so compressed messages can be sent. */
  static async start(opts: { deflate: boolean }): Promise<FuzzMsgpackMaster> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: opts.deflate ? { threshold: 0 } : false, maxPayload: 64 * 1024 * 1024 });
    // connections arrive only once the master below exists
    wss.on('connection', (ws, req) => {
      master.connections++;
      new MsgpackConnection(ws, req.socket, master);
    });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const master = new FuzzMsgpackMaster(wss, (wss.address() as net.AddressInfo).port);
    return master;
  }

  loggedIn(c: MsgpackConnection): void {
    this.current = c;
    this.logins++;
    this.lastLoginAt = Date.now();
    this.waiters.wake();
  }

  connectionClosed(c: MsgpackConnection): void {
    if (this.current === c) this.current = undefined;
    this.waiters.wake();
  }

  get ready(): boolean {
    return this.current !== undefined && !this.current.closed;
  }

  waitForLogins(count: number, timeoutMs: number): Promise<void> {
    return this.waiters.until(() => this.logins >= count && this.ready, timeoutMs, `msgpack login number ${count}`);
  }

  waitReady(timeoutMs: number): Promise<void> {
    return this.waiters.until(() => this.ready, timeoutMs, 'a logged-in msgpack connection');
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}
