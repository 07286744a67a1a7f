// Windows service install with the Task Scheduler: a task \bbagent\<name> that starts at boot (before any
// logon) and runs `bbagent.exe service run BASEDIR`, a supervisor that restarts the worker whenever it exits.
// A Node process cannot answer the Service Control Manager, and the Task Scheduler is on every Windows: nothing
// else is installed. docs/install.md weighs this against a service wrapper (WinSW, NSSM).

import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ServiceError, type InstallOutcome, type ServiceFile, type ServiceManager, type ServiceRef, type ServiceSpec, type ServiceStatus } from '../types.js';
import { checkServiceName, compareInstalled, readIfExists, requireAbsoluteCommand, runChecked, writeAtomic, type ServiceHost } from '../service/common.js';

export interface SchtasksOptions {
  host: ServiceHost;
  /** Where the registered definitions are kept for comparison (default %ProgramData%\bbagent\services). */
  stateDir?: string;
  schtasks?: string;
  taskkill?: string;
}

/** Task Scheduler's own restart of a task that failed to start: every minute (its minimum), practically forever. */
export const TASK_RESTART_INTERVAL = 'PT1M';
export const TASK_RESTART_COUNT = 999;
/** Priority 5 is "normal" (the Task Scheduler's default 7 runs builds below normal priority). */
export const TASK_PRIORITY = 5;
/** The well-known SID of LocalSystem: the account when no --user is given. */
const LOCAL_SYSTEM_SID = 'S-1-5-18';

export function taskName(name: string): string {
  return `\\bbagent\\${name}`;
}

/** Quotes one argument for a Windows command line (CommandLineToArgvW rules). */
export function windowsQuote(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      backslashes++;
      continue;
    }
    out += ch === '"' ? '\\'.repeat(backslashes * 2 + 1) + '"' : '\\'.repeat(backslashes) + ch;
    backslashes = 0;
  }
  return `${out}${'\\'.repeat(backslashes * 2)}"`;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The task definition (Task Scheduler schema 1.2) as text; `renderTaskFile` encodes it as schtasks wants. */
export function renderTaskXml(spec: ServiceSpec): string {
  const [program, ...args] = spec.command;
  const principal = spec.user
    ? `      <UserId>${xml(spec.user)}</UserId>\n      <LogonType>Password</LogonType>\n`
    : `      <UserId>${LOCAL_SYSTEM_SID}</UserId>\n`;
  return `<?xml version="1.0" encoding="UTF-16"?>
<!-- bbagent worker ${xml(spec.name)}: written by 'bbagent service install', removed by 'bbagent service uninstall'. -->
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>${xml(spec.description)}</Description>
    <URI>${xml(taskName(spec.name))}</URI>
  </RegistrationInfo>
  <Triggers>
    <BootTrigger>
      <Enabled>true</Enabled>
    </BootTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
${principal}      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <Priority>${TASK_PRIORITY}</Priority>
    <RestartOnFailure>
      <Interval>${TASK_RESTART_INTERVAL}</Interval>
      <Count>${TASK_RESTART_COUNT}</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>${xml(program ?? '')}</Command>
      <Arguments>${xml(args.map(windowsQuote).join(' '))}</Arguments>
      <WorkingDirectory>${xml(spec.basedir)}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
`;
}

/** schtasks /XML reads UTF-16 little-endian with a byte-order mark (what Task Scheduler exports). */
export function encodeTaskXml(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf16le')]);
}

