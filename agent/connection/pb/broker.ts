// The Perspective Broker (twisted/spread/pb.py Broker), client side: dialect and version handshake, calls to
// the peer's objects and their answers, dispatch of the peer's calls to our objects (references.ts holds the
// objects and their reference counts).

import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ConnectionLostError } from '../errors.js';
import type { MessageLimits } from '../limits.js';
import { atom, chooseDialect, encodeParts, type Sexp } from './banana.js';
import { BananaDecoder } from './banana-decoder.js';
import { PyTuple } from '../../py/values.js';
import { CopiedFailure, CopyableFailure, jelly, unjelly, type JellyPeer } from './jelly.js';
import { defaultDescribe, InvalidObjectError, NoSuchMethodError, PbRemoteError, type PythonError } from './errors.js';
import { kwargsObject } from './arguments.js';
import { LocalObjects, RemoteReference, type Referenceable, type ReferenceBroker } from './references.js';
import { SlabText, type SlabPool } from '../slabs.js';

/** pb.Broker.version: both sides send it right after the dialect; any other number ends the connection. */
export const PB_VERSION = 6;

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export interface BrokerOptions {
  /** Writes bytes to the peer; `written` (if given) once the socket is done with them, or dropped them. */
  send: (data: Buffer, written?: () => void) => void;
  /** Reused buffers for the text of outgoing calls (output updates); without, each text gets its own buffer. */
  slabs?: SlabPool;
  /** Ends the connection (the stream can no longer be trusted, or the peer broke the protocol). */
  close: (reason: AgentError) => void;
  logger: Logger;
  /** Dialect and version were sent: the first call (login) may go out. */
  onReady?: () => void;
  /** Tracebacks in error answers (PBClientFactory.unsafeTracebacks; False for buildbot-worker). */
  unsafeTracebacks?: boolean;
  /** Which Python exception the peer should see for an error our method threw. */
  describeError?: (err: unknown) => PythonError;
  /** The largest expression accepted at first (default MESSAGE_LIMITS); see setMessageLimits(). */
  limits?: MessageLimits;
}

function int(x: Sexp | undefined): number | undefined {
  return typeof x === 'number' && Number.isInteger(x) ? x : undefined;
}

function describeSexp(x: Sexp | undefined): string {
  if (x === undefined) return 'nothing';
  if (Buffer.isBuffer(x)) return JSON.stringify(x.subarray(0, 40).toString('latin1'));
  if (Array.isArray(x)) return `a list of ${x.length}`;
  return String(x);
}

/** One PB connection's broker. Feed it the peer's bytes with receive(); it never throws. */
export class Broker implements ReferenceBroker {
  private readonly decoder: BananaDecoder;
  private requestId = 0;
  private readonly pending = new Map<number, Pending>();
  /** Our objects the peer holds references to. */
  private readonly objects = new LocalObjects();
  private closedReason: AgentError | undefined;
  private fatal: AgentError | undefined;
  /** Where unserialize() records the references it creates. */
  private collecting: RemoteReference[] | undefined;

  constructor(private readonly opts: BrokerOptions) {
    this.decoder = new BananaDecoder(null, opts.limits);
  }

  /** Changes the largest expression accepted from now on (PB accepts less before the login completed). */
  setMessageLimits(limits: MessageLimits): void {
    this.decoder.setLimits(limits);
  }

  /** The protocol error that made us end the connection, if any. */
  get fatalError(): AgentError | undefined {
    return this.fatal;
  }

  get isClosed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Live entries of our object table (for tests and diagnostics). */
  get localObjectCount(): number {
    return this.objects.size;
  }

  /** The peer's root object ("root" on the wire; not reference counted). */
  root(): RemoteReference {
    return new RemoteReference(this, 'root', false);
  }

