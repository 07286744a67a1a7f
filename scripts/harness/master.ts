// The harness of the integration tests, the benchmark and the demo: a real Buildbot 3.7 master (Debian's
// `buildbot` package) in a scratch directory, driven through its REST API (force builds, watch workers, read
// step logs).
//
// Findings (Buildbot 3.7.0 Debian, Twisted 22.4, checked on this machine):
// - Timing: BuildbotMaster.start() takes ~1.0-1.3 s (almost all of it Python importing buildbot; calling
//   twistd directly is no faster). stop() of an idle master ~0.3 s; restart() ~1.3 s, after which
//   buildbot-worker needs ~0.5-1 s (its reconnect back-off) to be connected again. ReferenceWorker.start()
//   ~0.5 s, and the worker shows as connected in REST ~10 ms later. `buildbot create-master` alone costs
//   ~1 s (alembic builds the sqlite schema), so the harness runs it once per buildbot install, caches the
//   pristine state.sqlite under os.tmpdir()/bbagent-harness and copies it into every master dir;
//   buildbot.tac is written directly. No `upgrade-master` is needed (the copied schema is current); a
//   master without a current schema stops with "upgrade-master is required".
// - buildbot-worker buffers output and sends it at most 5 s (buffer_timeout) after the first buffered
//   line, so log text of a running step may show up late (waitForLogText).
// - `buildbot start --nodaemon <dir>` runs twistd in-process (same pid, `--pidfile=`), so SIGTERM reaches
//   twistd directly. Use Debian's `/usr/bin/buildbot`: a `python3` found first on PATH (pyenv) may not have
//   buildbot at all, so nothing here runs `python3` by name.
// - Readiness: twistd.log says "BuildMaster is running" (or "BuildMaster startup failed", after which the
//   process exits) once every service, including the www site, is listening. A protocol or www port that
//   cannot be bound fails start-up with "CannotListenError ... Address already in use" in the log; the
//   harness then retries on fresh ports (freePorts() releases its ports before the master binds them).
// - The REST API needs a `buildbot.www` entry point named `base` (buildbot-www is not packaged by Debian).
//   buildbot.www.plugin.Application reads `<pkg>/VERSION` through pkg_resources, so the stub package
//   needs a VERSION file besides static/index.html; entry points are found by pkg_resources scanning the
//   `*.dist-info` directories on sys.path, which PYTHONPATH feeds.
// - Anonymous REST users may do everything (no authz configured), including force/stop.
// - `POST /api/v2/forceschedulers/<name>` `force` returns `[buildsetid, {"<builderid>": brid}]` (builder
//   ids as string keys). Builds of a request: `GET /api/v2/builds?buildrequestid=N` (a retried request
//   has several builds). `GET /api/v2/workers?name=w1` filters by name; `connected_to` is `[{masterid}]`.
// - Step numbers start at 0 with Buildbot's own "worker_preparation" step; the steps of the factory
//   follow from 1. `/api/v2/builds/<id>/steps/<n>` takes a step NUMBER (or an identifier-shaped name),
//   `/api/v2/steps/<n>` a stepid.
// - Log contents: `GET /api/v2/logs/<logid>/contents` returns `{logchunks: [{logid, firstline, content}]}`
//   with ONE chunk holding all lines exactly as stored: for stdio ('s') logs every line starts with its
//   channel character (`o` stdout, `e` stderr, `h` header) and ends with "\n". `GET /api/v2/logs/<id>/raw`
//   returns the text as an attachment with the channel characters stripped, but it re-splits with
//   Python's str.splitlines() (also splitting on \r, \v, \f, \x1c-\x1e, \x85, \u2028...) and drops the
//   final newline, so it is lossy; the harness uses /contents. Header lines of buildbot-worker start with
//   a space after the `h` ("h in dir ..."), except the first (the command line itself).
// - The "program finished with exit code N" header line is written by the master (from the `rc` update);
//   the "elapsedTime=..." header line after it is sent by buildbot-worker.
// - REST `workerinfo` holds only admin, host, access_uri, version (the rest of the worker info stays in
//   the master's memory / worker properties).
// - The msgpack port must be a plain int (a strports string raises "portstr unsupported") and listens on
//   all interfaces; PB takes a strports string, so it is bound to 127.0.0.1 only.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './ports.js';
import { fileSize, ManagedProcess, pollUntil, readFrom, requireExecutable, runCommand, tailFile } from './process.js';

