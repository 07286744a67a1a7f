// Windows service install: a real service in the Service Control Manager (services.msc lists it), run by WinSW,
// a service wrapper: the SCM cannot start a Node program itself, since a service must answer its control
// requests from native code. `install` copies winsw.exe (shipped beside bbagent.exe) to
// %ProgramData%\bbagent\services\<name>\bbagent-<name>.exe with its configuration bbagent-<name>.xml
// (winsw-config.ts) and runs its `install`; the SCM then starts it at boot, restarts it when it fails, and a stop
// runs `bbagent stop --drain --service`, which drains the agent over its control socket (no Ctrl+C).
// docs/install.md says why WinSW, what its stop does, and what was run where.
//
// Trust: the service runs as a standard account the operator names (never LocalSystem, LocalService or
// NetworkService, which a hostile build turns into SYSTEM). Its password is in the configuration only while the
// wrapper's `install` hands it to the SCM, in a directory only Administrators and SYSTEM can read, and never on
// a command line.

import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makedirs } from '../common/makedirs.js';
import { ServiceError, type InstallOutcome, type ServiceFile, type ServiceManager, type ServiceSpec, type ServiceStatus } from '../service/types.js';
import {
  checkServiceName,
  compareInstalled,
  requireAbsoluteCommand,
  runChecked,
  writeAtomic,
  type CommandResult,
  type ServiceHost,
} from '../service/common.js';
import { ACCOUNT_SCRIPT, PS_EXIT_NO_ACCOUNT, PS_EXIT_PRIVILEGED, checkServiceAccount, powershellArgs, powershellInput } from './account.js';
import { legacyTaskExists, removeLegacyTask, taskName, type LegacyTaskTools } from './legacy-task.js';
import { WINSW_EXE_CONFIG, WINSW_SOURCE, renderWinswXml, serviceId } from './winsw-config.js';

export interface WinswOptions {
  host: ServiceHost;
  /** Where each service's directory is made (default %ProgramData%\bbagent\services). */
  serviceRoot?: string;
  /** The wrapper to copy (default: the spec's, else winsw.exe beside bbagent.exe, else node-windows's). */
  winsw?: string;
  sc?: string;
  schtasks?: string;
  taskkill?: string;
  /** Windows PowerShell 5.1 (every Windows 10 / Server 2016 has it). */
  powershell?: string;
  /** Path functions (tests on Linux pass path.posix). */
  pathApi?: typeof path.win32;
  /** Pause between two state queries while a stop completes (ms). */
  pollMs?: number;
}

/** sc.exe's exit code is the Win32 error code. */
const ERROR_ACCESS_DENIED = 5;
const ERROR_SERVICE_ALREADY_RUNNING = 1056;
const ERROR_SERVICE_DOES_NOT_EXIST = 1060;
const ERROR_SERVICE_NOT_ACTIVE = 1062;
/** How long past its stoptimeout a stop may take before `service stop` reports it (the wrapper's own exit). */
const STOP_SLACK_MS = 60_000;

/** The SCM state from `sc.exe query ID` ("STATE : 4  RUNNING"). */
export function parseScState(stdout: string): string | undefined {
  return /^\s*STATE\s*:\s*\d+\s+(\w+)/m.exec(stdout)?.[1];
}

function scriptFailure(what: string, r: CommandResult): ServiceError {
  const why = (r.stderr.trim() || r.stdout.trim()).split(/\r?\n/).slice(0, 3).join(' / ');
  const code = r.code === PS_EXIT_PRIVILEGED || r.code === PS_EXIT_NO_ACCOUNT ? 'E_SERVICE_USER' : 'E_SERVICE_COMMAND';
  return new ServiceError(code, `${what} failed (exit ${r.code})${why ? `: ${why}` : ''}`);
}

/** The Service Control Manager and the wrapper's files, as the manager's operations use them. */
class Scm {
  readonly host: ServiceHost;
  readonly p: typeof path.win32;
  readonly sc: string;
  readonly powershell: string;
  readonly legacy: LegacyTaskTools;
  readonly root: string;
  private readonly pollMs: number;

  constructor(private readonly opts: WinswOptions) {
    this.host = opts.host;
    const p = (this.p = opts.pathApi ?? path.win32);
    const system32 = p.join(process.env['SystemRoot'] ?? 'C:\\Windows', 'System32');
    this.sc = opts.sc ?? p.join(system32, 'sc.exe');
    this.powershell = opts.powershell ?? p.join(system32, 'WindowsPowerShell', 'v1.0', 'powershell.exe');
    this.legacy = { host: opts.host, schtasks: opts.schtasks ?? 'schtasks', taskkill: opts.taskkill ?? 'taskkill' };
    this.root = opts.serviceRoot ?? p.join(process.env['ProgramData'] ?? 'C:\\ProgramData', 'bbagent', 'services');
    this.pollMs = opts.pollMs ?? 1000;
  }

