// `bbagent service install|uninstall|status|start|stop|run`: registers the worker in BASEDIR with the OS's service
// manager (systemd, launchd, a Windows service run by WinSW: platforms/*/service.ts) so it comes back after every
// reboot, is restarted when it fails, and drains (running builds finish) when it is stopped.
// `run` is the supervisor that scheduled tasks of older bbagent versions start; it stays until they are uninstalled.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentServiceManager, ServiceError, type ServiceManager, type ServiceRef, type ServiceSpec } from '../../platforms/index.js';
import { configPath, loadConfig } from '../config/load.js';
import { AgentError } from '../errors.js';
import { EXIT_FAILED, EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { pidfilePath } from './pidfile.js';
import { selfCommand } from './start.js';

const COMMAND = 'bbagent service';

export const SERVICE_USAGE = `Usage: bbagent service ACTION [options] [BASEDIR]

Runs the worker in BASEDIR (default: the current directory) as a system service that starts at boot and is
restarted when it fails: a systemd unit on Linux, a launchd job on macOS, a Windows service (WinSW) on Windows.
A stop lets running builds finish first (up to --stop-timeout); 'bbagent stop' stops the service for good
(until 'service start' or the next boot).

Actions:
  install     register, enable at boot and start the service (idempotent)
  uninstall   stop and remove the service; BASEDIR is left as it is
  status      print the service's state (exit 0 running, 3 stopped, 4 not installed)
  start       start the installed service
  stop        stop the service: running builds finish first, whatever is left after --stop-timeout is killed
  run         run the worker and restart it when it exits (what older bbagent's Windows tasks run)

Options:
      --name NAME        service name (default: the worker name in bbagent.json)
      --user USER        account the worker runs as (Linux, macOS daemon: default BASEDIR's owner, never root;
                         Windows: required, a standard account such as .\\bbagent; never LocalSystem, a service
                         account or an administrator. It gets write access to BASEDIR)
      --password-stdin   Windows: read that account's password from stdin (or set BBAGENT_SERVICE_PASSWORD;
                         it is never taken on the command line, where any process listing shows it)
      --session KIND     macOS: daemon (LaunchDaemon, at boot, headless; default) or agent (LaunchAgent, in the
                         user's login session, for GUI and performance tests)
      --stop-timeout T   install: how long a stop waits for running builds to finish before it kills them
                         (systemd TimeoutStopSec, launchd ExitTimeOut, WinSW stoptimeout): seconds, or with
                         s, m or h (90s, 30m, 2h); default 30m, at most 24h
      --winsw PATH       Windows install: the WinSW executable to use (default: winsw.exe beside bbagent.exe)
      --force            install: replace a service of that name that has other settings (Windows: also
                         registers the service again with the same settings, e.g. after a password change)
      --no-start         install: enable at boot, but do not start now
      --dry-run          install: print what would be written and change nothing
  -q, --quiet            print nothing but errors
  -h, --help             show this help

The service runs this same executable from where it is now: put it in its place first (/usr/local/bin/bbagent,
C:\\Program Files\\bbagent\\bbagent.exe). Settings come from BASEDIR/bbagent.json, not from this shell's BBAGENT_*.`;

const OPTIONS: OptionSpec = {
  name: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  session: { type: 'string' },
  force: { type: 'boolean' },
  'no-start': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  'stop-timeout': { type: 'string' },
  winsw: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

const ACTIONS = ['install', 'uninstall', 'status', 'start', 'stop', 'run'] as const;
type Action = (typeof ACTIONS)[number];

/** LSB init-script status codes, so scripts can test the state. */
export const STATUS_RUNNING = 0;
export const STATUS_STOPPED = 3;
export const STATUS_NOT_INSTALLED = 4;

/** Pause of the `run` supervisor before it starts the worker again (systemd's RestartSec= of the Linux unit). */
export const SUPERVISOR_RESTART_MS = 10_000;

export interface ServiceCommandDeps {
  manager?: ServiceManager;
  /** The program and leading arguments that run this agent (selfCommand()). */
  self?: { command: string; args: string[] };
  /** All of stdin (--password-stdin); default: this process's stdin. */
  readStdin?: () => Promise<string>;
}

async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** The Windows account's password: from stdin (--password-stdin) or BBAGENT_SERVICE_PASSWORD, never from argv. */
async function servicePassword(values: Record<string, string | boolean | undefined>, io: CliIO, deps: ServiceCommandDeps): Promise<string | undefined> {
  if (values['password'] !== undefined) {
    throw new UsageError(
      `${COMMAND}: --password would show the password to every user in the process list; ` +
        `pipe it in with --password-stdin, or set BBAGENT_SERVICE_PASSWORD`,
    );
  }
  if (values['password-stdin']) {
    const text = await (deps.readStdin ?? readProcessStdin)();
    return text.replace(/\r?\n$/, '');
  }
  return io.env['BBAGENT_SERVICE_PASSWORD'];
}

/** --stop-timeout: whole seconds from "90", "90s", "30m" or "2h" (the service managers check the range). */
export function parseStopTimeout(text: string): number {
  const m = /^(\d{1,6})([smh]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`${COMMAND}: --stop-timeout must be seconds, or a number with s, m or h (90s, 30m, 2h), not '${text}'`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600 }[m[2] as '' | 's' | 'm' | 'h'];
}

/** A service name from a worker name: the characters every manager accepts. */
export function serviceNameFor(workerName: string): string {
  const cleaned = workerName
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[-.]+/, '')
    .slice(0, 64);
  return cleaned || 'worker';
}

export async function serviceCommand(argv: string[], io: CliIO, deps: ServiceCommandDeps = {}): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 2);
    if (values['help']) {
      io.out(SERVICE_USAGE);
      return EXIT_OK;
    }
    const action = positionals[0];
    if (action === undefined) throw new UsageError(`${COMMAND}: missing action (${ACTIONS.join(', ')}) (see '${COMMAND} --help')`);
    if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`${COMMAND}: unknown action '${action}' (see '${COMMAND} --help')`);
    const session = values['session'];
    if (session !== undefined && session !== 'daemon' && session !== 'agent') {
      throw new UsageError(`${COMMAND}: --session must be daemon or agent, not '${String(session)}'`);
    }
    const dir = path.resolve(positionals[1] ?? '.');
    const say = (line: string): void => {
      if (!values['quiet']) io.out(line);
    };
    try {
      return await runAction(action as Action, dir, values, io, say, deps);
    } catch (err) {
      if (err instanceof ServiceError) throw new AgentError(err.code, `${COMMAND} ${action}: ${err.message}`);
      throw err;
    }
  });
}

