// The agent's configuration: one schema for the config file, the environment and the command line.
// The config file (bbagent.json in BASEDIR) is bbagent's equivalent of buildbot-worker's buildbot.tac.

/**
 * The worker protocols by the names a config may give them (an alias maps to its protocol). The composition
 * root's PROTOCOLS table (agent/agent.ts) has one line for each, which the type checker holds to this list.
 */
export const PROTOCOL_NAMES = { pb: 'pb', msgpack: 'msgpack', msgpack_experimental_v7: 'msgpack' } as const;

export type Protocol = (typeof PROTOCOL_NAMES)[keyof typeof PROTOCOL_NAMES];

/** One master of a worker's ordered list (`masters`); the fields it leaves out are the worker's own. */
export interface MasterEntry {
  host: string;
  port: number;
  protocol?: Protocol;
  /** A Twisted-style endpoint overriding host/port for this master (tcp:..., tls:...). */
  connectionString?: string | null;
  useTls?: boolean;
  tlsCaFile?: string | null;
}

/**
 * One worker's complete settings. The agent-wide fields (umask, logs, the agent's output budget, ...) are the
 * same in every worker of an agent; config/workers.ts says which fields are whose.
 */
export interface WorkerConfig {
  /** Absolute worker base directory. */
  basedir: string;
  masterHost: string;
  masterPort: number;
  /** Worker name as configured on the master (no ':' for msgpack's Basic auth). */
  name: string;
  password: string;
  protocol: Protocol;
  /**
   * Seconds between keepalives (PB: avatar.keepalive(); msgpack: WebSocket pings); 0 disables them. A master
   * silent for one keepalive interval (at least 3 s, at most 15 s) after one is taken for dead and the worker reconnects.
   */
  keepalive: number;
  /**
   * Seconds a master may stay silent after a keepalive before it is taken for dead; null: one keepalive interval,
   * within 3-15 s (a dead link is then replaced within keepalive + 30 s). Raise it for a master known to stall longer.
   */
  keepaliveTimeout: number | null;
  /** Upper bound, in seconds, of the reconnect back-off. */
  maxdelay: number;
  /** Give up after this many failed connection attempts in a row; null retries forever. */
  maxretries: number | null;
  /** umask applied at start-up (e.g. 0o022), or null to keep the inherited one. */
  umask: number | null;
  /** Worker-initiated graceful shutdown: on SIGHUP ('signal'), when a file changes ('file'), or never. */
  allowShutdown: 'signal' | 'file' | null;
  deleteLeftoverDirs: boolean;
  /** Refuse any path of a file or transfer command, and any shell workdir, that leads out of basedir (docs/security.md). */
  confineToBasedir: boolean;
  /** Reported CPU count; null detects it. */
  numcpus: number | null;
  /** TLS to the master (PB over TLS, wss:// for msgpack). */
  useTls: boolean;
  /** PEM file of the CA that signed the master's certificate (self-signed masters); null trusts the system CAs. */
  tlsCaFile: string | null;
  /** A Twisted-style client endpoint string overriding host/port (e.g. tls:host:port), or null. */
  connectionString: string | null;
  /**
   * The masters in order of preference (empty: the one master of masterHost/masterPort). The worker attaches to
   * the first that accepts, fails over down the list, and goes back to an earlier one only when idle.
   */
  masters: MasterEntry[];
  /** Seconds a lost master is retried before the worker moves on to the next master of `masters`. */
  failoverGrace: number;
  /** An HTTP CONNECT proxy to reach the masters through (tcp:host=H:port=P or http://[user:pw@]H:P), or null. */
  proxyConnectionString: string | null;
  /** Rotate the log file at this many bytes; 0 disables rotation. */
  logSize: number;
  /** Keep this many rotated log files (null keeps all). */
  logCount: number | null;

