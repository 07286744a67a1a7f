// Linux service install: a systemd system unit /etc/systemd/system/bbagent-<name>.service that runs the worker
// in the foreground as an unprivileged user, restarts it when it fails, and stops it gracefully: SIGTERM to the
// agent alone, which lets running builds finish, then SIGKILL to whatever is left of its build tree.

import { existsSync, readFileSync, rmSync } from 'node:fs';
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

export interface SystemdOptions {
  host: ServiceHost;
  /** Where system units live (tests use a scratch directory). */
  unitDir?: string;
  /** sd_booted(): systemd is PID 1 when /run/systemd/system exists. */
  systemdRunning?: () => boolean;
  systemctl?: string;
  /** /proc/PID/cgroup of a process, undefined when it is gone (tests pass a fake). */
  readCgroup?: (pid: number) => string | undefined;
}
/** Pause between restarts: long enough not to hammer a master that refuses us, short enough to come back soon. */
export const RESTART_SEC = 10;

export function unitName(name: string): string {
  return `bbagent-${name}.service`;
}

/** A word of ExecStart=: plain when safe, else double-quoted with C escapes; % and $ are doubled (specifiers, variables). */
export function systemdQuote(word: string): string {
  if (/[\n\r]/.test(word)) throw new ServiceError('E_SERVICE_SPEC', `a service argument cannot contain a newline: ${JSON.stringify(word)}`);
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@+=:,./%$-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A path value of a unit setting (WorkingDirectory=): specifiers escaped, no quoting needed. */
function unitPath(p: string): string {
  if (/[\n\r]/.test(p)) throw new ServiceError('E_SERVICE_SPEC', `a path cannot contain a newline: ${JSON.stringify(p)}`);
  return p.replace(/%/g, '%%');
}

export function renderUnit(spec: ServiceSpec, user: string): string {
  return `# bbagent worker ${spec.name}: written by 'bbagent service install', removed by 'bbagent service uninstall'.
[Unit]
Description=${spec.description.replace(/[\n\r]/g, ' ').replace(/%/g, '%%')}
Documentation=https://docs.buildbot.net/latest/manual/installation/worker.html
After=network-online.target
Wants=network-online.target
# Restarts for as long as it keeps failing: no start rate limit that would give up after a few quick failures.
StartLimitIntervalSec=0

[Service]
Type=simple
User=${user}
WorkingDirectory=${unitPath(spec.basedir)}
ExecStart=${spec.command.map(systemdQuote).join(' ')}
# A crash, a kill -9 or a worker that gave up (exit 1) is restarted; a clean exit is not: 'bbagent stop', or a
# master that shut the worker down, leaves the unit stopped until 'bbagent service start' or the next boot.
Restart=on-failure
RestartSec=${RESTART_SEC}
# Stop (systemctl stop, a reboot): SIGTERM to the agent alone, whose first stage lets running builds finish and
# then exits; whatever is still in the unit's control group after TimeoutStopSec (install --stop-timeout) gets
# SIGKILL, the builds with it. A build cannot escape the cgroup, so nothing outlives the service.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=${stopTimeoutOf(spec)}
SendSIGKILL=yes
# Logs: the agent's stdout to the journal (journalctl -u ${unitName(spec.name)}) and BASEDIR/bbagent.log.
StandardOutput=journal
StandardError=journal
SyslogIdentifier=bbagent-${spec.name}
# A private cache (node-pty extracted from the executable) in /var/cache, owned by User=; $CACHE_DIRECTORY names it.
CacheDirectory=bbagent-${spec.name}

[Install]
WantedBy=multi-user.target
`;
}

/** The account to run as: --user, else BASEDIR's owner; never root, and it must own BASEDIR. */
function resolveUser(host: ServiceHost, spec: ServiceSpec): UserInfo {
  const owner = host.ownerOf(spec.basedir);
  const wanted = spec.user ?? owner;
  if (wanted === undefined) throw new ServiceError('E_SERVICE_SPEC', `${spec.basedir} does not exist`);
  const user = host.lookupUser(wanted);
  if (!user) throw new ServiceError('E_SERVICE_USER', `no such user '${wanted}' (create it, or pass --user NAME)`);
  if (user.uid === 0) {
    throw new ServiceError(
      'E_SERVICE_USER',
      `refusing to run the worker as root: builds run whatever the master sends. Create an unprivileged account ` +
        `that owns ${spec.basedir} (chown -R NAME ${spec.basedir}) and pass --user NAME`,
    );
  }
  if (owner !== undefined && owner !== user.uid) {
    const ownerName = host.lookupUser(owner)?.name ?? String(owner);
    throw new ServiceError(
      'E_SERVICE_USER',
      `${spec.basedir} belongs to ${ownerName}, not to ${user.name}, who must write it: chown -R ${user.name} ${spec.basedir}`,
    );
  }
  return user;
}

/** The unit's state from `systemctl show --property=LoadState,ActiveState,SubState,UnitFileState,MainPID`. */
function parseSystemctlShow(stdout: string, unitFileExists: boolean): ServiceStatus {
  const props = Object.fromEntries(
    stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const active = props['ActiveState'] ?? 'unknown';
  const sub = props['SubState'] ?? '';
  const pid = props['MainPID'] && props['MainPID'] !== '0' ? `, pid ${props['MainPID']}` : '';
  return {
    installed: unitFileExists && props['LoadState'] !== 'not-found',
    running: active === 'active',
    enabled: props['UnitFileState'] === 'enabled',
    detail: `${active}${sub ? ` (${sub})` : ''}${pid}, ${props['UnitFileState'] ?? 'unknown'}`,
  };
}

export function systemdServiceManager(opts: SystemdOptions): ServiceManager {
  const { host } = opts;
  const unitDir = opts.unitDir ?? '/etc/systemd/system';
  const systemctl = opts.systemctl ?? 'systemctl';
  const systemdRunning = opts.systemdRunning ?? (() => existsSync('/run/systemd/system'));
  const unitPathOf = (name: string): string => path.join(unitDir, unitName(name));
  const readCgroup = opts.readCgroup ?? readProcCgroup;

  const needRoot = (): void => {
    if (!host.isPrivileged()) throw new ServiceError('E_SERVICE_RIGHTS', 'needs root: run it with sudo');
  };
  const needSystemd = (): void => {
    if (!systemdRunning()) {
      throw new ServiceError('E_SERVICE_MANAGER', 'systemd is not running on this machine (no /run/systemd/system), so there is no service manager to ask');
    }
  };
  const ctl = (...args: string[]): Promise<unknown> => runChecked(host.run, systemctl, args);

  const render = (spec: ServiceSpec): ServiceFile[] => {
    checkServiceName(spec.name);
    requireAbsoluteCommand(spec);
    return [{ path: unitPathOf(spec.name), content: renderUnit(spec, resolveUser(host, spec).name) }];
  };

  return {
    kind: 'systemd',
    render,
    async install(spec, { force, noStart }): Promise<InstallOutcome> {
      needRoot();
      needSystemd();
      const [unit] = render(spec);
      const state = compareInstalled(unit!, force, 'the systemd unit');
      if (state !== 'same') writeAtomic(unit!);
      const name = unitName(spec.name);
      await ctl('daemon-reload');
      await ctl('enable', name);
      if (!noStart) await ctl(state === 'different' ? 'restart' : 'start', name);
      return state === 'new' ? 'installed' : state === 'same' ? 'unchanged' : 'replaced';
    },
    async uninstall(ref: ServiceRef): Promise<boolean> {
      needRoot();
      const file = unitPathOf(ref.name);
      if (!existsSync(file)) return false;
      const name = unitName(ref.name);
      if (systemdRunning()) await ctl('disable', '--now', name); // stops it: the cgroup goes with it
      rmSync(file, { force: true });
      if (systemdRunning()) {
        await ctl('daemon-reload');
        await host.run(systemctl, ['reset-failed', name]); // forget a failed state; fine when there is none
      }
      return true;
    },
    async status(ref: ServiceRef): Promise<ServiceStatus> {
      const installed = existsSync(unitPathOf(ref.name));
      if (!systemdRunning()) return { installed, running: undefined, enabled: undefined, detail: 'systemd is not running on this machine' };
      const r = await host.run(systemctl, ['show', unitName(ref.name), '--property=LoadState,ActiveState,SubState,UnitFileState,MainPID']);
      return parseSystemctlShow(r.stdout, installed);
    },
    async start(ref) {
      needRoot();
      needSystemd();
      if (!existsSync(unitPathOf(ref.name))) throw new ServiceError('E_SERVICE_MISSING', `${unitName(ref.name)} is not installed (bbagent service install)`);
      await ctl('start', unitName(ref.name));
    },
    async stop(ref) {
      needRoot();
      needSystemd();
      if (!existsSync(unitPathOf(ref.name))) throw new ServiceError('E_SERVICE_MISSING', `${unitName(ref.name)} is not installed`);
      await ctl('stop', unitName(ref.name));
    },
    // The agent's SIGTERM drain ends in exit 0, which Restart=on-failure does not restart: 'bbagent stop' needs
    // no root and no systemctl. The unit is named so that stop can say how to start it again.
    async stopAgent(_basedir, pid) {
      const unit = unitOfCgroup(readCgroup(pid));
      return unit ? { via: 'exit', service: unit } : undefined;
    },
  };
}

function readProcCgroup(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
}

/** The bbagent unit a process runs in, from its /proc/PID/cgroup ("0::/system.slice/bbagent-w1.service"). */
export function unitOfCgroup(cgroup: string | undefined): string | undefined {
  return /\/(bbagent-[A-Za-z0-9_.-]+\.service)(?:\/|$)/m.exec(cgroup ?? '')?.[1];
}
