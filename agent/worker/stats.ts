// What a worker's command host has done and is doing, for `bbagent status` and the metrics: a read-only view
// (snapshots, plus a listener for each batch of output sent). The host counts; nothing here changes a command.

/** How a command ended: rc 0, rc not 0, an exception (complete with a failure), or interrupted / abandoned. */
export type CommandResult = 'success' | 'failure' | 'exception' | 'interrupted';

/** One running command as far as the worker knows it (the master sends no step name, only the command's). */
export interface RunningCommandStatus {
  /** The master's id of the command (PB: a counter per connection; msgpack: the command id). */
  id: string;
  /** The remote command's name: shell, uploadFile, rmdir, ... */
  command: string;
  /** The builder it runs for (PB: known from the builder it was started on); null where the protocol does not say (msgpack). */
  builder: string | null;
  /** Its `workdir` argument, when it has one. */
  workdir: string | null;
  /** Epoch milliseconds when it started. */
  startedAt: number;
  elapsedS: number;
  /** Bytes of its output sent to the master so far (text of lines, logs and headers). */
  outputSentBytes: number;
  /** Bytes of its output kept in the spool (over budget, policy spool). */
  outputSpooledBytes: number;
}

/** The host's counters since the agent started. */
export interface CommandHostStats {
  running: RunningCommandStatus[];
  /** command name -> commands started. */
  started: Record<string, number>;
  /** command name -> result -> commands ended. */
  finished: Record<string, Partial<Record<CommandResult, number>>>;
  /** Bytes of output sent to the master since the agent started (the running commands' included). */
  outputSentBytes: number;
  outputSpooledBytes: number;
  /** Held back over budget and kept nowhere (policy truncate, or the spool was unavailable). */
  outputDroppedBytes: number;
}

/** The per-command figures the host folds into its totals when a command ends. */
export interface CommandOutputFigures {
  sentBytes: number;
  spooledBytes: number;
  droppedBytes: number;
}

/** Called once per batch of output sent to the master, with its size in bytes. */
export type BatchListener = (bytes: number) => void;

/** The host's running totals (mutable, owned by the CommandHost). */
export class CommandCounters {
  readonly started: Record<string, number> = {};
  readonly finished: Record<string, Partial<Record<CommandResult, number>>> = {};
  outputSentBytes = 0;
  outputSpooledBytes = 0;
  outputDroppedBytes = 0;
  private readonly batchListeners = new Set<BatchListener>();

  commandStarted(name: string): void {
    this.started[name] = (this.started[name] ?? 0) + 1;
  }

  commandEnded(name: string, result: CommandResult, output: CommandOutputFigures): void {
    const byResult = (this.finished[name] ??= {});
    byResult[result] = (byResult[result] ?? 0) + 1;
    this.outputSentBytes += output.sentBytes;
    this.outputSpooledBytes += output.spooledBytes;
    this.outputDroppedBytes += output.droppedBytes;
  }

  /** Listens to every batch sent; returns the function that stops listening. */
  onBatch(listener: BatchListener): () => void {
    this.batchListeners.add(listener);
    return () => this.batchListeners.delete(listener);
  }

  batchSent(bytes: number): void {
    for (const l of this.batchListeners) l(bytes);
  }
}

/**
 * The size of one batch's text (lines, logs, headers; status values are not counted), counted as the output
 * budget counts it: in characters, which are bytes for ASCII. Not Buffer.byteLength: that reads every
 * character, 0.2 s per GiB of ASCII and 1.3 s of other text on the path of every build's output.
 */
export function batchBytes(items: readonly { kind: string; chunk?: { text: string } }[]): number {
  let n = 0;
  for (const item of items) if (item.chunk) n += item.chunk.text.length;
  return n;
}
