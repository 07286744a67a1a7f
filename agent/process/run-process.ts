// Runs one child process for a command, with buildbot-worker's headers, timers and kill rules:
// `timeout` (seconds without output), `maxTime`, `sigtermTime` escalation, interrupt, and a backup timer when a
// kill does not take. Unlike buildbot-worker, every kill reaches the whole process tree, not just its group, and
// every process that carries the command's tracking marker (a daemon that double-forked away); a timeout kill is
// preceded by hang forensics; a normal end lists the processes the command left running.

import path from 'node:path';
import {
  SpawnError,
  type ExitStatus,
  type PidStamp,
  type ProcessControl,
  type ProcessHandle,
  type ProcessQuery,
  type ProcessRef,
  type TrackingMarker,
} from '../../platforms/types.js';
import type { Logger } from '../log.js';
import { startDelay, type DelayTimer } from '../timers.js';
import { HANG_LOG, wantsForensics, writeHangReport, type KillReason } from './hang-forensics.js';
import { newTrackingMarker, withTrackingMarker, type TrackedProcess } from './tracking.js';
import { ensureDir } from '../fs/makedirs.js';
import { osErrorClass } from '../py/errno.js';
import { PyError } from '../py/exceptions.js';
import { commandRepr, execFailedText, secs, startHeaders } from './headers.js';
import { ChildOutput } from './child-output.js';
import { LogfileWatchers } from './logfile-watcher.js';
import type { RunProcessOptions } from './options.js';
import type { ProcessSink } from './sink.js';

export type { LogfileSpec, RunProcessOptions } from './options.js';
export type { ProcessSink } from './sink.js';

/** After a kill, how long to wait for the process to end before giving up on it (buildbot-worker: 5 s). */
export const BACKUP_TIMEOUT_MS = 5000;
/** Processes started this long before the command cannot be its own; the slack covers the boot-time clock's drift (ms). */
const SCAN_START_SLACK_MS = 5000;
/** Listing what a command left running takes at most this long (ms); it never delays the command's end. */
const LEFTOVER_LIST_TIMEOUT_MS = 3000;
/** At most this many leftovers are named in the agent log (the count is always given). */
const LEFTOVER_LIST_MAX = 20;
/** Notes on processes a scan could not examine are logged at most this many times per command (a kill scans 2-3 times). */
const INCOMPLETE_LOG_MAX = 3;

export class RunProcess implements TrackedProcess {
  private handle: ProcessHandle | undefined;
  private killed = false;
  private done = false;
  private startTime = 0;
  private ioTimer: DelayTimer | undefined;
  /** When output last came (performance.now() ms): the `timeout` timer checks it when it fires, not on every read. */
  private lastOutputMs = 0;
  private maxTimer: DelayTimer | undefined;
  private sigtermTimer: DelayTimer | undefined;
  private backupTimer: DelayTimer | undefined;
  /** The final KILL sweep after a killed command ended (waits out what is left of sigtermTime). */
  private reapTimer: DelayTimer | undefined;
  /** When the TERM grace ends (performance.now() ms), while a TERM kill is in progress. */
  private sigtermDeadline: number | undefined;
  /** Set while hang forensics are collected; aborting it lets the kill go on at once. */
  private forensics: AbortController | undefined;
  private forensicsRun: Promise<void> | undefined;
  private terminating = false;
  private readonly watchers = new LogfileWatchers();
  /** Every process a kill found, so a later sweep finds them again after they were re-parented away. */
  private signalled: ProcessRef[] = [];
  private readonly marker: TrackingMarker = newTrackingMarker();
  private spawnedAtMs = 0;
  /** The pid counter when the command started (Linux): scans then read only pids allocated since. */
  private pidStamp: PidStamp | undefined;
  private incompleteLogged = 0;
  private settle: { resolve: (rc: number) => void; reject: (e: Error) => void } | undefined;
  private readonly usePTY: boolean;
  private readonly output: ChildOutput;

