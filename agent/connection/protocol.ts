// What a protocol is to the rest of the agent: a way to open one session between a master and a Worker. Each
// protocol lives in one folder here (msgpack/, pb/) and exports a `protocol`; the composition root's table
// names them. The connection manager (reconnect policy) and the protocols (wire) both depend on this file,
// never on each other.

import type { Logger } from '../log.js';
import type { Worker } from '../worker/worker.js';
import type { ProxyEndpoint } from './proxy.js';

export type SessionEndCause = 'master' | 'liveness' | 'local';

export interface SessionEnd {
  cause: SessionEndCause;
  /** Why, for the log line. */
  reason: string;
}

export interface LiveSession {
  /** Resolves when the connection ended, for whatever reason. */
  readonly closed: Promise<SessionEnd>;
  close(): void;
}

/** One attached session. */
export interface Session extends LiveSession {
  /**
   * Worker-initiated graceful shutdown: asks the master to stop this worker once its builds are done.
   * Absent: the protocol has none (msgpack), and the worker shuts down at once.
   */
  requestShutdown?(): Promise<void>;
}

/** Where the master is and how to talk to it: the connection settings every protocol reads what it needs from. */
export interface ProtocolEndpoint {
  host: string;
  port: number;
  /** TLS to the master (PB over TLS, wss:// for msgpack). */
  tls: boolean;
  /** Extra trusted CA certificates (PEM) replacing the system roots, for masters with a self-signed CA. */
  ca: Buffer[] | undefined;
  /** Reach the master through this HTTP CONNECT proxy (proxy.ts), or directly. */
  proxy?: ProxyEndpoint | undefined;
  /** Worker name and password as configured on the master. */
  name: string;
  password: string;
  /** Seconds between keepalives; 0 disables them (and the liveness check). */
  keepaliveS: number;
  /** Seconds a master may stay silent after a keepalive; null: automatic (liveness.ts). */
  keepaliveTimeoutS: number | null;
  /** Give up on an unanswered handshake or login after this long. */
  handshakeTimeoutMs: number;
  /** msgpack: offer permessage-deflate. */
  deflate: boolean;
  /** msgpack: omit per-line offsets and times from updates. */
  leanUpdates: boolean;
}

export interface Protocol {
  /** Opens and attaches one session; rejects with an AgentError naming what went wrong. */
  connect(endpoint: ProtocolEndpoint, worker: Worker, logger: Logger): Promise<Session>;
}
