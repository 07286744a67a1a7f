// One msgpack_experimental_v7 connection: numbers requests, matches responses, answers the master's ops by
// calling the Worker, gives each command a channel for its updates and file transfers, and pings the master to
// notice a dead link.

import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import type { CommandChannel, CommandFailure, RemoteReader, RemoteWriter, UploadKind } from '../../commands/types.js';
import type { UpdateItem } from '../../output/types.js';
import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Worker } from '../../worker/worker.js';
import { MAX_MESSAGE_BYTES, MAX_READ_BLOCK_BYTES } from '../limits.js';
import { Liveness, livenessTimeoutS, type LivenessTimers } from '../liveness.js';
import { ConnectionLostError } from '../errors.js';
import type { SessionEnd, SessionEndCause } from '../protocol.js';
import { decodeMessage, encodeMessage, encodeMessageInPlace, RefusedMessage, wireFailure, wireUpdateArgs, type Message } from './codec.js';
import { MaskedFrameWriter } from './frames.js';
import { InflateError, readInflateNotice } from './inflate.js';
import { SlabPool } from '../slabs.js';

interface Pending {
  op: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** The master answered a request with is_exception; the message is the master's, as buildbot-worker reports it. */
export class RemoteError extends AgentError {
  readonly pyType = 'buildbot_worker.msgpack.RemoteWorkerError';
  constructor(
    readonly op: string,
    message: string,
  ) {
    super('E_REMOTE', message);
  }
}

/**
 * The master speaks first once it attached the worker (print "attached"). The 3.7 master can leave an open
 * WebSocket unattached for ever: it attaches workers one at a time under one lock, including its 10 s check of
 * a worker's old connection, and when its own 5 s opening-handshake timeout dropped a connection waiting for
 * that lock, it may attach the dropped one instead. A session the master has not spoken on for this long is
 * dropped and retried.
 */
export const ATTACH_TIMEOUT_MS = 60_000;

/** WebSocket close codes (RFC 6455 7.4.1) we send when we end the session over what the master sent. */
const CLOSE_UNSUPPORTED_DATA = 1003;
const CLOSE_INVALID_PAYLOAD = 1007;

/** A close frame's reason: at most 123 bytes of UTF-8. */
function closeReason(text: string): string {
  let r = text.slice(0, 123);
  while (Buffer.byteLength(r, 'utf8') > 123) r = r.slice(0, -1);
  return r;
}

export interface MsgpackSessionOptions {
  /** Send empty per-line index and time lists (the 3.7 master reads only the text). */
  leanUpdates?: boolean;
  /** Seconds between WebSocket pings; 0 disables them (and the liveness check). */
  keepaliveS?: number;
  /** The configured keepaliveTimeout (seconds), or null: automatic (livenessTimeoutS). */
  keepaliveTimeoutS?: number | null;
  /** The connection's socket: any byte on it shows the master is alive. */
  socket?: Duplex;
  /** Clock for the liveness check (tests). */
  livenessTimers?: LivenessTimers;
  /** Default ATTACH_TIMEOUT_MS. */
  attachTimeoutMs?: number;
}

export class MsgpackSession {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private closedFlag = false;
  /** Set when we end the connection ourselves: why, for the connection manager. */
  private ending: SessionEnd | undefined;
  private readonly liveness: Liveness;
  private attachTimer: NodeJS.Timeout | undefined;
  /** Frames large messages (updates, transfer blocks) itself (see send); only with the connection's socket. */
  private readonly frames: MaskedFrameWriter | undefined;
  /** The connection's reused buffers for large messages (slabs.ts). */
  private readonly slabs = new SlabPool();
  readonly closed: Promise<SessionEnd & { code: number }>;