  /** Bytes from the peer. Protocol violations are logged and end the connection; nothing is thrown. */
  receive(chunk: Buffer): void {
    if (this.closedReason || this.fatal) return;
    let exprs: Sexp[];
    try {
      exprs = this.decoder.feed(chunk);
      while (exprs.length) {
        for (const e of exprs) this.expressionReceived(e);
        if (this.fatal || this.closedReason) return;
        // once the dialect is chosen, what arrived with the offer is decoded in the new dialect
        exprs = this.decoder.dialect !== null ? this.decoder.feed() : [];
      }
    } catch (err) {
      this.protocolError(err instanceof AgentError ? err : new AgentError('E_PB_PROTOCOL', errorMessage(err)));
    }
  }

  /** The transport closed: every pending call fails with E_CONNECTION_LOST. */
  connectionLost(detail?: string): void {
    if (this.closedReason) return;
    const why = this.fatal ? this.fatal.message : detail;
    this.closedReason = new ConnectionLostError(why);
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.objects.clear();
    for (const p of pending) p.reject(new ConnectionLostError(why));
  }

  private protocolError(err: AgentError): void {
    if (this.fatal) return;
    this.fatal = err;
    this.opts.logger.error(`PB protocol error, closing the connection: ${err.message}`);
    this.opts.close(err);
  }

  private expressionReceived(e: Sexp): void {
    if (this.decoder.dialect === null) {
      // the server's dialect offer (Banana.callExpressionReceived, client side)
      const { dialect, reply } = chooseDialect(e);
      this.write(reply);
      this.decoder.selectDialect(dialect);
      this.sendCall('version', PB_VERSION);
      this.opts.onReady?.();
      return;
    }
    if (!Array.isArray(e)) throw new AgentError('E_PB_PROTOCOL', `non-list expression received: ${describeSexp(e)}`);
    const cmd = e[0];
    if (!Buffer.isBuffer(cmd)) {
      this.opts.logger.warn(`ignoring a PB expression without a command: ${describeSexp(cmd)}`);
      return;
    }
    const name = cmd.toString('latin1');
    switch (name) {
      case 'version':
        if (e[1] !== PB_VERSION) throw new AgentError('E_PB_PROTOCOL', `PB version incompatibility: we speak ${PB_VERSION}, the peer ${describeSexp(e[1])}`);
        return;
      case 'message':
      case 'cachemessage':
        this.messageReceived(e, name === 'cachemessage');
        return;
      case 'answer':
      case 'error':
        this.answerReceived(e, name === 'error');
        return;
      case 'decref':
        this.decrefReceived(e[1]);
        return;
      case 'didNotUnderstand':
        this.opts.logger.warn(`the peer did not understand our command ${describeSexp(e[1])}`);
        return;
      case 'decache':
      case 'uncache':
        // Cacheable machinery: we never send or hold cached objects
        this.opts.logger.warn(`ignoring PB ${name} for object ${describeSexp(e[1])}: no cached objects here`);
        return;
      default:
        this.opts.logger.warn(`the peer sent an unknown PB command ${JSON.stringify(name.slice(0, 60))}`);
        this.sendCall('didNotUnderstand', cmd);
    }
  }

  // ---- calls from the peer ----

