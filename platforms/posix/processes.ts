// Finds a command's processes on POSIX: its process tree (group and descendants) and every process whose
// environment carries the command's tracking marker, from /proc on Linux and from ps on macOS.
// A scan never blocks the event loop for long: /proc/PID/stat is read in short synchronous slices, and
// environments (which the kernel reads under the target's memory lock, so a hung process can stall the read)
// asynchronously, through the agent's one gate for such reads (./proc-reads.ts), each with a time limit.

import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { PidStamp, ProcessQuery, ProcessRef, TrackingMarker } from '../types.js';
import { agentProcReads, describeSkipped, noteSkipped, type ProcReadGate } from './proc-reads.js';

/** The longest synchronous run of /proc reads before the scan yields to the event loop (ms). */
export const SCAN_SLICE_MS = 4;
/** How long one environment read may take before the process is skipped (ms): its memory lock is held. */
export const ENVIRON_READ_TIMEOUT_MS = 1000;
/** A whole scan reads environments for at most this long unless the query says otherwise (ms). */
export const DEFAULT_SCAN_TIMEOUT_MS = 5000;
/** An environment larger than this is not read further (bytes); Linux caps argv+environ at a few MiB anyway. */
const ENVIRON_MAX_BYTES = 8 * 1024 * 1024;
/** ps output limit (bytes) on macOS, where environments come with the listing. */
const PS_MAX_BUFFER = 64 * 1024 * 1024;
/** USER_HZ: the unit of /proc/PID/stat's times; 100 on every Linux architecture Node runs on. */
export const USER_HZ = 100;
/** Prefix of the agent's own variables (its config: the worker password among them), kept from the tools it runs. */
const AGENT_ENV_PREFIX = 'BBAGENT_';
/**
 * Why a process in state D is not read: it waits in the kernel, often with its memory lock held (a page fault
 * on a dead NFS server), and reading its environment or command line would wait with it. Only the main
 * thread's state is in /proc/PID/stat; another thread that hangs is caught by the gate's time limit instead.
 */
export const D_STATE_SKIP = 'in state D (uninterruptible wait): a read could hang with it';
/** Linux's lowest pid after the counter wraps (RESERVED_PIDS): the counter then restarts here. */
const RESERVED_PIDS = 300;

/**
 * The pids a command's processes can have, from the pid counter now and when its first process started:
 * pids are handed out in increasing order, so while the counter has not wrapped they lie between the first
 * process's pid and the last pid allocated (/proc/loadavg). The counter wrapped when it is now below the
 * first pid, or may have come round again when the pids allocated since (forks) plus those it could skip as
 * in use (every task alive at the start: a later one was allocated since) reach the pid range. Undefined:
 * every pid must be read.
 */
export function pidWindow(stamp: PidStamp, now: { forks: number; lastPid: number }, pidMax: number): [number, number] | undefined {
  if (now.lastPid < stamp.firstPid) return undefined;
  if (now.forks - stamp.forks + stamp.tasks >= pidMax - RESERVED_PIDS) return undefined;
  return [stamp.firstPid, now.lastPid];
}

/** Why a process is not read again. */
export const HUNG_BEFORE = 'a read of it got stuck before: not read again';

export interface ScannedProcess {
  pid: number;
  ppid: number;
  pgid: number;
  /** ps-style state letter. */
  state: string;
  /** Start time in clock ticks since boot (Linux); undefined where unknown. */
  start: number | undefined;
  /** The same in ms since the epoch; undefined where unknown. */
  startMs?: number | undefined;
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

/** Scans /proc. */
export class LinuxProcScanner {
  private readonly procDir: string;
  private readonly reads: ProcReadGate;
  private readonly readTimeoutMs: number;

  /** `reads` is the agent's one gate for environment reads unless a test gives its own. */
  constructor(opts: { procDir?: string; reads?: ProcReadGate; readTimeoutMs?: number } = {}) {
    this.procDir = opts.procDir ?? '/proc';
    this.reads = opts.reads ?? agentProcReads;
    this.readTimeoutMs = opts.readTimeoutMs ?? ENVIRON_READ_TIMEOUT_MS;
  }

  /** True while `ref` is alive and is still the process that was found (its pid not reused since). */
  stillSame(ref: ProcessRef): boolean {
    try {
      const p = parseProcStat(ref.pid, readFileSync(`${this.procDir}/${ref.pid}/stat`, 'latin1'));
      return p !== undefined && p.state !== 'Z' && (ref.start === undefined || p.start === ref.start);
    } catch {
      return false;
    }
  }

  /** Boot time in ms since the epoch (to turn start ticks into wall-clock times), and processes created since boot. */
  private hostStat(): { bootMs: number | undefined; forks: number | undefined } {
    try {
      const text = readFileSync(`${this.procDir}/stat`, 'latin1');
      const btime = Number(/^btime (\d+)$/m.exec(text)?.[1]);
      const forks = Number(/^processes (\d+)$/m.exec(text)?.[1]);
      return { bootMs: Number.isFinite(btime) && btime > 0 ? btime * 1000 : undefined, forks: Number.isFinite(forks) ? forks : undefined };
    } catch {
      return { bootMs: undefined, forks: undefined };
    }
  }

  /** /proc/loadavg's running/total tasks and last pid allocated (in the reader's pid namespace). */
  private loadavg(): { tasks: number; lastPid: number } | undefined {
    try {
      const m = /\s\d+\/(\d+)\s+(\d+)\s*$/.exec(readFileSync(`${this.procDir}/loadavg`, 'latin1'));
      return m ? { tasks: Number(m[1]), lastPid: Number(m[2]) } : undefined;
    } catch {
      return undefined;
    }
  }

