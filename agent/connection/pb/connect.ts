// Opens one PB session with a Buildbot master: TCP (or TLS), Banana dialect, PB version, cred login with the
// Worker as the mind; then application keepalives, whose answers prove the link alive, until the
// connection ends. Reconnecting is the connection manager's business.

import net from 'node:net';
import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Worker } from '../../worker/worker.js';
import { PRELOGIN_LIMITS, PRELOGIN_MAX_TOTAL_BYTES, MESSAGE_LIMITS } from '../limits.js';
import { Liveness, livenessTimeoutS, type LivenessTimers } from '../liveness.js';
import type { LiveSession, SessionEnd, SessionEndCause } from '../protocol.js';
import { ConnectionLostError } from '../errors.js';
import { Broker } from './broker.js';
import { ackNudger, type AckNudger } from './ack-nudge.js';
import { PbRemoteError } from './errors.js';
import type { Referenceable, RemoteReference } from './references.js';
import { describePbError } from './failures.js';
import { PbWorker } from './worker-objects.js';
import { pbLogin } from './login.js';
import { openTunnel, type ProxyEndpoint } from '../proxy.js';
import { SlabPool } from '../slabs.js';

export interface PbEndpoint {
  host: string;
  port: number;
  name: string;
  password: string;
  /**
   * Seconds between application keepalives (avatar.keepalive()); 0 disables them. A master that sends nothing
   * within livenessTimeoutS(keepaliveS) of one is taken for dead and the connection dropped.
   */
  keepaliveS: number;
  /** The configured keepaliveTimeout (seconds), or null: automatic (livenessTimeoutS). */
  keepaliveTimeoutS?: number | null;
  /** Clock for the liveness check (tests). */
  livenessTimers?: LivenessTimers;
  /** Give up when the login has not been answered after this long. */
  handshakeTimeoutMs: number;
  /** Connect with TLS (the master's `useTls`); `ca` (PEM, one or several, as MasterEndpoint.ca) replaces the system roots. */
  tls?: { ca?: Buffer | Buffer[]; rejectUnauthorized?: boolean };
  /** Reach the master through this HTTP CONNECT proxy (TLS, if any, on top of the tunnel). */
  proxy?: ProxyEndpoint;
}

export interface PbSession extends LiveSession {
  /** Resolves with why the connection ended and who ended it. */
  readonly closed: Promise<SessionEnd>;
  /** Asks the master for a graceful shutdown (avatar.shutdown()): it calls the Worker's shutdown once idle. */
  requestShutdown(): Promise<void>;
}

/** After close(), how long the socket may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2000;

function describeMaster(e: PbEndpoint): string {
  return `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

/** How a session learns that bytes arrived and tells the connection why it is ending. */
interface SessionLink {
  /** Bytes arrived from the master (set once the session exists). */
  onActivity: () => void;
  /** Ends the connection now, saying why. */
  drop: (cause: SessionEndCause, reason: string) => void;
  /** Marks an orderly close by us (the socket is ended, not destroyed). */
  closing: () => void;
}

class Session implements PbSession {
  readonly closed: Promise<SessionEnd>;
  private keepaliveInFlight = false;
  private readonly liveness: Liveness;

  constructor(
    private readonly socket: net.Socket,
    private readonly avatar: RemoteReference,
    closed: Promise<SessionEnd>,
    private readonly logger: Logger,
    private readonly link: SessionLink,
    keepaliveS: number,
    keepaliveTimeoutS: number | null,
    timers: LivenessTimers | undefined,
  ) {
    this.closed = closed;
    this.liveness = new Liveness({
      keepaliveS,
      timeoutS: keepaliveTimeoutS,
      probe: () => this.keepalive(),
      onDead: (reason) => link.drop('liveness', reason),
      ...(timers ? { timers } : {}),
    });
    if (keepaliveS > 0) {
      logger.info(
        `sending application-level keepalives every ${keepaliveS} seconds (the master must answer within ${livenessTimeoutS(keepaliveS, keepaliveTimeoutS)} s)`,
      );
    }
    link.onActivity = () => this.liveness.activity();
    this.liveness.start();
    void closed.then(() => this.liveness.stop());
  }

  private keepalive(): void {
    // like BotFactory's keepalive lock: one at a time
    if (this.keepaliveInFlight) return;
    this.keepaliveInFlight = true;
    this.avatar.callRemote('keepalive').then(
      () => {
        this.keepaliveInFlight = false;
        this.logger.debug("master replied to keepalive, everything's fine");
      },
      (err: unknown) => {
        this.keepaliveInFlight = false;
        if (err instanceof ConnectionLostError) this.logger.info('connection already shut down when attempting keepalive');
        else this.logger.warn(`error sending keepalive: ${errorMessage(err)}`);
      },
    );
  }

