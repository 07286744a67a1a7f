// PB's object references (twisted/spread/flavors.py): our objects the peer may call (Referenceable) and the table
// that counts the peer's references to them, and proxies for the peer's objects (RemoteReference).

import { AgentError } from '../../errors.js';
import { atom, type Sexp } from './banana.js';
import { Jellyable, type Jellier } from './jelly.js';

/** What references need of their connection; the Broker is one (this file does not import it, to stay below it). */
export interface ReferenceBroker {
  callRemote(ref: RemoteReference, method: string, args: unknown[], kwargs: Record<string, unknown>): Promise<unknown>;
  sendDecref(luid: number): void;
  registerReference(obj: Referenceable): number;
}

/** Jelly's invoker is a broker when it can register our objects (outside a connection it is undefined). */
function isBroker(invoker: unknown): invoker is ReferenceBroker {
  return typeof invoker === 'object' && invoker !== null && typeof (invoker as Partial<ReferenceBroker>).registerReference === 'function';
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
    if (!isBroker(j.invoker)) throw new AgentError('E_JELLY', `${this.label} can only be sent over a PB connection`);
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
    readonly broker: ReferenceBroker,
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

/** Our objects the peer holds references to, by luid, with how many references it holds (Broker.localObjects). */
export class LocalObjects {
  private lastId = 0;
  private readonly entries = new Map<number, { object: Referenceable; refcount: number }>();
  private readonly luids = new Map<Referenceable, number>();

  get size(): number {
    return this.entries.size;
  }

  get(luid: number): Referenceable | undefined {
    return this.entries.get(luid)?.object;
  }

  /** Puts an object in the table (or counts one more reference to it); returns its luid. */
  register(obj: Referenceable): number {
    const known = this.luids.get(obj);
    if (known !== undefined) {
      this.entries.get(known)!.refcount++;
      return known;
    }
    const luid = ++this.lastId;
    this.entries.set(luid, { object: obj, refcount: 1 });
    this.luids.set(obj, luid);
    return luid;
  }

  /** The peer dropped one reference; the object leaves the table with the last one. False: no such object. */
  decref(luid: number): boolean {
    const entry = this.entries.get(luid);
    if (!entry) return false;
    entry.refcount--;
    if (entry.refcount <= 0) {
      this.entries.delete(luid);
      this.luids.delete(entry.object);
    }
    return true;
  }

  clear(): void {
    this.entries.clear();
    this.luids.clear();
  }
}