export type Protocol = 'msgpack' | 'pb';

export interface WorkerSpec {
  name: string;
  password: string;
  /** Extra Python keyword arguments for `worker.Worker(...)`, e.g. `"max_builds=1"`. */
  args?: string;
}

export interface BuilderSpec {
  name: string;
  workernames: string[];
  /** Python source of a list expression of steps, e.g. `"[steps.ShellCommand(command='echo hi')]"`. */
  steps: string;
  /** Extra Python keyword arguments for `util.BuilderConfig(...)`, e.g. `"env={'A': '1'}"`. */
  args?: string;
}

export interface MasterOptions {
  /** Scratch directory the master lives in (created if missing). */
  dir: string;
  protocol: Protocol;
  workers: WorkerSpec[];
  builders: BuilderSpec[];
  /** Python appended to master.cfg (may modify `c`). Common indentation is removed. */
  extraConfig?: string;
  /** Python inserted after the imports, before `c` is built (helpers used by `steps`). */
  pythonPreamble?: string;
  /** Extra environment for the master process. */
  env?: Record<string, string>;
  /** Default 30 s. */
  startTimeoutMs?: number;
  /** Serve this protocol too, on a port of its own (`portFor`): a master both PB and msgpack workers attach to. */
  alsoProtocol?: Protocol;
}

/** Buildbot result codes (buildbot.process.results). */
export const Results = {
  SUCCESS: 0,
  WARNINGS: 1,
  FAILURE: 2,
  SKIPPED: 3,
  EXCEPTION: 4,
  RETRY: 5,
  CANCELLED: 6,
} as const;

/** One log of a step. `content` is exactly what the master stores (see stdioText/channelText). */
export interface LogResult {
  logid: number;
  name: string;
  slug: string;
  /** 's' stdio (channel-prefixed lines), 't' text, 'h' html. */
  type: string;
  num_lines: number;
  content: string;
}

export interface StepResult {
  stepid: number;
  name: string;
  number: number;
  results: number | null;
  state_string: string;
  logs: LogResult[];
}

export interface BuildResult {
  buildid: number;
  number: number;
  builderid: number;
  buildrequestid: number;
  workerid: number;
  results: number;
  state_string: string;
  steps: StepResult[];
}

// Raw REST records (only the fields the harness uses are typed).
export interface RestBuilder {
  builderid: number;
  name: string;
}
export interface RestBuildRequest {
  buildrequestid: number;
  builderid: number;
  complete: boolean;
  results: number;
  claimed: boolean;
}
export interface RestBuild {
  buildid: number;
  number: number;
  builderid: number;
  buildrequestid: number;
  workerid: number;
  complete: boolean;
  results: number | null;
  state_string: string;
  started_at: number;
}
export interface RestStep {
  stepid: number;
  buildid: number;
  number: number;
  name: string;
  complete: boolean;
  results: number | null;
  state_string: string;
  started_at: number | null;
}
export interface RestLog {
  logid: number;
  stepid: number;
  name: string;
  slug: string;
  type: string;
  num_lines: number;
  complete: boolean;
}
export interface RestWorker {
  workerid: number;
  name: string;
  connected_to: { masterid: number }[];
  configured_on: { builderid: number; masterid: number }[];
  paused: boolean;
  graceful: boolean;
  workerinfo: Record<string, unknown>;
}

/** Plain text of a log: for stdio logs the channel character of every line is removed. */
export function stdioText(log: Pick<LogResult, 'type' | 'content'>): string {
  if (log.type !== 's') return log.content;
  return filterChannels(log.content, () => true);
}

/** Only the lines of one channel (`o` stdout, `e` stderr, `h` header) of a stdio log, without prefixes. */
export function channelText(log: Pick<LogResult, 'type' | 'content'>, channel: 'o' | 'e' | 'h'): string {
  if (log.type !== 's') throw new Error(`channelText: log type is '${log.type}', not stdio ('s')`);
  return filterChannels(log.content, (c) => c === channel);
}

