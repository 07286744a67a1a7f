// Runs commands for one connection: checks the name and required arguments synchronously (as buildbot-worker
// does, so the master's start request fails), then drives the command's life cycle: run, `elapsed` unless
// interrupted, flush partial lines, `complete`. Protocols call it; it never knows which protocol calls.
// Whatever a stage of the output does (throws, rejects, never settles), `complete` is sent, within
// FINISH_OUTPUT_TIMEOUT_MS of the command's end, and nothing thrown reaches the process's event handlers.

import { CommandArgsError, errorMessage, UnknownCommandError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandOutput } from '../output/command-output.js';
import { OutputSetup, type OutputSink } from '../output/setup.js';
import type { OutputSettings } from '../output/settings.js';
import type { UpdateItem } from '../output/types.js';
import { toFailure } from '../commands/failure.js';
import { settleWithin } from '../timers.js';
import { PyFloat } from '../py/values.js';
import type { CommandArgs, CommandChannel, CommandDefinition, CommandEnv, CommandIO, WorkerCommand } from '../commands/types.js';
import { batchBytes, CommandCounters, type CommandHostStats, type CommandResult, type RunningCommandStatus } from './stats.js';

export interface StartRequest {
  name: string;
  id: string;
  args: CommandArgs;
  channel: CommandChannel;
  settings: OutputSettings;
  /**
   * Set when the master sent paths relative to a builder directory (PB): the command's `relativeArgs`
   * turns them into the absolute form, and relative paths resolve there.
   */
  builderDir?: string;
  /** The builder the master started it on (PB), for `bbagent status`. */
  builder?: string;
}

/**
 * How long a command's output may take to finish after the command ended (held text, the spool closed) before
 * `complete` is sent anyway. The spool settles within SPOOL_CLOSE_TIMEOUT_MS (3 s) by itself: this bound is
 * for what nothing else bounds, and keeps `complete` within 5 s of the process's exit.
 */
export const FINISH_OUTPUT_TIMEOUT_MS = 4000;

class RunningCommand {
  interrupted = false;
  /** Set when the connection went away: nothing more may be sent for this command. */
  abandoned = false;
  readonly done: Promise<void>;
  private readonly output: CommandOutput;
  private readonly command: WorkerCommand;
  /** An output stage threw (a bug): logged once, so a flood of output does not flood the log. */
  private outputErrorLogged = false;
  /** Epoch ms of its start, for status. */
  readonly startedAt = Date.now();
  /** Text bytes of its output sent to the master. */
  sentBytes = 0;
  /** The rc it reported, if any. */
  private rc: unknown;
  /** It ended with an exception (complete with a failure). */
  private failed = false;

  constructor(
    readonly id: string,
    readonly name: string,
    def: CommandDefinition,
    req: StartRequest,
    env: CommandEnv,
    private readonly logger: Logger,
    outputs: OutputSetup,
    private readonly counters: CommandCounters,
  ) {
    const channel = req.channel;
    const sink: OutputSink = {
      send: (items) => this.send(channel, items),
      backlog: () => channel.backlog?.() ?? 0,
      textOnly: channel.textOnly ?? false,
    };
    this.output = outputs.pipeline({ name, id }, req.settings, sink, env.now, logger);
    this.command = def.create(req.args, this.commandIO(channel, outputs), env);
    this.done = this.runToCompletion(channel, env.now, outputs.finishTimeoutMs ?? FINISH_OUTPUT_TIMEOUT_MS);
  }

  private send(channel: CommandChannel, items: UpdateItem[]): void {
    if (this.abandoned) return;
    const bytes = batchBytes(items);
    this.sentBytes += bytes;
    this.counters.batchSent(bytes);
    try {
      channel.sendUpdate(items);
    } catch (err) {
      this.logger.warn(`command ${this.name} (${this.id}): cannot send output: ${errorMessage(err)}`);
    }
  }

