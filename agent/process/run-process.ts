// Runs one child process for a command, with buildbot-worker's headers, timers and kill rules:
// `timeout` (seconds without output), `maxTime`, `sigtermTime` escalation, interrupt, and a backup timer when a
// kill does not take. Unlike buildbot-worker, every kill reaches the whole process tree, not just its group.

import path from 'node:path';
import { SpawnError, type ExitStatus, type Platform, type ProcessHandle } from '../../platforms/types.js';
import type { CommandIO } from '../commands/types.js';
import type { Logger } from '../log.js';
import { makedirs } from '../fs/makedirs.js';
import { isdir } from '../fs/pyos.js';
import { LogFileWatcher } from './logfile-watcher.js';
import { reprBytes, reprValue, shellQuote } from './pyrepr.js';

/** After a kill, how long to wait for the process to end before giving up on it (buildbot-worker: 5 s). */
export const BACKUP_TIMEOUT_MS = 5000;

export type LogfileSpec = string | { filename: string; follow?: boolean };

export interface RunProcessOptions {
  /** A string runs through the shell; a list is an argv. */
  command: string | string[];
  /** What the header shows instead of `command` (obfuscated arguments replaced). */
  fakeCommand?: string | string[];
  workdir: string;
  environ: Record<string, string>;
  sendStdout: boolean;
  sendStderr: boolean;
  sendRC: boolean;
  timeout: number | null;
  maxTime: number | null;
  sigtermTime: number | null;
  initialStdin: string | null;
  logEnviron: boolean;
  logfiles: Record<string, LogfileSpec>;
  usePTY: boolean;
  interruptSignal: string;
}

export class RunProcessError extends Error {
  constructor(
    readonly pyType: string,
    message: string,
  ) {
    super(message);
    this.name = 'RunProcessError';
  }
}

export class RunProcess {
  private handle: ProcessHandle | undefined;
  private killed = false;
  private done = false;
  private paused = false;
  private startTime = 0;
  private ioTimer: NodeJS.Timeout | undefined;
  private maxTimer: NodeJS.Timeout | undefined;
  private sigtermTimer: NodeJS.Timeout | undefined;
  private backupTimer: NodeJS.Timeout | undefined;
  private watchers: LogFileWatcher[] = [];
  private signalled: number[] = [];
  private settle: { resolve: (rc: number) => void; reject: (e: Error) => void } | undefined;
  private readonly usePTY: boolean;

  constructor(
    private readonly opts: RunProcessOptions,
    private readonly io: CommandIO,
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    this.usePTY = opts.usePTY;
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
    const fake = o.fakeCommand ?? o.command;
    const argv = typeof o.command === 'string' ? this.platform.shellArgv(o.command) : o.command;
    const display = typeof fake === 'string' ? fake : shellQuote(fake);
    const env: Record<string, string> = { ...o.environ, PWD: path.resolve(o.workdir) };

    this.io.text('header', display + '\n');
    let msg = ` in dir ${o.workdir}`;
    if (o.timeout) msg += ` (timeout ${o.timeout} ${o.timeout === 1 ? 'sec' : 'secs'})`;
    if (o.maxTime) msg += ` (maxTime ${o.maxTime} ${o.maxTime === 1 ? 'sec' : 'secs'})`;
    this.io.text('header', msg + '\n');
    this.io.text('header', ` watching logfiles ${reprValue(o.logfiles)}\n`);
    const argvRepr = typeof fake === 'string' ? reprBytes(fake) : `[${fake.map(reprBytes).join(', ')}]`;
    this.io.text('header', ` argv: ${argvRepr}\n`);
    if (o.logEnviron) {
      let e = ' environment:\n';
      for (const k of Object.keys(env).sort()) e += `  ${k}=${env[k]}\n`;
      this.io.text('header', e);
    }
    const stdinBytes = o.initialStdin ? Buffer.from(o.initialStdin, 'utf8') : undefined;
    if (stdinBytes) this.io.text('header', ` writing ${stdinBytes.length} bytes to stdin\n`);
    this.io.text('header', ` using PTY: ${this.usePTY ? 'True' : 'False'}\n`);

    for (const [name, spec] of Object.entries(o.logfiles)) {
      const filename = typeof spec === 'string' ? spec : spec.filename;
      const follow = typeof spec === 'string' ? false : Boolean(spec.follow);
      this.watchers.push(new LogFileWatcher(name, path.join(o.workdir, filename), follow, (n, t) => this.addLog(n, t)));
    }

    this.startTime = this.now();
    try {
      this.handle = this.platform.spawn({ argv, cwd: o.workdir, env, pty: this.usePTY, stdinPipe: stdinBytes !== undefined });
    } catch (err) {
      this.launchFailed(argv, err);
      return;
    }
    const h = this.handle;
    const out = new TextDecoder('utf-8');
    const errd = new TextDecoder('utf-8');
    h.onStdout((d) => this.addOutput('stdout', out.decode(d, { stream: true })));
    h.onStderr((d) => this.addOutput('stderr', errd.decode(d, { stream: true })));
    h.onExit((status) => {
      const tailOut = out.decode();
      if (tailOut) this.addOutput('stdout', tailOut);
      const tailErr = errd.decode();
      if (tailErr) this.addOutput('stderr', tailErr);
      this.finished(status);
    });
    if (stdinBytes) {
      h.writeStdin(stdinBytes);
      h.closeStdin();
    }
    if (o.timeout) this.ioTimer = setTimeout(() => this.doTimeout(), o.timeout * 1000);
    if (o.maxTime) this.maxTimer = setTimeout(() => this.doMaxTimeout(), o.maxTime * 1000);
    for (const w of this.watchers) w.start();
  }

