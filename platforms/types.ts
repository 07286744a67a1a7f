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
  /** argv that runs a command string through the system shell. */
  shellArgv(command: string): string[];
  /** Starts a process in its own process group / job. Throws SpawnError when it cannot start. */
  spawn(req: SpawnRequest): ProcessHandle;
  /**
   * Signals the whole tree rooted at pid: its process group, its descendants that left the group, and the
   * `known` pids signalled before (children re-parented away after their parent died). Returns every pid signalled.
   */
  killTree(pid: number, signal: string, known?: readonly number[]): number[];
  /** True while any process of the tree rooted at pid (or its group) is alive. */
  treeAlive(pid: number): boolean;
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
}
