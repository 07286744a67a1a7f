// Runs the reference Python worker (Debian's buildbot-worker 3.7) in the foreground, so integration tests
// can compare bbagent with it against the same real master.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Protocol } from './master.js';
import { fileSize, ManagedProcess, pollUntil, readFrom, requireExecutable, runCommand, tailFile } from './process.js';

export interface ReferenceWorkerOptions {
  /** Worker basedir (created by `buildbot-worker create-worker`). */
  dir: string;
  /** Default 127.0.0.1. */
  masterHost?: string;
  masterPort: number;
  name: string;
  password: string;
  protocol: Protocol;
  /** Seconds between PB keepalives (create-worker default 600; unused by msgpack). */
  keepalive?: number;
  /** Extra create-worker flags, e.g. `['--delete-leftover-dirs']` or `['--allow-shutdown', 'file']`. */
  createArgs?: string[];
  /** Extra environment for the worker (and so for its build steps). */
  env?: Record<string, string>;
  /** Default 30 s. */
  startTimeoutMs?: number;
}

/** buildbot-worker's name for our 'msgpack' (buildbot_worker/pb.py, scripts/runner.py `--protocol`). */
const PROTOCOL_FLAG: Record<Protocol, string> = { msgpack: 'msgpack_experimental_v7', pb: 'pb' };
/** Logged by buildbot_worker.bot.Worker.startService once the tac file is loaded. */
const READY_LINE = 'Starting Worker --';

export class ReferenceWorker {
  readonly dir: string;
  readonly name: string;
  private readonly proc: ManagedProcess;

  private constructor(dir: string, name: string, proc: ManagedProcess) {
    this.dir = dir;
    this.name = name;
    this.proc = proc;
  }

  /**
   * Creates the worker dir (`create-worker --force`, so an existing dir is reused) and starts the worker in
   * the foreground. Resolves once the worker service is running; it then connects on its own, which the
   * caller awaits with BuildbotMaster.waitForWorker().
   */
  static async start(opts: ReferenceWorkerOptions): Promise<ReferenceWorker> {
    const exe = requireExecutable('buildbot-worker');
    const dir = path.resolve(opts.dir);
    mkdirSync(dir, { recursive: true });
    const host = opts.masterHost ?? '127.0.0.1';
    const master = host.includes(':') ? `[${host}]:${opts.masterPort}` : `${host}:${opts.masterPort}`;
    await runCommand(exe, [
      'create-worker',
      '--quiet',
      '--force',
      '--relocatable',
      `--protocol=${PROTOCOL_FLAG[opts.protocol]}`,
      ...(opts.keepalive !== undefined ? [`--keepalive=${opts.keepalive}`] : []),
      ...(opts.createArgs ?? []),
      dir,
      master,
      opts.name,
      opts.password,
    ]);
    const logFile = path.join(dir, 'twistd.log');
    let end = fileSize(logFile);
    const proc = await ManagedProcess.spawn({
      command: exe,
      args: ['start', '--nodaemon', dir],
      cwd: dir,
      env: { ...process.env, ...opts.env },
      label: `buildbot-worker ${opts.name}`,
    });
    const worker = new ReferenceWorker(dir, opts.name, proc);
    let seen = '';
    try {
      await pollUntil(
        () => {
          const chunk = readFrom(logFile, end);
          end = chunk.end;
          seen += chunk.text;
          return seen.includes(READY_LINE) ? true : undefined;
        },
        {
          timeoutMs: opts.startTimeoutMs ?? 30_000,
          what: `buildbot-worker ${opts.name} to start`,
          failFast: () => (proc.running ? undefined : `buildbot-worker exited (${String(proc.exitCode)})`),
          details: () => `--- twistd.log ---\n${worker.logTail()}\n--- output ---\n${proc.capturedOutput.slice(-4000)}`,
        },
      );
    } catch (err) {
      await proc.stop(2_000);
      throw err;
    }
    return worker;
  }

  get running(): boolean {
    return this.proc.running;
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Resolves with the exit code (or signal) when the worker process ends, e.g. after a master `shutdown`. */
  get exited(): Promise<number | string> {
    return this.proc.exited;
  }

  get logFile(): string {
    return path.join(this.dir, 'twistd.log');
  }

  logTail(n = 40): string {
    return tailFile(this.logFile, n);
  }

  /** SIGTERM, wait for exit, SIGKILL (the whole process group, so build steps too) after `graceMs`. */
  async stop(graceMs?: number): Promise<void> {
    await this.proc.stop(graceMs);
  }
}
