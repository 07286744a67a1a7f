// Windows service install with the Task Scheduler: a task \bbagent\<name> that starts at boot (before any
// logon) and runs `bbagent.exe service run BASEDIR`, a supervisor that restarts the worker whenever it exits.
// A Node process cannot answer the Service Control Manager, and the Task Scheduler is on every Windows: nothing
// else is installed. docs/install.md weighs this against a service wrapper (WinSW, NSSM).
//
// Trust: the task runs as a standard account the operator names (never LocalSystem, LocalService or
// NetworkService, which a hostile build turns into SYSTEM). The definition and the account's password go to
// the Task Scheduler's COM API through a PowerShell script's stdin: nothing is written to a file another user
// could swap before it is read, and no secret is on a command line.

import { createHash } from 'node:crypto';
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

export interface SchtasksOptions {
  host: ServiceHost;
  schtasks?: string;
  taskkill?: string;
  /** Windows PowerShell 5.1 (every Windows 10 / Server 2016 has it). */
  powershell?: string;
}

/** Task Scheduler's own restart of a task that failed to start: every minute (its minimum), practically forever. */
export const TASK_RESTART_INTERVAL = 'PT1M';
export const TASK_RESTART_COUNT = 999;
/** Priority 5 is "normal" (the Task Scheduler's default 7 runs builds below normal priority). */
export const TASK_PRIORITY = 5;
/** The Task Scheduler folder of bbagent's tasks. */
export const TASK_FOLDER = '\\bbagent';
/** What marks a task as bbagent's, with the digest of its definition (RegistrationInfo/Source). */
const SOURCE_PREFIX = 'bbagent service install, definition';
const DIGEST_PLACEHOLDER = '@DEFINITION_DIGEST@';

/** Exit codes of the registration script (anything else: a failure with PowerShell's message on stderr). */
export const PS_EXIT_PRIVILEGED = 3;
export const PS_EXIT_ABSENT = 4;
export const PS_EXIT_ACL = 5;
export const PS_EXIT_NO_ACCOUNT = 6;

