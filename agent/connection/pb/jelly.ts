// Jelly, PB's object serialization (twisted/spread/jelly.py), limited to what Buildbot exchanges: None,
// booleans, numbers, text, bytes, lists, tuples, dicts, shared references, remote/local object references
// and copyable failures. Anything else is refused with E_JELLY, as the master's globalSecurity would.

import { AgentError } from '../../errors.js';
import { PyFloat, PyTuple } from '../../py/values.js';
import { MAX_MESSAGE_VALUES } from '../limits.js';
import { atom, type Sexp } from './banana.js';

function jellyError(message: string): AgentError {
  return new AgentError('E_JELLY', message);
}

const A = {
  None: atom('None'),
  boolean: atom('boolean'),
  true: atom('true'),
  false: atom('false'),
  unicode: atom('unicode'),
  list: atom('list'),
  tuple: atom('tuple'),
  dictionary: atom('dictionary'),
  reference: atom('reference'),
  dereference: atom('dereference'),
  remote: atom('remote'),
  local: atom('local'),
  unpersistable: atom('unpersistable'),
};

/** How jelly reaches the broker: object references are per connection. */
export interface JellyPeer {
  /** `[remote, luid]` arrived: a proxy for the peer's object `luid`. */
  remoteReference(luid: number): unknown;
  /** `[local, luid]` arrived: one of our own objects, sent back by the peer. */
  localObject(luid: number): unknown;
}

/** What an object that serializes itself (Twisted's Jellyable) gets: the recursive encoder and its broker. */
export interface Jellier {
  jelly(value: unknown): Sexp;
  /** The broker serializing (Twisted's jellier.invoker); undefined outside a connection. */
  readonly invoker: unknown;
}

/** An object that chooses its own wire form: references (`remote`/`local`) and copyables. */
export abstract class Jellyable {
  abstract jellyFor(jellier: Jellier): Sexp;
}

/** A class instance the peer sent as `[class name, state]` (a Copyable we have no special type for). */
export class JellyInstance {
  constructor(
    readonly className: string,
    readonly state: unknown,
  ) {}
}

/** `[unpersistable, reason]`: the peer could not serialize something. */
export class Unpersistable {
  constructor(readonly reason: string) {}
}

export const COPYABLE_FAILURE = 'twisted.spread.pb.CopyableFailure';

/** The state of a twisted.spread.pb.CopyableFailure, as getStateToCopy writes it. */
export interface FailureState {
  /** Qualified exception class, e.g. 'builtins.NotADirectoryError' (sent as raw bytes, as Twisted does). */
  type: string;
  /** str(exception). */
  value: string;
  /** Formatted traceback, or 'Traceback unavailable\n'. */
  traceback: string;
  /** The exception class's MRO, qualified names, ending in 'builtins.object'. */
  parents: string[];
  unsafeTracebacks: boolean;
  /** Present (1) when the failure went through Failure.cleanFailure (an asynchronous failure). */
  pickled?: boolean;
}

// Twisted's failure.count: a process-wide counter of Failure instances, only informative.
let failureCount = 0;

/** A failure to send (error answers, `complete`): jellies as `["twisted.spread.pb.CopyableFailure", state]`. */
export class CopyableFailure extends Jellyable implements FailureState {
  readonly type: string;
  readonly value: string;
  readonly traceback: string;
  readonly parents: string[];
  readonly unsafeTracebacks: boolean;
  readonly pickled: boolean;
  readonly count: number;

  constructor(s: FailureState) {
    super();
    this.type = s.type;
    this.value = s.value;
    this.traceback = s.traceback;
    this.parents = s.parents;
    this.unsafeTracebacks = s.unsafeTracebacks;
    this.pickled = s.pickled ?? false;
    this.count = ++failureCount;
  }

  jellyFor(j: Jellier): Sexp {
    // key order and value types exactly as captured from Twisted 22.4 (transcripts pb-02 "bad-workdir", pb-04)
    const state: [string, unknown][] = [
      ['count', this.count],
      ['type', Buffer.from(this.type, 'utf8')],
      ['value', this.value],
      ['captureVars', false],
      ['frames', []],
      ['stack', []],
      ['tb', null],
      ['parents', this.parents],
    ];
    if (this.pickled) state.push(['pickled', 1]);
    state.push(['unsafeTracebacks', this.unsafeTracebacks], ['traceback', this.traceback]);
    return [atom(COPYABLE_FAILURE), [A.dictionary, ...state.map(([k, v]) => [j.jelly(k), j.jelly(v)])]];
  }
}

/** A failure the peer sent (Twisted's CopiedFailure): what went wrong over there. */
export class CopiedFailure {
  constructor(
    /** Qualified exception class name, e.g. 'twisted.cred.error.UnauthorizedLogin'. */
    readonly type: string,
    readonly value: string,
    readonly traceback: string,
    readonly parents: readonly string[],
    readonly state: Record<string, unknown>,
  ) {}

