// One worker the agent hosts: its Worker (command host, builder directories), its output set-up (spool,
// redaction set), its master connection kept up by a ConnectionManager, and its shutdown.stamp watcher. An agent
// runs one per configured worker; what they share (processes, budget, signals) is passed in.

import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Platform } from '../platforms/types.js';
import { COMMAND_TABLE } from './commands/index.js';
import type { ArtifactCacheProvider } from './commands/types.js';
import type { WorkerConfig } from './config/schema.js';
import { cleartextWarning } from './connection/cleartext.js';
import { masterEndpoints, type ListedMaster } from './connection/endpoint.js';
import { IdleGate, probeIntervalMs, type MasterTarget } from './connection/failover.js';
import { abortableSleep, ConnectionManager, type ConnectionStats } from './connection/manager.js';
import { describeProxy, parseProxyConnectionString, probeEndpoint, type ProxyEndpoint } from './connection/proxy.js';
import { AgentError, errorMessage } from './errors.js';
import { makedirs } from './fs/makedirs.js';
import type { Logger } from './log.js';
import type { TokenBucket } from './output/budget.js';
import { outputSetupFromConfig } from './output/setup.js';
import type { ProcessRegistry } from './process/tracking.js';
import type { Protocol, ProtocolEndpoint, Session } from './connection/protocol.js';
import { gracefulShutdown, watchShutdownFile } from './shutdown.js';
import { sweepTempFiles } from './transfer/temp-journal.js';
import { VERSION } from './version.js';
import { collectWorkerInfo } from './worker/info.js';
import type { CommandHostStats } from './worker/stats.js';
import { Worker } from './worker/worker.js';

/** The master's handshake must finish within this time. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** What all workers of an agent share. */
export interface SharedParts {
  platform: Platform;
  /** Every running command's processes, so that the agent's exit kills them all. */
  processes: ProcessRegistry;
  /** The agent's one artifact cache (fetch), shared by all its workers. */
  artifacts?: ArtifactCacheProvider;
  /** The agent's output budget (all steps of all workers together). */
  agentBucket: TokenBucket | null;
  /** The environment builds start from. */
  environ: Record<string, string>;
  /** The protocols by the name the config gives. */
  protocols: Record<WorkerConfig['protocol'], () => Promise<Protocol>>;
  /** Something happened (connected, a command ended): the idle compactor counts from here. */
  onActivity: () => void;
  /** A command started (the idle compactor's garbage guard). */
  onCommandStart?: () => void;
}

/** What `bbagent status` and the metrics see of one worker: its connection and its commands (snapshots). */
export interface WorkerStatus {
  name: string;
  basedir: string;
  connection: ConnectionStats;
  commands: CommandHostStats;
}

/** Why a worker stopped: the agent asked it ('stopped'), the master did ('shutdown'), or its master gave up ('gave-up'). */
export type WorkerEnd = 'stopped' | 'shutdown' | 'gave-up';

export class HostedWorker {
  readonly worker: Worker;
  readonly basedir: string;
  /** Resolves once the worker stopped, and how. */
  readonly ended: Promise<WorkerEnd>;
  private readonly manager: ConnectionManager;
  private session: Session | undefined;
  /** The protocol of the attached master (each master of `masters` may speak its own). */
  private sessionProtocol: WorkerConfig['protocol'];
  private stopWatching: () => void = () => {};
  private resolveEnded!: (how: WorkerEnd) => void;
  private running = false;

  /** Builds the worker (throws E_CONFIG on an unreadable redactFile or CA file); nothing connects before start(). */
  constructor(
    readonly config: WorkerConfig,
    private readonly shared: SharedParts,
    readonly logger: Logger,
  ) {
    this.ended = new Promise((r) => (this.resolveEnded = r));
    this.sessionProtocol = config.protocol;
    const basedir = (this.basedir = path.resolve(config.basedir));
    ensureBasedir(basedir, logger);
    sweepTempFiles(basedir, logger); // temp files of downloads a kill -9 interrupted
    const output = outputSetupFromConfig(config, basedir, shared.agentBucket, logger);
    const { platform, environ, processes, artifacts } = shared;
    const version = `bbagent ${VERSION}`;
    this.worker = new Worker({
      output,
      env: {
        basedir,
        platform,
        logger,
        environ,
        now: () => Date.now() / 1000,
        processes,
        confineToBasedir: config.confineToBasedir,
        ...(artifacts ? { artifacts } : {}),
      },
      commands: COMMAND_TABLE,
      logger,
      collectInfo: () =>
        collectWorkerInfo({
          basedir,
          platform,
          commands: COMMAND_TABLE,
          environ,
          numcpus: config.numcpus,
          version,
          deleteLeftoverDirs: config.deleteLeftoverDirs,
          logger,
        }),
      onShutdownRequest: () => this.end('shutdown'),
      deleteLeftoverDirs: config.deleteLeftoverDirs,
      version,
    });
    this.manager = this.connectionManager();
  }