  private pidMax: number | undefined;

  /** The pid counter's state, to be taken just before a spawn (see pidWindow). */
  stamp(): Omit<PidStamp, 'firstPid'> | undefined {
    const forks = this.hostStat().forks;
    const load = this.loadavg();
    return forks === undefined || load === undefined ? undefined : { forks, tasks: load.tasks };
  }

  /** The pid range to read for a query with `stamp`, given the forks count now; undefined: all. */
  private window(stamp: PidStamp | undefined, load: { lastPid: number } | undefined, forks: number | undefined): [number, number] | undefined {
    if (stamp === undefined || forks === undefined || load === undefined) return undefined;
    try {
      this.pidMax ??= Number(readFileSync(`${this.procDir}/sys/kernel/pid_max`, 'latin1'));
    } catch {
      return undefined;
    }
    return Number.isFinite(this.pidMax) ? pidWindow(stamp, { forks, lastPid: load.lastPid }, this.pidMax) : undefined;
  }

  async scan(opts: Pick<ProcessQuery, 'marker' | 'startedAfterMs' | 'timeoutMs' | 'onIncomplete' | 'pidStamp'>): Promise<ScannedProcess[]> {
    const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS);
    let names: string[];
    try {
      names = await readdir(this.procDir);
    } catch {
      return [];
    }
    // the last pid after the listing (every pid listed is at most it), then the forks count (at least as high)
    const load = opts.pidStamp ? this.loadavg() : undefined;
    const host = this.hostStat();
    const boot = host.bootMs;
    // only pids allocated since the command started, while the counter cannot have wrapped meanwhile
    const [low, high] = this.window(opts.pidStamp, load, host.forks) ?? [0, Infinity];
    const out: ScannedProcess[] = [];
    const buf = Buffer.allocUnsafe(2048);
    let sliceStart = performance.now();
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(name);
      if (pid < low || pid > high) continue;
      let fd: number | undefined;
      try {
        fd = openSync(`${this.procDir}/${name}/stat`, 'r');
        const n = readSync(fd, buf, 0, buf.length, 0);
        const p = parseProcStat(pid, buf.toString('latin1', 0, n));
        if (p && p.state !== 'Z' && p.state !== 'X') {
          const startMs = boot === undefined || !Number.isFinite(p.start) ? undefined : boot + ((p.start ?? 0) * 1000) / USER_HZ;
          out.push({ pid, ppid: p.ppid, pgid: p.pgid, state: p.state, start: p.start, startMs, marked: false });
        }
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
    const after = opts.startedAfterMs;
    const candidates = out.filter((p) => p.pid !== process.pid && (after === undefined || p.startMs === undefined || p.startMs >= after));
    const skipped = new Map<string, number[]>();
    for (const p of candidates) {
      if (p.state === 'D') {
        noteSkipped(skipped, D_STATE_SKIP, p.pid);
        continue;
      }
      const r = await this.reads.read(`${p.pid}:${p.start}`, `${this.procDir}/${p.pid}/environ`, {
        maxBytes: ENVIRON_MAX_BYTES,
        timeoutMs: this.readTimeoutMs,
        deadline,
      });
      if (r.ok) p.marked = environHasMarker(r.data, marker);
      else if (r.why === 'timeout') noteSkipped(skipped, `the read took over ${this.readTimeoutMs} ms (hung in the kernel)`, p.pid);
      else if (r.why === 'skipped') noteSkipped(skipped, `${r.stuck}; no other environment is read meanwhile`, p.pid);
      else if (r.why === 'hung') noteSkipped(skipped, HUNG_BEFORE, p.pid);
      else if (r.why === 'late') noteSkipped(skipped, "the scan's time limit passed", p.pid);
    }
    const note = describeSkipped('environment', skipped);
    if (note) opts.onIncomplete?.(`${note}; such processes are found only by process group and parent`);
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

/**
 * The agent's environment without its own BBAGENT_* settings (the worker password among them), plus `extra`.
 * The prefix is matched ignoring case, as the agent's build environment does (agent.ts buildEnviron): on
 * Windows Bbagent_Password is the same variable, and one rule everywhere is simpler to trust.
 */
export function toolEnv(extra: NodeJS.ProcessEnv = {}, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!k.toUpperCase().startsWith(AGENT_ENV_PREFIX)) env[k] = v;
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
 * Whether the scan shows `q.group` as the command's own process group with a live member. While the group's
 * first process (`q.root`) is unreaped its id cannot be reused, so any member counts. Once it was reaped, an
 * empty group's id may be reused: only a member that started after the command (`startedAfterMs`) counts, and
 * none does when the id now belongs to another group's leader (a process whose pid and pgid are the id: our
 * leader is gone, so it is a newer process, e.g. the next step, which set up a group of its own).
 */
export function groupIsLive(procs: readonly ScannedProcess[], q: ProcessQuery): boolean {
  const g = q.group;
  if (g === undefined) return false;
  if (q.root !== undefined) return procs.some((p) => p.pgid === g);
  if (procs.some((p) => p.pid === g && p.pgid === g)) return false;
  const after = q.startedAfterMs;
  return procs.some((p) => p.pgid === g && (after === undefined || p.startMs === undefined || p.startMs >= after));
}

/**
 * What a query selects from a scan: the members of `group` (while groupIsLive), `root` and the descendants of
 * everything selected, marked processes, and known processes that are still the same (same start time).
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
  if (q.group !== undefined && groupIsLive(procs, q)) for (const p of procs) if (p.pgid === q.group) add(p.pid);
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