  constructor(
    private readonly ws: WebSocket,
    private readonly worker: Worker,
    private readonly logger: Logger,
    private readonly opts: MsgpackSessionOptions = {},
  ) {
    ws.binaryType = 'nodebuffer';
    const keepaliveS = opts.keepaliveS ?? 0;
    // The 3.7 master never pings; its autobahn answers our pings with pongs.
    this.liveness = new Liveness({
      keepaliveS,
      timeoutS: opts.keepaliveTimeoutS ?? null,
      probe: () => ws.ping(),
      onDead: (reason) => this.drop('liveness', reason),
      ...(opts.livenessTimers ? { timers: opts.livenessTimers } : {}),
    });
    if (keepaliveS > 0)
      logger.info(
        `sending WebSocket pings every ${keepaliveS} seconds (the master must answer within ${livenessTimeoutS(keepaliveS, opts.keepaliveTimeoutS ?? null)} s)`,
      );
    this.frames = opts.socket ? new MaskedFrameWriter(opts.socket, this.slabs) : undefined;
    const alive = (): void => this.liveness.activity();
    if (opts.socket) opts.socket.on('data', alive);
    else ws.on('pong', alive);
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closedFlag = true;
        this.slabs.close();
        this.liveness.stop();
        clearTimeout(this.attachTimer);
        for (const p of this.pending.values()) p.reject(new ConnectionLostError());
        this.pending.clear();
        this.worker.connectionLost();
        const said = reason.length ? `: ${reason.toString().slice(0, 200)}` : '';
        resolve({ code, ...(this.ending ?? { cause: 'master', reason: `the master closed the connection (WebSocket code ${code}${said})` }) });
      });
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws reports the master's protocol violations with WS_ERR_* codes, the bounded inflater its own (inflate.ts),
      // and then the connection is closed
      if (err.code?.startsWith('WS_ERR_') || err instanceof InflateError) {
        const why =
          err instanceof InflateError
            ? err.message
            : err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
              ? `the master sent a message larger than ${MAX_MESSAGE_BYTES} bytes: closing with 1009 (message too big)`
              : `the master broke the WebSocket protocol (${err.message})`;
        this.ending ??= { cause: 'local', reason: why };
        this.logger.error(`dropping the connection: ${why}`);
      } else {
        this.logger.warn(`websocket error: ${err.message}`);
      }
    });
    const attachMs = opts.attachTimeoutMs ?? ATTACH_TIMEOUT_MS;
    this.attachTimer = setTimeout(
      () => this.drop('liveness', `the master opened the connection but did not attach the worker within ${attachMs / 1000} s`),
      attachMs,
    );
    this.attachTimer.unref();
    ws.on('message', (data, isBinary) => {
      clearTimeout(this.attachTimer);
      if (!isBinary) {
        // a text message names no request we could answer: the master may wait for an answer forever
        this.drop('local', 'the master sent a text message (the protocol uses binary messages)', CLOSE_UNSUPPORTED_DATA);
        return;
      }
      this.onMessage(data as Buffer);
    });
    this.liveness.start();
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  close(): void {
    this.ending ??= { cause: 'local', reason: 'closed by the worker' };
    this.liveness.stop();
    this.ws.close();
  }

  /** Ends the connection over something the master did (or did not do), saying why. */
  private drop(cause: SessionEndCause, reason: string, code?: number): void {
    if (this.ending || this.closedFlag) return;
    this.ending = { cause, reason };
    this.liveness.stop();
    this.logger.error(`dropping the connection: ${reason}`);
    // a silent link will not carry a close handshake; a talking master gets a close frame with the reason
    if (code === undefined) this.ws.terminate();
    else this.ws.close(code, closeReason(reason));
  }

  /**
   * Sends a request to the master; resolves with its result, rejects with RemoteError or ConnectionLostError.
   * `large`: an output update or a transfer block, sent from a reused buffer (see send).
   */
  request(op: string, fields: Record<string, unknown>, large = false): Promise<unknown> {
    if (this.closedFlag) return Promise.reject(new ConnectionLostError());
    const seq = this.seq++;
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(seq, { op, resolve, reject }));
    this.send({ op, ...fields, seq_number: seq }, large);
    return p;
  }

  /**
   * A large message (an output update, a transfer block) is encoded in the encoder's own buffer and goes out from
   * one of the connection's slabs, without the buffer per message encodeMessage and ws make. While ws writes
   * each frame whole and at once (no permessage-deflate; ws may then queue a message behind one it compresses),
   * the frame writer masks it into a slab. Otherwise ws gets the message in a slab, given back when ws calls
   * back: after the frame is written, so after permessage-deflate read it (zlib reads its input in the thread
   * pool until its flush calls back; ws calls back with an error when the socket closed meanwhile).
   */
  private send(msg: Record<string, unknown>, large = false): void {
    if (this.closedFlag) return;
    if (!large || this.ws.readyState !== this.ws.OPEN) {
      this.ws.send(encodeMessage(msg), { binary: true });
      return;
    }
    const bytes = encodeMessageInPlace(msg);
    if (this.frames && this.ws.extensions === '') {
      this.frames.write(bytes);
      return;
    }
    const slab = this.slabs.take(bytes.length);
    slab.set(bytes);
    this.ws.send(slab.subarray(0, bytes.length), { binary: true }, () => this.slabs.give(slab));
  }

  private respond(seq: number, result: unknown, isException = false): void {
    const msg: Record<string, unknown> = { op: 'response', seq_number: seq, result: result ?? null };
    if (isException) msg['is_exception'] = true;
    this.send(msg);
  }

  private onMessage(data: Buffer): void {
    const tooBig = readInflateNotice(data);
    if (tooBig) {
      const what = `message of ${tooBig.bytes} bytes (after decompression) is larger than ${MAX_MESSAGE_BYTES}`;
      this.refused(new RefusedMessage('E_MSGPACK_LIMIT', what, tooBig.op, tooBig.seq), 'ignore');
      return;
    }
    let msg: Message;
    try {
      msg = decodeMessage(data);
    } catch (err) {
      this.refused(err instanceof RefusedMessage ? err : new RefusedMessage('E_MSGPACK_DECODE', errorMessage(err), undefined, undefined));
      return;
    }
    if (msg.op === 'response') {
      const p = this.pending.get(msg.seq_number);
      if (!p) {
        this.logger.warn(`master answered an unknown request (seq ${msg.seq_number})`);
        return;
      }
      this.pending.delete(msg.seq_number);
      if (msg['is_exception']) p.reject(new RemoteError(p.op, String(msg['result'])));
      else p.resolve(msg['result']);
      return;
    }
    void this.dispatch(msg).then(
      (result) => this.respond(msg.seq_number, result),
      (err: unknown) => {
        this.logger.warn(`master's ${msg.op} failed: ${errorMessage(err)}`);
        this.respond(msg.seq_number, errorMessage(err), true);
      },
    );
  }

  /**
   * A message we could not decode: a request that names its number gets an error answer, an answer of the master
   * fails our request. Otherwise nobody can tell whose request is now left unanswered (the master's would wait
   * forever), so the connection is dropped and the manager reconnects; except for a message that inflated past
   * the limit (`unnamed` 'ignore'), which is only logged: a real master names every request (seq_number last, read
   * as the bytes went by), so that is a bomb, and not worth the running steps.
   */
  private refused(err: RefusedMessage, unnamed: 'drop' | 'ignore' = 'drop'): void {
    if (err.seq !== undefined && err.op !== undefined && err.op !== 'response') {
      this.logger.warn(`refused the master's ${err.op.slice(0, 100)} (seq ${err.seq}): ${err.message}`);
      this.respond(err.seq, `message refused by the worker: ${err.message}`, true);
      return;
    }
    if (err.seq !== undefined && err.op === 'response') {
      const p = this.pending.get(err.seq);
      this.logger.warn(`refused the master's answer to request ${err.seq}${p ? ` (${p.op})` : ''}: ${err.message}`);
      if (p) {
        this.pending.delete(err.seq);
        p.reject(err);
      }
      return;
    }
    if (unnamed === 'ignore') {
      const named = `op ${err.op === undefined ? 'unreadable' : `'${err.op.slice(0, 100)}'`}, seq_number ${err.seq ?? 'unreadable'}`;
      this.logger.error(`ignored a message of the master that names no request to answer (${named}): ${err.message}`);
      return;
    }
    this.drop('local', `cannot tell which request a message of the master belongs to, so it could never be answered (${err.message})`, CLOSE_INVALID_PAYLOAD);
  }

  private async dispatch(msg: Message): Promise<unknown> {
    const need = (key: string): unknown => {
      if (!(key in msg)) throw new AgentError('E_MSGPACK_ARGS', `message did not contain obligatory "${key}" key`);
      return msg[key];
    };
    switch (msg.op) {
      case 'print':
        this.worker.print(String(need('message')));
        return null;
      case 'keepalive':
        this.logger.info('keepalive from master');
        return null;
      case 'get_worker_info':
        return this.worker.workerInfo();
      case 'set_worker_settings':
        this.worker.setWorkerSettings(need('args'));
        return null;
      case 'start_command': {
        const id = String(need('command_id'));
        const name = String(need('command_name'));
        const args = need('args');
        if (typeof args !== 'object' || args === null || Array.isArray(args))
          throw new AgentError('E_MSGPACK_ARGS', `start_command ${name}: 'args' must be a map`);
        void this.worker.startCommand(name, id, args as Record<string, unknown>, this.channel(id));
        return null;
      }
      case 'interrupt_command':
        this.worker.interruptCommand(String(need('command_id')), String(msg['why'] ?? ''), true);
        return null;
      case 'shutdown':
        // answer first, then stop (buildbot-worker stops 0.2 s later, without a close handshake)
        setImmediate(() => this.worker.shutdown());
        return null;
      default:
        throw new AgentError('E_MSGPACK_OP', `Command ${msg.op} does not exist.`);
    }
  }

  private channel(commandId: string): CommandChannel {
    const call = (op: string, fields: Record<string, unknown> = {}): Promise<unknown> => this.request(op, { ...fields, command_id: commandId });
    const writer = (kind: UploadKind): RemoteWriter => ({
      write: async (data) => {
        const op = kind === 'directory' ? 'update_upload_directory_write' : 'update_upload_file_write';
        await this.request(op, { args: data, command_id: commandId }, true);
      },
      close: async () => {
        await call('update_upload_file_close');
      },
      utime: async (atime, mtime) => {
        // key order as the reference: op, access_time, modified_time, command_id, seq_number
        await this.request('update_upload_file_utime', { access_time: atime, modified_time: mtime, command_id: commandId });
      },
      unpack: async () => {
        await call('update_upload_directory_unpack');
      },
    });
    const reader: RemoteReader = {
      read: async (length) => {
        // the answer must fit in one message
        const r = await this.request('update_read_file', { length: Math.min(length, MAX_READ_BLOCK_BYTES), command_id: commandId });
        // The 3.7 master answers None here (its bug: the data is dropped); None reads as end of file.
        if (r === null || r === undefined) return null;
        if (r instanceof Uint8Array) return r;
        if (typeof r === 'string') return Buffer.from(r, 'utf8');
        throw new AgentError('E_MSGPACK_READ', `master answered update_read_file with ${typeof r}, not bytes`);
      },
      close: async () => {
        await call('update_read_file_close');
      },
    };
    return {
      sendUpdate: (items: UpdateItem[]) => {
        const args = { args: wireUpdateArgs(items, this.opts.leanUpdates), command_id: commandId };
        this.request('update', args, true).catch((err: unknown) => {
          if (!(err instanceof ConnectionLostError)) this.logger.warn(`master answered update for command ${commandId} with an error: ${errorMessage(err)}`);
        });
      },
      complete: async (failure: CommandFailure | null) => {
        call('complete', { args: wireFailure(failure) }).catch((err: unknown) => {
          if (!(err instanceof ConnectionLostError)) this.logger.warn(`master answered complete for command ${commandId} with an error: ${errorMessage(err)}`);
        });
      },
      writer,
      reader,
      backlog: () => this.ws.bufferedAmount,
      textOnly: this.opts.leanUpdates ?? false,
    };
  }
}
