// The Perspective Broker (twisted/spread/pb.py Broker), client side: dialect and version handshake, calls to
// the peer's objects and their answers, dispatch of the peer's calls to our objects, and the per-connection
// object tables with their reference counts.

import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ConnectionLostError } from '../errors.js';
import type { MessageLimits } from '../limits.js';
import { atom, BananaDecoder, chooseDialect, encode, type Sexp } from './banana.js';
import { PyTuple } from '../../py/values.js';
import { CopiedFailure, CopyableFailure, isPlainObject, jelly, Jellyable, unjelly, type Jellier, type JellyPeer } from './jelly.js';

/** pb.Broker.version: both sides send it right after the dialect; any other number ends the connection. */
export const PB_VERSION = 6;

/** The peer answered a call with an error (a PB `error` message). */
export class PbRemoteError extends AgentError {
  constructor(
    readonly method: string,
    /** The failure as sent; `remoteType` is its exception class. */
    readonly failure: CopiedFailure | undefined,
    message: string,
  ) {
    super('E_REMOTE', `master answered ${method} with an error: ${message}`);
  }

  get remoteType(): string {
    return this.failure?.type ?? '';
  }
}

/** An error that says which Python exception the peer should see (type and MRO, qualified names). */
export interface PythonError {
  pyType: string;
  pyParents: string[];
}

const EXC_TAIL = ['builtins.Exception', 'builtins.BaseException', 'builtins.object'];

/** twisted.spread.flavors.NoSuchMethod: the master relies on this exact type name to fall back for old workers. */
export class NoSuchMethodError extends AgentError implements PythonError {
  readonly pyType = 'twisted.spread.flavors.NoSuchMethod';
  readonly pyParents = ['twisted.spread.flavors.NoSuchMethod', 'builtins.AttributeError', ...EXC_TAIL];
  constructor(name: string) {
    super('E_PB_NO_SUCH_METHOD', `No such method: remote_${name}`);
  }
}

/** pb.Error("Invalid Object ID"), what Twisted answers for a call to an object it does not have. */
export class InvalidObjectError extends AgentError implements PythonError {
  readonly pyType = 'twisted.spread.pb.Error';
  readonly pyParents = ['twisted.spread.pb.Error', ...EXC_TAIL];
  constructor() {
    super('E_PB_OBJECT', 'Invalid Object ID');
  }
}

function isPythonError(e: unknown): e is Error & PythonError {
  return e instanceof Error && typeof (e as Partial<PythonError>).pyType === 'string' && Array.isArray((e as Partial<PythonError>).pyParents);
}

/** A method of one of our objects: positional and keyword arguments as unjellied; may return a promise. */
export type RemoteMethod = (args: unknown[], kwargs: Record<string, unknown>) => unknown;

/** One of our objects the peer may call (Twisted's Referenceable): sent as `[remote, luid]`. */
export class Referenceable extends Jellyable {
  constructor(
    /** For log lines: what this object is. */
    readonly label: string,
    private readonly methods: Readonly<Record<string, RemoteMethod>>,
  ) {
    super();
  }

  method(name: string): RemoteMethod | undefined {
    return Object.hasOwn(this.methods, name) ? this.methods[name] : undefined;
  }

  jellyFor(j: Jellier): Sexp {
    if (!(j.invoker instanceof Broker)) throw new AgentError('E_JELLY', `${this.label} can only be sent over a PB connection`);
    return [atom('remote'), j.invoker.registerReference(this)];
  }
}

/**
 * A reference to one of the peer's objects. Each one stands for one `[remote, luid]` received, which the
 * peer counts: release() sends the matching `decref` (Python does it when the proxy is garbage collected).
 */
export class RemoteReference extends Jellyable {
  private releasedFlag = false;
  /** Set by keep(): the receiver of an incoming call holds on to it (otherwise it is released after the call). */
  kept = false;

  constructor(
    readonly broker: Broker,
    readonly luid: number | string,
    private readonly counted: boolean,
  ) {
    super();
  }

  callRemote(method: string, ...args: unknown[]): Promise<unknown> {
    return this.broker.callRemote(this, method, args, {});
  }

  callRemoteKw(method: string, args: unknown[], kwargs: Record<string, unknown>): Promise<unknown> {
    return this.broker.callRemote(this, method, args, kwargs);
  }

  /** Holds on to the reference beyond the incoming call it arrived with; the holder must release() it. */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** Drops the reference: tells the peer once (later calls do nothing). */
  release(): void {
    if (this.releasedFlag) return;
    this.releasedFlag = true;
    if (this.counted && typeof this.luid === 'number') this.broker.sendDecref(this.luid);
  }

  get released(): boolean {
    return this.releasedFlag;
  }

