// The agent's run time: builds its workers (one per configured worker, each with its own master connection and
// base directory), runs what they share (process registry, loop monitor, idle compactor, output budget,
// signals), and stops in stages (agent/shutdown.ts). It exits once every worker has stopped.

import path from 'node:path';
import { currentPlatform } from '../platforms/index.js';
import type { Platform } from '../platforms/types.js';
import { SharedArtifactCache } from './commands/fetch-cache.js';
import type { AgentConfig, WorkerConfig } from './config/schema.js';
import { HostedWorker, labelledLogger, type SharedParts, type WorkerEnd } from './hosted-worker.js';
import { AgentError, errorMessage } from './errors.js';
import { AGENT_OWNED_DIRS, BASEDIR_LAYOUT } from './layout.js';
import type { Logger } from './log.js';
import { LoopMonitor } from './loop-monitor.js';
import { IdleCompactor } from './memory.js';
import { agentOutputBucket } from './output/setup.js';
import { ProcessRegistry } from './process/tracking.js';
import type { Protocol } from './connection/protocol.js';
import { startObservers } from './control/index.js';
import { onStopSignals, ShutdownStages, watchShutdownSignal, type Drainable } from './shutdown.js';
import { VERSION } from './version.js';
import type { Worker } from './worker/worker.js';

/** The protocols, by the name the config gives; each loads when first used (msgpack brings ws, http and zlib). */
const PROTOCOLS: Record<AgentConfig['protocol'], () => Promise<Protocol>> = {
  msgpack: async () => (await import('./connection/msgpack/index.js')).protocol,
  pb: async () => (await import('./connection/pb/index.js')).protocol,
};

/** How long the artifact cache waits for a first attached worker before it opens anyway. */
const CACHE_OPEN_DELAY_MS = 2000;

/**
 * Opens the cache (its lock, the sweep of what a killed agent left) once a worker is attached (`open`), or after
 * CACHE_OPEN_DELAY_MS without one: the cache's code and its sweep stay off the path from start to the first
 * packet. A fetch before then opens it itself (SharedArtifactCache.get).
 */
function agentArtifactCache(config: AgentConfig, logger: Logger): { artifacts: SharedArtifactCache; cacheOpener: ReturnType<typeof deferredOpen> } {
  const artifacts = new SharedArtifactCache(artifactCacheRoot(config), logger, { fastPath: config.cacheFastPath });
  const misplaced = misplacedCacheDir(config, artifacts.root);
  if (misplaced !== undefined) logger.warn(misplaced);
  return { artifacts, cacheOpener: deferredOpen(artifacts) };
}

/** `openThen(f)`: a worker's activity callback (a connection attached, ...) that opens the cache first. */
function deferredOpen(artifacts: SharedArtifactCache): { openThen(f: () => void): () => void; cancel(): void } {
  let done = false;
  const open = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    artifacts.openAtStart();
  };
  const timer = setTimeout(open, CACHE_OPEN_DELAY_MS);
  timer.unref();
  return {
    openThen: (f) => () => {
      open();
      f();
    },
    cancel: () => {
      done = true;
      clearTimeout(timer);
    },
  };
}

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
  /** The workers, the top level's first. */
  readonly workers: readonly Worker[];
}

/** Every worker of the config, the top level first. */
export function workerConfigs(config: AgentConfig): WorkerConfig[] {
  return [config, ...config.workers];
}

export function startAgent(config: AgentConfig, opts: RunAgentOptions): RunningAgent {
  const { logger } = opts;
  if (config.umask !== null) process.umask(config.umask);
  const processes = new ProcessRegistry();
  let hosted: HostedWorker[] = [];
  const hosts = (): Drainable[] => hosted.map((h) => h.worker.host);
  // An idle agent gives back the heap that start-up and builds left behind.
  const compactor = new IdleCompactor({
    busy: () => hosts().some((h) => h.runningCount > 0),
    activity: () => hosts().reduce((n, h) => n + h.startedCount, 0),
    logger,
  });
  const { artifacts, cacheOpener } = agentArtifactCache(config, logger);
  const shared: SharedParts = {
    platform: opts.platform ?? currentPlatform(),
    processes,
    artifacts,
    agentBucket: agentOutputBucket(config),
    environ: buildEnviron(process.env),
    protocols: PROTOCOLS,
    onActivity: cacheOpener.openThen(() => compactor.poke()),
    onCommandStart: () => compactor.commandStarted(),
  };
  hosted = buildWorkers(workerConfigs(config), shared, logger);
  const loopMonitor = new LoopMonitor({ logger, onSample: (busyMs) => compactor.sample(busyMs) });
  loopMonitor.start();

  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  let finished = false;
  let gaveUp = false;
  const cleanups: (() => void)[] = [];
  const stages = new ShutdownStages({ hosts, finish, logger, noNewBuilds: () => hosted.forEach((h) => h.askNoNewBuilds()) });
  // bbagent status and stop --drain (the control socket), and the opt-in metrics
  const observers = startObservers({
    basedir: config.basedir,
    metricsAddr: config.metricsAddr,
    version: VERSION,
    workers: () => hosted,
    loop: loopMonitor,
    stages,
    logger,
  });
  cleanups.push(() => observers.close(), cacheOpener.cancel);

  function finish(): void {
    if (finished) return;
    finished = true;
    compactor.stop();
    loopMonitor.stop();
    for (const c of cleanups) c();
    for (const h of hosted) h.stop();
    // SIGKILL every process of the running commands first (tree and tracking marker), and exit only once
    // that is done: a pending TERM grace or kill timer would die with the agent and leave them running
    const killed = processes.terminateAll();
    for (const h of hosted) h.worker.host.abandonAll();
    void killed.then(async () => {
      await artifacts.close().catch((err: unknown) => logger.warn(`artifact cache: ${errorMessage(err)}`));
      logger.info('bbagent stopped');
      resolveExit(gaveUp ? 1 : 0);
    });
  }

  if (config.allowShutdown === 'signal') {
    cleanups.push(watchShutdownSignal((why) => hosted.forEach((h) => h.requestShutdown(why)), logger));
  }
  watchWorkerEnds(
    hosted,
    logger,
    (how) => {
      if (how === 'gave-up') gaveUp = true;
    },
    finish,
  );
  for (const h of hosted) h.start();
  if (opts.handleSignals !== false) cleanups.push(onStopSignals(() => stages.next(), logger));
  return { exited, stop: () => stages.next(), workers: hosted.map((h) => h.worker) };
}