  /** Whether the failure is (a subclass of) the qualified exception class `name`. */
  check(name: string): boolean {
    return this.type === name || this.parents.includes(name);
  }
}

function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v === undefined || v === null) return '';
  return String(v);
}

function copiedFailure(state: unknown): CopiedFailure {
  const s = (isPlainObject(state) ? state : {}) as Record<string, unknown>;
  const parents = Array.isArray(s['parents']) ? s['parents'].map(text) : [];
  return new CopiedFailure(text(s['type']), text(s['value']), text(s['traceback']), parents, s);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Sets a key on a plain object, also when the key is "__proto__" (which `o[k] = v` would not store). */
function setKey(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/**
 * Serializes a value. `textBytes` makes the UTF-8 bytes of text (the broker writes them into a reused slab,
 * slabs.ts); it must write what Buffer.from(text, 'utf8') would. Throws E_JELLY for what has no jelly form (functions, symbols, cycles, class instances).
 * A value repeated inside is sent twice rather than as reference/dereference (equal on arrival; we never send
 * shared mutable structures).
 */
export function jelly(value: unknown, invoker?: unknown, textBytes: (text: string) => Buffer = utf8): Sexp {
  const active = new Set<object>();
  const j: Jellier = {
    invoker,
    jelly(v: unknown): Sexp {
      if (v === null || v === undefined) return [A.None];
      switch (typeof v) {
        case 'boolean':
          return [A.boolean, v ? A.true : A.false];
        case 'number':
        case 'bigint':
          return v;
        case 'string':
          // Buffer.from writes U+FFFD for lone surrogates, so the master's strict UTF-8 decode never fails
          return [A.unicode, textBytes(v)];
        case 'object':
          break;
        default:
          throw jellyError(`cannot jelly a ${typeof v}`);
      }
      const o = v as object;
      if (o instanceof PyFloat) return o;
      if (Buffer.isBuffer(o)) return o;
      if (o instanceof Uint8Array) return Buffer.from(o.buffer, o.byteOffset, o.byteLength);
      if (o instanceof Jellyable) return o.jellyFor(j);
      if (active.has(o)) throw jellyError('cannot jelly a value that contains itself');
      active.add(o);
      try {
        if (Array.isArray(o)) return [A.list, ...o.map((e: unknown) => j.jelly(e))];
        if (o instanceof PyTuple) return [A.tuple, ...o.items.map((e) => j.jelly(e))];
        if (o instanceof Map) return [A.dictionary, ...[...o].map(([k, e]: [unknown, unknown]) => [j.jelly(k), j.jelly(e)])];
        if (o instanceof JellyInstance) return [atom(o.className), j.jelly(o.state)];
        if (isPlainObject(o)) return [A.dictionary, ...Object.entries(o).map(([k, e]) => [j.jelly(k), j.jelly(e)])];
      } finally {
        active.delete(o);
      }
      throw jellyError(`cannot jelly an object of type ${o.constructor?.name ?? 'unknown'}`);
    },
  };
  return j.jelly(value);
}

export interface UnjellyOptions {
  /** The most values the result may have, shared references counted at every use (default MAX_MESSAGE_VALUES). */
  maxValues?: number;
}

/** Tags whose Twisted meaning we know but do not accept (classes, functions, modules...). */
const REFUSED = new Set(['class', 'function', 'module', 'instance', 'method', 'persistent', 'copy', 'cache', 'cached', 'lcache']);

/**
 * Deserializes an expression. Byte strings stay Buffers; text becomes string; None null; tuples PyTuple; dicts
 * plain objects when every key is text (byte keys are decoded as UTF-8, as buildbot_worker.pbutil.decode
 * does for Python 2 masters), a Map otherwise. Shared references stay shared; cycles are refused. Throws E_JELLY
 * for unknown or malformed types and for results over `opts.maxValues`.
 */
export function unjelly(sexp: Sexp, peer?: JellyPeer, opts: UnjellyOptions = {}): unknown {
  return new Unjellier(peer, opts.maxValues ?? MAX_MESSAGE_VALUES).un(sexp);
}

/** Called with a container as soon as it exists, before its contents are read (so that references can point to it). */
type OnCreate = ((v: unknown) => void) | undefined;

/** One unjelly run: the shared values seen so far and the count of values against the limit. */
class Unjellier {
  /** Shared values by reference id; `size` (values in it, references expanded) is known once it is complete. */
  private readonly refs = new Map<number, { value: unknown; size: number | undefined }>();
  // Values of the result with every use of a shared value counted in full: what a copy of the result (as the
  // commands' argument handling makes) would hold. A chain of references that each use the previous one twice
  // is small on the wire and exponential when expanded.
  private values = 0;

  constructor(
    private readonly peer: JellyPeer | undefined,
    private readonly maxValues: number,
  ) {}

  private grow(n: number): void {
    this.values += n;
    if (this.values > this.maxValues) throw jellyError(`jelly message too large: more than ${this.maxValues} values once shared references are expanded`);
  }

  un(x: Sexp, onCreate?: OnCreate): unknown {
    this.grow(1);
    const done = (v: unknown): unknown => {
      onCreate?.(v);
      return v;
    };
    if (!Array.isArray(x)) return done(x instanceof PyFloat ? x.value : x);
    const tagSexp = x[0];
    if (!Buffer.isBuffer(tagSexp)) throw jellyError(`malformed jelly: a list whose type tag is ${tagSexp === undefined ? 'missing' : 'not a string'}`);
    const tag = tagSexp.toString('utf8');
    const rest = x.slice(1);
    switch (tag) {
      case 'None':
        return done(null);
      case 'boolean': {
        const b = rest[0];
        if (!Buffer.isBuffer(b) || (b.toString('latin1') !== 'true' && b.toString('latin1') !== 'false')) throw jellyError('malformed jelly boolean');
        return done(b.toString('latin1') === 'true');
      }
      case 'unicode': {
        const b = rest[0];
        if (!Buffer.isBuffer(b)) throw jellyError('malformed jelly unicode: no byte string');
        return done(b.toString('utf8'));
      }
      case 'list': {
        const l: unknown[] = [];
        onCreate?.(l);
        for (const e of rest) l.push(this.un(e));
        return l;
      }
      case 'tuple': {
        const items: unknown[] = [];
        const t = new PyTuple(items);
        onCreate?.(t);
        for (const e of rest) items.push(this.un(e));
        return t;
      }
      case 'dictionary':
        return this.dict(rest, onCreate);
      case 'reference':
        return this.reference(rest, onCreate);
      case 'dereference':
        return done(this.dereference(rest[0]));
      case 'remote':
      case 'local':
        return done(this.objectReference(tag, rest[0]));
      case 'unpersistable':
        return done(new Unpersistable(text(Buffer.isBuffer(rest[0]) ? rest[0] : this.un(rest[0] ?? [A.None]))));
      default: {
        if (REFUSED.has(tag) || !tag.includes('.') || rest.length !== 1) throw jellyError(`unsupported jelly type '${tag.slice(0, 100)}'`);
        // a Copyable: [fully.qualified.ClassName, state]
        const state = this.un(rest[0]!);
        return done(tag === COPYABLE_FAILURE ? copiedFailure(state) : new JellyInstance(tag, state));
      }
    }
  }

  /** `[reference, id, expr]`: a value that later `[dereference, id]`s share. */
  private reference(rest: Sexp[], onCreate: OnCreate): unknown {
    const [id, expr] = rest;
    if (typeof id !== 'number' || expr === undefined) throw jellyError('malformed jelly reference');
    // registered before its contents are read, so that a dereference inside (a cycle) is recognised
    const before = this.values;
    let entry: { value: unknown; size: number | undefined } | undefined;
    const v = this.un(expr, (created) => {
      if (this.refs.has(id)) throw jellyError(`jelly reference ${id} defined twice`);
      entry = { value: created, size: undefined };
      this.refs.set(id, entry);
      onCreate?.(created);
    });
    if (entry) entry.size = this.values - before;
    return v;
  }

  private dereference(id: Sexp | undefined): unknown {
    const entry = typeof id === 'number' ? this.refs.get(id) : undefined;
    if (!entry) throw jellyError(`jelly dereference to unknown reference ${String(id)}`);
    // Twisted can send a structure that contains itself; Buildbot never does, and every consumer of
    // arguments (copies, logs, commands) would loop on one
    if (entry.size === undefined) throw jellyError(`jelly reference ${String(id)} contains itself (a cycle), which is not accepted`);
    this.grow(entry.size);
    return entry.value;
  }

  /** `[remote, luid]` (the peer's object) or `[local, luid]` (one of ours, sent back). */
  private objectReference(tag: 'remote' | 'local', luid: Sexp | undefined): unknown {
    if (typeof luid !== 'number') throw jellyError(`malformed jelly ${tag}: object id is not an integer`);
    if (!this.peer) throw jellyError(`jelly ${tag} reference outside a broker`);
    return tag === 'remote' ? this.peer.remoteReference(luid) : this.peer.localObject(luid);
  }

  private dict(pairs: Sexp[], onCreate: OnCreate): unknown {
    for (const p of pairs) if (!Array.isArray(p) || p.length !== 2) throw jellyError('malformed jelly dictionary: an entry is not a [key, value] pair');
    const entries = pairs as [Sexp, Sexp][];
    if (entries.every(([k]) => isTextKey(k))) {
      const o: Record<string, unknown> = {};
      onCreate?.(o);
      for (const [k, v] of entries) setKey(o, text(this.un(k)), this.un(v));
      return o;
    }
    const m = new Map<unknown, unknown>();
    onCreate?.(m);
    for (const [k, v] of entries) m.set(this.un(k), this.un(v));
    return m;
  }
}

function isTextKey(k: Sexp): boolean {
  return Buffer.isBuffer(k) || (Array.isArray(k) && Buffer.isBuffer(k[0]) && k[0].toString('latin1') === 'unicode');
}