function filterChannels(content: string, keep: (channel: string) => boolean): string {
  const lines = content.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let out = '';
  for (const line of lines) {
    if (keep(line.charAt(0))) out += `${line.slice(1)}\n`;
  }
  return out;
}

/** The step named `name` (or with that number) of a finished build; throws listing the steps if absent. */
export function findStep(build: BuildResult, step: string | number): StepResult {
  const found = build.steps.find((s) => (typeof step === 'number' ? s.number === step : s.name === step));
  if (!found) {
    throw new Error(`build ${build.buildid} has no step ${JSON.stringify(step)}; steps: ${build.steps.map((s) => s.name).join(', ')}`);
  }
  return found;
}

/** The log named `name` (default stdio) of a step; throws listing the logs if absent. */
export function findLog(step: StepResult, name = 'stdio'): LogResult {
  const found = step.logs.find((l) => l.name === name || l.slug === name);
  if (!found) throw new Error(`step ${step.name} has no log ${name}; logs: ${step.logs.map((l) => l.name).join(', ')}`);
  return found;
}

const LOG_FILE = 'twistd.log';
const STUB_DIR = 'www-stub';
const DEFAULT_START_TIMEOUT_MS = 30_000;
/** Fresh-port retries when another process took a port between freePorts() and the master's bind. */
const PORT_ATTEMPTS = 3;
const READY_LINE = 'BuildMaster is running';
const FAILED_LINE = 'BuildMaster startup failed';
const LISTEN_ERROR = /CannotListenError|Couldn't listen on/;

interface JsonRpcReply<T> {
  result?: T;
  error?: { code: number; message: string };
}

export class BuildbotMaster {
  readonly dir: string;
  readonly protocol: Protocol;
  readonly protocolPort: number;
  readonly wwwPort: number;
  /** The port of `alsoProtocol`, if any. */
  readonly alsoPort: number | undefined;
  /** `http://127.0.0.1:<wwwPort>/api/v2` */
  readonly apiUrl: string;
  private options: MasterOptions;
  private proc: ManagedProcess | undefined;
  private readonly builderIds = new Map<string, number>();

  private constructor(options: MasterOptions, protocolPort: number, wwwPort: number, alsoPort?: number) {
    this.options = options;
    this.dir = path.resolve(options.dir);
    this.protocol = options.protocol;
    this.protocolPort = protocolPort;
    this.wwwPort = wwwPort;
    this.alsoPort = alsoPort;
    this.apiUrl = `http://127.0.0.1:${wwwPort}/api/v2`;
  }

  /** Creates the master in `opts.dir` (keeping an existing state.sqlite) and starts it; resolves once REST answers. */
  static async start(opts: MasterOptions): Promise<BuildbotMaster> {
    const dir = path.resolve(opts.dir);
    mkdirSync(dir, { recursive: true });
    const template = await templateDatabase();
    if (!existsSync(path.join(dir, 'state.sqlite'))) copyFileSync(template, path.join(dir, 'state.sqlite'));
    writeFileSync(path.join(dir, 'buildbot.tac'), BUILDBOT_TAC);
    writeWwwStub(path.join(dir, STUB_DIR));

    let lastError: unknown;
    for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
      const [protocolPort, wwwPort, alsoPort] = await freePorts(opts.alsoProtocol ? 3 : 2);
      if (protocolPort === undefined || wwwPort === undefined) throw new Error('freePorts(2) returned too few ports');
      const master = new BuildbotMaster({ ...opts, dir }, protocolPort, wwwPort, alsoPort);
      master.writeConfig();
      try {
        await master.launch();
        return master;
      } catch (err) {
        lastError = err;
        if (!(err instanceof PortInUseError)) throw err;
      }
    }
    throw lastError;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** The port a worker of `protocol` connects to (the main protocol's or `alsoProtocol`'s). */
  portFor(protocol: Protocol): number {
    if (protocol === this.protocol) return this.protocolPort;
    if (protocol === this.options.alsoProtocol && this.alsoPort !== undefined) return this.alsoPort;
    throw new Error(`the master does not serve ${protocol}`);
  }

