// The one command interface every protocol drives: a command gets its arguments, a CommandIO to report
// through, and an environment; it never knows which protocol carries it.

import type { ArtifactCache } from '../artifacts/cache.js';
import type { Logger } from '../log.js';
import type { Platform } from '../../platforms/types.js';
import type { ProcessRegistry } from '../process/tracking.js';
import type { StatusValue, TextStream, UpdateItem } from '../output/types.js';

/** A command's failure, sent in `complete` (the step ends in EXCEPTION). */
export interface CommandFailure {
  /** Python-style exception class name, e.g. 'FileNotFoundError'. */
  type: string;
  message: string;
  traceback: string;
}

/**
 * What an upload sends: one file (the master's FileWriter) or a directory as a tar stream (its DirectoryWriter).
 * A protocol may need it to address the writer (msgpack names its write op after it).
 */
export type UploadKind = 'file' | 'directory';

/** Master-side file writer behind upload commands. Each call resolves when the master acknowledged it. */
export interface RemoteWriter {
  /** The most bytes one write call carries (larger writes go in several calls); unset: no limit. */
  readonly maxWriteBytes?: number;
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  utime(accessTime: number, modifiedTime: number): Promise<void>;
  unpack(): Promise<void>;
}

/** Master-side file reader behind download commands. `read` resolves to null or an empty array at EOF. */
export interface RemoteReader {
  read(length: number): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/** What a protocol provides for one running command. */
export interface CommandChannel {
  /** Sends one flushed batch of items, in order. Must not reorder with `complete`. */
  sendUpdate(items: UpdateItem[]): void;
  complete(failure: CommandFailure | null): Promise<void>;
  /** The master-side writer for an upload of this kind; undefined when the master gave none. */
  writer(kind: UploadKind): RemoteWriter | undefined;
  readonly reader: RemoteReader | undefined;
  /** Bytes queued toward the master and not yet sent (output is paused above a high-water mark). */
  backlog?(): number;
  /** The protocol sends only the text of lines, not their offsets and times: batches are sized by text. */
  readonly textOnly?: boolean;
}

/** How a running command reports to the master. Text goes through line splitting and batching. */
export interface CommandIO {
  text(stream: TextStream, text: string): void;
  log(name: string, text: string): void;
  status(key: string, value: StatusValue): void;
  /** The text with the worker's secrets (its `redact` values and password) replaced; absent: nothing to redact. */
  redact?(text: string): string;
  /** The step's environment (`env` argument): it may set BBAGENT_OUTPUT_* limits for this step. */
  stepEnvironment(env: unknown): void;
  /** Milliseconds the command should pause its process's output (budget throttle, slow connection); 0: go on. */
  backpressureMs(): number;
  /** The master-side writer for an upload of this kind; throws if the master gave none. */
  writer(kind: UploadKind): RemoteWriter;
  /** The master-side reader (downloads); throws if the master gave none. */
  reader(): RemoteReader;
  /** True once the connection went away: nothing more reaches the master (hang forensics are skipped). */
  abandoned?(): boolean;
}

export interface CommandEnv {
  /** The worker's base directory (absolute). */
  basedir: string;
  /** The builder's directory, where relative paths of a command resolve (PB); absent: basedir. */
  builderDir?: string;
  /**
   * confineToBasedir: every path a command names (file and transfer commands, a shell step's workdir and
   * logfiles) must lead into `basedir` once symlinks and '..' are resolved (agent/commands/confine.ts).
   */
  confineToBasedir?: boolean;
  /** The worker's own environment, the base of every child's. */
  environ: Record<string, string>;
  platform: Platform;
  logger: Logger;
  /** Wall clock in seconds (float), injectable for tests. */
  now(): number;
  /** The agent's running processes, killed before it exits; absent: commands' processes are not registered. */
  processes?: ProcessRegistry;
  /** The agent's one artifact cache, shared by all its workers and steps (fetch); absent: fetch has no cache. */
  artifacts?: ArtifactCacheProvider;
}

/** Opens the shared artifact cache on first use (agent/commands/fetch-cache.ts); every get gives the same one. */
export interface ArtifactCacheProvider {
  /** The cache's directory. */
  readonly root: string;
  /** The open cache; rejects (E_CACHE_LOCKED, ...) when it cannot be opened, and tries again on the next get. */
  get(): Promise<ArtifactCache>;
}

export type CommandArgs = Record<string, unknown>;

/** A running command. `run` resolves when the command is done (its rc was reported); a rejection fails it. */
export interface WorkerCommand {
  run(): Promise<void>;
  /** The master asked to interrupt; may be called more than once. */
  interrupt(): void;
}

export interface CommandDefinition {
  /** Wire names, e.g. ['upload_file', 'uploadFile']; all are advertised to the master. */
  names: readonly string[];
  /**
   * The version advertised for this command; absent: COMMAND_VERSION (buildbot-worker's). bbagent's own commands
   * (fetch, suite, perf) carry their own, which the master-side steps check.
   */
  version?: string;
  /** Arguments that must be present (checked before the command is created). */
  requiredArgs: readonly string[];
  create(args: CommandArgs, io: CommandIO, env: CommandEnv): WorkerCommand;
  /**
   * The master-relative form of this command's arguments (what PB masters send, e.g. uploadFile's
   * `workdir` + `workersrc`) turned into the absolute form (what msgpack masters send, e.g. `path`).
   * Absent: the arguments are the same in both forms.
   */
  relativeArgs?(args: CommandArgs, builderDir: string, env: CommandEnv): CommandArgs;
}

/** The version advertised for every command (buildbot_worker.commands.base.command_version). */
export const COMMAND_VERSION = '3.1';