export function schtasksServiceManager(opts: SchtasksOptions): ServiceManager {
  const { host } = opts;
  const schtasks = opts.schtasks ?? 'schtasks';
  const taskkill = opts.taskkill ?? 'taskkill';
  const stateDir = opts.stateDir ?? path.win32.join(process.env['ProgramData'] ?? 'C:\\ProgramData', 'bbagent', 'services');
  const definitionPath = (name: string): string => path.join(stateDir, `${name}.xml`);

  const needAdmin = (): void => {
    if (!host.isPrivileged()) throw new ServiceError('E_SERVICE_RIGHTS', 'needs an elevated prompt: run it as Administrator');
  };
  const taskExists = async (name: string): Promise<boolean> => (await host.run(schtasks, ['/Query', '/TN', taskName(name)])).code === 0;

  /** Ends the worker's process tree (the Task Scheduler ends only the supervisor it started). */
  const killWorkerTree = async (ref: ServiceRef): Promise<void> => {
    let pid: number | undefined;
    try {
      pid = Number(readFileSync(ref.pidFile, 'utf8').trim()) || undefined;
    } catch {
      pid = undefined;
    }
    if (pid !== undefined) await host.run(taskkill, ['/PID', String(pid), '/T', '/F']);
  };

  const render = (spec: ServiceSpec): ServiceFile[] => {
    checkServiceName(spec.name);
    requireAbsoluteCommand(spec, path.win32.isAbsolute);
    if (spec.user !== undefined && spec.password === undefined) {
      throw new ServiceError('E_SERVICE_SPEC', `--user ${spec.user} needs that account's password (--password, or BBAGENT_SERVICE_PASSWORD)`);
    }
    return [{ path: definitionPath(spec.name), content: encodeTaskXml(renderTaskXml(spec)) }];
  };

  return {
    kind: 'schtasks',
    render,
    async install(spec, { force, noStart }): Promise<InstallOutcome> {
      needAdmin();
      const [def] = render(spec);
      let state = compareInstalled(def!, force, 'the scheduled task definition');
      const exists = await taskExists(spec.name);
      if (state === 'new' && exists) {
        if (!force) {
          throw new ServiceError(
            'E_SERVICE_EXISTS',
            `the scheduled task ${taskName(spec.name)} exists but was not installed by bbagent; install --force to replace it`,
          );
        }
        state = 'different';
      }
      if (state === 'same' && !exists) state = 'different'; // deleted behind our back: register it again
      if (state !== 'same') {
        writeAtomic(def!);
        const create = ['/Create', '/TN', taskName(spec.name), '/XML', def!.path, '/F'];
        if (spec.user !== undefined) create.push('/RU', spec.user, '/RP', spec.password ?? '');
        await runChecked(host.run, schtasks, create);
      }
      if (!noStart) await host.run(schtasks, ['/Run', '/TN', taskName(spec.name)]); // IgnoreNew: a no-op when running
      return state === 'new' ? 'installed' : state === 'same' ? 'unchanged' : 'replaced';
    },
    async uninstall(ref) {
      needAdmin();
      const known = readIfExists(definitionPath(ref.name)) !== undefined;
      if (!known && !(await taskExists(ref.name))) return false;
      await host.run(schtasks, ['/End', '/TN', taskName(ref.name)]);
      await killWorkerTree(ref);
      await host.run(schtasks, ['/Delete', '/TN', taskName(ref.name), '/F']);
      rmSync(definitionPath(ref.name), { force: true });
      return true;
    },
    async status(ref): Promise<ServiceStatus> {
      const r = await host.run(schtasks, ['/Query', '/TN', taskName(ref.name), '/FO', 'LIST', '/V']);
      if (r.code !== 0) return { installed: false, running: false, enabled: false, detail: 'no such scheduled task' };
      const field = (label: string): string | undefined => new RegExp(`^${label}:\\s*(.*)$`, 'mi').exec(r.stdout)?.[1]?.trim();
      const status = field('Status') ?? 'unknown';
      return {
        installed: true,
        running: /running/i.test(status),
        enabled: !/disabled/i.test(field('Scheduled Task State') ?? status),
        detail: `${status}${field('Last Result') ? `, last result ${field('Last Result')}` : ''}`,
      };
    },
    async start(ref) {
      needAdmin();
      if (!(await taskExists(ref.name))) throw new ServiceError('E_SERVICE_MISSING', `the scheduled task ${taskName(ref.name)} is not installed`);
      await runChecked(host.run, schtasks, ['/Run', '/TN', taskName(ref.name)]);
    },
    async stop(ref) {
      needAdmin();
      if (!(await taskExists(ref.name))) throw new ServiceError('E_SERVICE_MISSING', `the scheduled task ${taskName(ref.name)} is not installed`);
      await host.run(schtasks, ['/End', '/TN', taskName(ref.name)]);
      await killWorkerTree(ref);
    },
  };
}
