// The agent's run time: builds the worker (Worker), keeps it connected to the master, and stops in stages.
// SIGTERM/SIGINT: the first lets running commands finish, the second interrupts them, the third exits at once.

import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { HostOutputConfig } from './worker/command-host.js';
import { TokenBucket } from './output/budget.js';
import { currentPlatform } from '../platforms/index.js';
import type { Platform } from '../platforms/types.js';
import { COMMAND_TABLE } from './commands/index.js';
import type { AgentConfig } from './config/schema.js';
import { Worker } from './worker/worker.js';
import { cleartextWarning } from './connection/cleartext.js';
import { masterEndpoint } from './connection/endpoint.js';
import { ConnectionManager } from './connection/manager.js';
import type { Protocol, ProtocolEndpoint, Session } from './protocols/protocol.js';
import { AgentError } from './errors.js';
import { collectWorkerInfo } from './worker/info.js';
import type { Logger } from './log.js';
import { LoopMonitor } from './loop-monitor.js';
import { BASEDIR_LAYOUT } from './layout.js';
import { sweepTempFiles } from './transfer/temp-journal.js';
import { IdleCompactor } from './memory.js';
import { ProcessRegistry } from './process/tracking.js';
import { VERSION } from './version.js';

/**
 * After the first signal, how long the worker must stay without a running command before it disconnects:
 * the master starts a build's next step within milliseconds, and disconnecting mid-build makes it RETRY.
 */
export const DRAIN_QUIET_MS = 2000;
/** How long the second signal waits for interrupted commands to report before exiting anyway. */
export const INTERRUPT_GRACE_MS = 10_000;
/** The master's handshake must finish within this time. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** The protocols, by the name the config gives; each loads when first used (msgpack brings ws, http and zlib). */
const PROTOCOLS: Record<AgentConfig['protocol'], () => Promise<Protocol>> = {
  msgpack: async () => (await import('./protocols/msgpack/index.js')).protocol,
  pb: async () => (await import('./protocols/pb/index.js')).protocol,
};

export interface RunAgentOptions {
  logger: Logger;
  platform?: Platform;
  /** Install SIGTERM/SIGINT handlers (off in tests that drive stop() themselves). */
  handleSignals?: boolean;
}

export interface RunningAgent {
  /** Resolves with the exit code once the agent stopped. */
  readonly exited: Promise<number>;
  /** One shutdown stage, as one signal would. */
  stop(): void;
  readonly worker: Worker;
}

