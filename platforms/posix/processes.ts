// Finds a command's processes on POSIX: its process tree (group and descendants) and every process whose
// environment carries the command's tracking marker, from /proc on Linux and from ps on macOS.
// A scan never blocks the event loop for long: /proc/PID/stat is read in short synchronous slices, and
// environments (which the kernel reads under the target's memory lock, so a hung process can stall the read)
// asynchronously, a few at a time, each with a time limit.

import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import type { ProcessQuery, ProcessRef, TrackingMarker } from '../types.js';

/** The longest synchronous run of /proc reads before the scan yields to the event loop (ms). */
export const SCAN_SLICE_MS = 4;
/** How long one environment read may take before the process is skipped (ms): its memory lock is held. */
export const ENVIRON_READ_TIMEOUT_MS = 1000;
/** Environment reads in flight at once: each holds a libuv pool thread (4 by default), and a stuck one keeps it. */
export const ENVIRON_READ_CONCURRENCY = 2;
/** A whole scan reads environments for at most this long unless the query says otherwise (ms). */
export const DEFAULT_SCAN_TIMEOUT_MS = 5000;
/** An environment larger than this is not read further (bytes); Linux caps argv+environ at a few MiB anyway. */
const ENVIRON_MAX_BYTES = 8 * 1024 * 1024;
/** ps output limit (bytes) on macOS, where environments come with the listing. */
const PS_MAX_BUFFER = 64 * 1024 * 1024;
/** USER_HZ: the unit of /proc/PID/stat's times; 100 on every Linux architecture Node runs on. */
export const USER_HZ = 100;

export interface ScannedProcess {
  pid: number;
  ppid: number;
  pgid: number;
  /** ps-style state letter. */
  state: string;
  /** Start time in clock ticks since boot (Linux); undefined where unknown. */
  start: number | undefined;
  marked: boolean;
}

/** True when a NUL-separated environment block has `name` set to `value`, or to a ':' list containing it. */
export function environHasMarker(env: Buffer, marker: TrackingMarker): boolean {
  const key = Buffer.from(`${marker.name}=`, 'latin1');
  let at = env.indexOf(key);
  while (at >= 0) {
    if (at === 0 || env[at - 1] === 0) {
      const end = env.indexOf(0, at);
      const value = env.toString('latin1', at + key.length, end < 0 ? env.length : end);
      return value.split(':').includes(marker.value);
    }
    at = env.indexOf(key, at + 1);
  }
  return false;
}

/** Parses /proc/PID/stat (the command name is in parentheses and may hold spaces or parentheses). */
export function parseProcStat(pid: number, text: string): (ScannedProcess & { utime: number; stime: number; comm: string }) | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const rest = text.slice(close + 2).split(' ');
  const num = (i: number): number => Number(rest[i]);
  if (rest.length < 20) return undefined;
  return {
    pid,
    ppid: num(1),
    pgid: num(2),
    state: rest[0] ?? '?',
    start: num(19),
    utime: num(11),
    stime: num(12),
    marked: false,
    comm: text.slice(text.indexOf('(') + 1, close),
  };
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs `fn` on each item with at most `limit` in flight, stopping early once `stop()` says so. */
async function pool<T>(items: readonly T[], limit: number, stop: () => boolean, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length && !stop()) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
}

/** Resolves with `p`'s value, or with `fallback` after `ms` (the operation itself goes on in the background). */
export function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(fallback);
      },
    );
  });
}

async function readWhole(file: string, maxBytes: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead <= 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total >= maxBytes) break;
    }
    return Buffer.concat(chunks);
  } finally {
    await fh.close();
  }
}

/** Scans /proc. One per platform instance: it remembers processes whose environment could not be read in time. */
export class LinuxProcScanner {
  /** pid:start of processes whose environment read timed out: not read again (they would take a pool thread each time). */
  private readonly stuck = new Set<string>();

  constructor(private readonly procDir = '/proc') {}

  /** True while `ref` is alive and is still the process that was found (its pid not reused since). */
  stillSame(ref: ProcessRef): boolean {
    try {
      const p = parseProcStat(ref.pid, readFileSync(`${this.procDir}/${ref.pid}/stat`, 'latin1'));
      return p !== undefined && p.state !== 'Z' && (ref.start === undefined || p.start === ref.start);
    } catch {
      return false;
    }
  }

  /** Boot time in ms since the epoch, to turn start ticks into wall-clock times. */
  private bootMs(): number | undefined {
    try {
      const btime = Number(/^btime (\d+)$/m.exec(readFileSync(`${this.procDir}/stat`, 'latin1'))?.[1]);
      return Number.isFinite(btime) && btime > 0 ? btime * 1000 : undefined;
    } catch {
      return undefined;
    }
  }

