// A Debian bookworm system container with systemd as its PID 1 (systemd-nspawn --boot on a debootstrap'd tree),
// sharing the host's network so it reaches a master on 127.0.0.1, driven from the host with nsenter. It is what
// the live service test (scripts/harness/service-live-checks.ts) installs bbagent into.
//
// Findings (systemd 252, a Firecracker VM whose PID 1 is not systemd, cgroup v1+v2 hybrid):
// - Without systemd on the host, nspawn needs --register=no (no machined) and --keep-unit (no scope from PID 1);
//   else "Failed to open system bus". With --keep-unit it creates `supervisor` and `payload` cgroups under its
//   own cgroup, so it is started in a cgroup of its own that is removed afterwards.
// - `debootstrap --variant=minbase` with systemd, dbus and procps: ~35 s, 245 MB; it is cached under
//   build/cache/service-live and copied for every run. Boot to `running`: ~0.4 s.
// - `systemctl reboot` inside makes nspawn exit with 133 (systemd-nspawn@.service restarts it on that code),
//   `poweroff` with 0. SIGTERM to nspawn halts the container in order. SIGKILL to nspawn does NOT end the
//   container: its systemd lives on, orphaned. A power cut is SIGKILL to the container's PID 1 (the kernel then
//   kills everything in its PID namespace), after which nspawn exits.
// - Right after the fork, nspawn's first child is not yet the container's systemd; the leader is the child whose
//   NSpid ends in 1 and whose command is systemd.
// - --link-journal=no: the default `auto` would link the container's journal into the host's /var/log/journal.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findExecutable, pollUntil, runCommand, tailFile } from './process.js';

/** Debian packages the host needs: systemd-nspawn and debootstrap. */
export const HOST_PACKAGES = ['systemd-container', 'debootstrap'];
/** What the container's tree holds besides minbase: an init, a bus (logind wants one) and ps/pgrep. */
const ROOTFS_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'procps'];
const SUITE = 'bookworm';
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** Bump when the tree's recipe changes: a cached tree of another version is rebuilt. */
const ROOTFS_VERSION = '1';
/** Units that only slow a test container down or wait on a console nobody watches. */
const MASKED_UNITS = [
  'console-getty.service',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'e2scrub_all.timer',
  'dpkg-db-backup.timer',
  'systemd-tmpfiles-clean.timer',
];
/** nspawn's exit code when the container rebooted. */
export const EXIT_REBOOT = 133;
const PATH_IN_CONTAINER = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Run as this user (runuser -u). */
  user?: string;
  /** Default 60 s; the command is SIGKILLed after it. */
  timeoutMs?: number;
}

export interface Bind {
  host: string;
  container: string;
  readOnly?: boolean;
}

export interface ContainerOptions {
  /** The container's root directory (a copy of the cached tree, see prepareRootfs). */
  dir: string;
  /** Machine name, also the container's hostname. */
  machine: string;
  /** nspawn's output (the container's console) is appended here. */
  logFile: string;
  binds?: Bind[];
  /** Default 60 s. */
  bootTimeoutMs?: number;
}

/** Why this host cannot run the container at all (checked before anything is installed), or undefined. */
export function containerUnsupported(): string | undefined {
  if (process.platform !== 'linux') return `the host is ${process.platform}, not Linux`;
  if (process.getuid?.() !== 0) return 'not root (systemd-nspawn needs root; run it with sudo)';
  if (!existsSync('/sys/fs/cgroup')) return 'no /sys/fs/cgroup';
  if (!findExecutable('systemd-nspawn') && !findExecutable('apt-get')) return 'no systemd-nspawn and no apt-get to install it';
  return undefined;
}

