// Windows service install with the Task Scheduler: a task \bbagent\<name> that starts at boot (before any
// logon) and runs `bbagent.exe service run BASEDIR`, a supervisor that restarts the worker whenever it exits.
// A Node process cannot answer the Service Control Manager, and the Task Scheduler is on every Windows: nothing
// else is installed. docs/install.md weighs this against a service wrapper (WinSW, NSSM).
//
// Trust: the task runs as a standard account the operator names (never LocalSystem, LocalService or
// NetworkService, which a hostile build turns into SYSTEM). The definition and the account's password go to
// the Task Scheduler's COM API through a PowerShell script's stdin: nothing is written to a file another user
// could swap before it is read, and no secret is on a command line.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ServiceError,
  type InstallOutcome,
  type ServiceFile,
  type ServiceManager,
  type ServiceRef,
  type ServiceSpec,
  type ServiceStatus,
} from '../service/types.js';
import { checkServiceName, requireAbsoluteCommand, runChecked, type CommandResult, type ServiceHost } from '../service/common.js';
import { TASK_FOLDER, checkTaskAccount, definitionDigest, describeTaskDifference, renderTaskXml, taskName } from './task-definition.js';
import { PS_EXIT_ABSENT, PS_EXIT_NO_ACCOUNT, PS_EXIT_PRIVILEGED, QUERY_SCRIPT, REGISTER_SCRIPT, powershellArgs, powershellInput } from './task-scripts.js';

export interface SchtasksOptions {
  host: ServiceHost;
  schtasks?: string;
  taskkill?: string;
  /** Windows PowerShell 5.1 (every Windows 10 / Server 2016 has it). */
  powershell?: string;
}

/** The programs that talk to the Task Scheduler (schtasks, the PowerShell scripts) and taskkill. */
class TaskScheduler {
  constructor(
    private readonly host: ServiceHost,
    readonly schtasks: string,
    private readonly taskkill: string,
    private readonly powershell: string,
  ) {}

  async exists(name: string): Promise<boolean> {
    return (await this.host.run(this.schtasks, ['/Query', '/TN', taskName(name)])).code === 0;
  }

  runScript(script: string, payload: Record<string, string>): Promise<CommandResult> {
    return this.host.run(this.powershell, powershellArgs(script), { input: powershellInput(payload) });
  }

  /** The registered task's definition, or undefined when there is none. */
  async registered(name: string): Promise<string | undefined> {
    const r = await this.runScript(QUERY_SCRIPT, { folder: TASK_FOLDER, name });
    if (r.code === PS_EXIT_ABSENT) return undefined;
    if (r.code !== 0) throw scriptFailure(`reading the scheduled task ${taskName(name)}`, r);
    return Buffer.from(r.stdout.trim(), 'base64').toString('utf8');
  }

  /** Ends the worker's process tree (the Task Scheduler ends only the supervisor it started). */
  async killWorkerTree(ref: ServiceRef): Promise<void> {
    let pid: number | undefined;
    try {
      pid = Number(readFileSync(ref.pidFile, 'utf8').trim()) || undefined;
    } catch {
      pid = undefined;
    }
    if (pid !== undefined) await this.host.run(this.taskkill, ['/PID', String(pid), '/T', '/F']);
  }
}

function scriptFailure(what: string, r: CommandResult): ServiceError {
  const why = (r.stderr.trim() || r.stdout.trim()).split(/\r?\n/).slice(0, 3).join(' / ');
  const code = r.code === PS_EXIT_PRIVILEGED || r.code === PS_EXIT_NO_ACCOUNT ? 'E_SERVICE_USER' : 'E_SERVICE_COMMAND';
  return new ServiceError(code, `${what} failed (exit ${r.code})${why ? `: ${why}` : ''}`);
}

/**
 * What install does about the task registered under the name (`installed`, undefined when none): register it
 * ('installed', 'replaced') or leave it ('unchanged'); throws E_SERVICE_EXISTS where only --force may replace it.
 */