  /** pid of the twistd process, if running. */
  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined;
  }

  get logFile(): string {
    return path.join(this.dir, LOG_FILE);
  }

  /** The last `n` lines of the master's twistd.log. */
  logTail(n = 40): string {
    return tailFile(this.logFile, n);
  }

  /** SIGTERM, wait for exit; SIGKILL after `graceMs`. Safe to call twice. */
  async stop(graceMs?: number): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    await proc.stop(graceMs);
    this.proc = undefined;
  }

  /** Stops and starts the master again on the same ports, dir and database. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /**
   * Rewrites master.cfg with `changes` merged in and reloads it (SIGHUP), waiting for the master to report
   * the result. Throws (with the log) if the new configuration was rejected.
   */
  async reconfig(changes: Partial<Pick<MasterOptions, 'workers' | 'builders' | 'extraConfig' | 'pythonPreamble'>>): Promise<void> {
    const proc = this.requireRunning();
    this.options = { ...this.options, ...changes };
    this.writeConfig();
    this.builderIds.clear();
    const offset = fileSize(this.logFile);
    proc.signal('SIGHUP');
    let seen = '';
    let end = offset;
    const outcome = await pollUntil(
      () => {
        const chunk = readFrom(this.logFile, end);
        end = chunk.end;
        seen += chunk.text;
        const m = /configuration update (complete|aborted|partially applied)/.exec(seen);
        return m?.[1];
      },
      { timeoutMs: 30_000, what: 'the master to reload master.cfg', failFast: () => this.exitMessage(), details: () => this.logTail() },
    );
    if (outcome !== 'complete') throw new Error(`reconfig ${outcome}:\n${seen.split('\n').slice(-40).join('\n')}`);
  }

  // ---------------------------------------------------------------- REST

  /** GET `apiUrl + path` and parse the JSON answer. */
  async get<T>(apiPath: string): Promise<T> {
    const res = await fetch(this.apiUrl + apiPath);
    const body = await res.text();
    if (!res.ok) throw new Error(`GET ${apiPath}: HTTP ${res.status}: ${body.slice(0, 500)}`);
    return JSON.parse(body) as T;
  }

  /** JSON-RPC call (`force`, `stop`, ...) on `apiUrl + path`; returns `result`, throws on `error`. */
  async rpc<T>(apiPath: string, method: string, params: Record<string, unknown>): Promise<T> {
    const res = await fetch(this.apiUrl + apiPath, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', method, id: 1, params }),
    });
    const body = await res.text();
    let reply: JsonRpcReply<T>;
    try {
      reply = JSON.parse(body) as JsonRpcReply<T>;
    } catch {
      throw new Error(`POST ${apiPath} ${method}: HTTP ${res.status}: ${body.slice(0, 500)}`);
    }
    if (reply.error) throw new Error(`POST ${apiPath} ${method}: ${reply.error.message} (code ${reply.error.code})`);
    if (!res.ok) throw new Error(`POST ${apiPath} ${method}: HTTP ${res.status}: ${body.slice(0, 500)}`);
    return reply.result as T;
  }

  async builderId(name: string): Promise<number> {
    const cached = this.builderIds.get(name);
    if (cached !== undefined) return cached;
    const { builders } = await this.get<{ builders: RestBuilder[] }>('/builders');
    for (const b of builders) this.builderIds.set(b.name, b.builderid);
    const id = this.builderIds.get(name);
    if (id === undefined) throw new Error(`no builder named ${name}; builders: ${builders.map((b) => b.name).join(', ')}`);
    return id;
  }

  /**
   * Forces a build on `builder` through its `force-<builder>` ForceScheduler and returns the build request
   * id. `params` go to the scheduler too (e.g. `{reason: 'x'}`).
   */
  async forceBuild(builder: string, params: Record<string, unknown> = {}): Promise<number> {
    const builderid = await this.builderId(builder);
    const [, brids] = await this.rpc<[number, Record<string, number>]>(`/forceschedulers/force-${builder}`, 'force', {
      ...params,
      builderid,
    });
    const brid = brids[String(builderid)];
    if (brid === undefined) throw new Error(`force on ${builder}: no build request in ${JSON.stringify(brids)}`);
    return brid;
  }

  /** Waits until a build of request `brid` has started; returns its buildid. */
  async waitForBuildStarted(brid: number, timeoutMs = 60_000): Promise<number> {
    return pollUntil(
      async () => {
        const { builds } = await this.get<{ builds: RestBuild[] }>(`/builds?buildrequestid=${brid}`);
        return builds.at(-1)?.buildid;
      },
      { timeoutMs, what: `a build of request ${brid} to start`, failFast: () => this.exitMessage(), details: () => this.logTail(20) },
    );
  }

  /** Waits until request `brid` is complete and returns its (last) build with all steps and logs. */
  async waitForBuild(brid: number, timeoutMs = 60_000): Promise<BuildResult> {
    const request = await pollUntil(
      async () => {
        const { buildrequests } = await this.get<{ buildrequests: RestBuildRequest[] }>(`/buildrequests/${brid}`);
        const br = buildrequests[0];
        return br?.complete ? br : undefined;
      },
      { timeoutMs, what: `build request ${brid} to complete`, failFast: () => this.exitMessage(), details: () => this.logTail(20) },
    );
    const { builds } = await this.get<{ builds: RestBuild[] }>(`/builds?buildrequestid=${brid}`);
    const last = builds.reduce<RestBuild | undefined>((a, b) => (a === undefined || b.buildid > a.buildid ? b : a), undefined);
    if (!last) throw new Error(`build request ${brid} completed (results ${request.results}) without running a build`);
    return this.getBuild(last.buildid);
  }

  /** Force + wait. */
  async runBuild(builder: string, timeoutMs?: number): Promise<BuildResult> {
    return this.waitForBuild(await this.forceBuild(builder), timeoutMs);
  }

  /** A build with its steps and the complete contents of every log (whether or not it has finished). */
  async getBuild(buildid: number): Promise<BuildResult> {
    const [{ builds }, { steps }] = await Promise.all([
      this.get<{ builds: RestBuild[] }>(`/builds/${buildid}`),
      this.get<{ steps: RestStep[] }>(`/builds/${buildid}/steps`),
    ]);
    const build = builds[0];
    if (!build) throw new Error(`no build ${buildid}`);
    const stepResults = await Promise.all(
      steps.map(async (s): Promise<StepResult> => {
        const { logs } = await this.get<{ logs: RestLog[] }>(`/steps/${s.stepid}/logs`);
        return {
          stepid: s.stepid,
          name: s.name,
          number: s.number,
          results: s.results,
          state_string: s.state_string,
          logs: await Promise.all(logs.sort((a, b) => a.logid - b.logid).map((l) => this.readLog(l))),
        };
      }),
    );
    return {
      buildid: build.buildid,
      number: build.number,
      builderid: build.builderid,
      buildrequestid: build.buildrequestid,
      workerid: build.workerid,
      results: build.results ?? -1,
      state_string: build.state_string,
      steps: stepResults.sort((a, b) => a.number - b.number),
    };
  }

  /** A log with its complete stored contents (channel prefixes kept for stdio logs). */
  async readLog(log: RestLog): Promise<LogResult> {
    let content = '';
    if (log.num_lines > 0) {
      const { logchunks } = await this.get<{ logchunks: { content: string }[] }>(`/logs/${log.logid}/contents`);
      content = logchunks.map((c) => c.content).join('');
    }
    return { logid: log.logid, name: log.name, slug: log.slug, type: log.type, num_lines: log.num_lines, content };
  }

  /** JSON-RPC `stop` on a running build (interrupts the current step). */
  async stopBuild(buildid: number, reason = 'stopped by test'): Promise<void> {
    await this.rpc(`/builds/${buildid}`, 'stop', { reason });
  }

  /** Waits until step `step` (number or name) of build `buildid` has started; returns the REST step. */
  async waitForStepStarted(buildid: number, step: number | string, timeoutMs = 60_000): Promise<RestStep> {
    return pollUntil(
      async () => {
        const { steps } = await this.get<{ steps: RestStep[] }>(`/builds/${buildid}/steps`);
        const found = steps.find((s) => (typeof step === 'number' ? s.number === step : s.name === step));
        if (found && found.started_at !== null) return found;
        const { builds } = await this.get<{ builds: RestBuild[] }>(`/builds/${buildid}`);
        if (builds[0]?.complete) throw new Error(`build ${buildid} finished before step ${JSON.stringify(step)} started`);
        return undefined;
      },
      { timeoutMs, what: `step ${JSON.stringify(step)} of build ${buildid} to start`, failFast: () => this.exitMessage() },
    );
  }

  /**
   * Waits until the log `logName` of step `step` contains `pattern` (matched against the plain text, i.e.
   * without stdio channel prefixes). buildbot-worker sends buffered output up to 5 s late.
   */
  async waitForLogText(
    buildid: number,
    step: number | string,
    pattern: string | RegExp,
    opts: { logName?: string; timeoutMs?: number } = {},
  ): Promise<LogResult> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const logName = opts.logName ?? 'stdio';
    const { stepid } = await this.waitForStepStarted(buildid, step, timeoutMs);
    return pollUntil(
      async () => {
        const { logs } = await this.get<{ logs: RestLog[] }>(`/steps/${stepid}/logs`);
        const log = logs.find((l) => l.name === logName || l.slug === logName);
        if (!log) return undefined;
        const full = await this.readLog(log);
        const text = stdioText(full);
        return (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text)) ? full : undefined;
      },
      { timeoutMs, what: `${String(pattern)} in log ${logName} of step ${JSON.stringify(step)} (build ${buildid})`, failFast: () => this.exitMessage() },
    );
  }

  /** The REST worker record, or undefined if no worker has that name. */
  async worker(name: string): Promise<RestWorker | undefined> {
    const { workers } = await this.get<{ workers: RestWorker[] }>(`/workers?name=${encodeURIComponent(name)}`);
    return workers[0];
  }

  /** Waits until worker `name` is connected (or, with `connected` false, disconnected). */
  async waitForWorker(name: string, connected = true, timeoutMs = 30_000): Promise<RestWorker> {
    return pollUntil(
      async () => {
        const w = await this.worker(name);
        return w && w.connected_to.length > 0 === connected ? w : undefined;
      },
      {
        timeoutMs,
        what: `worker ${name} to ${connected ? 'connect' : 'disconnect'}`,
        failFast: () => this.exitMessage(),
        details: () => this.logTail(20),
      },
    );
  }

  /** `workerinfo` as the REST API shows it (admin, host, access_uri, version). */
  async workerInfo(name: string): Promise<Record<string, unknown>> {
    const w = await this.worker(name);
    if (!w) throw new Error(`no worker named ${name}`);
    return w.workerinfo;
  }

  /** JSON-RPC control of a worker: `stop` (graceful shutdown), `kill`, `pause`, `unpause`. */
  async controlWorker(name: string, action: 'stop' | 'kill' | 'pause' | 'unpause', reason = 'by test'): Promise<void> {
    const w = await this.worker(name);
    if (!w) throw new Error(`no worker named ${name}`);
    await this.rpc(`/workers/${w.workerid}`, action, { reason });
  }

  // ---------------------------------------------------------------- internals

  private requireRunning(): ManagedProcess {
    if (!this.proc?.running) throw new Error(`master in ${this.dir} is not running`);
    return this.proc;
  }

  private exitMessage(): string | undefined {
    const proc = this.proc;
    if (!proc || proc.running) return undefined;
    return `the master exited (${String(proc.exitCode)})\n--- twistd.log (tail) ---\n${this.logTail()}`;
  }

  private writeConfig(): void {
    writeFileSync(path.join(this.dir, 'master.cfg'), renderMasterCfg(this.options, this.protocolPort, this.wwwPort, this.alsoPort));
  }

  /** Spawns the master and waits for "BuildMaster is running" plus a REST answer. */
  private async launch(): Promise<void> {
    if (this.proc?.running) throw new Error(`master in ${this.dir} is already running`);
    const buildbot = requireExecutable('buildbot');
    const offset = fileSize(this.logFile);
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env };
    const stub = path.join(this.dir, STUB_DIR);
    env['PYTHONPATH'] = env['PYTHONPATH'] ? `${stub}${path.delimiter}${env['PYTHONPATH']}` : stub;
    const proc = await ManagedProcess.spawn({
      command: buildbot,
      args: ['start', '--nodaemon', this.dir],
      cwd: this.dir,
      env,
      label: `buildbot master ${this.dir}`,
    });
    this.proc = proc;
    const timeoutMs = this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    let seen = '';
    let end = offset;
    const failure = (what: string): string =>
      `${what}\n--- twistd.log (this start) ---\n${seen.split('\n').slice(-60).join('\n')}\n--- output ---\n${proc.capturedOutput.slice(-4000)}`;
    try {
      await pollUntil(
        () => {
          // Checked before reading, so that after an exit the read below has everything the master wrote.
          const exited = !proc.running;
          const chunk = readFrom(this.logFile, end);
          end = chunk.end;
          seen += chunk.text;
          if (seen.includes(READY_LINE)) return true;
          if (seen.includes(FAILED_LINE) || exited) {
            const what = proc.running ? 'failed to start' : `exited (${String(proc.exitCode)}) while starting`;
            if (LISTEN_ERROR.test(seen)) {
              throw new PortInUseError(failure(`the master ${what}: port ${this.protocolPort} or ${this.wwwPort} is taken`));
            }
            throw new Error(failure(`the master in ${this.dir} ${what}`));
          }
          return undefined;
        },
        { timeoutMs, what: `the master in ${this.dir} to start`, details: () => failure('') },
      );
      await pollUntil(
        () =>
          this.get('/builders').then(
            () => true,
            () => undefined,
          ),
        {
          timeoutMs: 5_000,
          what: `the REST API at ${this.apiUrl}`,
          failFast: () => (proc.running ? undefined : failure('the master exited')),
        },
      );
    } catch (err) {
      await proc.stop(2_000);
      this.proc = undefined;
      throw err;
    }
  }
}

