// How the agent stops. An operator's SIGTERM/SIGINT steps through stages: the first lets running commands
// finish (over PB it also asks the master to start no new build here), the second interrupts them, the third
// exits at once; a drain request over the control socket starts the first. A worker-initiated graceful
// shutdown (SIGHUP or a touched shutdown.stamp, with allowShutdown) asks the master to stop the worker once its
// builds are done.

import { statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from './log.js';
import type { Session } from './connection/protocol.js';

/**
 * After the first signal, how long the workers must stay without a running command before they disconnect:
 * the master starts a build's next step within milliseconds, and disconnecting mid-build makes it RETRY.
 */
export const DRAIN_QUIET_MS = 2000;
/** How long the second signal waits for interrupted commands to report before exiting anyway. */
export const INTERRUPT_GRACE_MS = 10_000;
/** shutdown.stamp in a worker's BASEDIR, whose mtime change asks for a graceful shutdown (allowShutdown 'file'). */
export const SHUTDOWN_FILE = 'shutdown.stamp';
/** buildbot-worker checks the stamp every 10 s. */
export const SHUTDOWN_FILE_POLL_MS = 10_000;

/** What the stages act on: a worker's command host. */
export interface Drainable {
  readonly runningCount: number;
  /** Commands started so far (a change means one started). */
  readonly startedCount: number;
  /** Resolves when no command is running. */
  idle(): Promise<void>;
  interruptAll(why: string): void;
}

/** The signals' source: the process, or an emitter in tests. */
export type SignalSource = Pick<NodeJS.Process, 'on' | 'off'>;

export interface ShutdownStagesOptions {
  /** The command hosts of the workers. */
  hosts: () => readonly Drainable[];
  /** Stops the agent. */
  finish: () => void;
  /** At the first stage: asks the masters to start no new build (the workers' graceful shutdown, where the protocol has one). */
  noNewBuilds?: () => void;
  logger: Logger;
  drainQuietMs?: number;
  interruptGraceMs?: number;
}

/** Resolves once no command of any host has run for quietMs. */
export async function drain(hosts: () => readonly Drainable[], quietMs: number): Promise<void> {
  const started = (): number => hosts().reduce((n, h) => n + h.startedCount, 0);
  const running = (): number => hosts().reduce((n, h) => n + h.runningCount, 0);
  for (;;) {
    await Promise.all(hosts().map((h) => h.idle()));
    const before = started();
    await new Promise((r) => setTimeout(r, quietMs));
    if (running() === 0 && started() === before) return;
  }
}

/** The stages an operator's stop signals step through; next() is one signal. */
export class ShutdownStages {
  private stage = 0;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ShutdownStagesOptions) {}

  /** True from the first stage on: running commands are being let finish (or interrupted). */
  get draining(): boolean {
    return this.stage >= 1;
  }

  /**
   * A drain request (`bbagent stop --drain`, the Windows service's stop): the first stage, as a first SIGTERM,
   * and after `timeoutS` (when given) the second, which interrupts what still runs. 'already' when a stop is
   * under way: a second request changes nothing.
   */
  drain(why: string, timeoutS?: number): 'started' | 'already' {
    if (this.stage >= 1) return 'already';
    this.o.logger.info(`drain requested (${why})${timeoutS === undefined ? '' : `: running commands have ${timeoutS} s to finish`}`);
    this.next();
    if (timeoutS !== undefined) {
      this.drainTimer = setTimeout(() => {
        if (this.stage !== 1) return;
        this.o.logger.warn(`drain: commands still running after ${timeoutS} s`);
        this.next();
      }, timeoutS * 1000);
      this.drainTimer.unref();
    }
    return 'started';
  }

  next(): void {
    const { logger, hosts, finish } = this.o;
    this.stage++;
    if (this.stage === 1) {
      const running = hosts().reduce((n, h) => n + h.runningCount, 0);
      logger.info(`shutting down: waiting for ${running} running command(s) to finish (signal again to interrupt them)`);
      this.o.noNewBuilds?.();
      void drain(hosts, this.o.drainQuietMs ?? DRAIN_QUIET_MS).then(finish);
    } else if (this.stage === 2) {
      logger.info('shutting down: interrupting running commands (signal again to exit at once)');
      for (const h of hosts()) h.interruptAll('worker shutting down');
      const t = setTimeout(finish, this.o.interruptGraceMs ?? INTERRUPT_GRACE_MS);
      t.unref();
    } else {
      logger.info('shutting down now');
      finish();
    }
  }
}

/** Calls onSignal on each SIGTERM or SIGINT; returns a function that removes the handlers. */
export function onStopSignals(onSignal: () => void, logger: Logger, source: SignalSource = process): () => void {
  const handler = (sig: NodeJS.Signals): void => {
    logger.info(`received ${sig}`);
    onSignal();
  };
  source.on('SIGTERM', handler);
  source.on('SIGINT', handler);
  return () => {
    source.off('SIGTERM', handler);
    source.off('SIGINT', handler);
  };
}

/**
 * Worker-initiated graceful shutdown: asks the master, through the attached session, to stop the worker once
 * its builds are done; a protocol without that request (msgpack), or no session, stops the worker now.
 */
export function gracefulShutdown(session: Session | undefined, protocol: string, why: string, stopNow: () => void, logger: Logger): void {
  logger.info(`Initiating shutdown because ${why}`);
  if (!session?.requestShutdown) {
    logger.info(session ? `${protocol} has no worker-initiated shutdown: shutting down NOW` : 'No active connection, shutting down NOW');
    stopNow();
    return;
  }
  logger.info('Telling the master we want to shutdown after any running builds are finished');
  session.requestShutdown().catch((err: unknown) => logger.warn(`callRemote("shutdown") failed: ${String(err)}`));
}

/** allowShutdown 'signal': SIGHUP asks for a graceful shutdown; returns a function that removes the handler. */
export function watchShutdownSignal(onRequest: (why: string) => void, logger: Logger, source: SignalSource = process): () => void {
  logger.info('Setting up SIGHUP handler to initiate shutdown');
  const handler = (): void => onRequest('we got SIGHUP');
  source.on('SIGHUP', handler);
  return () => source.off('SIGHUP', handler);
}

/** allowShutdown 'file': a newer mtime of BASEDIR/shutdown.stamp asks for a graceful shutdown; returns a stop function. */
export function watchShutdownFile(basedir: string, onRequest: (why: string) => void, logger: Logger, pollMs = SHUTDOWN_FILE_POLL_MS): () => void {
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
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
