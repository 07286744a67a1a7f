// The service manager's vocabulary: what `bbagent service` installs, asks about and removes, behind one
// interface for systemd, launchd and a Windows service (WinSW).

import { AgentError, type ErrorCode } from '../../agent/errors.js';

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
  /** Windows: the password of `user`; it goes to the service manager on stdin or in an administrators-only file, never on a command line. */
  password?: string;
  /**
   * How long a stop waits for the agent to drain (running builds finish) before the manager kills what is left:
   * systemd TimeoutStopSec=, launchd ExitTimeOut, WinSW stoptimeout. Default DEFAULT_STOP_TIMEOUT_S.
   */
  stopTimeoutS?: number;
  /** Windows: the WinSW executable to install the service with (default: winsw.exe beside bbagent.exe). */
  winsw?: string;
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
 * The OS service manager, behind one interface: systemd on Linux, launchd on macOS, the Service Control Manager
 * (through WinSW) on Windows. Failures throw ServiceError with a stable code.
 */
export interface ServiceManager {
  readonly kind: 'systemd' | 'launchd' | 'winsw';
  /** The files install writes, without touching anything (for --dry-run and for validation). */
  render(spec: ServiceSpec): ServiceFile[];
  /** Idempotent: the same settings again are 'unchanged'; different ones are refused unless `force`. Starts it unless `noStart`. */
  install(spec: ServiceSpec, opts: { force: boolean; noStart: boolean }): Promise<InstallOutcome>;
  /** Stops and removes the service; BASEDIR is never touched. False when nothing was installed. */
  uninstall(ref: ServiceRef): Promise<boolean>;
  status(ref: ServiceRef): Promise<ServiceStatus>;
  start(ref: ServiceRef): Promise<void>;
  stop(ref: ServiceRef): Promise<void>;
  /**
   * `bbagent stop` of the agent in `basedir` (process `pid`): how this manager sees it. 'exit' when the agent's
   * own clean exit leaves the service stopped (systemd Restart=on-failure, launchd SuccessfulExit=false), with the
   * service's name when the agent is known to run under it; 'manager' when it had to stop the service itself
   * (Windows, where no signal reaches the agent gracefully); undefined when no service runs that agent.
   */
  stopAgent(basedir: string, pid: number): Promise<{ via: 'exit' | 'manager'; service: string } | undefined>;
}

/** What a service manager refused or failed to do. */
export type ServiceErrorCode = Extract<ErrorCode, `E_SERVICE_${string}`>;

export class ServiceError extends AgentError {
  declare readonly code: ServiceErrorCode;
  constructor(code: ServiceErrorCode, message: string) {
    super(code, message);
    this.name = 'ServiceError';
  }
}
