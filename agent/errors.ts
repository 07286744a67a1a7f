// The one root of the errors the agent raises: an AgentError carries a stable `code` from the union below and a
// message naming what was wrong (the path, the argument, the peer). Python-shaped errors (py/), the protocols'
// errors and the platforms' errors all derive from it, so a caller tells them apart by `code`, never by text.

/** Configuration, the command line and the agent's own files (pid file, log, config file). */
type ConfigCode =
  | 'E_CONFIG' // a setting is wrong: the message names the field and where it came from
  | 'E_CONFIG_WRITE'
  | 'E_USAGE' // a command-line mistake (exit code 2)
  | 'E_CREATE' // create-worker could not lay out BASEDIR
  | 'E_EXISTS' // create-worker: BASEDIR already holds a worker
  | 'E_TAC' // create-worker --from-buildbot-worker: buildbot.tac cannot be read or carried over
  | 'E_PIDFILE'
  | 'E_PIDFILE_GARBLED'
  | 'E_RUNNING' // an agent already runs in this BASEDIR
  | 'E_LOG'
  | 'E_SIGNAL' // stop could not signal the agent
  | 'E_CONTROL' // the control socket (bbagent status) cannot be served, reached or understood
  | 'E_METRICS'; // the metrics endpoint cannot listen on metricsAddr

/** Reaching and talking to a master, on either protocol. */
type ConnectionCode =
  | 'E_CONNECT'
  | 'E_REFUSED'
  | 'E_AUTH' // wrong worker name or password
  | 'E_LOGIN'
  | 'E_HANDSHAKE'
  | 'E_PROXY' // the HTTP CONNECT proxy refused or failed the tunnel to the master
  | 'E_CONNECTION_LOST'
  | 'E_REMOTE' // the master answered a call with an error
  | 'E_WS_INTERNALS' // the ws library no longer works as msgpack/inflate.ts expects
  | 'E_MSGPACK_ARGS'
  | 'E_MSGPACK_DECODE'
  | 'E_MSGPACK_ENVELOPE'
  | 'E_MSGPACK_INFLATE'
  | 'E_MSGPACK_LIMIT'
  | 'E_MSGPACK_OP'
  | 'E_MSGPACK_READ'
  | 'E_BANANA'
  | 'E_JELLY'
  | 'E_PB_ARGS'
  | 'E_PB_NO_SUCH_METHOD'
  | 'E_PB_OBJECT'
  | 'E_PB_PROTOCOL'
  | 'E_PB_READ'
  | 'E_PB_RELEASED';

/** What the master asked of the worker: a command, its arguments, its builder, its output settings. */
type CommandCode =
  | 'E_UNKNOWN_COMMAND'
  | 'E_COMMAND_ARGS'
  | 'E_NO_BUILDER'
  | 'E_SETTINGS'
  | 'E_CONFINED' // confineToBasedir refused a path
  | 'E_READ_TOO_MUCH'
  | 'E_RMDIR_BASEDIR'
  | 'E_OUTPUT_LIMIT'
  | 'E_NEWLINE_RE';

/** Files, transfers and processes on the worker. */
type WorkCode =
  | 'E_NOT_REGULAR_FILE'
  | 'E_MAKEDIRS_DEPTH'
  | 'E_FILE_CHANGED'
  | 'E_FILE_SHRANK'
  | 'E_TAR_FIELD'
  | 'E_BZIP2'
  | 'E_NO_BZIP2'
  | 'E_SPAWN' // a program could not be started (SpawnError: its errno name says why)
  | 'E_KILL_FAILED';

/** Fetching builds and tests (artifacts/): the cache, downloads, extraction. */
type ArtifactCode =
  | 'E_CACHE_KEY'
  | 'E_CACHE_LOCKED' // another live process holds the cache directory
  | 'E_CACHE_DISK_FLOOR' // evicting every unpinned entry would not keep the free-disk floor
  | 'E_CACHE_PRODUCE'
  | 'E_CACHE_HASH_MISMATCH'
  | 'E_CACHE_CLOSED'
  | 'E_CACHE_FOREIGN' // the cache directory holds what no cache wrote: its sweep would delete it
  | 'E_FETCH_URL'
  | 'E_FETCH_DIGEST'
  | 'E_FETCH_HTTP' // the server answered a status that is not retried (404, 403, ...)
  | 'E_FETCH_SHORT_BODY'
  | 'E_FETCH_TIMEOUT'
  | 'E_FETCH_NETWORK'
  | 'E_FETCH_RANGE'
  | 'E_FETCH_HASH_MISMATCH' // the content changed upstream: both hashes are in the message
  | 'E_FETCH_PROXY'
  | 'E_FETCH_REDIRECT'
  | 'E_FETCH_TOO_LARGE'
  | 'E_FETCH_HEADERS'
  | 'E_FETCH_WRITE'
  | 'E_FETCH_ABORTED'
  | 'E_FETCH_DEST' // fetch: no place (or two places) to put the result
  | 'E_EXTRACT_UNSAFE' // a member would land outside the target (.., absolute, an escaping link, through a link)
  | 'E_EXTRACT_LIMIT' // the archive holds more bytes or members than the caps allow
  | 'E_EXTRACT_CORRUPT'
  | 'E_EXTRACT_FORMAT'
  | 'E_EXTRACT_UNSUPPORTED'
  | 'E_EXTRACT_IO'
  | 'E_EXTRACT_TARGET_EXISTS'
  | 'E_EXTRACT_ABORTED';