  /** What the command writes to and reads from. These run in the process's event handlers: nothing may throw. */
  private commandIO(channel: CommandChannel, outputs: OutputSetup): CommandIO {
    const name = this.name;
    return {
      text: (stream, text) => this.guard(() => this.output.text(stream, text)),
      log: (logName, text) => this.guard(() => this.output.log(logName, text)),
      status: (key, value) => {
        if (key === 'rc') this.rc = value;
        this.guard(() => this.output.status(key, value));
      },
      redact: (text) => this.output.redact(text),
      stepEnvironment: (stepEnv) => this.output.setLimits(outputs.stepLimits(stepEnv)),
      backpressureMs: () => this.guard(() => this.output.backpressureMs(), 0),
      writer: (kind) => {
        const writer = channel.writer(kind);
        if (!writer) throw new CommandArgsError(`${name}: the master gave no file writer`);
        return writer;
      },
      reader: () => {
        if (!channel.reader) throw new CommandArgsError(`${name}: the master gave no file reader`);
        return channel.reader;
      },
      abandoned: () => this.abandoned,
    };
  }

  /** Runs the command, then `elapsed` (unless interrupted), the end of its output and `complete`. */
  private runToCompletion(channel: CommandChannel, now: () => number, finishTimeoutMs: number): Promise<void> {
    const { name, id } = this;
    const start = now();
    let running: Promise<void>;
    try {
      running = this.command.run();
    } catch (err) {
      running = Promise.reject(err as Error);
    }
    return running
      .then(
        () => null,
        (err: unknown) => {
          this.logger.warn(`command ${name} (${id}) failed: ${errorMessage(err)}`);
          this.failed = true;
          return toFailure(err);
        },
      )
      .then(async (failure) => {
        if (this.abandoned) return;
        if (!this.interrupted) this.guard(() => this.output.status('elapsed', new PyFloat(now() - start)));
        const finished = await settleWithin(
          Promise.resolve().then(() => this.output.finish()),
          finishTimeoutMs,
        );
        if (!finished.ok) {
          this.logger.warn(`command ${name} (${id}): its output could not be finished (${finished.why}); completing anyway`);
          this.guard(() => this.output.forceFinish());
        }
        if (this.abandoned) return;
        await channel.complete(failure);
      })
      .catch((err: unknown) => this.logger.warn(`command ${name} (${id}): could not report completion: ${errorMessage(err)}`));
  }

