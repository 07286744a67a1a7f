// macOS service install with launchd: a LaunchDaemon (/Library/LaunchDaemons, starts at boot, no GUI session,
// runs as UserName) for headless workers, or a LaunchAgent (~/Library/LaunchAgents, starts when that user logs
// in, inside their Aqua session) for performance and GUI tests that need a window server.

import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
import {
  checkServiceName,
  compareInstalled,
  requireAbsoluteCommand,
  runChecked,
  stopTimeoutOf,
  writeAtomic,
  type ServiceHost,
  type UserInfo,
} from '../service/common.js';

export interface LaunchdOptions {
  host: ServiceHost;
  /** Directory of LaunchDaemons (tests use a scratch directory). */
  daemonDir?: string;
  /** Home directory whose Library/LaunchAgents holds LaunchAgents (default: the invoking user's). */
  agentHome?: string;
  launchctl?: string;
}

/** launchd's minimum pause between two starts of a KeepAlive job (its default is also 10 s). */
export const THROTTLE_INTERVAL_S = 10;
/** launchd's default PATH lacks /usr/local/bin and Homebrew's prefix, where build tools live. */
const SERVICE_PATH = '/usr/local/bin:/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin';

export function launchdLabel(name: string): string {
  return `org.buildbot.bbagent.${name}`;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderPlist(spec: ServiceSpec, user: UserInfo | undefined): string {
  const session = spec.session ?? 'daemon';
  const str = (key: string, value: string): string => `  <key>${key}</key>\n  <string>${xml(value)}</string>\n`;
  const env: Record<string, string> = { PATH: SERVICE_PATH };
  if (user) {
    // A LaunchDaemon with UserName does not get the user's HOME; node-pty's cache and build tools need it.
    env['HOME'] = user.home;
    env['USER'] = user.name;
  }
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    `<!-- bbagent worker ${xml(spec.name).replace(/-(?=-)/g, '- ')}: written by 'bbagent service install', removed by 'bbagent service uninstall'. -->\n` +
    '<plist version="1.0">\n<dict>\n' +
    str('Label', launchdLabel(spec.name)) +
    `  <key>ProgramArguments</key>\n  <array>\n${spec.command.map((a) => `    <string>${xml(a)}</string>\n`).join('')}  </array>\n` +
    str('WorkingDirectory', spec.basedir) +
    (session === 'daemon' && user ? str('UserName', user.name) : '') +
    `  <key>EnvironmentVariables</key>\n  <dict>\n${Object.entries(env)
      .map(([k, v]) => `    <key>${xml(k)}</key>\n    <string>${xml(v)}</string>\n`)
      .join('')}  </dict>\n` +
    '  <key>RunAtLoad</key>\n  <true/>\n' +
    // Restarted when it fails (a crash, a kill -9, exit 1), like systemd's Restart=on-failure; a clean exit
    // ('bbagent stop', a master that shut the worker down) leaves it stopped until the next start, boot or login.
    '  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n' +
    `  <key>ThrottleInterval</key>\n  <integer>${THROTTLE_INTERVAL_S}</integer>\n` +
    // A stop sends SIGTERM, which lets running builds finish; SIGKILL after this long (install --stop-timeout).
    `  <key>ExitTimeOut</key>\n  <integer>${stopTimeoutOf(spec)}</integer>\n` +
    // Standard: not throttled like Background jobs; builds and perf tests need full CPU and I/O.
    str('ProcessType', 'Standard') +
    // The agent writes BASEDIR/bbagent.log itself; stdout would repeat it. stderr keeps a crash on record.
    str('StandardOutPath', '/dev/null') +
    str('StandardErrorPath', path.join(spec.basedir, 'bbagent.stderr.log')) +
    (session === 'agent' ? str('LimitLoadToSessionType', 'Aqua') : '') +
    '</dict>\n</plist>\n'
  );
}

/** The account the job runs as: a LaunchAgent's is the installing user; a LaunchDaemon's --user or BASEDIR's owner, never root. */
function resolveUser(host: ServiceHost, spec: ServiceSpec): UserInfo | undefined {
  if (spec.session === 'agent') {
    if (spec.user !== undefined) throw new ServiceError('E_SERVICE_SPEC', 'a LaunchAgent runs as the user who installs it: drop --user');
    return host.lookupUser(host.uid());
  }
  const wanted = spec.user ?? host.ownerOf(spec.basedir);
  if (wanted === undefined) throw new ServiceError('E_SERVICE_SPEC', `${spec.basedir} does not exist`);
  const user = host.lookupUser(wanted);
  if (!user) throw new ServiceError('E_SERVICE_USER', `no such user '${wanted}' (pass --user NAME)`);
  if (user.uid === 0)
    throw new ServiceError('E_SERVICE_USER', 'refusing to run the worker as root: pass --user NAME of an unprivileged account that owns BASEDIR');
  return user;
}