/** Test suites (suites/): chunking a test list, classifying reruns. */
type SuiteCode =
  | 'E_SUITE_CHUNK_TOTAL' // the number of chunks is not an integer >= 1
  | 'E_SUITE_CHUNK_THIS' // the chunk asked for is not an integer in 1..total
  | 'E_SUITE_DUPLICATE_TEST' // a test id appears twice in the list to chunk
  | 'E_SUITE_TESTS_PLACEHOLDER' // {tests} misused: in a shell string, inside a word, missing while tests are listed, or vice versa
  | 'E_SUITE_NO_TESTS' // a chunked run's list of tests (and glob) is empty
  | 'E_SUITE_DURATION' // a recorded duration is negative or not a finite number
  | 'E_SUITE_DURATIONS_FILE' // a durations file is not JSON or not of the expected shape (file and reason named)
  | 'E_SUITE_RERUN_TEMPLATE' // a rerun template is malformed (open quote), names no program or no {test}/{name}/{group}
  | 'E_SUITE_NO_RESULTS' // a suite run wrote no report matching its --results glob
  | 'E_SUITE_EXIT' // a suite exited non-zero although its reports name no failing test
  | 'E_SUITE_RERUNS' // a failure cannot be classified from the reruns given (none, or counts out of range)
  | 'E_SUITE_REPORT_READ' // a test report or test list cannot be read (the file and the OS's reason named)
  | 'E_SUITE_REPORT_FORMAT' // a test report is none of the formats read, or not the one asked for
  | 'E_SUITE_REPORT_MALFORMED' // a test report is broken (not well-formed XML, a bad JSON line): file:line named
  | 'E_SUITE_REPORT_LIMIT'; // a test report exceeds a limit that keeps memory bounded (a line, a token, nesting)

/** Performance tests (perf/): filters, replicates, the quiet-host gate, comparisons. */
type PerfCode =
  | 'E_PERF_FILTER' // a filter spec is malformed, or the filters leave no value to summarize
  | 'E_PERF_OPTIONS' // a replicate count, target or bound is out of range (the option is named)
  | 'E_PERF_METRIC' // a PERFMETRIC line is malformed, or replicates report different metrics
  | 'E_PERF_COMMAND' // the measured command could not start, failed or was interrupted (its rc is named)
  | 'E_PERF_NOISY_HOST' // the quiet-host gate refused the run (what was noisy is named)
  | 'E_PERF_RESULTS_FILE' // a results file to compare is unreadable or not of a known shape (file and reason named)
  | 'E_PERF_SCHEMA'; // the Perfherder document would break the format's limits (the field is named)

/** Python-compatible failures (py/): the exception class is the error's `pyType`. */
type PythonCode = 'E_PYTHON' | 'E_GLOB_PATTERN' | 'E_GLOB_LIMIT' | 'E_GLOB_LOOP' | 'E_GLOB_STOPPED' | 'E_NUL_IN_PATH';

/** The platforms: service managers and the single executable's embedded files. */
type PlatformCode =
  | 'E_SERVICE_COMMAND'
  | 'E_SERVICE_EXISTS'
  | 'E_SERVICE_MANAGER'
  | 'E_SERVICE_MISSING'
  | 'E_SERVICE_RIGHTS'
  | 'E_SERVICE_SPEC'
  | 'E_SERVICE_USER'
  | 'E_SEA_ASSET'
  | 'E_SEA_CACHE'
  | 'E_SEA_MANIFEST';

/**
 * The errno name of an OS error the agent passes on as Python's OSError ('ENOENT', 'ECONNRESET', ...): whatever
 * the OS said, so it is not a closed list; only osErrnoCode() makes one, so a mistyped agent code cannot pass.
 */
export type OsErrnoCode = string & { readonly osErrno: true };

export type ErrorCode = ConfigCode | ConnectionCode | CommandCode | WorkCode | ArtifactCode | SuiteCode | PerfCode | PythonCode | PlatformCode | OsErrnoCode;

/** An errno name as Node reports it, as an error code. */
export function osErrnoCode(name: string): OsErrnoCode {
  return name as OsErrnoCode;
}

export class AgentError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'AgentError';
  }
}

/** Raised synchronously when the master asks for a command the agent does not have. */
export class UnknownCommandError extends AgentError {
  constructor(name: string) {
    super('E_UNKNOWN_COMMAND', `unrecognized WorkerCommand '${name}'`);
  }
}

/** Raised synchronously when a command's required arguments are missing or of the wrong type. */
export class CommandArgsError extends AgentError {
  /** buildbot-worker raises ValueError for missing or bad arguments. */
  readonly pyType = 'ValueError';
  constructor(message: string) {
    super('E_COMMAND_ARGS', message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