  // Output pipeline (agent/output). With no rate set, output reaches the master exactly as buildbot-worker sends it.
  /** Per-step live output budget in bytes per second; null: unlimited. A step overrides it with BBAGENT_OUTPUT_RATE. */
  outputRate: number | null;
  /** Per-step burst allowance in bytes (the head of the output always goes live up to this). */
  outputBurst: number;
  /** What happens over budget: keep the full log on the worker (spool), slow the step down (throttle), or keep head and tail (truncate). */
  outputPolicy: 'spool' | 'throttle' | 'truncate';
  /** Budget for all steps of this agent together, in bytes per second; null: unlimited. */
  agentOutputRate: number | null;
  agentOutputBurst: number;
  /** Spooled full logs (BASEDIR/spool) are deleted beyond this total compressed size ... */
  spoolMaxBytes: number;
  /** ... or this age in seconds. */
  spoolMaxAgeS: number;
  /** Send only the last state of a '\r'-rewritten progress line per update (buildbot issue 3517). */
  collapseProgress: boolean;
  /**
   * The largest update in bytes: with 'aligned' batching whole master chunks are sent up to it (null: 512 KiB);
   * with 'reference' it raises one update above the master's buffer_size (null keeps the master's).
   */
  outputBatchBytes: number | null;
  /**
   * 'aligned': updates shaped for how the master stores logs (whole 64 KiB chunks, fewer transactions, nothing
   * for its end-of-log compaction to redo); 'reference': buildbot-worker's batching, message for message.
   */
  outputBatching: 'aligned' | 'reference';
  /** Offer permessage-deflate on the msgpack WebSocket (used only when the master accepts it). */
  deflate: boolean;
  /** Omit msgpack's per-line offsets and times, which the 3.7 master never reads (15% of the bytes). */
  leanUpdates: boolean;
  /** Values replaced by <redacted> before output leaves the host. */
  redact: string[];
  /** A file with more values to redact, one per line; null: none. */
  redactFile: string | null;
  /** 'debug' adds the agent's debug lines to its log (keepalive replies, logins, heap compactions). */
  logLevel: 'debug' | 'info';
  /** The artifact cache of the `fetch` command, shared by all workers (relative: to basedir); null: BASEDIR/cache. */
  cacheDir: string | null;
  /**
   * Trust a cache hit whose stat fingerprint is unchanged, with a full check on each entry's first hit in the
   * process and every 20 hits (docs/artifacts.md, the threat model); false: every hit is re-hashed.
   */
  cacheFastPath: boolean;
  /** How log lines are written: text (timestamp, [level], message) or json (one object per message). */
  logFormat: 'text' | 'json';
  /** HOST:PORT of the Prometheus metrics endpoint (agent/control/metrics.ts); null: no metrics. */
  metricsAddr: string | null;
  /** Let metricsAddr be a non-loopback address (the endpoint has no authentication). */
  metricsAllowRemote: boolean;
}

/** The loaded configuration: the top level (worker #1) and the further workers of the file's `workers`. */
export interface AgentConfig extends WorkerConfig {
  /** The further workers of this agent, each complete: the top level's settings with its entry's over them. */
  workers: WorkerConfig[];
}

export const CONFIG_FILE = 'bbagent.json';

export const CONFIG_DEFAULTS = {
  protocol: 'pb' as Protocol,
  // buildbot-worker's 600 s would leave a dead link unnoticed for 10 minutes; 60 s notices one within 75 s
  keepalive: 60,
  keepaliveTimeout: null,
  maxdelay: 300,
  maxretries: null,
  umask: null,
  allowShutdown: null,
  deleteLeftoverDirs: false,
  confineToBasedir: false,
  numcpus: null,
  useTls: false,
  tlsCaFile: null,
  connectionString: null,
  masters: [] as MasterEntry[],
  // a master restart takes seconds; a fleet's reconnects after one are spread over 45 s (backoff.ts)
  failoverGrace: 60,
  proxyConnectionString: null,
  logSize: 10_000_000,
  logCount: 10,
  outputRate: null,
  outputBurst: 1024 * 1024,
  outputPolicy: 'spool' as const,
  agentOutputRate: null,
  agentOutputBurst: 4 * 1024 * 1024,
  spoolMaxBytes: 1024 * 1024 * 1024,
  spoolMaxAgeS: 7 * 24 * 3600,
  collapseProgress: false,
  outputBatchBytes: null,
  outputBatching: 'aligned',
  deflate: true,
  leanUpdates: true,
  redact: [] as string[],
  redactFile: null,
  logLevel: 'info' as const,
  cacheDir: null,
  cacheFastPath: true,
  logFormat: 'text' as const,
  metricsAddr: null,
  metricsAllowRemote: false,
  workers: [] as WorkerConfig[],
} satisfies Partial<AgentConfig>;