  /**
   * buildbot-worker forks before exec, so a missing program shows up as the child's traceback on stderr and
   * rc 1 (see ../shared/protocol/README.md). We report the same, without the fork.
   */
  private launchFailed(argv: string[], err: unknown): void {
    if (!(err instanceof SpawnError)) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const pyType = err.code === 'ENOENT' ? 'FileNotFoundError' : err.code === 'EACCES' ? 'PermissionError' : 'OSError';
    this.addOutput(
      'stderr',
      `Upon execvpe ${argv[0]} ${reprValue(argv)} in environment id 0\n:Traceback (most recent call last):\n` +
        `  File "bbagent", in spawn\n${pyType}: ${err.message}\n`,
    );
    this.finished({ code: 1, signal: null });
  }

  private resetIoTimer(): void {
    if (this.ioTimer) this.ioTimer.refresh();
  }

  private addOutput(stream: 'stdout' | 'stderr', text: string): void {
    if (!text) return;
    if (stream === 'stdout' ? this.opts.sendStdout : this.opts.sendStderr) this.io.text(stream, text);
    this.resetIoTimer();
    this.maybePause();
  }

  /** Pauses reading the child's output while the output pipeline asks for it (throttle budget, slow link). */
  private maybePause(): void {
    if (this.paused || !this.handle || this.done) return;
    const wait = this.io.backpressureMs();
    if (wait <= 0) return;
    this.paused = true;
    this.handle.pause();
    setTimeout(() => {
      this.paused = false;
      if (this.done || !this.handle) return;
      this.handle.resume();
      this.resetIoTimer(); // a paused child could not write: the pause is not silence
      this.maybePause();
    }, wait);
  }

  private addLog(name: string, text: string): void {
    this.io.log(name, text);
    this.resetIoTimer();
  }

  private describeFake(): string {
    const fake = this.opts.fakeCommand ?? this.opts.command;
    return typeof fake === 'string' ? reprBytes(fake) : `[${fake.map(reprBytes).join(', ')}]`;
  }

  private doTimeout(): void {
    this.ioTimer = undefined;
    this.kill(`command timed out: ${this.opts.timeout} seconds without output running ${this.describeFake()}`);
  }

  private doMaxTimeout(): void {
    this.maxTimer = undefined;
    this.kill(`command timed out: ${this.opts.maxTime} seconds elapsed running ${this.describeFake()}`);
  }

  /** Kills the process tree after a timeout or an interrupt; the rc then comes from the process's end. */
  kill(msg: string): void {
    if (this.done) return;
    this.cancelTimers();
    const text = `${msg}, attempting to kill`;
    this.logger.info(text);
    this.io.text('header', `\n${text}\n`);
    this.killed = true;
    const h = this.handle;
    if (!h) return;
    if (this.opts.sigtermTime !== null) {
      this.signalTree('TERM');
      this.sigtermTimer = setTimeout(() => {
        this.sigtermTimer = undefined;
        // buildbot-worker escalates only when the main process still lives; we escalate while any of the tree does
        this.signalTree(this.opts.interruptSignal);
        this.cleanUp();
      }, this.opts.sigtermTime * 1000);
    } else {
      this.signalTree(this.opts.interruptSignal);
      this.cleanUp();
    }
  }

  private signalTree(sig: string): void {
    if (!this.handle) return;
    this.signalled = this.platform.killTree(this.handle.pid, sig, this.signalled);
  }

  private cleanUp(): void {
    // as buildbot-worker's loseConnection: stop waiting for pipes held open by stray grandchildren
    this.handle?.closeOutput();
    if (!this.done) this.backupTimer = setTimeout(() => this.doBackupTimeout(), BACKUP_TIMEOUT_MS);
  }

  private doBackupTimeout(): void {
    this.backupTimer = undefined;
    const name = `SIG${this.opts.interruptSignal}`;
    this.io.text('header', `${name} failed to kill process\n`);
    if (this.opts.sendRC) {
      this.io.text('header', 'using fake rc=-1\n');
      this.io.status('rc', -1);
    }
    this.fail(new RunProcessError('RuntimeError', `${name} failed to kill process`));
  }

  private finished(status: ExitStatus): void {
    if (this.done) return;
    this.done = true;
    const elapsed = this.now() - this.startTime;
    for (const w of this.watchers) w.stop();
    let rc = status.code ?? -1;
    if (this.killed && rc === 0) rc = -1;
    if (status.signal !== null) rc = -1;
    if (this.opts.sendRC) {
      if (status.signal !== null) this.io.text('header', `process killed by signal ${status.signal}\n`);
      this.io.status('rc', rc);
    }
    this.io.text('header', `elapsedTime=${elapsed.toFixed(6)}\n`);
    this.cancelTimers();
    if (this.killed && this.signalled.length) {
      // make sure nothing of the tree outlives the kill (e.g. a grandchild that ignored TERM)
      this.platform.killTree(this.handle!.pid, 'KILL', this.signalled);
    }
    this.settle?.resolve(rc);
    this.settle = undefined;
  }

  private fail(err: Error): void {
    this.done = true;
    this.cancelTimers();
    for (const w of this.watchers) w.stop();
    this.settle?.reject(err);
    this.settle = undefined;
  }

  private cancelTimers(): void {
    for (const t of [this.ioTimer, this.maxTimer, this.sigtermTimer, this.backupTimer]) if (t) clearTimeout(t);
    this.ioTimer = this.maxTimer = this.sigtermTimer = this.backupTimer = undefined;
  }
}

/**
 * os.makedirs(workdir) when it is not a directory yet; a failure is the OSError Python raises (naming the level
 * that could not be made), never a hang: Node's recursive mkdir loops forever under /proc.
 */
export function ensureDir(dir: string): void {
  if (!isdir(dir)) makedirs(dir);
}