  async scan(opts: { marker?: TrackingMarker; startedAfterMs?: number; timeoutMs?: number }): Promise<ScannedProcess[]> {
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS);
    let names: string[];
    try {
      names = await readdir(this.procDir);
    } catch {
      return [];
    }
    const out: ScannedProcess[] = [];
    const buf = Buffer.allocUnsafe(2048);
    let sliceStart = performance.now();
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(name);
      let fd: number | undefined;
      try {
        fd = openSync(`${this.procDir}/${name}/stat`, 'r');
        const n = readSync(fd, buf, 0, buf.length, 0);
        const p = parseProcStat(pid, buf.toString('latin1', 0, n));
        if (p && p.state !== 'Z' && p.state !== 'X') out.push({ pid, ppid: p.ppid, pgid: p.pgid, state: p.state, start: p.start, marked: false });
      } catch {
        // the process ended while we looked
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
      if (performance.now() - sliceStart >= SCAN_SLICE_MS) {
        await yieldToLoop();
        sliceStart = performance.now();
      }
    }
    const marker = opts.marker;
    if (!marker) return out;
    const boot = opts.startedAfterMs === undefined ? undefined : this.bootMs();
    const self = process.pid;
    const candidates = out.filter((p) => {
      if (p.pid === self || this.stuck.has(`${p.pid}:${p.start}`)) return false;
      if (boot === undefined || p.start === undefined || opts.startedAfterMs === undefined) return true;
      return boot + (p.start * 1000) / USER_HZ >= opts.startedAfterMs;
    });
    await pool(
      candidates,
      ENVIRON_READ_CONCURRENCY,
      () => Date.now() > deadline,
      async (p) => {
        const env = await within<Buffer | null | undefined>(
          readWhole(`${this.procDir}/${p.pid}/environ`, ENVIRON_MAX_BYTES),
          ENVIRON_READ_TIMEOUT_MS,
          undefined,
        ).catch(() => null);
        if (env === undefined) this.stuck.add(`${p.pid}:${p.start}`);
        else if (env) p.marked = environHasMarker(env, marker);
      },
    );
    return out;
  }
}

/** Parses `ps -A -o pid=,ppid=,pgid=,stat=,command=` (with -E: the environment follows the command). */
export function parsePsListing(text: string, marker: TrackingMarker | undefined): ScannedProcess[] {
  const out: ScannedProcess[] = [];
  const re = marker ? new RegExp(`(?:^|\\s)${marker.name.replace(/[^A-Za-z0-9_]/g, '\\$&')}=(\\S*)`, 'g') : undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const state = m[4]!;
    if (state.startsWith('Z')) continue;
    let marked = false;
    if (re && marker) {
      for (const hit of (m[5] ?? '').matchAll(re)) if ((hit[1] ?? '').split(':').includes(marker.value)) marked = true;
    }
    out.push({ pid: Number(m[1]), ppid: Number(m[2]), pgid: Number(m[3]), state: state[0] ?? '?', start: undefined, marked });
  }
  return out;
}

/** The agent's environment without its own BBAGENT_* settings (the worker password among them), plus `extra`. */
export function toolEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BBAGENT_')) env[k] = v;
  return { ...env, ...extra };
}

/** macOS: one ps run (with -E when a marker is wanted: ps shows environments of the user's own processes). */
export function scanPs(opts: { marker?: TrackingMarker; timeoutMs?: number }): Promise<ScannedProcess[]> {
  const args = ['-A', '-ww', ...(opts.marker ? ['-E'] : []), '-o', 'pid=,ppid=,pgid=,stat=,command='];
  return new Promise((resolve) => {
    execFile(
      'ps',
      args,
      { encoding: 'latin1', maxBuffer: PS_MAX_BUFFER, timeout: opts.timeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS, env: toolEnv({ LC_ALL: 'C' }) },
      (_err, stdout) => resolve(parsePsListing(String(stdout ?? ''), opts.marker).filter((p) => p.pid !== process.pid)),
    );
  });
}

/**
 * What a query selects from a scan: the members of `group`, `root` and the descendants of everything selected, marked
 * processes, and known processes that are still the same (same start time).
 */
export function selectProcesses(procs: readonly ScannedProcess[], q: ProcessQuery): ProcessRef[] {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const found = new Set<number>();
  const queue: number[] = [];
  const add = (pid: number): void => {
    if (pid === process.pid || found.has(pid) || !byPid.has(pid)) return;
    found.add(pid);
    queue.push(pid);
  };
  if (q.group !== undefined) for (const p of procs) if (p.pgid === q.group) add(p.pid);
  if (q.root !== undefined) add(q.root);
  if (q.marker) for (const p of procs) if (p.marked) add(p.pid);
  for (const k of q.known ?? []) {
    const p = byPid.get(k.pid);
    if (p && (k.start === undefined || p.start === undefined || p.start === k.start)) add(k.pid);
  }
  // descendants of everything found (a daemon's children, a re-parented grandchild's own children)
  if (q.root !== undefined && !byPid.has(q.root)) queue.push(q.root);
  while (queue.length) for (const c of children.get(queue.pop()!) ?? []) add(c);
  return [...found].map((pid) => ({ pid, start: byPid.get(pid)?.start }));
}