class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/** Python string literal (JSON string syntax is a subset of Python's). */
function py(value: string): string {
  return JSON.stringify(value);
}

/** Removes the common leading indentation of a template-literal block of Python. */
export function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indents = lines.filter((l) => l.trim() !== '').map((l) => /^[ \t]*/.exec(l)?.[0].length ?? 0);
  const cut = indents.length ? Math.min(...indents) : 0;
  return lines.map((l) => l.slice(cut)).join('\n');
}

export function renderMasterCfg(opts: MasterOptions, protocolPort: number, wwwPort: number, alsoPort?: number): string {
  const entry = (protocol: Protocol, port: number): string =>
    protocol === 'msgpack' ? `'msgpack_experimental_v7': {'port': ${port}}` : `'pb': {'port': ${py(`tcp:${port}:interface=127.0.0.1`)}}`;
  const also = opts.alsoProtocol && alsoPort !== undefined ? `, ${entry(opts.alsoProtocol, alsoPort)}` : '';
  const protocols = `{${entry(opts.protocol, protocolPort)}${also}}`;
  const extra = (args: string | undefined): string => (args ? `, ${args}` : '');
  const workers = opts.workers.map((w) => `    worker.Worker(${py(w.name)}, ${py(w.password)}${extra(w.args)}),`).join('\n');
  const builders = opts.builders
    .map(
      (b) =>
        `    util.BuilderConfig(name=${py(b.name)}, workernames=[${b.workernames.map(py).join(', ')}],\n` +
        `        factory=util.BuildFactory((\n${b.steps}\n        ))${extra(b.args)}),`,
    )
    .join('\n');
  const schedulers = opts.builders.map((b) => `    schedulers.ForceScheduler(name=${py(`force-${b.name}`)}, builderNames=[${py(b.name)}]),`).join('\n');
  return `# Generated by scripts/harness/master.ts; rewritten on every start.
from buildbot.plugins import steps, util, worker, schedulers

${opts.pythonPreamble ? dedent(opts.pythonPreamble) : ''}

c = BuildmasterConfig = {}
c['title'] = 'bbagent integration test'
c['buildbotURL'] = 'http://127.0.0.1:${wwwPort}/'
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['protocols'] = ${protocols}
c['www'] = {'port': 'tcp:${wwwPort}:interface=127.0.0.1', 'plugins': {}}
c['buildbotNetUsageData'] = None
c['collapseRequests'] = False
c['workers'] = [
${workers}
]
c['builders'] = [
${builders}
]
c['schedulers'] = [
${schedulers}
]

${opts.extraConfig ? dedent(opts.extraConfig) : ''}
`;
}