  private messageReceived(e: Sexp[], cached: boolean): void {
    const [, reqSexp, objSexp, methodSexp, answerSexp, argsSexp, kwSexp] = e;
    const reqId = int(reqSexp);
    const answerRequired = answerSexp === undefined ? true : answerSexp !== 0;
    const answer = reqId !== undefined && answerRequired;
    if (reqId === undefined || !Buffer.isBuffer(methodSexp) || argsSexp === undefined || kwSexp === undefined || e.length !== 7) {
      this.opts.logger.warn(`malformed PB message (${e.length} fields, request id ${describeSexp(reqSexp)}, method ${describeSexp(methodSexp)})`);
      if (answer) this.sendError(reqId, new AgentError('E_PB_PROTOCOL', 'malformed message'));
      return;
    }
    const method = methodSexp.toString('utf8');
    const collected: RemoteReference[] = [];
    const releaseUnkept = (): void => {
      for (const r of collected) if (!r.kept) r.release();
    };
    let result: unknown;
    let target = '';
    try {
      // cachemessage addresses RemoteCache copies (Broker.cachedLocallyAs); we hold none
      const obj = cached ? undefined : this.localFor(objSexp);
      if (!obj) throw new InvalidObjectError();
      target = obj.label;
      const args = this.unserialize(argsSexp, collected);
      const kwargs = this.unserialize(kwSexp, collected);
      const argList = args instanceof PyTuple ? [...args.items] : Array.isArray(args) ? args : undefined;
      if (!argList) throw new AgentError('E_JELLY', `arguments of ${method} are not a tuple`);
      const kw = kwargsObject(kwargs);
      if (!kw) throw new AgentError('E_JELLY', `keyword arguments of ${method} are not a dictionary`);
      const fn = obj.method(method);
      if (!fn) throw new NoSuchMethodError(method);
      result = fn(argList, kw);
    } catch (err) {
      this.opts.logger.warn(`peer's call ${target ? `${target}.` : ''}${method} failed: ${errorMessage(err)}`);
      if (answer) this.sendError(reqId, err);
      releaseUnkept();
      return;
    }
    if (!(result instanceof Promise)) {
      if (answer) this.sendAnswer(reqId, result);
      releaseUnkept();
      return;
    }
    result.then(
      (value) => {
        if (answer) this.sendAnswer(reqId, value);
        releaseUnkept();
      },
      (err: unknown) => {
        this.opts.logger.warn(`peer's call ${target}.${method} failed: ${errorMessage(err)}`);
        if (answer) this.sendError(reqId, err);
        releaseUnkept();
      },
    );
  }

  private localFor(id: Sexp | undefined): Referenceable | undefined {
    return typeof id === 'number' ? this.objects.get(id) : undefined;
  }

  private sendAnswer(reqId: number, value: unknown): void {
    if (this.closedReason) return;
    let data: Buffer[];
    try {
      data = this.encode([atom('answer'), reqId, this.serialize(value)]);
    } catch (err) {
      this.opts.logger.warn(`cannot send the answer to request ${reqId}: ${errorMessage(err)}`);
      this.sendError(reqId, err);
      return;
    }
    this.write(data);
  }

  private sendError(reqId: number, err: unknown): void {
    if (this.closedReason) return;
    const d = (this.opts.describeError ?? defaultDescribe)(err);
    const failure =
      err instanceof CopyableFailure
        ? err
        : new CopyableFailure({
            type: d.pyType,
            value: errorMessage(err),
            traceback: this.opts.unsafeTracebacks && err instanceof Error && err.stack ? err.stack : 'Traceback unavailable\n',
            parents: d.pyParents,
            unsafeTracebacks: this.opts.unsafeTracebacks ?? false,
          });
    try {
      this.sendCall('error', reqId, this.serialize(failure));
    } catch (e) {
      this.opts.logger.error(`cannot send an error answer to request ${reqId}: ${errorMessage(e)}`);
    }
  }

  // ---- answers from the peer ----

  private answerReceived(e: Sexp[], isError: boolean): void {
    const reqId = int(e[1]);
    const p = reqId === undefined ? undefined : this.pending.get(reqId);
    if (reqId === undefined || !p || e.length !== 3) {
      this.opts.logger.warn(`ignoring a PB ${isError ? 'error' : 'answer'} for unknown request ${describeSexp(e[1])}`);
      return;
    }
    this.pending.delete(reqId);
    let value: unknown;
    const refs: RemoteReference[] = [];
    try {
      value = this.unserialize(e[2]!, refs);
    } catch (err) {
      // references already made from the broken answer are nobody's: give them back
      for (const r of refs) r.release();
      p.reject(err instanceof Error ? err : new AgentError('E_JELLY', String(err)));
      return;
    }
    if (!isError) {
      p.resolve(value);
      return;
    }
    if (value instanceof CopiedFailure) {
      const msg = value.value ? `${value.type}: ${value.value}` : value.type;
      p.reject(new PbRemoteError(p.method, value, msg));
    } else {
      p.reject(new PbRemoteError(p.method, undefined, typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : String(value)));
    }
  }

  private decrefReceived(id: Sexp | undefined): void {
    const luid = int(id);
    if (luid === undefined || !this.objects.decref(luid)) this.opts.logger.debug(`the peer released object ${describeSexp(id)}, which we do not have`);
  }

