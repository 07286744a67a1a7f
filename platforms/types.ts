// The Platform interface: everything OS-specific the agent core needs, chosen once at start-up.
// Nothing outside platforms/ looks at process.platform.

export interface SpawnRequest {
  /** argv[0] is the executable (searched on PATH when it has no slash). */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Run under a pseudo-terminal (stderr is merged into stdout). */
  pty: boolean;
  /** Keep stdin open as a pipe (for initial_stdin); otherwise it is closed at once. */
  stdinPipe: boolean;
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
   * Called with one line when some processes could not be examined (their environment was not read: hung in
   * the kernel, or the time ran out), saying which and why; the result is then what could be found.
   */
  onIncomplete?: (why: string) => void;
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
export class SpawnError extends Error {
  readonly code: string;
  readonly errno: number | undefined;
  constructor(code: string, message: string, errno?: number) {
    super(message);
    this.name = 'SpawnError';
    this.code = code;
    this.errno = errno;
  }
}

export interface Platform {
  readonly id: 'linux' | 'darwin' | 'win32';
  /** Python's os.name: the master picks posix or nt path rules from it. */
  readonly osName: 'posix' | 'nt';
  /** Separator for PATH-like lists (os.pathsep). */
  readonly pathListSeparator: string;
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
   * Whether findProcesses can read other processes' environments, so `marker` finds processes that left the
   * tree (double-forked daemons). False (Windows): only the tree is found.
   */
  readonly tracksMarkers: boolean;
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
  /** KEY -> value of the OS release description (os-release on Linux), lower-case keys without prefix. */
  osRelease(): Record<string, string>;
  /**
   * The OS product and its version for people reading the worker info ("Debian GNU/Linux" "12", "macOS" "14.5",
   * "Windows 10 Pro" "10.0.19045"). Read from files or the OS API, never by running a program.
   */
  osProduct(): { name: string; version: string };
}

/** What `bbagent service install` registers: one worker (its BASEDIR) run in the foreground by the OS's service manager. */
export interface ServiceSpec {
  /** Service id, [A-Za-z0-9_.-]: systemd unit bbagent-<name>.service, launchd label org.buildbot.bbagent.<name>, task \bbagent\<name>. */
  name: string;
  /** One line for humans (the unit's Description=). */
  description: string;
  /** Absolute worker directory. */
  basedir: string;
  /** Absolute program and its arguments that run the worker in the foreground. */
  command: string[];
  /** Account the worker runs as; undefined: the manager's default (Linux/macOS daemon: BASEDIR's owner). */
  user?: string;
  /** macOS: a LaunchDaemon at boot without a GUI session (default), or a LaunchAgent in the user's login session. */
  session?: 'daemon' | 'agent';
  /** Windows: the password of `user` for the Task Scheduler; it goes to a script's stdin, never to a file or a command line. */
  password?: string;
}

/** Which installed service an operation is about. */
export interface ServiceRef {
  name: string;
  basedir: string;
  session?: 'daemon' | 'agent';
  /** The agent's pidfile in BASEDIR (Windows stop ends the worker's process tree through it). */
  pidFile: string;
}

/** A file the service manager writes (a systemd unit, a launchd plist, a scheduled-task definition). */
export interface ServiceFile {
  path: string;
  content: string | Buffer;
}

export interface ServiceStatus {
  installed: boolean;
  /** undefined when the manager could not be asked (e.g. systemd not running). */
  running: boolean | undefined;
  /** Starts at boot (or login, for a LaunchAgent). */
  enabled: boolean | undefined;
  /** The manager's own words: "active (running)", "state = running", ... */
  detail: string;
}

export type InstallOutcome = 'installed' | 'unchanged' | 'replaced';

/**
 * The OS service manager, behind one interface: systemd on Linux, launchd on macOS, the Task Scheduler on
 * Windows. Failures throw ServiceError with a stable code.
 */
export interface ServiceManager {
  readonly kind: 'systemd' | 'launchd' | 'schtasks';
  /** The files install writes, without touching anything (for --dry-run and for validation). */
  render(spec: ServiceSpec): ServiceFile[];
  /** Idempotent: the same settings again are 'unchanged'; different ones are refused unless `force`. Starts it unless `noStart`. */
  install(spec: ServiceSpec, opts: { force: boolean; noStart: boolean }): Promise<InstallOutcome>;
  /** Stops and removes the service; BASEDIR is never touched. False when nothing was installed. */
  uninstall(ref: ServiceRef): Promise<boolean>;
  status(ref: ServiceRef): Promise<ServiceStatus>;
  start(ref: ServiceRef): Promise<void>;
  stop(ref: ServiceRef): Promise<void>;
}

export class ServiceError extends Error {
  /** E_SERVICE_RIGHTS, E_SERVICE_EXISTS, E_SERVICE_USER, E_SERVICE_MANAGER, E_SERVICE_COMMAND, E_SERVICE_MISSING, E_SERVICE_SPEC */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ServiceError';
    this.code = code;
  }
}