/** The one artifact cache of the agent: `cacheDir` (relative: to the top level's basedir), else its BASEDIR/cache. */
export function artifactCacheRoot(config: AgentConfig): string {
  const basedir = path.resolve(config.basedir);
  // artifacts/cache.ts's defaultCacheRoot, without loading the cache's code at start
  return config.cacheDir === null ? path.join(basedir, BASEDIR_LAYOUT.cache) : path.resolve(basedir, config.cacheDir);
}

/**
 * Why a configured cacheDir is in the way, or undefined: inside a worker's basedir (not its own `cache`), a builder
 * may have the same directory name, and deleteLeftoverDirs takes it for a leftover builder directory.
 */
export function misplacedCacheDir(config: AgentConfig, root: string): string | undefined {
  for (const w of workerConfigs(config)) {
    // the cache's sweep would delete the worker's files: refused
    const up = path.relative(root, path.resolve(w.basedir));
    if (up === '' || (!up.startsWith('..') && !path.isAbsolute(up))) {
      throw new AgentError('E_CONFIG', `cacheDir ${root} is (or contains) worker '${w.name}''s basedir ${w.basedir}: give the cache a directory of its own`);
    }
    const rel = path.relative(path.resolve(w.basedir), root);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) continue;
    if (AGENT_OWNED_DIRS.includes(rel.split(path.sep)[0] ?? '')) continue;
    return `cacheDir ${root} is inside worker '${w.name}''s basedir ${w.basedir}: a builder directory of that name would share it, and deleteLeftoverDirs would remove it (put it outside, or leave cacheDir unset for BASEDIR/cache)`;
  }
  return undefined;
}

/** Builds every worker before any connects, so that a worker's bad setting stops the agent before it starts. */
function buildWorkers(configs: readonly WorkerConfig[], shared: SharedParts, logger: Logger): HostedWorker[] {
  const labels = workerLabels(configs);
  return configs.map((c, i) => new HostedWorker(c, shared, configs.length > 1 ? labelledLogger(logger, labels[i] ?? c.name) : logger));
}

/** How log lines name each worker: its name, or name@master where two workers share a name. */
export function workerLabels(configs: readonly WorkerConfig[]): string[] {
  return configs.map((c) =>
    configs.filter((o) => o.name === c.name).length > 1 ? `${c.name}@${c.connectionString ?? `${c.masterHost}:${c.masterPort}`}` : c.name,
  );
}

/**
 * A worker that stopped on its own (its master shut it down, or gave up) stops alone: the others go on, and
 * its commands are killed. The last one to stop stops the agent.
 */
function watchWorkerEnds(hosted: readonly HostedWorker[], logger: Logger, onEnd: (how: WorkerEnd) => void, finish: () => void): void {
  let remaining = hosted.length;
  for (const h of hosted) {
    void h.ended.then((how) => {
      onEnd(how);
      remaining--;
      if (remaining === 0 || how === 'stopped') {
        finish();
        return;
      }
      logger.info(`worker '${h.config.name}' stopped (${how === 'gave-up' ? 'its master gave up' : 'shut down'}); ${remaining} other worker(s) go on`);
      h.worker.host.abandonAll();
    });
  }
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

/** Runs the agent in the foreground; resolves with the process exit code. */
export function runAgent(config: AgentConfig, opts: RunAgentOptions): Promise<number> {
  logStart(config, opts.logger);
  return startAgent(config, opts).exited;
}

function logStart(config: AgentConfig, logger: Logger): void {
  const all = workerConfigs(config);
  if (all.length === 1) {
    logger.info(`Starting bbagent ${VERSION} -- worker '${config.name}' in ${config.basedir}, protocol ${config.protocol}`);
    return;
  }
  const labels = workerLabels(all);
  logger.info(`Starting bbagent ${VERSION} -- ${all.length} workers`);
  all.forEach((c, i) => logger.info(`[${labels[i] ?? c.name}] worker '${c.name}' in ${c.basedir}, protocol ${c.protocol}`));
}
