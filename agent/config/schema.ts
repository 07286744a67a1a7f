// The agent's configuration: one schema for the config file, the environment and the command line.
// The config file (bbagent.json in BASEDIR) is bbagent's equivalent of buildbot-worker's buildbot.tac.

export type Protocol = 'pb' | 'msgpack';

export interface AgentConfig {
  /** Absolute worker base directory. */
  basedir: string;
  masterHost: string;
  masterPort: number;
  /** Worker name as configured on the master (no ':' for msgpack's Basic auth). */
  name: string;
  password: string;
  protocol: Protocol;
  /** Seconds between worker keepalives (PB); 0 disables. */
  keepalive: number;
  /** Upper bound, in seconds, of the reconnect back-off. */
  maxdelay: number;
  /** Give up after this many failed connection attempts in a row; null retries forever. */
  maxretries: number | null;
  /** umask applied at start-up (e.g. 0o022), or null to keep the inherited one. */
  umask: number | null;
  /** Worker-initiated graceful shutdown: on SIGHUP ('signal'), when a file changes ('file'), or never. */
  allowShutdown: 'signal' | 'file' | null;
  deleteLeftoverDirs: boolean;
  /** Reported CPU count; null detects it. */
  numcpus: number | null;
  /** TLS to the master (PB over TLS, wss:// for msgpack). */
  useTls: boolean;
  /** PEM file of the CA that signed the master's certificate (self-signed masters); null trusts the system CAs. */
  tlsCaFile: string | null;
  /** A Twisted-style client endpoint string overriding host/port (e.g. tls:host:port), or null. */
  connectionString: string | null;
  /** Rotate the log file at this many bytes; 0 disables rotation. */
  logSize: number;
  /** Keep this many rotated log files (null keeps all). */
  logCount: number | null;
}

export const CONFIG_FILE = 'bbagent.json';

export const CONFIG_DEFAULTS = {
  protocol: 'msgpack' as Protocol,
  keepalive: 600,
  maxdelay: 300,
  maxretries: null,
  umask: null,
  allowShutdown: null,
  deleteLeftoverDirs: false,
  numcpus: null,
  useTls: false,
  tlsCaFile: null,
  connectionString: null,
  logSize: 10_000_000,
  logCount: 10,
} satisfies Partial<AgentConfig>;