/** The relocatable buildbot.tac `buildbot create-master -r` writes. */
const BUILDBOT_TAC = `import os

from twisted.application import service
from buildbot.master import BuildMaster

basedir = '.'

rotateLength = 10000000
maxRotatedFiles = 10
configfile = 'master.cfg'

# Default umask for server
umask = None

# if this is a relocatable tac file, get the directory containing the TAC
if basedir == '.':
    basedir = os.path.abspath(os.path.dirname(__file__))

# note: this line is matched against to check that this is a buildmaster
# directory; do not edit it.
application = service.Application('buildmaster')
from twisted.python.logfile import LogFile
from twisted.python.log import ILogObserver, FileLogObserver
logfile = LogFile.fromFullPath(os.path.join(basedir, "twistd.log"), rotateLength=rotateLength,
                                maxRotatedFiles=maxRotatedFiles)
application.setComponent(ILogObserver, FileLogObserver(logfile).emit)

m = BuildMaster(basedir, configfile, umask)
m.setServiceParent(application)
m.log_rotation.rotateLength = rotateLength
m.log_rotation.maxRotatedFiles = maxRotatedFiles
`;

/** Stand-in for the buildbot-www package: a `buildbot.www` entry point named `base`. */
function writeWwwStub(root: string): void {
  const pkg = path.join(root, 'bbstub');
  const distInfo = path.join(root, 'bbstub-0.0.dist-info');
  mkdirSync(path.join(pkg, 'static'), { recursive: true });
  mkdirSync(distInfo, { recursive: true });
  writeFileSync(path.join(pkg, '__init__.py'), 'from buildbot.www.plugin import Application\nep = Application(__name__, "stub")\n');
  writeFileSync(path.join(pkg, 'VERSION'), '0.0\n');
  writeFileSync(path.join(pkg, 'static', 'index.html'), '<!doctype html><title>bbagent test master</title>\n');
  writeFileSync(path.join(distInfo, 'METADATA'), 'Metadata-Version: 2.1\nName: bbstub\nVersion: 0.0\n');
  writeFileSync(path.join(distInfo, 'entry_points.txt'), '[buildbot.www]\nbase = bbstub:ep\n');
}

