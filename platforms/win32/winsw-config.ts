// The WinSW configuration `bbagent service install` writes on Windows: a real service (services.msc lists it)
// whose wrapper runs `bbagent.exe start --nodaemon BASEDIR` as the named account and restarts it when it fails
// (the Service Control Manager's recovery actions). A stop runs bbagent itself as the stop program,
// `bbagent.exe stop --drain --service --timeout T BASEDIR --` (WinSW appends the service's own arguments after
// the `--`), which asks the agent over its control socket for its first stop stage: running builds finish, then
// it exits 0 and the service is stopped, not restarted. With a stop program WinSW sends no Ctrl+C, so the build
// steps, which share the agent's console, get none. docs/install.md ("Windows service") says what WinSW 1.17
// does on a stop, from its source.
//
// Only elements of WinSW 1.x, the version npm's node-windows package ships as bin/winsw/winsw.exe, are used.

import { ServiceError, type ServiceSpec } from '../service/types.js';
import { stopTimeoutOf } from '../service/common.js';
import { splitAccount, windowsQuote } from './account.js';

/**
 * Where WinSW comes from: npm's node-windows package (MIT, as WinSW) carries WinSW 1.17 as bin/winsw/winsw.exe.
 * On Windows `npm install -g` installs it (an optional dependency); a release takes it from `npm pack` of that
 * version and ships it beside bbagent.exe, checked against this digest.
 */
export const WINSW_SOURCE = {
  npmPackage: 'node-windows',
  version: '0.1.14',
  file: 'bin/winsw/winsw.exe',
  winswVersion: '1.17.0.0',
  sha256: '5859b114d96800a2b98ef9d19eaa573a786a422dad324547ef25be181389df01',
} as const;

/**
 * The wrapper's .NET configuration (<wrapper>.exe.config): WinSW 1.x is built for .NET 2.0, which Windows 10
 * and later do not have by default; this lets it run on the .NET 4 every Windows since 8 carries.
 */
export const WINSW_EXE_CONFIG = `<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <startup>
    <supportedRuntime version="v4.0"/>
    <supportedRuntime version="v2.0.50727"/>
  </startup>
</configuration>
`;

/** Pause of the recovery action before the wrapper is started again (systemd's RestartSec= of the Linux unit). */
export const RESTART_DELAY_S = 10;
/** Failures within this long count together; after a quiet hour the first restart action applies again. */
export const RESET_FAILURE = '1 hour';

/** The service's id (its name for sc.exe and services.msc): bbagent-<name>. */
export function serviceId(name: string): string {
  return `bbagent-${name}`;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * The stop program's arguments. WinSW 1.x reads them from repeated <stopargument> elements (not <stoparguments>,
 * which 1.x does not know), quotes one that holds a space unless it is quoted already, joins them, and appends
 * a space and the service's <arguments>: each is written quoted here (CommandLineToArgvW rules), and the `--` at
 * the end makes bbagent take the appended words for what they are.
 */
export function stopArguments(spec: ServiceSpec): string[] {
  const [, ...args] = spec.command;
  const start = args.indexOf('start');
  if (start < 0) throw new ServiceError('E_SERVICE_SPEC', `the service command must run bbagent start, got ${spec.command.join(' ')}`);
  return [...args.slice(0, start), 'stop', '--drain', '--service', '--timeout', String(stopTimeoutOf(spec)), spec.basedir, '--'];
}

/** WinSW expands %VAR% in paths and arguments: a literal % cannot be written, so it is refused. */
function noPercent(what: string, value: string): string {
  if (value.includes('%')) throw new ServiceError('E_SERVICE_SPEC', `${what} '${value}' contains %, which the Windows service wrapper expands as a variable`);
  if (/[\n\r]/.test(value)) throw new ServiceError('E_SERVICE_SPEC', `${what} cannot contain a newline: ${JSON.stringify(value)}`);
  return value;
}

/**
 * The configuration as text. `password` is included only for the wrapper's `install` (which hands it to the
 * Service Control Manager); the file left on disk is rendered without it.
 */
export function renderWinswXml(spec: ServiceSpec, password?: string): string {
  const [program, ...args] = spec.command.map((a) => noPercent('a service argument', a));
  const id = serviceId(spec.name);
  const account = spec.user === undefined ? undefined : splitAccount(spec.user);
  const serviceAccount = account
    ? `  <serviceaccount>
    <domain>${xml(account.domain)}</domain>
    <user>${xml(account.name)}</user>
${password === undefined ? '' : `    <password>${xml(password)}</password>\n`}    <allowservicelogon>true</allowservicelogon>
  </serviceaccount>
`
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- bbagent worker ${xml(spec.name).replace(/-(?=-)/g, '- ')}: written by 'bbagent service install', removed by 'bbagent service uninstall'. -->
<service>
  <id>${xml(id)}</id>
  <name>bbagent ${xml(spec.name)}</name>
  <description>${xml(spec.description.replace(/[\n\r]/g, ' '))}</description>
  <executable>${xml(program ?? '')}</executable>
  <arguments>${xml(args.map(windowsQuote).join(' '))}</arguments>
  <workingdirectory>${xml(noPercent('BASEDIR', spec.basedir))}</workingdirectory>
  <startmode>Automatic</startmode>
${serviceAccount}  <!-- A crash, a kill or exit 1 is a failure: the Service Control Manager starts it again. A clean exit (bbagent
       stop, a master that shut the worker down) stops the service until the next start or boot. -->
  <onfailure action="restart" delay="${RESTART_DELAY_S} sec"/>
  <resetfailure>${RESET_FAILURE}</resetfailure>
  <!-- A stop runs bbagent's stop in drain mode: running builds finish within the stop timeout (install's stop timeout
       option), then the agent exits; no Ctrl+C is sent. WinSW waits for both programs to exit, with no bound of
       its own (stoptimeout bounds only a Ctrl+C stop): past the timeout the stop program ends the agent's tree. -->
  <stopexecutable>${xml(program ?? '')}</stopexecutable>
${stopArguments(spec)
  .map((a) => `  <stopargument>${xml(windowsQuote(noPercent('a service argument', a)))}</stopargument>\n`)
  .join('')}  <stoptimeout>${stopTimeoutOf(spec)} sec</stoptimeout>
  <!-- The agent writes BASEDIR\\bbagent.log itself; the wrapper's own log and the agent's stderr go beside it
       (bbagent-NAME.wrapper.log, .err.log): the account can write BASEDIR, not the wrapper's directory. -->
  <logpath>${xml(spec.basedir)}</logpath>
  <log mode="roll"/>
</service>
`;
}
