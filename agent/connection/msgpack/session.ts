// One msgpack_experimental_v7 connection: numbers requests, matches responses, answers the master's ops by
// calling the Bot, and gives each command a channel for its updates and file transfers.

import type WebSocket from 'ws';
import type { CommandChannel, CommandFailure, RemoteReader, RemoteWriter, UpdateItem } from '../../commands/types.js';
import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Bot } from '../bot.js';
import { decodeMessage, encodeMessage, wireFailure, wireUpdateArgs, type Message } from './codec.js';

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

export class ConnectionLostError extends AgentError {
  constructor() {
    super('E_CONNECTION_LOST', 'Connection lost');
  }
}

const DIRECTORY_UPLOADS = new Set(['upload_directory', 'uploadDirectory']);

export class MsgpackSession {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private closedFlag = false;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(
    private readonly ws: WebSocket,
    private readonly bot: Bot,
    private readonly logger: Logger,
    private readonly opts: { leanUpdates?: boolean } = {},
  ) {
    ws.binaryType = 'nodebuffer';
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closedFlag = true;
        for (const p of this.pending.values()) p.reject(new ConnectionLostError());
        this.pending.clear();
        this.bot.connectionLost();
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('error', (err) => this.logger.warn(`websocket error: ${err.message}`));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        this.logger.warn('ignoring a text message from the master (the protocol uses binary messages)');
        return;
      }
      this.onMessage(data as Buffer);
    });
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  close(): void {
    this.ws.close();
  }

  /** Sends a request to the master; resolves with its result, rejects with RemoteError or ConnectionLostError. */
  request(op: string, fields: Record<string, unknown>): Promise<unknown> {
    if (this.closedFlag) return Promise.reject(new ConnectionLostError());
    const seq = this.seq++;
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(seq, { op, resolve, reject }));
    this.send({ op, ...fields, seq_number: seq });
    return p;
  }

  private send(msg: Record<string, unknown>): void {
    if (this.closedFlag) return;
    this.ws.send(encodeMessage(msg), { binary: true });
  }

  private respond(seq: number, result: unknown, isException = false): void {
    const msg: Record<string, unknown> = { op: 'response', seq_number: seq, result: result ?? null };
    if (isException) msg['is_exception'] = true;
    this.send(msg);
  }

  private onMessage(data: Buffer): void {
    let msg: Message;
    try {
      msg = decodeMessage(data);
    } catch (err) {
      this.logger.warn(`dropping a message from the master: ${errorMessage(err)}`);
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

  private async dispatch(msg: Message): Promise<unknown> {
    const need = (key: string): unknown => {
      if (!(key in msg)) throw new AgentError('E_MSGPACK_ARGS', `message did not contain obligatory "${key}" key`);
      return msg[key];
    };
    switch (msg.op) {
      case 'print':
        this.bot.print(String(need('message')));
        return null;
      case 'keepalive':
        this.logger.info('keepalive from master');
        return null;
      case 'get_worker_info':
        return this.bot.workerInfo();
      case 'set_worker_settings':
        this.bot.setWorkerSettings(need('args'));
        return null;
      case 'start_command': {
        const id = String(need('command_id'));
        const name = String(need('command_name'));
        const args = need('args');
        if (typeof args !== 'object' || args === null || Array.isArray(args))
          throw new AgentError('E_MSGPACK_ARGS', `start_command ${name}: 'args' must be a map`);
        void this.bot.startCommand(name, id, args as Record<string, unknown>, this.channel(id, name));
        return null;
      }
      case 'interrupt_command':
        this.bot.interruptCommand(String(need('command_id')), String(msg['why'] ?? ''), true);
        return null;
      case 'shutdown':
        // answer first, then stop (buildbot-worker stops 0.2 s later, without a close handshake)
        setImmediate(() => this.bot.shutdown());
        return null;
      default:
        throw new AgentError('E_MSGPACK_OP', `Command ${msg.op} does not exist.`);
    }
  }

  private channel(commandId: string, commandName: string): CommandChannel {
    const call = (op: string, fields: Record<string, unknown> = {}): Promise<unknown> => this.request(op, { ...fields, command_id: commandId });
    const dir = DIRECTORY_UPLOADS.has(commandName);
    const writer: RemoteWriter = {
      write: async (data) => {
        await call(dir ? 'update_upload_directory_write' : 'update_upload_file_write', { args: data });
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
    };
    const reader: RemoteReader = {
      read: async (length) => {
        const r = await this.request('update_read_file', { length, command_id: commandId });
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
        call('update', { args: wireUpdateArgs(items, this.opts.leanUpdates) }).catch((err: unknown) => {
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