  dirOf(name: string): string {
    return this.p.join(this.root, name);
  }
  exeOf(name: string): string {
    return this.p.join(this.dirOf(name), `${serviceId(name)}.exe`);
  }
  xmlOf(name: string): string {
    return this.p.join(this.dirOf(name), `${serviceId(name)}.xml`);
  }

  needAdmin(): void {
    if (!this.host.isPrivileged()) throw new ServiceError('E_SERVICE_RIGHTS', 'needs an elevated prompt: run it as Administrator');
  }

  /** The service's SCM state (RUNNING, STOPPED, ...), undefined when there is no such service. */
  async state(name: string): Promise<string | undefined> {
    const r = await this.host.run(this.sc, ['query', serviceId(name)]);
    return r.code === ERROR_SERVICE_DOES_NOT_EXIST ? undefined : (parseScState(r.stdout) ?? 'UNKNOWN');
  }

  async start(name: string): Promise<void> {
    const r = await this.host.run(this.sc, ['start', serviceId(name)]);
    if (r.code !== 0 && r.code !== ERROR_SERVICE_ALREADY_RUNNING) throw scriptFailure(`sc.exe start ${serviceId(name)}`, r);
  }

  /** Asks the SCM to stop the service (the wrapper runs the drain) and waits until it is stopped. */
  async stopAndWait(name: string): Promise<void> {
    const id = serviceId(name);
    const r = await this.host.run(this.sc, ['stop', id]);
    if (r.code === ERROR_ACCESS_DENIED) throw new ServiceError('E_SERVICE_RIGHTS', `stopping the service ${id} needs an elevated prompt`);
    if (r.code !== 0 && r.code !== ERROR_SERVICE_NOT_ACTIVE) throw scriptFailure(`sc.exe stop ${id}`, r);
    // the installed configuration's stoptimeout: how long the drain may take
    const text = existsSync(this.xmlOf(name)) ? readFileSync(this.xmlOf(name), 'utf8') : '';
    const deadline = Date.now() + Number(/<stoptimeout>(\d+) sec<\/stoptimeout>/.exec(text)?.[1] ?? 60) * 1000 + STOP_SLACK_MS;
    for (let s = await this.state(name); s !== undefined && s !== 'STOPPED'; s = await this.state(name)) {
      if (Date.now() > deadline) throw new ServiceError('E_SERVICE_COMMAND', `the service ${id} is still ${s} after its stop timeout`);
      await sleep(this.pollMs);
    }
  }

  /** Stops the service and removes it from the SCM (through the wrapper when it is there). */
  async remove(name: string): Promise<void> {
    await this.stopAndWait(name);
    if (existsSync(this.exeOf(name))) await runChecked(this.host.run, this.exeOf(name), ['uninstall']);
    else await runChecked(this.host.run, this.sc, ['delete', serviceId(name)]);
  }

  /** winsw.exe to copy: --winsw, else beside bbagent.exe (a release), else node-windows's beside the script (npm -g). */
  private wrapperSource(spec: ServiceSpec): string {
    const p = this.p;
    const [program, script] = spec.command;
    const explicit = spec.winsw ?? this.opts.winsw;
    // npm -g: <prefix>/node_modules/bbagent/build/bbagent.cjs, node-windows nested in it or hoisted beside it
    const npmCopies = (dir: string): string[] =>
      [p.join(dir, '..', 'node_modules'), p.join(dir, '..', '..')].map((base) => p.join(base, WINSW_SOURCE.npmPackage, ...WINSW_SOURCE.file.split('/')));
    const candidates = explicit
      ? [explicit]
      : [p.join(p.dirname(program ?? ''), 'winsw.exe'), ...(script && /\.c?js$/.test(script) ? npmCopies(p.dirname(script)) : [])];
    const found = candidates.find((c) => existsSync(c));
    if (!found) {
      throw new ServiceError(
        'E_SERVICE_MANAGER',
        `the Windows service wrapper is missing (looked for ${candidates.join(', ')}): a release ships winsw.exe beside bbagent.exe, ` +
          `npm install -g brings it in ${WINSW_SOURCE.npmPackage}; or pass --winsw PATH (docs/install.md, "Windows service")`,
      );
    }
    return found;
  }

  /** Writes the wrapper and its configuration and registers the service; the password is on disk only meanwhile. */
  async register(spec: ServiceSpec, file: ServiceFile): Promise<void> {
    const { user, password } = checkServiceAccount(spec);
    const dir = this.dirOf(spec.name);
    const prepared = await this.host.run(this.powershell, powershellArgs(ACCOUNT_SCRIPT), {
      input: powershellInput({ user, basedir: spec.basedir, servicedir: dir }),
    });
    if (prepared.code !== 0) throw scriptFailure(`checking the account ${user} and giving it ${spec.basedir}`, prepared);
    makedirs(dir, { existOk: true }); // made and locked by the script; here when it is not Windows (tests)
    copyFileSync(this.wrapperSource(spec), this.exeOf(spec.name));
    writeAtomic({ path: `${this.exeOf(spec.name)}.config`, content: WINSW_EXE_CONFIG });
    writeAtomic({ path: file.path, content: renderWinswXml(spec, password) }, 0o600);
    try {
      await runChecked(this.host.run, this.exeOf(spec.name), ['install']);
    } finally {
      writeAtomic(file);
    }
  }
}