/** Installs systemd-nspawn and debootstrap with apt-get when they are missing. */
export async function ensureHostTools(say: (line: string) => void): Promise<void> {
  const missing = [
    ['systemd-nspawn', 'systemd-container'],
    ['debootstrap', 'debootstrap'],
  ].filter(([cmd]) => !findExecutable(cmd!) && !existsSync(`/usr/sbin/${cmd!}`));
  if (missing.length === 0) return;
  const packages = missing.map(([, pkg]) => pkg!);
  say(`installing ${packages.join(', ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runCommand('apt-get', ['update', '-qq'], { env });
  await runCommand('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env });
}

function debootstrapPath(): string {
  return findExecutable('debootstrap') ?? '/usr/sbin/debootstrap';
}

/**
 * Makes `target` a fresh copy of the cached bookworm tree (debootstrap'd into `cacheDir` on first use), with its
 * own machine id and hostname `machine`.
 */
export async function prepareRootfs(cacheDir: string, target: string, machine: string, say: (line: string) => void): Promise<void> {
  const base = path.join(cacheDir, `${SUITE}-minbase`);
  const marker = path.join(base, '.bbagent-rootfs');
  const current = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : undefined;
  if (current !== ROOTFS_VERSION) {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${base}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const mirror = process.env['BBAGENT_DEBIAN_MIRROR'] ?? DEFAULT_MIRROR;
    say(`debootstrap ${SUITE} from ${mirror} into ${base} (once; ~35 s)`);
    const started = Date.now();
    try {
      await runCommand(debootstrapPath(), ['--variant=minbase', `--include=${ROOTFS_PACKAGES.join(',')}`, SUITE, tmp, mirror]);
      // Weight nobody reads: the copy for every run is faster without it.
      for (const sub of ['var/cache/apt/archives', 'var/lib/apt/lists', 'usr/share/doc', 'usr/share/man', 'usr/share/locale']) {
        const dir = path.join(tmp, sub);
        if (!existsSync(dir)) continue;
        for (const entry of readdirSync(dir)) if (entry !== 'partial' && entry !== 'lock') rmSync(path.join(dir, entry), { recursive: true, force: true });
      }
      for (const unit of MASKED_UNITS) {
        const link = path.join(tmp, 'etc/systemd/system', unit);
        rmSync(link, { force: true });
        symlinkSync('/dev/null', link);
      }
      writeFileSync(path.join(tmp, '.bbagent-rootfs'), `${ROOTFS_VERSION}\n`);
      rmSync(base, { recursive: true, force: true });
      renameSync(tmp, base);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    say(`debootstrap done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  rmSync(target, { recursive: true, force: true });
  mkdirSync(path.dirname(target), { recursive: true });
  await runCommand('cp', ['-a', '--reflink=auto', base, target]);
  writeFileSync(path.join(target, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  writeFileSync(path.join(target, 'etc/hostname'), `${machine}\n`);
}

/** The cgroup hierarchies a non-systemd host has mounted, where nspawn gets a cgroup of its own. */
function cgroupRoots(): string[] {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['/sys/fs/cgroup']; // pure v2
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((d) => existsSync(path.join(d, 'cgroup.procs')));
}

/** rmdir a cgroup tree, deepest first; a cgroup that still has processes stays (EBUSY). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroup(path.join(dir, entry.name));
  try {
    rmdirSync(dir);
  } catch {
    // still busy: left for the kernel to report
  }
}

/** A booted container; boot() again after it rebooted or powered off reuses the same tree. */
export class SystemdContainer {
  private proc: ChildProcess | undefined;
  private exit: Promise<number | string> | undefined;
  private leaderPid: number | undefined;
  private readonly ownCgroups: string[] = [];
  private readonly killOnExit = (): void => this.kill();

  constructor(readonly opts: ContainerOptions) {}

  /** Host pid of the container's systemd (PID 1 inside). */
  get leader(): number {
    if (this.leaderPid === undefined) throw new Error(`container ${this.opts.machine} is not running`);
    return this.leaderPid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts nspawn and waits until the container's systemd reports `running` (or `degraded`); returns that state. */
  async boot(): Promise<string> {
    if (this.running) throw new Error(`container ${this.opts.machine} is already running`);
    const hostHasSystemd = existsSync('/run/systemd/system');
    const args = [
      `--directory=${this.opts.dir}`,
      `--machine=${this.opts.machine}`,
      '--boot',
      '--register=no',
      '--link-journal=no',
      '--console=read-only',
      ...(hostHasSystemd ? [] : ['--keep-unit']),
      ...(this.opts.binds ?? []).map((b) => `--bind${b.readOnly ? '-ro' : ''}=${b.host}:${b.container}`),
    ];
    let command = 'systemd-nspawn';
    let argv = args;
    if (!hostHasSystemd) {
      // A cgroup of its own in every hierarchy, entered before exec, so nspawn's supervisor/payload cgroups land in it.
      const name = `bbagent-${this.opts.machine}`;
      if (this.ownCgroups.length === 0) {
        for (const root of cgroupRoots()) {
          const dir = path.join(root, name);
          try {
            mkdirSync(dir, { recursive: true });
            this.ownCgroups.push(dir);
          } catch {
            // not writable: nspawn uses the cgroup it inherits
          }
        }
      }
      const enter = this.ownCgroups.map((d) => `echo $$ > '${d}/cgroup.procs'`).join(' && ');
      command = 'sh';
      argv = ['-c', `${enter ? `${enter} && ` : ''}exec systemd-nspawn "$@"`, 'nspawn', ...args];
    }
    const log = openSync(this.opts.logFile, 'a');
    try {
      this.proc = spawn(command, argv, { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    const proc = this.proc;
    this.exit = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    proc.once('error', () => undefined);
    process.on('exit', this.killOnExit);
    this.leaderPid = undefined;
    const timeoutMs = this.opts.bootTimeoutMs ?? 60_000;
    const failFast = (): string | undefined =>
      this.running ? undefined : `systemd-nspawn exited (${String(proc.exitCode ?? proc.signalCode)})\n${tailFile(this.opts.logFile, 30)}`;
    this.leaderPid = await pollUntil(() => (proc.pid === undefined ? undefined : findLeader(proc.pid)), {
      timeoutMs,
      what: `the systemd of container ${this.opts.machine} to start`,
      failFast,
      details: () => tailFile(this.opts.logFile, 30),
    });
    return pollUntil(
      async () => {
        const r = await this.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: 10_000 }).catch(() => undefined);
        const state = r?.stdout.trim();
        return state === 'running' || state === 'degraded' ? state : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `container ${this.opts.machine} to finish booting`, failFast, details: () => tailFile(this.opts.logFile, 30) },
    );
  }

  /** Runs a program inside the container (all its namespaces, its root), with a clean environment. */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const inner = [...(opts.user ? ['runuser', '-u', opts.user, '--'] : []), ...argv];
    const args = ['--target', String(this.leader), '--all', '--', 'env', '-i', `PATH=${PATH_IN_CONTAINER}`, 'LANG=C.UTF-8', 'HOME=/root', ...inner];
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const timeoutMs = opts.timeoutMs ?? 60_000;
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (signal === 'SIGKILL' && code === null) reject(new Error(`${argv.join(' ')}: timed out after ${timeoutMs} ms in the container`));
        else resolve({ code: code ?? 128, stdout, stderr });
      });
    });
  }

  /** exec() of `sh -c script`. */
  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(['sh', '-c', script], opts);
  }

  /** Like exec() but throws with the output when the exit code is not 0; returns stdout. */
  async run(argv: string[], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code} in the container: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
    return r.stdout;
  }

  /** Waits until nspawn has exited; returns its exit code (EXIT_REBOOT after a reboot, 0 after a poweroff). */
  async waitForExit(timeoutMs: number): Promise<number | string> {
    if (!this.exit) throw new Error('the container was never booted');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`container ${this.opts.machine} did not stop within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exit, timeout]);
    } finally {
      clearTimeout(timer);
      this.afterExit();
    }
  }

  /** `systemctl reboot` inside; waits for nspawn to report the reboot, then boots the same tree again. */
  async reboot(timeoutMs = 60_000): Promise<string> {
    await this.exec(['systemctl', 'reboot'], { timeoutMs: 10_000 });
    const code = await this.waitForExit(timeoutMs);
    if (code !== EXIT_REBOOT) throw new Error(`after systemctl reboot, systemd-nspawn exited ${String(code)}, not ${EXIT_REBOOT}`);
    return this.boot();
  }

  /** Power cut: SIGKILL to the container's PID 1, which takes every process of the container with it. */
  async pullThePlug(): Promise<void> {
    process.kill(this.leader, 'SIGKILL');
    await this.waitForExit(10_000);
  }

  /** SIGKILL to the container's PID 1 and to nspawn, whatever state they are in. */
  private kill(): void {
    for (const pid of [this.leaderPid, this.proc?.pid]) {
      try {
        if (pid !== undefined && this.running) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }

  /** Halts the container (SIGTERM to nspawn, SIGKILL after `graceMs`) and removes its cgroups. Safe to call twice. */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.running) {
      this.proc!.kill('SIGTERM');
      try {
        await this.waitForExit(graceMs);
      } catch {
        this.kill();
        await this.waitForExit(10_000);
      }
    }
    for (const dir of this.ownCgroups.splice(0)) removeCgroup(dir);
  }

  private afterExit(): void {
    if (!this.running) {
      process.off('exit', this.killOnExit);
      this.leaderPid = undefined;
    }
  }
}

/** The child of nspawn that is PID 1 of the new PID namespace and already runs systemd. */
function findLeader(nspawnPid: number): number | undefined {
  let children: string[];
  try {
    children = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
  for (const child of children) {
    try {
      const status = readFileSync(`/proc/${child}/status`, 'utf8');
      const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
      const comm = readFileSync(`/proc/${child}/comm`, 'utf8').trim();
      if (nspid && nspid.length > 1 && nspid.at(-1) === '1' && comm === 'systemd') return Number(child);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}