export function startAgent(config: AgentConfig, opts: RunAgentOptions): RunningAgent {
  const { logger } = opts;
  const platform = opts.platform ?? currentPlatform();
  const basedir = path.resolve(config.basedir);
  if (config.umask !== null) process.umask(config.umask);
  sweepTempFiles(basedir, logger); // temp files of downloads a kill -9 interrupted
  const environ = buildEnviron(process.env);

  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  let stage = 0;
  let finished = false;

  const output = outputConfig(config, basedir, logger);
  // every running command's processes, so that the agent's exit kills them all before it is gone
  const processes = new ProcessRegistry();
  const worker: Worker = new Worker({
    output,
    env: { basedir, platform, logger, environ, now: () => Date.now() / 1000, processes, confineToBasedir: config.confineToBasedir },
    commands: COMMAND_TABLE,
    logger,
    collectInfo: () =>
      collectWorkerInfo({
        basedir,
        platform,
        commands: COMMAND_TABLE,
        environ,
        numcpus: config.numcpus,
        version: `bbagent ${VERSION}`,
        deleteLeftoverDirs: config.deleteLeftoverDirs,
        logger,
      }),
    onShutdownRequest: () => finish(0),
    deleteLeftoverDirs: config.deleteLeftoverDirs,
    version: `bbagent ${VERSION}`,
  });

  // An idle worker gives back the heap that start-up and builds left behind.
  const compactor = new IdleCompactor({ busy: () => worker.host.runningCount > 0, activity: () => worker.host.startedCount, logger });
  worker.host.onIdle = () => compactor.poke();
  const loopMonitor = new LoopMonitor({ logger });
  loopMonitor.start();

  const endpoint = masterEndpoint(config);
  const cleartext = cleartextWarning(endpoint);
  if (cleartext) logger.warn(cleartext);
  if (config.confineToBasedir) logger.info(`confineToBasedir: file and transfer paths and shell workdirs must lead into ${basedir}`);
  const protocolEndpoint: ProtocolEndpoint = {
    host: endpoint.host,
    port: endpoint.port,
    tls: endpoint.tls,
    ca: endpoint.ca,
    name: config.name,
    password: config.password,
    keepaliveS: config.keepalive,
    keepaliveTimeoutS: config.keepaliveTimeout,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    deflate: config.deflate,
    leanUpdates: config.leanUpdates,
  };
  /** The attached session, if any (graceful shutdown asks the master through it). */
  let session: Session | undefined;
  const connect = async (): Promise<Session> => {
    const protocol = await PROTOCOLS[config.protocol]();
    const s = await protocol.connect(protocolEndpoint, worker, logger);
    session = s;
    compactor.poke();
    void s.closed.then(() => {
      if (session === s) session = undefined;
    });
    return s;
  };
  const manager = new ConnectionManager({
    describe: `${endpoint.host}:${endpoint.port} (${config.protocol}${endpoint.tls ? ', TLS' : ''})`,
    maxdelayS: config.maxdelay,
    maxretries: config.maxretries,
    logger,
    connect,
  });

  /** Worker-initiated graceful shutdown (allowShutdown): ask the master to stop us once builds are done. */
  const gracefulShutdown = (why: string): void => {
    logger.info(`Initiating shutdown because ${why}`);
    if (!session?.requestShutdown) {
      logger.info(session ? `${config.protocol} has no worker-initiated shutdown: shutting down NOW` : 'No active connection, shutting down NOW');
      finish(0);
      return;
    }
    logger.info('Telling the master we want to shutdown after any running builds are finished');
    session.requestShutdown().catch((err: unknown) => logger.warn(`callRemote("shutdown") failed: ${String(err)}`));
  };
  const stopWatchingShutdown = watchShutdownRequests(config, basedir, gracefulShutdown, logger);

  function finish(code: number): void {
    if (finished) return;
    finished = true;
    compactor.stop();
    loopMonitor.stop();
    manager.stop();
    stopWatchingShutdown();
    // SIGKILL every process of the running commands first (tree and tracking marker), and exit only once
    // that is done: a pending TERM grace or kill timer would die with the agent and leave them running
    const killed = processes.terminateAll();
    worker.host.abandonAll();
    void killed.then(() => {
      logger.info('bbagent stopped');
      resolveExit(code);
    });
  }

  void manager.run().then((how) => {
    if (how === 'gave-up') finish(1);
    else finish(0);
  });

  /** Resolves once no command has run for DRAIN_QUIET_MS. */
  const drain = async (): Promise<void> => {
    for (;;) {
      await worker.host.idle();
      const started = worker.host.startedCount;
      await new Promise((r) => setTimeout(r, DRAIN_QUIET_MS));
      if (worker.host.runningCount === 0 && worker.host.startedCount === started) return;
    }
  };

  const stop = (): void => {
    stage++;
    if (stage === 1) {
      logger.info(`shutting down: waiting for ${worker.host.runningCount} running command(s) to finish (signal again to interrupt them)`);
      void drain().then(() => finish(0));
    } else if (stage === 2) {
      logger.info('shutting down: interrupting running commands (signal again to exit at once)');
      worker.host.interruptAll('worker shutting down');
      const t = setTimeout(() => finish(0), INTERRUPT_GRACE_MS);
      t.unref();
    } else {
      logger.info('shutting down now');
      finish(0);
    }
  };

  if (opts.handleSignals !== false) {
    const onSignal = (sig: NodeJS.Signals): void => {
      logger.info(`received ${sig}`);
      stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    void exited.then(() => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    });
  }
  return { exited, stop, worker };
}

/** shutdown.stamp in BASEDIR, whose mtime change asks for a graceful shutdown (allowShutdown 'file'). */
export const SHUTDOWN_FILE = 'shutdown.stamp';
/** buildbot-worker checks the stamp every 10 s. */
const SHUTDOWN_FILE_POLL_MS = 10_000;