  private connectionManager(): ConnectionManager {
    const { config, logger } = this;
    const proxy = config.proxyConnectionString ? parseProxyConnectionString(config.proxyConnectionString) : undefined;
    const masters = masterEndpoints(config);
    for (const m of masters) {
      const cleartext = cleartextWarning(m);
      if (cleartext) logger.warn(cleartext);
    }
    if (proxy && masters.some((m) => !m.tls))
      logger.warn(`the masters are reached through the ${describeProxy(proxy)} without TLS: the proxy sees the worker password and every command`);
    if (config.confineToBasedir) logger.info(`confineToBasedir: file and transfer paths and shell workdirs must lead into ${this.basedir}`);
    if (masters.length > 1)
      logger.info(`masters in order of preference: ${masters.map((m) => `${m.host}:${m.port}`).join(', ')} (failover grace ${config.failoverGrace} s)`);
    const idle = new IdleGate(this.worker.host, () => performance.now(), abortableSleep);
    this.worker.host.onStart = this.shared.onCommandStart;
    this.worker.host.onIdle = () => {
      this.shared.onActivity();
      idle.commandsEnded();
    };
    return new ConnectionManager({
      masters: masters.map((m) => this.target(m, proxy)),
      failoverGraceMs: config.failoverGrace * 1000,
      probeIntervalMs: probeIntervalMs(config.failoverGrace * 1000),
      idle,
      maxdelayS: config.maxdelay,
      maxretries: config.maxretries,
      logger,
    });
  }

  private target(m: ListedMaster, proxy: ProxyEndpoint | undefined): MasterTarget {
    const { config } = this;
    const endpoint: ProtocolEndpoint = {
      host: m.host,
      port: m.port,
      tls: m.tls,
      ca: m.ca,
      proxy,
      name: config.name,
      password: config.password,
      keepaliveS: config.keepalive,
      keepaliveTimeoutS: config.keepaliveTimeout,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      deflate: config.deflate,
      leanUpdates: config.leanUpdates,
    };
    const via = proxy ? `, via ${describeProxy(proxy)}` : '';
    return {
      describe: `${m.host}:${m.port} (${m.protocol}${m.tls ? ', TLS' : ''}${via})`,
      address: `${m.host}:${m.port}`,
      protocol: m.protocol,
      connect: () => this.connect(m.protocol, endpoint),
      probe: () => probeEndpoint(m, proxy, HANDSHAKE_TIMEOUT_MS),
    };
  }

  private async connect(name: WorkerConfig['protocol'], endpoint: ProtocolEndpoint): Promise<Session> {
    const protocol = await this.shared.protocols[name]();
    const s = await protocol.connect(endpoint, this.worker, this.logger);
    this.session = s;
    this.sessionProtocol = name;
    this.shared.onActivity();
    void s.closed.then(() => {
      if (this.session === s) this.session = undefined;
    });
    return s;
  }

  /** Watches shutdown.stamp (allowShutdown 'file') and keeps the worker connected until it ends. */
  start(): void {
    this.running = true;
    if (this.config.allowShutdown === 'file') this.stopWatching = watchShutdownFile(this.basedir, (why) => this.requestShutdown(why), this.logger);
    void this.manager.run().then((how) => this.end(how === 'gave-up' ? 'gave-up' : 'stopped'));
  }

  /** Worker-initiated graceful shutdown: the master stops the worker once its builds are done. */
  requestShutdown(why: string): void {
    gracefulShutdown(this.session, this.sessionProtocol, why, () => this.end('shutdown'), this.logger);
  }

  /**
   * The first stop stage: asks the master to start no new build here (over PB, the worker's graceful shutdown:
   * the master shuts the worker down once its builds are done). msgpack has no such request: nothing is sent.
   */
  askNoNewBuilds(): void {
    if (!this.session?.requestShutdown) return;
    this.logger.info('asking the master to start no new build on this worker (graceful shutdown)');
    this.session.requestShutdown().catch((err: unknown) => this.logger.warn(`callRemote("shutdown") failed: ${String(err)}`));
  }

  /** Stops reconnecting and closes the connection; running commands are left to the caller (abandonAll). */
  detach(): void {
    this.manager.stop();
    this.stopWatching();
  }

  private end(how: WorkerEnd): void {
    if (!this.running) return;
    this.running = false;
    this.detach();
    this.resolveEnded(how);
  }

  /** A read-only snapshot for status and metrics. */
  status(): WorkerStatus {
    return { name: this.config.name, basedir: this.basedir, connection: this.manager.stats(), commands: this.worker.host.stats() };
  }

  /** The agent stops this worker. */
  stop(): void {
    this.end('stopped');
  }
}

/**
 * A worker's base directory is created when missing (an entry of `workers` names one by hand; create-worker
 * made the top level's): a msgpack master lists it before anything else, and refuses a worker without it.
 */
function ensureBasedir(basedir: string, logger: Logger): void {
  if (existsSync(basedir)) return;
  try {
    makedirs(basedir, { existOk: true });
    logger.info(`created the base directory ${basedir}`);
  } catch (err) {
    throw new AgentError('E_CONFIG', `basedir: cannot create ${basedir}: ${errorMessage(err)}`);
  }
}

/** A logger that puts `[label] ` before every line of a worker's messages (several workers share one log). */
export function labelledLogger(logger: Logger, label: string): Logger {
  const tag = (m: string): string =>
    m
      .split('\n')
      .map((l) => `[${label}] ${l}`)
      .join('\n');
  return {
    info: (m) => logger.info(tag(m)),
    warn: (m) => logger.warn(tag(m)),
    error: (m) => logger.error(tag(m)),
    debug: (m) => logger.debug(tag(m)),
  };
}