/** Rights an operation on a job of `session` needs: root for a LaunchDaemon, the logged-in user (not root) for a LaunchAgent. */
function needRights(host: ServiceHost, session: ServiceRef['session']): void {
  if (session === 'agent') {
    if (host.isPrivileged())
      throw new ServiceError('E_SERVICE_RIGHTS', 'a LaunchAgent (--session agent) belongs to the logged-in user: run it as that user, without sudo');
  } else if (!host.isPrivileged()) {
    throw new ServiceError('E_SERVICE_RIGHTS', 'a LaunchDaemon needs root: run it with sudo (or use --session agent)');
  }
}

export function launchdServiceManager(opts: LaunchdOptions): ServiceManager {
  const { host } = opts;
  const launchctl = opts.launchctl ?? 'launchctl';
  const daemonDir = opts.daemonDir ?? '/Library/LaunchDaemons';
  const agentDir = (): string => path.join(opts.agentHome ?? host.lookupUser(host.uid())?.home ?? process.env['HOME'] ?? '/', 'Library', 'LaunchAgents');
  const plistPath = (name: string, session: ServiceRef['session']): string =>
    path.join(session === 'agent' ? agentDir() : daemonDir, `${launchdLabel(name)}.plist`);
  const domain = (session: ServiceRef['session']): string => (session === 'agent' ? `gui/${host.uid()}` : 'system');
  const target = (ref: Pick<ServiceRef, 'name' | 'session'>): string => `${domain(ref.session)}/${launchdLabel(ref.name)}`;

  const loaded = async (ref: Pick<ServiceRef, 'name' | 'session'>): Promise<boolean> => (await host.run(launchctl, ['print', target(ref)])).code === 0;

  const render = (spec: ServiceSpec): ServiceFile[] => {
    checkServiceName(spec.name);
    requireAbsoluteCommand(spec);
    return [{ path: plistPath(spec.name, spec.session), content: renderPlist(spec, resolveUser(host, spec)) }];
  };

  return {
    kind: 'launchd',
    render,
    async install(spec, { force, noStart }): Promise<InstallOutcome> {
      needRights(host, spec.session);
      const [plist] = render(spec);
      const state = compareInstalled(plist!, force, 'the launchd job');
      if (state === 'different' && (await loaded(spec))) await runChecked(host.run, launchctl, ['bootout', target(spec)]);
      if (state !== 'same') writeAtomic(plist!);
      await runChecked(host.run, launchctl, ['enable', target(spec)]);
      // bootstrap loads the job, and RunAtLoad starts it; without it the job loads at the next boot / login.
      if (!noStart && !(await loaded(spec))) await runChecked(host.run, launchctl, ['bootstrap', domain(spec.session), plist!.path]);
      return state === 'new' ? 'installed' : state === 'same' ? 'unchanged' : 'replaced';
    },
    async uninstall(ref) {
      needRights(host, ref.session);
      const file = plistPath(ref.name, ref.session);
      if (!existsSync(file)) return false;
      if (await loaded(ref)) await runChecked(host.run, launchctl, ['bootout', target(ref)]); // stops the job's process group
      rmSync(file, { force: true });
      return true;
    },
    async status(ref): Promise<ServiceStatus> {
      const installed = existsSync(plistPath(ref.name, ref.session));
      const r = await host.run(launchctl, ['print', target(ref)]);
      if (r.code !== 0) return { installed, running: false, enabled: installed, detail: 'not loaded' };
      const state = /^\s*state = (.+)$/m.exec(r.stdout)?.[1]?.trim() ?? 'unknown';
      const pid = /^\s*pid = (\d+)$/m.exec(r.stdout)?.[1];
      return { installed, running: state === 'running', enabled: installed, detail: `state = ${state}${pid ? `, pid ${pid}` : ''}` };
    },
    async start(ref) {
      needRights(host, ref.session);
      const file = plistPath(ref.name, ref.session);
      if (!existsSync(file)) throw new ServiceError('E_SERVICE_MISSING', `${file} is not installed (bbagent service install)`);
      if (!(await loaded(ref))) await runChecked(host.run, launchctl, ['bootstrap', domain(ref.session), file]);
      await runChecked(host.run, launchctl, ['kickstart', target(ref)]);
    },
    async stop(ref) {
      needRights(host, ref.session);
      // Unloading is what stops it (until start, boot or login): SIGTERM, the agent drains, SIGKILL after ExitTimeOut.
      if (await loaded(ref)) await runChecked(host.run, launchctl, ['bootout', target(ref)]);
    },
    // The agent's SIGTERM drain ends in exit 0, which KeepAlive/SuccessfulExit=false does not restart.
    async stopAgent(basedir) {
      const label = jobOfBasedir([daemonDir, agentDir()], basedir);
      return label ? { via: 'exit', service: label } : undefined;
    },
  };
}

/** The label of a bbagent plist in `dirs` whose WorkingDirectory is `basedir`, if any. */
function jobOfBasedir(dirs: string[], basedir: string): string | undefined {
  const wanted = `<key>WorkingDirectory</key>\n  <string>${xml(basedir)}</string>\n`;
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.startsWith(launchdLabel('')) && n.endsWith('.plist'));
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        if (readFileSync(path.join(dir, n), 'utf8').includes(wanted)) return n.slice(0, -'.plist'.length);
      } catch {
        // unreadable: not ours to judge
      }
    }
  }
  return undefined;
}