async function runAction(
  action: Action,
  dir: string,
  values: Record<string, string | boolean | undefined>,
  io: CliIO,
  say: (line: string) => void,
  deps: ServiceCommandDeps,
): Promise<number> {
  const self = deps.self ?? selfCommand();
  if (action === 'run') return superviseWorker({ dir, self, io });

  // Every action needs the worker's config: it names the service and proves BASEDIR is a worker directory.
  if (!existsSync(configPath(dir))) {
    throw new AgentError(
      'E_CONFIG',
      `${COMMAND} ${action}: ${dir} has no ${path.basename(configPath(dir))}; create the worker first (bbagent create-worker ${dir} ...)`,
    );
  }
  const config = loadConfig(dir, {}, io.env);
  const name = typeof values['name'] === 'string' ? values['name'] : serviceNameFor(config.name);
  const sessionValue = values['session'] as ServiceSpec['session'] | undefined;
  const ref: ServiceRef = { name, basedir: dir, pidFile: pidfilePath(dir), ...(sessionValue ? { session: sessionValue } : {}) };
  const manager = deps.manager ?? (await currentServiceManager());

  switch (action) {
    case 'install': {
      const stopTimeout = typeof values['stop-timeout'] === 'string' ? parseStopTimeout(values['stop-timeout']) : undefined;
      const password = await servicePassword(values, io, deps);
      const spec: ServiceSpec = {
        name,
        description: `bbagent Buildbot worker ${config.name} (${dir})`,
        basedir: dir,
        command: [self.command, ...self.args, 'start', '--nodaemon', dir],
        ...(typeof values['user'] === 'string' ? { user: values['user'] } : {}),
        ...(sessionValue ? { session: sessionValue } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(stopTimeout !== undefined ? { stopTimeoutS: stopTimeout } : {}),
        ...(typeof values['winsw'] === 'string' ? { winsw: path.resolve(values['winsw']) } : {}),
      };
      if (values['dry-run']) {
        for (const file of manager.render(spec)) {
          io.out(`# ${file.path}`);
          io.out(typeof file.content === 'string' ? file.content : file.content.subarray(2).toString('utf16le').replace(/\r\n/g, '\n'));
        }
        return EXIT_OK;
      }
      const outcome = await manager.install(spec, { force: values['force'] === true, noStart: values['no-start'] === true });
      const verb = { installed: 'installed', unchanged: 'already installed with these settings', replaced: 'replaced' }[outcome];
      say(`service ${name} ${verb} (${manager.kind}); it runs ${spec.command.join(' ')}`);
      if (values['no-start']) say(`it starts at the next boot, or now with: bbagent service start ${dir}`);
      return EXIT_OK;
    }
    case 'uninstall': {
      const removed = await manager.uninstall(ref);
      say(removed ? `service ${name} stopped and removed; ${dir} is left as it was` : `service ${name} is not installed; nothing to do`);
      return EXIT_OK;
    }
    case 'status': {
      const st = await manager.status(ref);
      if (!st.installed) {
        say(`service ${name}: not installed (${manager.kind})`);
        return STATUS_NOT_INSTALLED;
      }
      const boot = st.enabled === undefined ? '' : st.enabled ? ', starts at boot' : ', not enabled at boot';
      say(`service ${name}: ${st.detail}${boot} (${manager.kind})`);
      return st.running ? STATUS_RUNNING : STATUS_STOPPED;
    }
    case 'start':
      await manager.start(ref);
      say(`service ${name} started`);
      return EXIT_OK;
    case 'stop':
      await manager.stop(ref);
      say(`service ${name} stopped`);
      return EXIT_OK;
  }
}

export interface SupervisorChild {
  once(event: 'exit', cb: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  once(event: 'error', cb: (err: Error) => void): unknown;
  kill(signal?: NodeJS.Signals): boolean;
}

export interface SupervisorOptions {
  dir: string;
  self: { command: string; args: string[] };
  io: CliIO;
  /** Starts one worker process (tests pass a fake). */
  startWorker?: (command: string, args: string[]) => SupervisorChild;
  restartMs?: number;
  /** Aborting stops the supervisor: the worker gets SIGTERM and `run` returns once it exited. */
  signal?: AbortSignal;
}

/** Runs `start --nodaemon BASEDIR` and starts it again after every exit, until stopped by a signal. */
export async function superviseWorker(opts: SupervisorOptions): Promise<number> {
  const startWorker =
    opts.startWorker ?? ((command, args) => spawn(command, args, { cwd: opts.dir, stdio: ['ignore', 'ignore', 'inherit'], windowsHide: true }));
  const restartMs = opts.restartMs ?? SUPERVISOR_RESTART_MS;
  const stopper = new AbortController();
  const stopping = (): boolean => stopper.signal.aborted;
  let child: SupervisorChild | undefined;
  const stop = (): void => {
    stopper.abort();
    child?.kill('SIGTERM');
  };
  opts.signal?.addEventListener('abort', stop, { once: true });
  const ownSignals = opts.signal === undefined;
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGBREAK'];
  if (ownSignals) for (const s of signals) process.on(s, stop);
  try {
    while (!stopping()) {
      child = startWorker(opts.self.command, [...opts.self.args, 'start', '--nodaemon', opts.dir]);
      const ended = await new Promise<string>((resolve) => {
        child!.once('exit', (code, sig) => resolve(code !== null ? `exit code ${code}` : `signal ${sig ?? '?'}`));
        child!.once('error', (err) => resolve(`could not start: ${err.message}`));
      });
      child = undefined;
      if (stopping()) break;
      opts.io.err(`${COMMAND} run: the worker in ${opts.dir} ended (${ended}); starting it again in ${restartMs / 1000} s`);
      await sleep(restartMs, undefined, { signal: stopper.signal }).catch(() => undefined);
    }
    return EXIT_OK;
  } catch {
    return EXIT_FAILED;
  } finally {
    if (ownSignals) for (const s of signals) process.off(s, stop);
  }
}
