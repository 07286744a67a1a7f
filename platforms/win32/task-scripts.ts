// The PowerShell scripts that talk to the Task Scheduler's COM API. They are constants (on the command line,
// base64 as -EncodedCommand wants); what varies, secrets included, comes on stdin as base64 of UTF-8 JSON,
// which no console code page can garble.

/** Exit codes of the registration script (anything else: a failure with PowerShell's message on stderr). */
export const PS_EXIT_PRIVILEGED = 3;
export const PS_EXIT_ABSENT = 4;
export const PS_EXIT_ACL = 5;
export const PS_EXIT_NO_ACCOUNT = 6;

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