  jellyFor(j: Jellier): Sexp {
    // sent back to its owner: pb.RemoteReference.jellyFor
    if (j.invoker !== this.broker || typeof this.luid !== 'number') {
      throw new AgentError('E_JELLY', 'a remote reference can only be sent back over its own connection');
    }
    return [atom('local'), this.luid];
  }
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface LocalEntry {
  object: Referenceable;
  refcount: number;
}

export interface BrokerOptions {
  /** Writes bytes to the peer. */
  send: (data: Buffer) => void;
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

function defaultDescribe(err: unknown): PythonError {
  if (isPythonError(err)) return { pyType: err.pyType, pyParents: err.pyParents };
  return { pyType: 'builtins.Exception', pyParents: EXC_TAIL };
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
export class Broker {
  private readonly decoder: BananaDecoder;
  private requestId = 0;
  private readonly pending = new Map<number, Pending>();
  private localId = 0;
  private readonly locals = new Map<number, LocalEntry>();
  private readonly luids = new Map<Referenceable, number>();
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
    return this.locals.size;
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
    this.locals.clear();
    this.luids.clear();
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
    return typeof id === 'number' ? this.locals.get(id)?.object : undefined;
  }

  private sendAnswer(reqId: number, value: unknown): void {
    if (this.closedReason) return;
    let data: Buffer;
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
    const entry = luid === undefined ? undefined : this.locals.get(luid);
    if (!entry || luid === undefined) {
      this.opts.logger.debug(`the peer released object ${describeSexp(id)}, which we do not have`);
      return;
    }
    entry.refcount--;
    if (entry.refcount <= 0) {
      this.locals.delete(luid);
      this.luids.delete(entry.object);
    }
  }

  // ---- outgoing ----

  /** Calls `method` on the peer's object; resolves with the answer, rejects with PbRemoteError or E_CONNECTION_LOST. */
  callRemote(ref: RemoteReference, method: string, args: unknown[], kwargs: Record<string, unknown>): Promise<unknown> {
    if (this.closedReason || this.fatal) return Promise.reject(new ConnectionLostError(this.fatal?.message));
    if (ref.released) return Promise.reject(new AgentError('E_PB_RELEASED', `cannot call ${method} on a released reference (object ${ref.luid})`));
    let data: Buffer;
    const reqId = this.requestId + 1;
    try {
      const objectId: Sexp = typeof ref.luid === 'number' ? ref.luid : atom(ref.luid);
      data = this.encode([atom('message'), reqId, objectId, Buffer.from(method, 'utf8'), 1, this.serialize(new PyTuple(args)), this.serialize(kwargs)]);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new AgentError('E_JELLY', String(err)));
    }
    this.requestId = reqId;
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(reqId, { method, resolve, reject }));
    this.write(data);
    return p;
  }

  sendDecref(luid: number): void {
    if (this.closedReason) return;
    this.sendCall('decref', luid);
  }

  private sendCall(cmd: string, ...rest: Sexp[]): void {
    this.write(this.encode([atom(cmd), ...rest]));
  }

  /** VOCAB tokens only in dialect "pb" (Banana._encode). */
  private encode(sexp: Sexp): Buffer {
    return encode(sexp, { vocab: this.decoder.dialect === 'pb' });
  }

  private write(data: Buffer): void {
    if (this.closedReason || this.fatal) return;
    this.opts.send(data);
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

  /** Jellies a value for this connection (our objects become `[remote, luid]`). */
  serialize(value: unknown): Sexp {
    return jelly(value, this);
  }

  /** Puts one of our objects in the table (or counts one more reference to it); returns its luid. */
  registerReference(obj: Referenceable): number {
    const known = this.luids.get(obj);
    if (known !== undefined) {
      this.locals.get(known)!.refcount++;
      return known;
    }
    const luid = ++this.localId;
    this.locals.set(luid, { object: obj, refcount: 1 });
    this.luids.set(obj, luid);
    return luid;
  }

  private readonly peer: JellyPeer = {
    remoteReference: (luid) => {
      const ref = new RemoteReference(this, luid, true);
      this.collecting?.push(ref);
      return ref;
    },
    localObject: (luid) => {
      const obj = this.locals.get(luid)?.object;
      if (!obj) throw new AgentError('E_JELLY', `the peer sent back object ${luid}, which we do not have`);
      return obj;
    },
  };
}

function kwargsObject(v: unknown): Record<string, unknown> | undefined {
  if (isPlainObject(v)) return v;
  if (v instanceof Map) {
    // Python 2 peers send byte keys (flavors.Referenceable.remoteMessageReceived decodes them)
    const out: Record<string, unknown> = {};
    for (const [k, val] of v) out[Buffer.isBuffer(k) ? k.toString('utf8') : String(k)] = val;
    return out;
  }
  return undefined;
}
