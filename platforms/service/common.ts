// What the three service managers share: the injected command runner and host facts (so tests drive them
// without root or a running systemd/launchd), atomic file writes, and the "same settings?" comparison.

import { execFile } from 'node:child_process';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makedirs } from '../common/makedirs.js';
import { ServiceError, type ServiceFile, type ServiceSpec } from './types.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to completion (never throws for a non-zero exit; throws ServiceError when it cannot start).
 * `input` is written to its stdin: the way secrets reach a program without showing in a process listing.
 */
export type CommandRunner = (cmd: string, args: string[], opts?: { input?: string }) => Promise<CommandResult>;

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The machine as a service manager sees it. Every member can be replaced in tests. */
export interface ServiceHost {
  run: CommandRunner;
  /** Root on POSIX, an elevated administrator on Windows. */
  isPrivileged(): boolean;
  /** uid of this process (POSIX). */
  uid(): number;
  lookupUser(nameOrUid: string | number): UserInfo | undefined;
  /** Owner uid of a path (POSIX). */
  ownerOf(p: string): number | undefined;
}

export const defaultRunner: CommandRunner = (cmd, args, opts) =>
  new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8', maxBuffer: 16 << 20, windowsHide: true }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && typeof e.code === 'string') {
        reject(new ServiceError('E_SERVICE_MANAGER', `cannot run ${cmd}: ${e.message}`));
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
    });
    // A program that exits without reading its stdin makes the write fail with EPIPE: its exit code tells.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts?.input ?? '');
  });

/** Runs and throws E_SERVICE_COMMAND with the program's own message when it fails. */
export async function runChecked(run: CommandRunner, cmd: string, args: string[]): Promise<CommandResult> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(0, 3).join(' / ');
    throw new ServiceError('E_SERVICE_COMMAND', `${cmd} ${args.join(' ')} failed (exit ${r.code})${why ? `: ${why}` : ''}`);
  }
  return r;
}

/**
 * How long a service stop lets the agent drain by default: most builds end within half an hour, and a reboot
 * waits no longer than that for a build that does not (install --stop-timeout changes it).
 */
export const DEFAULT_STOP_TIMEOUT_S = 1800;
/** The longest --stop-timeout: a day. launchd reads 0 as "never", which can stall a shutdown for good. */
export const MAX_STOP_TIMEOUT_S = 86_400;

/** The spec's stop timeout, checked: whole seconds in 1..MAX_STOP_TIMEOUT_S. */
export function stopTimeoutOf(spec: ServiceSpec): number {
  const t = spec.stopTimeoutS ?? DEFAULT_STOP_TIMEOUT_S;
  if (!Number.isInteger(t) || t < 1 || t > MAX_STOP_TIMEOUT_S) {
    throw new ServiceError('E_SERVICE_SPEC', `the stop timeout must be 1 to ${MAX_STOP_TIMEOUT_S} whole seconds, got ${t}`);
  }
  return t;
}

/** [A-Za-z0-9_.-] only, as unit names, launchd labels and task names all accept. */
export function checkServiceName(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name.startsWith('.') || name.startsWith('-')) {
    throw new ServiceError('E_SERVICE_SPEC', `service name '${name}' must be 1-64 characters of A-Z a-z 0-9 _ . - (see --name)`);
  }
}

export function readIfExists(p: string): Buffer | undefined {
  try {
    return readFileSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes through a temporary file in the same directory and a rename: a reader never sees half a file. */
export function writeAtomic(file: ServiceFile, mode = 0o644): void {
  makedirs(path.dirname(file.path), { existOk: true });
  const tmp = `${file.path}.bbagent-${process.pid}.tmp`;
  try {
    writeFileSync(tmp, file.content, { mode });
    renameSync(tmp, file.path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The first few lines that differ between what is installed and what would be, for the refusal message. */
export function describeDifference(installed: string, wanted: string, max = 3): string {
  const a = installed.split(/\r?\n/);
  const b = wanted.split(/\r?\n/);
  const out: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length) && out.length < max; i++) {
    if (a[i] !== b[i]) out.push(`installed '${(a[i] ?? '').trim()}' vs new '${(b[i] ?? '').trim()}'`);
  }
  return out.join('; ');
}

/** Shared install flow: compare with what is there, refuse or write. */
export function compareInstalled(file: ServiceFile, force: boolean, what: string): 'new' | 'same' | 'different' {
  const existing = readIfExists(file.path);
  if (existing === undefined) return 'new';
  const wanted = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
  if (existing.equals(wanted)) return 'same';
  if (!force) {
    const asText = (b: Buffer): string => (b[0] === 0xff && b[1] === 0xfe ? b.subarray(2).toString('utf16le') : b.toString('utf8'));
    throw new ServiceError(
      'E_SERVICE_EXISTS',
      `${what} ${file.path} already exists with different settings (${describeDifference(asText(existing), asText(wanted))}); ` +
        `run 'bbagent service uninstall' first, or install --force to replace it`,
    );
  }
  return 'different';
}

export function requireAbsoluteCommand(spec: ServiceSpec, isAbsolute: (p: string) => boolean = path.isAbsolute): string {
  const program = spec.command[0];
  if (program === undefined || !isAbsolute(program)) {
    throw new ServiceError('E_SERVICE_SPEC', `the service command must start with an absolute program path, got '${program ?? ''}'`);
  }
  return program;
}
