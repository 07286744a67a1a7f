// The Windows account a service runs builds as: the rules it is checked against here (never SYSTEM, a service
// account or an administrator), the PowerShell script that checks the same by SID on the machine and gives it
// BASEDIR, and how such a script is run (constant script on the command line, what varies on its stdin).

import { ServiceError, type ServiceSpec } from '../service/types.js';

/** Exit codes of the account script (anything else: a failure with PowerShell's message on stderr). */
export const PS_EXIT_PRIVILEGED = 3;
export const PS_EXIT_ABSENT = 4;
export const PS_EXIT_ACL = 5;
export const PS_EXIT_NO_ACCOUNT = 6;

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

/**
 * Accounts a service must not run builds as: LocalSystem, LocalService, NetworkService (the last two hold
 * SeImpersonatePrivilege, which public tools turn into SYSTEM), service and built-in group identities, the
 * Administrator. ACCOUNT_SCRIPT checks the same by SID, and membership of Administrators.
 */
const PRIVILEGED_ACCOUNT =
  /^(?:[^\\]*\\)?(?:system|local ?system|local ?service|network ?service|administrator|administrators|domain admins)$|^(?:builtin|nt service)\\|^\*?s-1-5-(?:18|19|20|32-\d+|80-.*)$/i;

/** Refuses a missing or privileged account with what to do instead. */
export function checkServiceAccount(spec: ServiceSpec): { user: string; password: string } {
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

/** DOMAIN\\user split for WinSW's <serviceaccount>: ".\\bbagent" and "bbagent" are local accounts (domain "."). */
export function splitAccount(user: string): { domain: string; name: string } {
  const i = user.indexOf('\\');
  return i < 0 ? { domain: '.', name: user } : { domain: user.slice(0, i) || '.', name: user.slice(i + 1) };
}

const READ_PAYLOAD = `$ErrorActionPreference = 'Stop'
$p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadToEnd().Trim())) | ConvertFrom-Json
`;

/**
 * Checks the account (exists; not SYSTEM, a service account, a built-in group, the Administrator or a direct
 * member of Administrators), gives it Modify on BASEDIR (it writes builds there), and makes the service's own
 * directory (the wrapper and its configuration) writable by Administrators and SYSTEM only, readable by the
 * account that runs them: no other user can swap the wrapper, or read the configuration while it holds the
 * account's password during `install`. Payload: user, basedir, servicedir.
 */
export const ACCOUNT_SCRIPT = `${READ_PAYLOAD}try {
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
$icacls = "$env:SystemRoot\\System32\\icacls.exe"
& $icacls $p.basedir /grant "*$($sid):(OI)(CI)M" /Q | Out-Null
if ($LASTEXITCODE -ne 0) {
  [Console]::Error.WriteLine("icacls could not give '$($p.user)' write access to $($p.basedir) (exit $LASTEXITCODE)")
  exit ${PS_EXIT_ACL}
}
New-Item -ItemType Directory -Force -Path $p.servicedir | Out-Null
& $icacls $p.servicedir /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-18:(OI)(CI)F' "*$($sid):(OI)(CI)RX" /Q | Out-Null
if ($LASTEXITCODE -ne 0) {
  [Console]::Error.WriteLine("icacls could not restrict $($p.servicedir) to Administrators, SYSTEM and '$($p.user)' (read) (exit $LASTEXITCODE)")
  exit ${PS_EXIT_ACL}
}
`;

/** powershell.exe's arguments for a script: no profile, no prompt, the script as -EncodedCommand. */
export function powershellArgs(script: string): string[] {
  return ['-NoLogo', '-NoProfile', '-NonInteractive', '-EncodedCommand', Buffer.from(script, 'utf16le').toString('base64')];
}

/** The stdin of a script: base64 of the JSON payload, one line. */
export function powershellInput(payload: Record<string, string>): string {
  return `${Buffer.from(JSON.stringify(payload), 'utf8').toString('base64')}\n`;
}