/** Watches for the operator's graceful-shutdown request (SIGHUP or a touched file); returns a stop function. */
function watchShutdownRequests(config: AgentConfig, basedir: string, onRequest: (why: string) => void, logger: Logger): () => void {
  if (config.allowShutdown === 'signal') {
    logger.info('Setting up SIGHUP handler to initiate shutdown');
    const handler = (): void => onRequest('we got SIGHUP');
    process.on('SIGHUP', handler);
    return () => process.off('SIGHUP', handler);
  }
  if (config.allowShutdown === 'file') {
    const file = path.join(basedir, SHUTDOWN_FILE);
    const mtime = (): number => {
      try {
        return statSync(file).mtimeMs;
      } catch {
        return 0;
      }
    };
    let seen = mtime();
    logger.info(`Watching ${file}'s mtime to initiate shutdown`);
    const timer = setInterval(() => {
      const m = mtime();
      if (m > seen) {
        seen = m;
        onRequest(`${file} was touched`);
      }
    }, SHUTDOWN_FILE_POLL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }
  return () => {};
}

/** Prefix of the agent's own variables (its config: BBAGENT_PASSWORD, BBAGENT_REDACT, ...). */
const AGENT_ENV_PREFIX = 'BBAGENT_';

/**
 * The environment every build starts from, and the `environ` the master is told about: the agent's, without
 * its own BBAGENT_* variables (the worker password, the values to redact, ...), which are not the builds'
 * business. (buildbot-worker passes its whole environment; its password is in buildbot.tac, not there.)
 */
export function buildEnviron(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    // Windows names are case-insensitive: Bbagent_Password is the same variable
    if (v !== undefined && !k.toUpperCase().startsWith(AGENT_ENV_PREFIX)) out[k] = v;
  }
  return out;
}

/**
 * The worker password is redacted from build output when it has at least this many characters. A shorter
 * one would turn ordinary text into <redacted> wherever it occurs (a password "pass" in "passed"), and is
 * too easy to guess to be worth hiding; 6 is the Buildkite agent's bound for redacted values (RedactLengthMin).
 */
export const MIN_REDACTED_PASSWORD_LENGTH = 6;

/** The output pipeline's agent-wide settings from the config (budgets, spool, redaction, collapsing). */
export function outputConfig(config: AgentConfig, basedir: string, logger?: Logger): HostOutputConfig {
  const redact = [...config.redact];
  if (config.password.length >= MIN_REDACTED_PASSWORD_LENGTH) redact.push(config.password);
  else if (config.password) {
    logger?.warn(
      `the worker password is shorter than ${MIN_REDACTED_PASSWORD_LENGTH} characters: it is not redacted from build output ` +
        `(it would mangle ordinary text) and is easy to guess; use a longer one`,
    );
  }
  if (config.redactFile) {
    try {
      redact.push(
        ...readFileSync(config.redactFile, 'utf8')
          .split('\n')
          .map((l) => l.replace(/\r$/, ''))
          .filter(Boolean),
      );
    } catch (err) {
      throw new AgentError('E_CONFIG', `redactFile: cannot read ${config.redactFile}: ${(err as Error).message}`);
    }
  }
  return {
    options: {
      limits: { rate: config.outputRate, burst: config.outputBurst, policy: config.outputPolicy },
      agentBucket: config.agentOutputRate === null ? null : new TokenBucket(config.agentOutputRate, config.agentOutputBurst, () => Date.now()),
      redact,
      collapseProgress: config.collapseProgress,
      batchBytes: config.outputBatchBytes,
    },
    spool: { dir: path.join(basedir, BASEDIR_LAYOUT.spool), limits: { maxBytes: config.spoolMaxBytes, maxAgeS: config.spoolMaxAgeS } },
  };
}

/** Runs the agent in the foreground; resolves with the process exit code. */
export function runAgent(config: AgentConfig, opts: RunAgentOptions): Promise<number> {
  logStart(config, opts.logger);
  return startAgent(config, opts).exited;
}

function logStart(config: AgentConfig, logger: Logger): void {
  logger.info(`Starting bbagent ${VERSION} -- worker '${config.name}' in ${config.basedir}, protocol ${config.protocol}`);
}