function installOutcome(name: string, installed: string | undefined, wanted: string, force: boolean): InstallOutcome {
  if (installed === undefined) return 'installed';
  const digest = definitionDigest(installed);
  if (digest === undefined && !force) {
    throw new ServiceError('E_SERVICE_EXISTS', `the scheduled task ${taskName(name)} exists but was not installed by bbagent; install --force to replace it`);
  }
  // --force registers again even with the same settings: the way to give the task a new password
  if (force) return 'replaced';
  if (digest === definitionDigest(wanted)) return 'unchanged';
  throw new ServiceError(
    'E_SERVICE_EXISTS',
    `the scheduled task ${taskName(name)} already exists with different settings (${describeTaskDifference(installed, wanted)}); ` +
      `run 'bbagent service uninstall' first, or install --force to replace it`,
  );
}

/** The task's state from `schtasks /Query /FO LIST /V`. */
function parseTaskStatus(stdout: string): ServiceStatus {
  const field = (label: string): string | undefined => new RegExp(`^${label}:\\s*(.*)$`, 'mi').exec(stdout)?.[1]?.trim();
  const status = field('Status') ?? 'unknown';
  return {
    installed: true,
    running: /running/i.test(status),
    enabled: !/disabled/i.test(field('Scheduled Task State') ?? status),
    detail: `${status}${field('Last Result') ? `, last result ${field('Last Result')}` : ''}`,
  };
}

export function schtasksServiceManager(opts: SchtasksOptions): ServiceManager {
  const { host } = opts;
  const system32 = path.win32.join(process.env['SystemRoot'] ?? 'C:\\Windows', 'System32');
  const ts = new TaskScheduler(
    host,
    opts.schtasks ?? 'schtasks',
    opts.taskkill ?? 'taskkill',
    opts.powershell ?? path.win32.join(system32, 'WindowsPowerShell', 'v1.0', 'powershell.exe'),
  );
  const schtasks = (args: string[]): Promise<CommandResult> => host.run(ts.schtasks, args);
  const needAdmin = (): void => {
    if (!host.isPrivileged()) throw new ServiceError('E_SERVICE_RIGHTS', 'needs an elevated prompt: run it as Administrator');
  };
  const needTask = async (name: string): Promise<void> => {
    if (!(await ts.exists(name))) throw new ServiceError('E_SERVICE_MISSING', `the scheduled task ${taskName(name)} is not installed`);
  };

  /** Nothing is written to disk: the "file" is the definition as the Task Scheduler receives it (--dry-run shows it). */
  const render = (spec: ServiceSpec): ServiceFile[] => {
    checkServiceName(spec.name);
    requireAbsoluteCommand(spec, path.win32.isAbsolute);
    checkTaskAccount(spec);
    return [{ path: `Task Scheduler ${taskName(spec.name)}`, content: renderTaskXml(spec) }];
  };

  return {
    kind: 'schtasks',
    render,
    async install(spec, { force, noStart }): Promise<InstallOutcome> {
      needAdmin();
      const [def] = render(spec);
      const wanted = def!.content as string;
      const { user, password } = checkTaskAccount(spec);
      const outcome = installOutcome(spec.name, await ts.registered(spec.name), wanted, force);
      if (outcome !== 'unchanged') {
        const r = await ts.runScript(REGISTER_SCRIPT, { folder: TASK_FOLDER, name: spec.name, xml: wanted, user, password, basedir: spec.basedir });
        if (r.code !== 0) throw scriptFailure(`registering the scheduled task ${taskName(spec.name)} as ${user}`, r);
      }
      if (!noStart) await schtasks(['/Run', '/TN', taskName(spec.name)]); // IgnoreNew: a no-op when running
      return outcome;
    },
    async uninstall(ref) {
      needAdmin();
      if (!(await ts.exists(ref.name))) return false;
      await schtasks(['/End', '/TN', taskName(ref.name)]);
      await ts.killWorkerTree(ref);
      await runChecked(host.run, ts.schtasks, ['/Delete', '/TN', taskName(ref.name), '/F']);
      return true;
    },
    async status(ref): Promise<ServiceStatus> {
      const r = await schtasks(['/Query', '/TN', taskName(ref.name), '/FO', 'LIST', '/V']);
      if (r.code !== 0) return { installed: false, running: false, enabled: false, detail: 'no such scheduled task' };
      return parseTaskStatus(r.stdout);
    },
    async start(ref) {
      needAdmin();
      await needTask(ref.name);
      await runChecked(host.run, ts.schtasks, ['/Run', '/TN', taskName(ref.name)]);
    },
    async stop(ref) {
      needAdmin();
      await needTask(ref.name);
      await schtasks(['/End', '/TN', taskName(ref.name)]);
      await ts.killWorkerTree(ref);
    },
  };
}
