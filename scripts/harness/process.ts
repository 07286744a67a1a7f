// Child-process and polling helpers shared by the integration harness (Buildbot master, reference worker).
// Children run in their own process group so stop() can clean up grandchildren (build steps) too, and a
// process 'exit' hook SIGKILLs whatever a crashed or interrupted test run left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, openSync, readSync, closeSync, fstatSync, statSync } from 'node:fs';
import path from 'node:path';

/** Poll interval for everything the harness waits on (log files, REST API). */
export const POLL_INTERVAL_MS = 50;
/** How long stop() waits after SIGTERM before it sends SIGKILL. */
export const DEFAULT_STOP_GRACE_MS = 15_000;
/** How much of a child's stdout+stderr is kept for error messages. */
const OUTPUT_KEEP_CHARS = 64 * 1024;

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.killGroup('SIGKILL');
  });
}

export interface SpawnOptions {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Short name used in error messages ("buildbot master /tmp/x"). */
  label: string;
}

/** A long-running child (twistd in the foreground) with captured output and a group-wide stop. */
export class ManagedProcess {
  readonly label: string;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  readonly exited: Promise<number | string>;
  private exitStatus: number | string | undefined;
  private output = '';
  private readonly child: ChildProcess;

  private constructor(child: ChildProcess, label: string) {
    this.child = child;
    this.label = label;
    if (child.pid === undefined) throw new Error(`${label}: spawn failed (no pid)`);
    this.pid = child.pid;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS);
    };
    // Late errors (a failed kill) must not crash the test run; the exit status tells the story.
    child.on('error', () => undefined);
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitStatus = code ?? signal ?? 'unknown';
        live.delete(this);
        // Leftover grandchildren (a step's `sleep`) are not ours to keep.
        this.killGroup('SIGKILL');
        resolve(this.exitStatus);
      });
    });
  }

  static spawn(opts: SpawnOptions): Promise<ManagedProcess> {
    installExitHook();
    return new Promise((resolve, reject) => {
      const child = spawn(opts.command, opts.args, {
        cwd: opts.cwd,
        env: opts.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      child.once('error', (err) => reject(new Error(`${opts.label}: cannot start ${opts.command}: ${err.message}`)));
      child.once('spawn', () => {
        const managed = new ManagedProcess(child, opts.label);
        live.add(managed);
        resolve(managed);
      });
    });
  }

  /** Exit code or signal, or undefined while running. */
  get exitCode(): number | string | undefined {
    return this.exitStatus;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** The last OUTPUT_KEEP_CHARS characters the child wrote to stdout and stderr. */
  get capturedOutput(): string {
    return this.output;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** Signals the whole process group; ignores a group that is already gone. */
  killGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      // ESRCH: nothing left in the group.
    }
  }

  /** SIGTERM the main process, wait for it to exit, SIGKILL the group after `graceMs`. */
  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<number | string> {
    if (!this.running) return this.exited;
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.killGroup('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }
}

export interface PollOptions {
  timeoutMs: number;
  /** What is awaited, for the timeout message ("worker w1 to connect"). */
  what: string;
  intervalMs?: number;
  /** Called on every round; a returned string aborts the wait with that message (e.g. "process exited"). */
  failFast?: () => string | undefined;
  /** Extra text for the timeout error (e.g. a log tail), computed only on failure. */
  details?: () => string;
}

/**
 * Calls `probe` every `intervalMs` until it returns something other than undefined, and returns that.
 * Errors thrown by `probe` propagate at once.
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined> | T | undefined, opts: PollOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? POLL_INTERVAL_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    const abort = opts.failFast?.();
    if (abort !== undefined) throw new Error(`while waiting for ${opts.what}: ${abort}${suffix(opts.details)}`);
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${suffix(opts.details)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

function suffix(details: (() => string) | undefined): string {
  if (!details) return '';
  const text = details();
  return text ? `\n${text}` : '';
}

/** Size of a file in bytes, 0 if it does not exist. */
export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Reads a file from byte `offset` to its end; returns '' when the file does not exist yet. */
export function readFrom(file: string, offset: number): { text: string; end: number } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return { text: '', end: offset };
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return { text: '', end: size };
    const buf = Buffer.alloc(size - offset);
    const n = readSync(fd, buf, 0, buf.length, offset);
    return { text: buf.subarray(0, n).toString('utf8'), end: offset + n };
  } finally {
    closeSync(fd);
  }
}

/** The last `lines` lines of a (log) file, or a note that it does not exist. */
export function tailFile(file: string, lines = 40): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return `(${file} does not exist)`;
  }
  try {
    // Log lines are short; 256 KiB is plenty for any sensible `lines`.
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - 256 * 1024);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const all = buf.toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/** Absolute path of `name` on PATH, or undefined. */
export function findExecutable(name: string, searchPath = process.env['PATH'] ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Like findExecutable but throws a message pointing at scripts/ensure-buildbot. */
export function requireExecutable(name: string): string {
  const found = findExecutable(name);
  if (found === undefined) {
    throw new Error(`${name} not found on PATH; run scripts/ensure-buildbot to install buildbot and buildbot-worker`);
  }
  return found;
}

/** Runs a short command to completion; rejects with its output when it fails. */
export function runCommand(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal}):\n${output}`));
    });
  });
}