let templateDb: Promise<string> | undefined;

/**
 * Path of a pristine state.sqlite made by `buildbot create-master`, cached per buildbot install (keyed by
 * the size and mtime of the `buildbot` executable) under os.tmpdir()/bbagent-harness.
 */
function templateDatabase(): Promise<string> {
  templateDb ??= createTemplateDatabase().catch((err: unknown) => {
    templateDb = undefined;
    throw err;
  });
  return templateDb;
}

async function createTemplateDatabase(): Promise<string> {
  const buildbot = requireExecutable('buildbot');
  const st = statSync(realpathSync(buildbot));
  const cacheDir = path.join(os.tmpdir(), 'bbagent-harness');
  const cached = path.join(cacheDir, `state-${st.size}-${Math.floor(st.mtimeMs)}.sqlite`);
  if (existsSync(cached)) return cached;
  mkdirSync(cacheDir, { recursive: true });
  const scratch = mkdtempSync(path.join(cacheDir, 'create-'));
  try {
    const masterDir = path.join(scratch, 'master');
    await runCommand(buildbot, ['create-master', '--quiet', '-r', masterDir]);
    // rename is atomic: concurrent test files racing here all end up with a complete file.
    renameSync(path.join(masterDir, 'state.sqlite'), cached);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return cached;
}