async function install(scm: Scm, spec: ServiceSpec, file: ServiceFile, force: boolean): Promise<InstallOutcome> {
  if (await legacyTaskExists(scm.legacy, spec.name)) {
    throw new ServiceError(
      'E_SERVICE_EXISTS',
      `an older bbagent installed this worker as the scheduled task ${taskName(spec.name)}: run 'bbagent service uninstall' first, which removes it`,
    );
  }
  const current = await scm.state(spec.name);
  if (current !== undefined && !existsSync(file.path) && !force) {
    throw new ServiceError('E_SERVICE_EXISTS', `a service ${serviceId(spec.name)} exists but was not installed by bbagent; install --force to replace it`);
  }
  const compared = compareInstalled(file, force, 'the service configuration');
  // --force registers again even with the same settings: the way to give the service a new password
  const outcome: InstallOutcome = current === undefined ? 'installed' : compared === 'same' && !force ? 'unchanged' : 'replaced';
  if (outcome === 'replaced') await scm.remove(spec.name);
  if (outcome !== 'unchanged') await scm.register(spec, file);
  return outcome;
}

export function winswServiceManager(opts: WinswOptions): ServiceManager {
  const scm = new Scm(opts);
  const render = (spec: ServiceSpec): ServiceFile[] => {
    checkServiceName(spec.name);
    requireAbsoluteCommand(spec, scm.p.isAbsolute);
    checkServiceAccount(spec);
    return [{ path: scm.xmlOf(spec.name), content: renderWinswXml(spec) }];
  };
  const needService = async (name: string): Promise<void> => {
    if ((await scm.state(name)) === undefined) throw new ServiceError('E_SERVICE_MISSING', `the service ${serviceId(name)} is not installed`);
  };

  return {
    kind: 'winsw',
    render,
    async install(spec, { force, noStart }): Promise<InstallOutcome> {
      scm.needAdmin();
      const [file] = render(spec);
      const outcome = await install(scm, spec, file!, force);
      if (!noStart) await scm.start(spec.name);
      return outcome;
    },
    async uninstall(ref) {
      scm.needAdmin();
      const installed = (await scm.state(ref.name)) !== undefined;
      if (installed) await scm.remove(ref.name);
      rmSync(scm.dirOf(ref.name), { recursive: true, force: true });
      // An install by an older bbagent: a scheduled task running the `service run` supervisor.
      return (await removeLegacyTask(scm.legacy, ref.name, ref.pidFile)) || installed;
    },
    async status(ref): Promise<ServiceStatus> {
      const s = await scm.state(ref.name);
      if (s !== undefined) return { installed: true, running: s === 'RUNNING', enabled: true, detail: `${serviceId(ref.name)} ${s}` };
      if (await legacyTaskExists(scm.legacy, ref.name)) {
        const detail = `an older bbagent's scheduled task ${taskName(ref.name)}; 'bbagent service uninstall' removes it`;
        return { installed: true, running: undefined, enabled: true, detail };
      }
      return { installed: false, running: false, enabled: false, detail: `no service ${serviceId(ref.name)}` };
    },
    async start(ref) {
      scm.needAdmin();
      await needService(ref.name);
      await scm.start(ref.name);
    },
    async stop(ref) {
      scm.needAdmin();
      await needService(ref.name);
      await scm.stopAndWait(ref.name);
    },
    // Windows has no signal another process can send the agent to drain it (process.kill ends it at once, exit 1,
    // which the recovery actions restart): a worker run by a service is stopped through the SCM, whose stop drains.
    async stopAgent(basedir) {
      const name = serviceOfBasedir(scm.root, scm.p, basedir);
      if (name === undefined || (await scm.state(name)) !== 'RUNNING') return undefined;
      await scm.stopAndWait(name);
      return { via: 'manager', service: serviceId(name) };
    },
  };
}

/** The name of the bbagent service whose configuration runs in `basedir`, if any. */
function serviceOfBasedir(root: string, p: typeof path.win32, basedir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return undefined;
  }
  const wanted = `<workingdirectory>${basedir.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')}</workingdirectory>`;
  return names.find((n) => {
    try {
      return readFileSync(p.join(root, n, `${serviceId(n)}.xml`), 'utf8')
        .toLowerCase()
        .includes(wanted.toLowerCase());
    } catch {
      return false;
    }
  });
}