  close(): void {
    this.liveness.stop();
    if (this.socket.destroyed) return;
    this.link.closing();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  async requestShutdown(): Promise<void> {
    this.logger.info('telling the master we want to shut down after any running builds are finished');
    try {
      await this.avatar.callRemote('shutdown');
    } catch (err) {
      if (err instanceof PbRemoteError && err.failure?.check('builtins.AttributeError')) {
        throw new AgentError('E_REMOTE', 'the master does not support worker-initiated shutdown');
      }
      throw err;
    }
  }
}

/**
 * TCP, or TLS when the master uses it (then `tls` is node:tls, loaded only for such masters); over `tunnel`
 * (a proxy's, paused: the master's first bytes wait in it) when given.
 */
function openSocket(e: PbEndpoint, tls: typeof import('node:tls') | undefined, tunnel: net.Socket | undefined, onData: (chunk: Buffer) => void): net.Socket {
  if (tunnel && e.tls) tunnel.resume(); // nothing waits: the master speaks TLS only after our hello
  const socket: net.Socket =
    e.tls && tls
      ? tls.connect({
          ...(tunnel ? { socket: tunnel } : { host: e.host, port: e.port }),
          ca: e.tls.ca,
          rejectUnauthorized: e.tls.rejectUnauthorized ?? true,
          servername: net.isIP(e.host) ? undefined : e.host,
        })
      : (tunnel ?? net.connect({ host: e.host, port: e.port, onread: { buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), callback: read } }));
  if (tunnel || e.tls) socket.on('data', onData);
  socket.setNoDelay(true);
  return socket;

  function read(bytes: number, buffer: Uint8Array): boolean {
    onData(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
    return true;
  }
}

/**
 * A plain TCP connection reads into one buffer of this size, filled again by each read (the decoder copies what
 * it keeps). With a fresh buffer per read, a 50 MiB download left its 64 KiB reads to the garbage collector, and
 * the process's malloc heap grew by 20 MiB before they were freed.
 */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Everything written in one turn of the event loop goes out in one segment, as Twisted writes a reactor
 * iteration's output at once: the master then reads a command's updates and complete together and answers them
 * together. Twisted does not set TCP_NODELAY, so answers spread over several segments can wait for our delayed
 * ACK (Nagle). Measured with the 3.7 master, 300 stat commands: 0.64-0.85 s corked, 0.69-1.08 s uncorked
 * (buildbot-worker: 0.70-0.87 s).
 */
function corkedWriter(socket: net.Socket): (data: Buffer, written?: () => void) => void {
  let corked = false;
  return (data, written) => {
    if (socket.destroyed || !socket.writable) {
      written?.();
      return;
    }
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    // the callback comes once the bytes are handed to the kernel, or with an error when the socket is destroyed
    if (written) socket.write(data, () => written());
    else socket.write(data);
  };
}

/** One connection attempt, from the socket to the accepted login (then a Session takes over) or a failure. */
class Connecting {
  private readonly master: string;
  private readonly socket: net.Socket;
  private readonly broker: Broker;
  private readonly link: SessionLink;
  private readonly timer: NodeJS.Timeout;
  private readonly nudger: AckNudger;
  /** The connection's slabs for the text of updates (slabs.ts). */
  private readonly slabs = new SlabPool();
  private settled = false;
  private socketError: Error | undefined;
  /** Set when we end the connection ourselves: why, for the connection manager. */
  private ending: SessionEnd | undefined;
  private preloginBytes = 0;
  private resolveClosed!: (v: SessionEnd) => void;
  private readonly closed = new Promise<SessionEnd>((r) => (this.resolveClosed = r));

  constructor(
    private readonly e: PbEndpoint,
    private readonly worker: Worker,
    private readonly logger: Logger,
    tls: typeof import('node:tls') | undefined,
    tunnel: net.Socket | undefined,
    private readonly resolve: (s: PbSession) => void,
    private readonly reject: (err: AgentError) => void,
  ) {
    this.master = describeMaster(e);
    // bytes are handed on only once the constructor is done (reads are events)
    const socket = (this.socket = openSocket(e, tls, tunnel, (chunk) => this.onData(chunk)));
    this.link = {
      onActivity: () => {},
      drop: (cause, reason) => {
        if (this.ending || socket.destroyed) return;
        this.ending = { cause, reason };
        logger.warn(`dropping the connection to master at ${this.master}: ${reason}`);
        socket.destroy();
      },
      closing: () => {
        this.ending ??= { cause: 'local', reason: 'closed by the worker' };
      },
    };
    // PB has no settings message: commands use buildbot-worker's built-in output defaults (spec §10)
    worker.resetSettings();
    const pbWorker = new PbWorker({ worker, logger, backlog: () => socket.writableLength });
    const send = corkedWriter(socket);
    const slabs = this.slabs;
    const nudger = (this.nudger = ackNudger({
      get awaitingAnswers() {
        return broker.awaitingAnswers;
      },
      sendNoop: () => broker.sendNoop(),
    }));
    const broker = (this.broker = new Broker({
      send: (data, written) => {
        nudger.wrote();
        send(data, written);
      },
      slabs,
      close: () => socket.destroy(),
      logger,
      describeError: describePbError,
      // before the login completed, only the small messages of a login are expected
      limits: PRELOGIN_LIMITS,
      // the login goes out right after our version, without waiting for the master's (as Twisted does)
      onReady: () => this.login(pbWorker.mind),
    }));
    this.timer = setTimeout(
      () =>
        this.fail(
          new AgentError('E_HANDSHAKE', `master at ${this.master} did not complete the PB login of worker '${e.name}' within ${e.handshakeTimeoutMs} ms`),
        ),
      e.handshakeTimeoutMs,
    );
    // the reads are handed to onData (openSocket); these too are attached before any event can come
    socket.on('error', (err: NodeJS.ErrnoException) => this.onError(err));
    socket.on('close', () => this.onClose());
    socket.resume(); // a proxy's tunnel comes paused
  }

