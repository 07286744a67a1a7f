// The scheduled task's definition (Task Scheduler schema 1.2) that `bbagent service install` registers on
// Windows, the account rules it is checked against, and the digest that tells "same settings" on a reinstall.

import { createHash } from 'node:crypto';
import { ServiceError, type ServiceSpec } from '../service/types.js';

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

/** The task's path in the Task Scheduler: \\bbagent\\<name>. */
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

/** What differs between the registered definition and ours, for the refusal message. */
export function describeTaskDifference(installed: string, wanted: string): string {
  const field = (doc: string, tag: string): string => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(doc)?.[1] ?? '';
  const out: string[] = [];
  for (const tag of ['Command', 'Arguments', 'WorkingDirectory', 'UserId']) {
    const a = field(installed, tag);
    const b = field(wanted, tag);
    if (a !== b) out.push(`${tag} installed '${a}' vs new '${b}'`);
  }
  return out.length ? out.join('; ') : 'its settings differ';
}