  // ---- outgoing ----

  /** Calls `method` on the peer's object; resolves with the answer, rejects with PbRemoteError or E_CONNECTION_LOST. */
  callRemote(ref: RemoteReference, method: string, args: unknown[], kwargs: Record<string, unknown>): Promise<unknown> {
    if (this.closedReason || this.fatal) return Promise.reject(new ConnectionLostError(this.fatal?.message));
    if (ref.released) return Promise.reject(new AgentError('E_PB_RELEASED', `cannot call ${method} on a released reference (object ${ref.luid})`));
    let data: Buffer[];
    const reqId = this.requestId + 1;
    // the texts of the call (an update's output) are written into a slab, given back once the socket wrote them
    const text = this.opts.slabs && new SlabText(this.opts.slabs);
    try {
      const objectId: Sexp = typeof ref.luid === 'number' ? ref.luid : atom(ref.luid);
      const call = [atom('message'), reqId, objectId, Buffer.from(method, 'utf8'), 1, this.serialize(new PyTuple(args), text), this.serialize(kwargs, text)];
      data = this.encode(call);
    } catch (err) {
      text?.done();
      return Promise.reject(err instanceof Error ? err : new AgentError('E_JELLY', String(err)));
    }
    this.requestId = reqId;
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(reqId, { method, resolve, reject }));
    this.write(data, text);
    return p;
  }

  sendDecref(luid: number): void {
    if (this.closedReason) return;
    this.sendCall('decref', luid);
  }

  private sendCall(cmd: string, ...rest: Sexp[]): void {
    this.write(this.encode([atom(cmd), ...rest]));
  }

  /**
   * ["version", 6]: pb.Broker.proto_version only checks the number, so this is a message that does nothing, sent
   * for the acknowledgement it carries (ack-nudge.ts).
   */
  sendNoop(): void {
    if (!this.closedReason && !this.fatal) this.sendCall('version', PB_VERSION);
  }

  /** Some call of ours is still unanswered. */
  get awaitingAnswers(): boolean {
    return this.pending.size > 0;
  }

  /** VOCAB tokens only in dialect "pb" (Banana._encode); in pieces, so a large byte string is not copied. */
  private encode(sexp: Sexp): Buffer[] {
    return encodeParts(sexp, { vocab: this.decoder.dialect === 'pb' });
  }

  /** Writes a message; `text`'s slab goes back once the socket wrote the last part (parts are written in order). */
  private write(data: Buffer | Buffer[], text?: SlabText): void {
    const written = text?.usesSlab ? () => text.done() : undefined;
    const parts = Buffer.isBuffer(data) ? [data] : data;
    if (this.closedReason || this.fatal || !parts.length) written?.();
    else parts.forEach((part, i) => this.opts.send(part, i === parts.length - 1 ? written : undefined));
  }

  /** Unjellies for this connection; the references to the peer's objects it creates are added to `refs`. */
  private unserialize(sexp: Sexp, refs: RemoteReference[]): unknown {
    this.collecting = refs;
    try {
      return unjelly(sexp, this.peer);
    } finally {
      this.collecting = undefined;
    }
  }

  /** Jellies a value for this connection (our objects become `[remote, luid]`); texts into `text`'s slab if given. */
  serialize(value: unknown, text?: SlabText): Sexp {
    return text ? jelly(value, this, (s) => text.bytes(s)) : jelly(value, this);
  }

  /** Puts one of our objects in the table (or counts one more reference to it); returns its luid. */
  registerReference(obj: Referenceable): number {
    return this.objects.register(obj);
  }

  private readonly peer: JellyPeer = {
    remoteReference: (luid) => {
      const ref = new RemoteReference(this, luid, true);
      this.collecting?.push(ref);
      return ref;
    },
    localObject: (luid) => {
      const obj = this.objects.get(luid);
      if (!obj) throw new AgentError('E_JELLY', `the peer sent back object ${luid}, which we do not have`);
      return obj;
    },
  };
}