export function taskName(name: string): string {
  return `${TASK_FOLDER}\\${name}`;
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

/**
 * Accounts a task must not run builds as: LocalSystem, LocalService, NetworkService (the last two hold
 * SeImpersonatePrivilege, which public tools turn into SYSTEM), service and built-in group identities, the
 * Administrator. The registration script checks the same by SID, and membership of Administrators.
 */
const PRIVILEGED_ACCOUNT =
  /^(?:[^\\]*\\)?(?:system|local ?system|local ?service|network ?service|administrator|administrators|domain admins)$|^(?:builtin|nt service)\\|^\*?s-1-5-(?:18|19|20|32-\d+|80-.*)$/i;

/** Refuses a missing or privileged account with what to do instead. */
export function checkTaskAccount(spec: ServiceSpec): { user: string; password: string } {
  if (spec.user === undefined) {
    throw new ServiceError(
      'E_SERVICE_USER',
      'on Windows the worker runs as an account you name, never LocalSystem: builds run whatever the master sends. ' +
        'Create a standard local account (net user bbagent * /add), then install --user .\\bbagent with its password in ' +
        'BBAGENT_SERVICE_PASSWORD or on stdin (--password-stdin)',
    );
  }
  if (PRIVILEGED_ACCOUNT.test(spec.user.trim())) {
    throw new ServiceError(
      'E_SERVICE_USER',
      `refusing to run the worker as '${spec.user}': builds run whatever the master sends, and that account is or ` +
        `becomes SYSTEM or an administrator. Create a standard local account (net user bbagent * /add) and pass --user .\\bbagent`,
    );
  }
  if (spec.password === undefined) {
    throw new ServiceError('E_SERVICE_SPEC', `--user ${spec.user} needs that account's password: BBAGENT_SERVICE_PASSWORD, or on stdin with --password-stdin`);
  }
  return { user: spec.user, password: spec.password };
}

/**
 * The task definition (Task Scheduler schema 1.2) as text. RegistrationInfo/Source carries the digest of the
 * definition: `install` compares it with the registered task's to tell "same settings" without a copy on disk.
 */
export function renderTaskXml(spec: ServiceSpec): string {
  const [program, ...args] = spec.command;
  const body = `<?xml version="1.0" encoding="UTF-16"?>
<!-- bbagent worker ${xml(spec.name)}: written by 'bbagent service install', removed by 'bbagent service uninstall'. -->
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Source>${SOURCE_PREFIX} ${DIGEST_PLACEHOLDER}</Source>
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
      <UserId>${xml(spec.user ?? '')}</UserId>
      <LogonType>Password</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
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
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  return body.replace(DIGEST_PLACEHOLDER, digest);
}

/** The digest a registered task's definition carries, or undefined when bbagent did not write it. */
export function definitionDigest(taskXml: string): string | undefined {
  return new RegExp(`<Source>${SOURCE_PREFIX} (sha256:[0-9a-f]{64})</Source>`).exec(taskXml)?.[1];
}

// ---------------------------------------------------------------------------------------------------------
// PowerShell: the scripts are constants (on the command line, base64 as -EncodedCommand wants); what varies,
// secrets included, comes on stdin as base64 of UTF-8 JSON, which no console code page can garble.

const READ_PAYLOAD = `$ErrorActionPreference = 'Stop'
$p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadToEnd().Trim())) | ConvertFrom-Json
$svc = New-Object -ComObject Schedule.Service
$svc.Connect()
`;

/** Prints the registered task's XML (base64 of UTF-8), or exits PS_EXIT_ABSENT. Payload: folder, name. */
export const QUERY_SCRIPT = `${READ_PAYLOAD}try { $task = $svc.GetFolder($p.folder).GetTask($p.name) } catch { exit ${PS_EXIT_ABSENT} }
[Console]::Out.Write([Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($task.Xml)))
`;

/**
 * Checks the account (exists; not SYSTEM, a service account, a built-in group, the Administrator or a direct
 * member of Administrators), gives it Modify on BASEDIR (it writes builds there), and registers the task with
 * its password (ITaskFolder::RegisterTask, TASK_CREATE_OR_UPDATE, TASK_LOGON_PASSWORD). Payload: folder,
 * name, xml, user, password, basedir.
 */
export const REGISTER_SCRIPT = `${READ_PAYLOAD}try {
  $sid = (New-Object Security.Principal.NTAccount($p.user)).Translate([Security.Principal.SecurityIdentifier]).Value
} catch {
  [Console]::Error.WriteLine("no account named '$($p.user)' (create it: net user NAME * /add)")
  exit ${PS_EXIT_NO_ACCOUNT}
}
if ($sid -in @('S-1-5-18', 'S-1-5-19', 'S-1-5-20') -or $sid -like 'S-1-5-21-*-500' -or $sid -like 'S-1-5-32-*' -or $sid -like 'S-1-5-80-*') {
  [Console]::Error.WriteLine("'$($p.user)' ($sid) is SYSTEM, a service account, a built-in group or the Administrator")
  exit ${PS_EXIT_PRIVILEGED}
}
$admins = $null
try { $admins = @(Get-LocalGroupMember -SID 'S-1-5-32-544' | ForEach-Object { $_.SID.Value }) }
catch { [Console]::Error.WriteLine("warning: could not list the Administrators group, membership not checked: $($_.Exception.Message)") }
if ($admins -contains $sid) {
  [Console]::Error.WriteLine("'$($p.user)' is a member of the local Administrators group")
  exit ${PS_EXIT_PRIVILEGED}
}
& "$env:SystemRoot\\System32\\icacls.exe" $p.basedir /grant "*$($sid):(OI)(CI)M" /Q | Out-Null
if ($LASTEXITCODE -ne 0) {
  [Console]::Error.WriteLine("icacls could not give '$($p.user)' write access to $($p.basedir) (exit $LASTEXITCODE)")
  exit ${PS_EXIT_ACL}
}
try { $folder = $svc.GetFolder($p.folder) } catch { $folder = $svc.GetFolder('\\').CreateFolder($p.folder.TrimStart('\\')) }
[void]$folder.RegisterTask($p.name, $p.xml, 6, $p.user, $p.password, 1)
`;

/** powershell.exe's arguments for a script: no profile, no prompt, the script as -EncodedCommand. */
export function powershellArgs(script: string): string[] {
  return ['-NoLogo', '-NoProfile', '-NonInteractive', '-EncodedCommand', Buffer.from(script, 'utf16le').toString('base64')];
}

/** The stdin of a script: base64 of the JSON payload, one line. */
export function powershellInput(payload: Record<string, string>): string {
  return `${Buffer.from(JSON.stringify(payload), 'utf8').toString('base64')}\n`;
}

/** What differs between the registered definition and ours, for the refusal message. */
function describeTaskDifference(installed: string, wanted: string): string {
  const field = (doc: string, tag: string): string => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(doc)?.[1] ?? '';
  const out: string[] = [];
  for (const tag of ['Command', 'Arguments', 'WorkingDirectory', 'UserId']) {
    const a = field(installed, tag);
    const b = field(wanted, tag);
    if (a !== b) out.push(`${tag} installed '${a}' vs new '${b}'`);
  }
  return out.length ? out.join('; ') : 'its settings differ';
}

export function schtasksServiceManager(opts: SchtasksOptions): ServiceManager {
  const { host } = opts;
  const system32 = path.win32.join(process.env['SystemRoot'] ?? 'C:\\Windows', 'System32');
  const schtasks = opts.schtasks ?? 'schtasks';
  const taskkill = opts.taskkill ?? 'taskkill';
  const powershell = opts.powershell ?? path.win32.join(system32, 'WindowsPowerShell', 'v1.0', 'powershell.exe');

  const needAdmin = (): void => {
    if (!host.isPrivileged()) throw new ServiceError('E_SERVICE_RIGHTS', 'needs an elevated prompt: run it as Administrator');
  };
  const taskExists = async (name: string): Promise<boolean> => (await host.run(schtasks, ['/Query', '/TN', taskName(name)])).code === 0;
  const runScript = (script: string, payload: Record<string, string>): Promise<CommandResult> =>
    host.run(powershell, powershellArgs(script), { input: powershellInput(payload) });
  const scriptFailure = (what: string, r: CommandResult): ServiceError => {
    const why = (r.stderr.trim() || r.stdout.trim()).split(/\r?\n/).slice(0, 3).join(' / ');
    const code = r.code === PS_EXIT_PRIVILEGED || r.code === PS_EXIT_NO_ACCOUNT ? 'E_SERVICE_USER' : 'E_SERVICE_COMMAND';
    return new ServiceError(code, `${what} failed (exit ${r.code})${why ? `: ${why}` : ''}`);
  };

  /** The registered task's definition, or undefined when there is none. */
  const registered = async (name: string): Promise<string | undefined> => {
    const r = await runScript(QUERY_SCRIPT, { folder: TASK_FOLDER, name });
    if (r.code === PS_EXIT_ABSENT) return undefined;
    if (r.code !== 0) throw scriptFailure(`reading the scheduled task ${taskName(name)}`, r);
    return Buffer.from(r.stdout.trim(), 'base64').toString('utf8');
  };

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
      const installed = await registered(spec.name);
      let outcome: InstallOutcome = 'installed';
      if (installed !== undefined) {
        const digest = definitionDigest(installed);
        if (digest === undefined && !force) {
          throw new ServiceError(
            'E_SERVICE_EXISTS',
            `the scheduled task ${taskName(spec.name)} exists but was not installed by bbagent; install --force to replace it`,
          );
        }
        // --force registers again even with the same settings: the way to give the task a new password
        if (digest === definitionDigest(wanted) && !force) outcome = 'unchanged';
        else if (!force) {
          throw new ServiceError(
            'E_SERVICE_EXISTS',
            `the scheduled task ${taskName(spec.name)} already exists with different settings (${describeTaskDifference(installed, wanted)}); ` +
              `run 'bbagent service uninstall' first, or install --force to replace it`,
          );
        } else outcome = 'replaced';
      }
      if (outcome !== 'unchanged') {
        const r = await runScript(REGISTER_SCRIPT, { folder: TASK_FOLDER, name: spec.name, xml: wanted, user, password, basedir: spec.basedir });
        if (r.code !== 0) throw scriptFailure(`registering the scheduled task ${taskName(spec.name)} as ${user}`, r);
      }
      if (!noStart) await host.run(schtasks, ['/Run', '/TN', taskName(spec.name)]); // IgnoreNew: a no-op when running
      return outcome;
    },
    async uninstall(ref) {
      needAdmin();
      if (!(await taskExists(ref.name))) return false;
      await host.run(schtasks, ['/End', '/TN', taskName(ref.name)]);
      await killWorkerTree(ref);
      await runChecked(host.run, schtasks, ['/Delete', '/TN', taskName(ref.name), '/F']);
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