  private login(mind: Referenceable): void {
    const { e, broker, socket, logger } = this;
    pbLogin(broker, mind, { name: e.name, password: e.password, master: this.master }).then(
      (avatar) => {
        if (this.settled) return;
        this.settled = true;
        clearTimeout(this.timer);
        broker.setMessageLimits(MESSAGE_LIMITS);
        try {
          socket.setKeepAlive(true);
        } catch {
          // TCP keepalive is only a help; application keepalives still run
        }
        logger.debug(`PB login of worker '${e.name}' at ${this.master} accepted`);
        this.resolve(new Session(socket, avatar, this.closed, logger, this.link, e.keepaliveS, e.keepaliveTimeoutS ?? null, e.livenessTimers));
      },
      (err: unknown) => this.fail(broker.fatalError ?? (err instanceof AgentError ? err : new AgentError('E_LOGIN', errorMessage(err)))),
    );
  }

  private fail(err: AgentError): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.socket.destroy();
    this.reject(err);
  }

  private onData(chunk: Buffer): void {
    this.link.onActivity();
    if (!this.settled) {
      this.preloginBytes += chunk.length;
      if (this.preloginBytes > PRELOGIN_MAX_TOTAL_BYTES) {
        this.fail(
          new AgentError(
            'E_PB_PROTOCOL',
            `master at ${this.master} sent more than ${PRELOGIN_MAX_TOTAL_BYTES} bytes before the login of worker '${this.e.name}' completed`,
          ),
        );
        return;
      }
    }
    this.broker.receive(chunk);
    // once logged in (the handshake has its own order of messages)
    if (this.settled) this.nudger.received();
  }

  private onError(err: NodeJS.ErrnoException): void {
    this.socketError = err;
    if (!this.settled) {
      const code = err.code === 'ECONNREFUSED' ? 'E_REFUSED' : 'E_CONNECT';
      this.fail(new AgentError(code, `cannot connect to master at ${this.master}: ${err.message}`));
    } else {
      this.logger.warn(`connection to master at ${this.master}: ${err.message}`);
    }
  }

  private onClose(): void {
    const { broker } = this;
    const fatal = broker.fatalError;
    const end: SessionEnd =
      this.ending ??
      (fatal ? { cause: 'local', reason: fatal.message } : { cause: 'master', reason: this.socketError?.message ?? 'the master closed the connection' });
    broker.connectionLost(end.reason);
    this.slabs.close();
    this.worker.connectionLost();
    this.resolveClosed(end);
    this.fail(
      broker.fatalError ?? new AgentError('E_CONNECTION_LOST', `master at ${this.master} closed the connection during the PB login of worker '${this.e.name}'`),
    );
  }
}

/**
 * Connects and logs in; resolves once the master answered `respond` (it has attached the worker by then).
 * Rejects with an AgentError: E_AUTH (wrong name or password), E_LOGIN (other refusal), E_REFUSED /
 * E_CONNECT (no connection), E_HANDSHAKE (no answer in time), E_BANANA / E_PB_PROTOCOL (the master spoke
 * nonsense), E_CONNECTION_LOST (it hung up).
 */
export async function connectPb(e: PbEndpoint, worker: Worker, logger: Logger): Promise<PbSession> {
  // node:tls only when the master uses TLS: loading it pages in about 4 MiB of OpenSSL's TLS code and tables.
  const tls = e.tls ? await import('node:tls') : undefined;
  const tunnel = e.proxy ? await openTunnel(e.proxy, { host: e.host, port: e.port, timeoutMs: e.handshakeTimeoutMs }) : undefined;
  return new Promise<PbSession>((resolve, reject) => {
    new Connecting(e, worker, logger, tls, tunnel, resolve, reject);
  });
}