  /** Runs an output stage; what it throws is logged (once per command) instead of reaching the caller. */
  private guard<T>(f: () => T, fallback: T): T;
  private guard(f: () => void): void;
  private guard<T>(f: () => T, fallback?: T): T | undefined {
    try {
      return f();
    } catch (err) {
      if (!this.outputErrorLogged) {
        this.outputErrorLogged = true;
        this.logger.warn(`command ${this.name} (${this.id}): output error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
      return fallback;
    }
  }

  /** How it ended (once `done` settled). */
  get result(): CommandResult {
    if (this.failed) return 'exception';
    if (this.interrupted) return 'interrupted';
    return this.rc === undefined || this.rc === 0 ? 'success' : 'failure';
  }

  /** Its output's figures: sent, spooled, and held back without being kept. */
  outputFigures(): { sentBytes: number; spooledBytes: number; droppedBytes: number } {
    const kept = this.guard(() => this.output.keptBytes, { spooled: 0, dropped: 0 });
    return { sentBytes: this.sentBytes, spooledBytes: kept.spooled, droppedBytes: kept.dropped };
  }

  interrupt(flushFirst: boolean): void {
    if (flushFirst) this.output.flushBuffer();
    this.interrupted = true;
    this.command.interrupt();
  }

  abandon(): void {
    this.abandoned = true;
    this.output.dispose();
    this.interrupted = true;
    this.command.interrupt();
  }
}

export class CommandHost {
  private readonly byName = new Map<string, CommandDefinition>();
  private readonly running = new Map<string, RunningCommand>();
  private started = 0;
  /** Builder and workdir of each running command, for status. */
  private readonly where = new Map<RunningCommand, { builder: string | null; workdir: string | null }>();
  /** What the host has done since the agent started (status, metrics). */
  readonly counters = new CommandCounters();
  /** Called each time the last running command has ended. */
  onIdle: (() => void) | undefined;
  /** Called each time a command starts. */
  onStart: (() => void) | undefined;

  constructor(
    table: readonly CommandDefinition[],
    private readonly env: CommandEnv,
    /** Each command's output pipeline (default: exactly buildbot-worker's output). */
    private readonly outputs: OutputSetup = new OutputSetup(),
  ) {
    for (const def of table) for (const n of def.names) this.byName.set(n, def);
  }

  /** Starts a command; throws UnknownCommandError / CommandArgsError before anything runs. */
  start(req: StartRequest): Promise<void> {
    const def = this.byName.get(req.name);
    if (!def) throw new UnknownCommandError(req.name);
    const env: CommandEnv = req.builderDir === undefined ? this.env : { ...this.env, builderDir: req.builderDir };
    const args = req.builderDir !== undefined && def.relativeArgs ? def.relativeArgs(req.args, req.builderDir, env) : req.args;
    const missing = def.requiredArgs.filter((a) => !(a in args));
    if (missing.length) throw new CommandArgsError(`${req.name} is missing args: ${missing.join(', ')}`);
    this.env.logger.info(`starting command ${req.name} (${req.id})`);
    const cmd = new RunningCommand(req.id, req.name, def, { ...req, args }, env, this.env.logger, this.outputs, this.counters);
    this.running.set(req.id, cmd);
    this.started++;
    this.counters.commandStarted(req.name);
    this.onStart?.();
    const workdir = args['workdir'];
    this.where.set(cmd, { builder: req.builder ?? null, workdir: typeof workdir === 'string' ? workdir : null });
    void cmd.done.finally(() => {
      this.where.delete(cmd);
      this.counters.commandEnded(req.name, cmd.result, cmd.outputFigures());
      if (this.running.get(req.id) === cmd) this.running.delete(req.id);
      if (this.running.size === 0) this.onIdle?.();
    });
    return cmd.done;
  }

  /** Interrupts a running command; unknown ids are only logged (as buildbot-worker). */
  interrupt(id: string, why: string, flushFirst: boolean): void {
    const cmd = this.running.get(id);
    this.env.logger.info(`asked to interrupt command ${id}: ${why}`);
    if (!cmd) {
      this.env.logger.info(`no command ${id} is running; nothing to interrupt`);
      return;
    }
    cmd.interrupt(flushFirst);
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  /** Kills one command silently: nothing more is sent for it. */
  abandon(id: string): void {
    this.running.get(id)?.abandon();
  }

  /** The connection is gone: kill everything silently. */
  abandonAll(): void {
    for (const cmd of this.running.values()) cmd.abandon();
  }

  /** Commands started since the agent started. */
  get startedCount(): number {
    return this.started;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** A snapshot of the running commands and the counters (read-only); the byte totals include the running commands'. */
  stats(nowMs: number = Date.now()): CommandHostStats {
    const c = this.counters;
    let sent = c.outputSentBytes;
    let spooled = c.outputSpooledBytes;
    let dropped = c.outputDroppedBytes;
    const running: RunningCommandStatus[] = [...this.where.entries()].map(([cmd, where]) => {
      const figures = cmd.outputFigures();
      sent += figures.sentBytes;
      spooled += figures.spooledBytes;
      dropped += figures.droppedBytes;
      return {
        id: cmd.id,
        command: cmd.name,
        ...where,
        startedAt: cmd.startedAt,
        elapsedS: Math.max(0, (nowMs - cmd.startedAt) / 1000),
        outputSentBytes: figures.sentBytes,
        outputSpooledBytes: figures.spooledBytes,
      };
    });
    return {
      running,
      started: { ...c.started },
      finished: Object.fromEntries(Object.entries(c.finished).map(([k, v]) => [k, { ...v }])),
      outputSentBytes: sent,
      outputSpooledBytes: spooled,
      outputDroppedBytes: dropped,
    };
  }

  /** Resolves when no command is running. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()].map((c) => c.done));
  }

  interruptAll(why: string): void {
    for (const id of [...this.running.keys()]) this.interrupt(id, why, true);
  }
}
