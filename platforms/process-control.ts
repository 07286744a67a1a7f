// Process control, one half of the Platform interface: starting a process (and the argv of the programs the
// agent runs), finding, signalling and inspecting processes. agent/process/ needs this half only.

import { AgentError } from '../agent/errors.js';

export interface SpawnRequest {
  /** argv[0] is the executable (searched on PATH when it has no slash). */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Run under a pseudo-terminal (stderr is merged into stdout). */
  pty: boolean;
  /** Keep stdin open as a pipe (for initial_stdin); otherwise it is closed at once. */
  stdinPipe: boolean;
  /** POSIX: read the output pipes into a reused buffer (the default) or, when false, through Node's streams. */
  directReads?: boolean;
}

export interface ExitStatus {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** Signal number, or null. */
  signal: number | null;
}

/** A started child process, the leader of its own process group (POSIX) or job (Windows). */
export interface ProcessHandle {
  readonly pid: number;
  onStdout(cb: (data: Buffer) => void): void;
  onStderr(cb: (data: Buffer) => void): void;
  /** Fires once, after the process ended and its output was drained. */
  onExit(cb: (status: ExitStatus) => void): void;
  writeStdin(data: string | Buffer): void;
  closeStdin(): void;
  /** Stop reading output (backpressure); resume() reads again. */
  pause(): void;
  resume(): void;
  /** Stops reading output and ends the process's pipes, so onExit does not wait for pipes held by strays. */
  closeOutput(): void;
}

/** NAME=VALUE in the environment of every process a command starts: its descendants inherit it. */
export interface TrackingMarker {
  name: string;
  value: string;
}

/** A process as found by a scan: its start time tells it from a later process that reuses the pid. */
export interface ProcessRef {
  pid: number;
  /** Start time in the platform's own unit (clock ticks since boot on Linux); undefined when unknown. */
  start: number | undefined;
}

export interface ProcessQuery {
  /** A process group: every member is found (a group id is not reused while the group has members). */
  group?: number;
  /**
   * A live process whose descendants are found, wherever their group. Only while the caller knows it has not
   * been reaped: after that its pid may belong to another process.
   */
  root?: number;
  /** Processes whose environment carries this marker (NAME=VALUE, or VALUE in a ':'-separated NAME list). */
  marker?: TrackingMarker;
  /** Processes found before (e.g. re-parented after their parent died): found again while they live. */
  known?: readonly ProcessRef[];
  /**
   * Only processes started at or after this time (ms since the epoch) can carry the marker: older ones are not
   * read at all, which keeps a scan cheap on a busy host. Give it a few seconds of slack.
   */
  startedAfterMs?: number;
  /** Stop reading environments after this long (ms); what was found so far is returned. */
  timeoutMs?: number;
  /**
   * Where the pid counter stood when the command's first process started (from pidStamp()): its processes
   * then have pids from that process's on, and a scan may skip older pids while the counter cannot have wrapped.
   */
  pidStamp?: PidStamp;
  /**
   * Called with one line when some processes could not be examined (their environment was not read: hung in
   * the kernel, or the time ran out), saying which and why; the result is then what could be found.
   */
  onIncomplete?: (why: string) => void;
}

/** The host's pid counter just before a command started (Linux), and the pid its first process got. */
export interface PidStamp {
  /** Processes and threads created since boot (/proc/stat `processes`). */
  forks: number;
  /** Processes and threads alive (/proc/loadavg): the most pids the counter could skip as in use. */
  tasks: number;
  /** The command's first process. */
  firstPid: number;
}

export interface InspectLimits {
  /** Give up after this long (ms), returning what was collected. */
  timeoutMs: number;
  /** Keep at most this many bytes of text. */
  maxBytes: number;
  signal?: AbortSignal;
  /** Called with one line when some facts were not read (e.g. command lines of processes hung in the kernel), saying which and why. */
  onIncomplete?: (why: string) => void;
}

/** Stack traces of processes, or why there are none. */
export interface StackReport {
  tool: string | undefined;
  text: string;
  note?: string;
}

/** One line of a process listing (hang forensics, leftovers). Unknown fields are undefined. */
export interface ProcessFacts {
  pid: number;
  ppid: number | undefined;
  /** One-letter state as ps shows it (R running, S sleeping, D disk wait, T stopped, Z zombie). */
  state: string | undefined;
  /** User + system CPU time, in seconds. */
  cpuSeconds: number | undefined;
  /** The kernel function the process waits in. */
  wchan: string | undefined;
  openFiles: number | undefined;
  /** Arguments joined by spaces (the short name in brackets when the command line is unreadable). */
  command: string;
}