  constructor(
    private readonly opts: RunProcessOptions,
    private readonly io: ProcessSink,
    private readonly platform: ProcessControl,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    this.usePTY = opts.usePTY;
    this.output = new ChildOutput({
      sink: io,
      send: { stdout: opts.sendStdout, stderr: opts.sendStderr },
      onActivity: () => this.resetIoTimer(),
      ended: () => this.done,
    });
    // No PTY with stdin to close, nor where the platform has none (buildbot-worker: every non-POSIX system).
    if ((opts.initialStdin !== null || !platform.supportsPty) && opts.usePTY) {
      // buildbot-worker sends this without a newline, so it joins the next header line
      io.text('header', 'WARNING: disabling usePTY for this command');
      this.usePTY = false;
    }
    // buildbot-worker creates the workdir in its constructor: a failure here fails the command (EXCEPTION)
    ensureDir(opts.workdir);
  }

  /** Resolves with the rc once the process ended; rejects when it could not be killed. */
  start(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.settle = { resolve, reject };
      this.launch();
    });
  }

  private launch(): void {
    const o = this.opts;
    const argv = typeof o.command === 'string' ? this.platform.shellArgv(o.command) : o.command;
    // the marker goes in last, after the step's env was merged: a step cannot remove it
    const env = withTrackingMarker({ ...o.environ, PWD: path.resolve(o.workdir) }, this.marker, o.inheritedTrackingId);
    const stdinBytes = o.initialStdin ? Buffer.from(o.initialStdin, 'utf8') : undefined;
    for (const header of startHeaders(o, env, this.usePTY, stdinBytes)) this.io.text('header', header);

    this.watchers.watch(o.workdir, o.logfiles, (n, t) => this.addLog(n, t));

    this.startTime = this.now();
    this.spawnedAtMs = Date.now();
    const counter = this.platform.pidStamp?.();
    try {
      this.handle = this.platform.spawn({ argv, cwd: o.workdir, env, pty: this.usePTY, stdinPipe: stdinBytes !== undefined });
    } catch (err) {
      this.launchFailed(argv, err);
      return;
    }
    if (counter) this.pidStamp = { ...counter, firstPid: this.handle.pid };
    o.registry?.add(this);
    const h = this.handle;
    this.output.attach(h);
    h.onExit((status) => {
      this.output.flush();
      // forensics in progress end early, and their report still comes before the rc
      if (this.forensicsRun) {
        this.forensics?.abort();
        void this.forensicsRun.then(() => this.finished(status));
      } else this.finished(status);
    });
    if (stdinBytes) {
      h.writeStdin(stdinBytes);
      h.closeStdin();
    }
    // startDelay: a timeout of 2^31 ms or more must not fire at once, as a bare setTimeout would
    if (o.timeout) this.armIoTimer(o.timeout * 1000);
    if (o.maxTime) this.maxTimer = startDelay(() => this.doMaxTimeout(), o.maxTime * 1000);
    this.watchers.start();
  }

  /**
   * buildbot-worker forks before exec, so a missing program shows up as the child's traceback on stderr and
   * rc 1 (docs/compatibility.md, shell: missing program). We report the same, without the fork.
   */
  private launchFailed(argv: string[], err: unknown): void {
    if (!(err instanceof SpawnError)) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.output.add('stderr', execFailedText(argv, osErrorClass(err.errnoName) ?? 'OSError', err.message));
    this.finished({ code: 1, signal: null });
  }

  /** Output came: noted only (a timer restarted on every read of a fast step costs more than the read's other work). */
  private resetIoTimer(): void {
    this.lastOutputMs = performance.now();
  }

  /** The `timeout` timer, `ms` from now; when it fires after output came meanwhile, it waits the rest from that output. */
  private armIoTimer(ms: number): void {
    const armedAt = performance.now();
    this.ioTimer = startDelay(() => {
      const timeoutMs = (this.opts.timeout ?? 0) * 1000;
      const quietMs = this.lastOutputMs > armedAt ? performance.now() - this.lastOutputMs : Infinity;
      this.ioTimer = undefined;
      if (quietMs < timeoutMs) this.armIoTimer(timeoutMs - quietMs);
      else this.doTimeout();
    }, ms);
  }

  private addLog(name: string, text: string): void {
    this.io.log(name, text);
    this.resetIoTimer();
  }

  private describeFake = (): string => commandRepr(this.opts.fakeCommand ?? this.opts.command);

  private doTimeout(): void {
    this.kill(`command timed out: ${secs(this.opts.timeout ?? 0)} seconds without output running ${this.describeFake()}`, 'timeout');
  }

  private doMaxTimeout(): void {
    this.maxTimer = undefined;
    this.kill(`command timed out: ${secs(this.opts.maxTime ?? 0)} seconds elapsed running ${this.describeFake()}`, 'maxTime');
  }

  /**
   * Kills the process tree after a timeout or an interrupt; the rc then comes from the process's end. Hang
   * forensics come first when wanted; a kill asked for while they are collected cuts them short.
   */
  kill(msg: string, reason: KillReason = 'interrupt'): void {
    if (this.done || this.terminating) return;
    if (this.forensics) {
      this.forensics.abort();
      return;
    }
    this.cancelTimers();
    const text = `${msg}, attempting to kill`;
    this.logger.info(text);
    this.io.text('header', `\n${text}\n`);
    this.killed = true;
    if (!this.handle) return;
    // no forensics when the connection is gone: nobody could read them, and they would delay the kill
    if (wantsForensics(this.opts.forensics ?? 'timeout', reason) && !this.io.abandoned?.()) {
      const ac = new AbortController();
      this.forensics = ac;
      const declared = Object.prototype.hasOwnProperty.call(this.opts.logfiles, HANG_LOG);
      this.forensicsRun = writeHangReport(this.platform, this.query(), { reason, declared, sink: this.io, logger: this.logger, signal: ac.signal })
        .catch((err: unknown) => this.logger.warn(`hang forensics failed: ${String(err)}`))
        .finally(() => {
          this.forensics = undefined;
          this.forensicsRun = undefined;
          if (!this.done && !this.terminating) this.signalKill();
        });
      return;
    }
    this.signalKill();
  }

  private signalKill(): void {
    if (this.opts.sigtermTime !== null) {
      this.signalTree('TERM');
      const graceMs = this.opts.sigtermTime * 1000;
      this.sigtermDeadline = performance.now() + graceMs;
      this.sigtermTimer = startDelay(() => {
        this.sigtermTimer = undefined;
        this.sigtermDeadline = undefined;
        // buildbot-worker escalates only when the main process still lives; we escalate while any of the tree does
        this.signalTree(this.opts.interruptSignal);
        this.cleanUp();
      }, graceMs);
    } else {
      this.signalTree(this.opts.interruptSignal);
      this.cleanUp();
    }
  }

  /** What belongs to this command: its group, its tree while its first process is unreaped, its marked processes. */
  private query(): ProcessQuery {
    const pid = this.handle?.pid;
    return {
      group: pid,
      root: this.done ? undefined : pid,
      marker: this.marker,
      known: this.signalled,
      startedAfterMs: this.spawnedAtMs - SCAN_START_SLACK_MS,
      pidStamp: this.pidStamp,
      onIncomplete: (why) => {
        if (this.incompleteLogged++ < INCOMPLETE_LOG_MAX) this.logger.warn(`processes of ${this.describeFake()}: ${why}`);
      },
    };
  }

  /** Signals the command's processes; the group at once, the rest once the scan found them. */
  private signalTree(sig: string): Promise<void> {
    if (!this.handle) return Promise.resolve();
    return this.platform.killProcesses(sig, this.query()).then(
      (found) => this.remember(found),
      (err: unknown) => this.logger.warn(`could not signal the processes of ${this.describeFake()}: ${String(err)}`),
    );
  }

  private remember(found: readonly ProcessRef[]): void {
    const have = new Set(this.signalled.map((p) => p.pid));
    for (const p of found) if (!have.has(p.pid)) this.signalled.push(p);
  }

  private cleanUp(): void {
    // as buildbot-worker's loseConnection: stop waiting for pipes held open by stray grandchildren
    this.handle?.closeOutput();
    if (!this.done) this.backupTimer = startDelay(() => this.doBackupTimeout(), BACKUP_TIMEOUT_MS);
  }

  /**
   * The agent is exiting: SIGKILL everything the command started, now, whatever the kill was waiting for
   * (forensics, sigtermTime). Resolves when the kill was sent; a second sweep catches what forked meanwhile.
   */
  async terminate(): Promise<void> {
    if (!this.handle) return;
    this.terminating = true;
    this.killed = true;
    this.forensics?.abort();
    this.cancelTimers();
    this.reapTimer?.cancel();
    this.reapTimer = undefined;
    try {
      if (this.platform.tracksMarkers || !this.done) {
        await this.signalTree('KILL');
        if (this.signalled.length) await this.signalTree('KILL');
      }
    } finally {
      this.handle.closeOutput();
      this.opts.registry?.delete(this);
    }
  }

  /** After a killed command ended: KILL what is left of it once the TERM grace (if any) is over. */
  private reap(): void {
    if (this.terminating || this.reapTimer) return;
    const waitMs = this.sigtermDeadline === undefined ? 0 : Math.max(0, this.sigtermDeadline - performance.now());
    this.reapTimer = startDelay(() => {
      // make sure nothing of the tree outlives the kill (e.g. a grandchild that ignored TERM, a daemon)
      void this.signalTree('KILL').finally(() => {
        this.reapTimer = undefined;
        this.opts.registry?.delete(this);
      });
    }, waitMs);
  }

  /** After a normal end: a check for leftovers, paced agent-wide by the registry (at once without one). */
  private checkLeftovers(): void {
    if (this.opts.leftoverCheck === false) return;
    const checks = this.opts.registry?.leftovers;
    if (!checks) void this.listLeftovers();
    else if (!checks.submit(() => this.listLeftovers()))
      this.logger.info(`${this.describeFake()}: not checked for processes left running (commands end faster than the checks may run)`);
  }

  /** Names what the command left running in the agent log, without killing it. */
  private async listLeftovers(): Promise<void> {
    try {
      const query = this.query();
      const found = await this.platform.findProcesses({ ...query, timeoutMs: LEFTOVER_LIST_TIMEOUT_MS });
      if (found.length === 0) return;
      const facts = await this.platform.inspectProcesses(
        found.slice(0, LEFTOVER_LIST_MAX).map((p) => p.pid),
        { timeoutMs: LEFTOVER_LIST_TIMEOUT_MS, maxBytes: 64 * 1024, onIncomplete: query.onIncomplete },
      );
      const lines = facts.map((f) => `  pid ${f.pid}: ${f.command}`).join('\n');
      const more = found.length > facts.length ? `\n  ... and ${found.length - facts.length} more` : '';
      this.logger.warn(
        `${this.describeFake()} left ${found.length} process(es) running (${this.marker.name}=${this.marker.value}); not killed, a later step may use them:\n${lines}${more}`,
      );
    } catch (err) {
      this.logger.warn(`could not list the processes left by ${this.describeFake()}: ${String(err)}`);
    }
  }

  private doBackupTimeout(): void {
    this.backupTimer = undefined;
    this.reap();
    const name = `SIG${this.opts.interruptSignal}`;
    this.io.text('header', `${name} failed to kill process\n`);
    if (this.opts.sendRC) {
      this.io.text('header', 'using fake rc=-1\n');
      this.io.status('rc', -1);
    }
    this.fail(new PyError('RuntimeError', `${name} failed to kill process`, 'E_KILL_FAILED'));
  }

  private finished(status: ExitStatus): void {
    if (this.done) return;
    this.done = true;
    const elapsed = this.now() - this.startTime;
    this.cancelTimers();
    if (this.handle) {
      if (this.killed) this.reap();
      else {
        this.opts.registry?.delete(this);
        this.checkLeftovers();
      }
    }
    // the logfiles' last content comes before the rc, as buildbot-worker sends it; reading it yields to the loop
    this.watchers.afterStop(() => {
      let rc = status.code ?? -1;
      if (this.killed && rc === 0) rc = -1;
      if (status.signal !== null) rc = -1;
      if (this.opts.sendRC) {
        if (status.signal !== null) this.io.text('header', `process killed by signal ${status.signal}\n`);
        this.io.status('rc', rc);
      }
      this.io.text('header', `elapsedTime=${elapsed.toFixed(6)}\n`);
      this.settle?.resolve(rc);
      this.settle = undefined;
    });
  }

  private fail(err: Error): void {
    this.done = true;
    this.cancelTimers();
    this.watchers.afterStop(() => {
      this.settle?.reject(err);
      this.settle = undefined;
    });
  }

  private cancelTimers(): void {
    for (const t of [this.ioTimer, this.maxTimer, this.sigtermTimer, this.backupTimer]) t?.cancel();
    this.ioTimer = this.maxTimer = this.sigtermTimer = this.backupTimer = undefined;
  }
}