/** Spawn failed before the program ran (cwd missing, executable not found, ...). */
export class SpawnError extends AgentError {
  /** Why, as the OS would say it: the errno name ('ENOENT', 'ENOTDIR') and number. */
  readonly errnoName: string;
  readonly errno: number | undefined;
  constructor(errnoName: string, message: string, errno?: number) {
    super('E_SPAWN', message);
    this.name = 'SpawnError';
    this.errnoName = errnoName;
    this.errno = errno;
  }
}

/** Starting, finding, signalling and inspecting processes, and the argv of the programs the agent runs. */
export interface ProcessControl {
  /**
   * Whether spawn() can run a process under a pseudo-terminal. Where it cannot (Windows), usePTY is dropped
   * with buildbot-worker's warning header, as buildbot-worker does on every non-POSIX system.
   */
  readonly supportsPty: boolean;
  /** argv that runs a command string through the system shell. */
  shellArgv(command: string): string[];
  /** Starts a process in its own process group / job. Throws SpawnError when it cannot start. */
  spawn(req: SpawnRequest): ProcessHandle;
  /**
   * The path of program `name` as the system's program search finds it on the PATH of `environ` (on Windows
   * also with the extensions of PATHEXT), or null when there is no such executable file.
   */
  findProgram(name: string, environ: Record<string, string | undefined>): string | null;
  /**
   * Whether findProcesses can read other processes' environments, so `marker` finds processes that left the
   * tree (double-forked daemons). False (Windows): only the tree is found.
   */
  readonly tracksMarkers: boolean;
  /**
   * Linux: the pid counter's state, taken just before a spawn (without `firstPid`, which the caller adds), so
   * a later query's `pidStamp` lets its scan read only the pids allocated since. Undefined where unknown.
   */
  pidStamp?(): Omit<PidStamp, 'firstPid'> | undefined;
  /**
   * Live processes of a command: its process group, the descendants of its first process (wherever their
   * group), every process whose environment carries `query.marker`, and the `known` processes
   * that are still the same processes. The group counts while its first process (`root`) is unreaped, or
   * when a member that started after the command still lives (a reaped group's id may be reused).
   * Asynchronous and sliced: it never blocks the event loop for long, whatever the number of processes on the
   * host, and a process that hangs the kernel's reads is skipped (`onIncomplete` says so).
   */
  findProcesses(query: ProcessQuery): Promise<ProcessRef[]>;
  /**
   * Signals what findProcesses(query) finds. While `query.root` is given (unreaped), the process group
   * `query.group` is signalled synchronously, before anything else, so nothing in it can fork past the kill;
   * without a root, the group is signalled only when the scan found a live member of it (an emptied group's
   * id may have been reused). Windows: only `root`'s tree, and nothing once it was reaped. Resolves with every
   * process signalled.
   */
  killProcesses(signal: string, query: ProcessQuery): Promise<ProcessRef[]>;
  /**
   * Sends `signal` (a name without 'SIG', e.g. 'TERM') to the one process `pid`: true when sent, false when there
   * is no such process. Throws (EPERM, ...) when it exists but cannot be signalled. Windows has no signals:
   * TERM, KILL and INT end the process at once, without a chance to clean up.
   */
  signalProcess(pid: number, signal: string): boolean;
  /** Facts for hang forensics and for listing leftovers: pid, ppid, state, CPU time, wait channel, command line. */
  inspectProcesses(pids: readonly number[], limits: InspectLimits): Promise<ProcessFacts[]>;
  /**
   * Stack traces of `pids` by a debugger or sampler installed on the host (eu-stack or gdb on Linux, sample on
   * macOS), bounded in time and size; `tool` undefined when none is installed (nothing is installed for it)
   * or none may attach, `note` then saying why.
   */
  collectStacks(pids: readonly number[], limits: InspectLimits): Promise<StackReport>;
  /**
   * When process `pid` started (ms since the epoch, to within ~1 s), or undefined when unknown. Tells a live
   * bbagent from a process that merely reuses the pid of a stale pidfile (after a reboot or power cut).
   */
  processStartMs(pid: number): number | undefined;
  /** Signal number for a name without 'SIG' (e.g. 'KILL' -> 9), undefined when unknown. */
  signalNumber(name: string): number | undefined;
  /** argv that removes a directory tree (rmdir command), as buildbot-worker runs it. */
  removeTreeArgv(path: string): string[];
  /** argv that makes a tree writable before a second removal attempt. */
  chmodTreeArgv(path: string): string[];
  /** argv that copies a directory tree verbosely (cpdir command). */
  copyTreeArgv(from: string, to: string): string[];
}
