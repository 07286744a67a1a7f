// Hang forensics on POSIX: what each process of a command is doing (state, CPU time, wait channel, open files,
// command line) and, where a debugger or sampler is installed, its stacks. Every read and every tool runs
// asynchronously with a time limit and an output cap; nothing is installed, a missing tool is skipped.

import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { InspectLimits, ProcessFacts, StackReport } from '../types.js';
import { D_STATE_SKIP, HUNG_BEFORE, parseProcStat, toolEnv, USER_HZ, within } from './processes.js';
import { agentProcReads, describeSkipped, noteSkipped, type ProcReadGate } from './proc-reads.js';
import { resolveExecutable } from './spawn.js';

/** How many processes get a stack trace: the tools stop each one, and a deep tree would take too long. */
export const STACK_MAX_PROCESSES = 8;
/** Frames per thread in a gdb backtrace. */
const GDB_MAX_FRAMES = 48;
/** macOS `sample` duration per process (s): its minimum useful run. */
const SAMPLE_SECONDS = 1;
/** Upper bound on the processes inspected at all (a fork bomb must not make forensics unbounded). */
export const INSPECT_MAX_PROCESSES = 500;

export interface ToolRun {
  /** What the tool printed (stdout and stderr interleaved), cut at the byte cap. */
  output: string;
  /** It was killed for taking too long or printing too much. */
  cut: boolean;
}

/** Runs a tool with a time limit and an output cap; SIGKILLs it past either. Never rejects. */
export function runTool(
  file: string,
  args: readonly string[],
  limits: { timeoutMs: number; maxBytes: number; signal?: AbortSignal; env?: NodeJS.ProcessEnv },
): Promise<ToolRun> {
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: toolEnv(limits.env) });
    } catch (err) {
      resolve({ output: `${file}: ${(err as Error).message}\n`, cut: false });
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let cut = false;
    const stop = (): void => {
      cut = true;
      child.kill('SIGKILL');
    };
    const onData = (d: Buffer): void => {
      if (bytes >= limits.maxBytes) return;
      chunks.push(d.subarray(0, limits.maxBytes - bytes));
      bytes += d.length;
      if (bytes >= limits.maxBytes) stop();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const timer = setTimeout(stop, limits.timeoutMs);
    limits.signal?.addEventListener('abort', stop, { once: true });
    child.on('error', (err) => chunks.push(Buffer.from(`${file}: ${err.message}\n`)));
    child.on('close', () => {
      clearTimeout(timer);
      limits.signal?.removeEventListener('abort', stop);
      resolve({ output: Buffer.concat(chunks).toString('utf8'), cut });
    });
  });
}

/** Processes whose wait channel and open files are read at once (each read takes a libuv pool thread for a moment). */
const INSPECT_CONCURRENCY = 2;
/** A command line longer than this is not read further (bytes): the table shows 400 characters of it. */
const CMDLINE_MAX_BYTES = 64 * 1024;

export interface InspectLinuxOptions {
  procDir?: string;
  /** The gate for command-line reads (default: the agent's one, shared with the process scans). */
  reads?: ProcReadGate;
}

/**
 * Facts of Linux processes from /proc. The stat file is read at once (the kernel never waits on the process for
 * it); the wait channel and fd list a few processes at a time; the command line, which the kernel reads under
 * the process's memory lock, through the agent's gate for such reads, and not at all for a process in state D.
 * What was not read is named through `limits.onIncomplete`, and the table shows `[comm]` instead.
 */
export async function inspectLinux(pids: readonly number[], limits: InspectLimits, opts: InspectLinuxOptions = {}): Promise<ProcessFacts[]> {
  const procDir = opts.procDir ?? '/proc';
  const reads = opts.reads ?? agentProcReads;
  // a third of the time: one stuck read leaves the rest of it for the other processes' facts
  const perRead = Math.max(50, Math.min(1000, limits.timeoutMs / 3));
  const deadline = performance.now() + limits.timeoutMs;
  const skipped = new Map<string, number[]>();
  const over = (): boolean => performance.now() >= deadline || limits.signal?.aborted === true;
  const targets = pids.slice(0, INSPECT_MAX_PROCESSES);
  const out: ProcessFacts[] = new Array<ProcessFacts>(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const pid = targets[i]!;
      let stat: ReturnType<typeof parseProcStat>;
      try {
        stat = parseProcStat(pid, readFileSync(`${procDir}/${pid}/stat`, 'latin1'));
      } catch {
        stat = undefined;
      }
      let cmdline: Buffer | undefined;
      let wchan: string | undefined;
      let fds: string[] | undefined;
      if (over()) noteSkipped(skipped, 'the time limit passed', pid);
      else {
        const cmd = async (): Promise<Buffer | undefined> => {
          if (stat?.state === 'D') {
            noteSkipped(skipped, D_STATE_SKIP, pid);
            return undefined;
          }
          const r = await reads.read(`${pid}:${stat?.start}`, `${procDir}/${pid}/cmdline`, { maxBytes: CMDLINE_MAX_BYTES, timeoutMs: perRead, deadline });
          if (r.ok) return r.data;
          if (r.why === 'timeout') noteSkipped(skipped, `the read took over ${perRead} ms (hung in the kernel)`, pid);
          else if (r.why === 'skipped') noteSkipped(skipped, r.stuck, pid);
          else if (r.why === 'hung') noteSkipped(skipped, HUNG_BEFORE, pid);
          else if (r.why === 'late') noteSkipped(skipped, 'the time limit passed', pid);
          return undefined;
        };
        [cmdline, wchan, fds] = await Promise.all([
          cmd(),
          within(readFile(`${procDir}/${pid}/wchan`, 'latin1'), perRead, undefined),
          within(readdir(`${procDir}/${pid}/fd`), perRead, undefined),
        ]);
      }
      let command = cmdline && cmdline.length ? cmdline.toString('utf8').replace(/\0+$/, '').split('\0').join(' ') : '';
      if (!command) command = stat ? `[${stat.comm}]` : '?';
      out[i] = {
        pid,
        ppid: stat?.ppid,
        state: stat?.state,
        cpuSeconds: stat ? (stat.utime + stat.stime) / USER_HZ : undefined,
        wchan: wchan && wchan !== '0' ? wchan.trim() : undefined,
        openFiles: fds?.length,
        command,
      };
    }
  };
  await Promise.all(Array.from({ length: Math.min(INSPECT_CONCURRENCY, targets.length) }, worker));
  const note = describeSkipped('command line', skipped);
  if (note) limits.onIncomplete?.(note);
  return out;
}

/** "1:02.50" or "01:02:03" (ps's cumulative time) -> seconds. */
export function parsePsTime(text: string): number | undefined {
  const parts = text.split(/[-:]/).map(Number);
  if (parts.length === 0 || parts.some((n) => !Number.isFinite(n))) return undefined;
  const days = text.includes('-') ? (parts.shift() ?? 0) : 0;
  let s = 0;
  for (const p of parts) s = s * 60 + p;
  return days * 86400 + s;
}

/** Parses `ps -o pid=,ppid=,stat=,time=,wchan=,command=`. */
export function parsePsFacts(text: string): ProcessFacts[] {
  const out: ProcessFacts[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({
      pid: Number(m[1]),
      ppid: Number(m[2]),
      state: m[3]![0],
      cpuSeconds: parsePsTime(m[4]!),
      wchan: m[5] === '-' ? undefined : m[5],
      openFiles: undefined,
      command: m[6] ?? '',
    });
  }
  return out;
}

/** `lsof -F f` output: counts the `f` (file descriptor) lines of each `p` (process) section. */
export function parseLsofCounts(text: string): Map<number, number> {
  const counts = new Map<number, number>();
  let pid: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('p')) {
      pid = Number(line.slice(1));
      counts.set(pid, 0);
    } else if (line.startsWith('f') && pid !== undefined && /^f\d+$/.test(line)) counts.set(pid, (counts.get(pid) ?? 0) + 1);
  }
  return counts;
}

/** macOS: ps for the facts, lsof (when installed) for the open file counts. */
export async function inspectPs(pids: readonly number[], limits: InspectLimits): Promise<ProcessFacts[]> {
  const list = pids.slice(0, INSPECT_MAX_PROCESSES).join(',');
  if (!list) return [];
  const env = { LC_ALL: 'C' };
  const half = { timeoutMs: Math.max(100, limits.timeoutMs / 2), maxBytes: limits.maxBytes, signal: limits.signal, env };
  const [ps, lsof] = await Promise.all([
    runTool('ps', ['-ww', '-o', 'pid=,ppid=,stat=,time=,wchan=,command=', '-p', list], half),
    resolveExecutable('lsof', process.env['PATH']) ? runTool('lsof', ['-n', '-P', '-w', '-F', 'f', '-p', list], half) : Promise.resolve(undefined),
  ]);
  const counts = lsof ? parseLsofCounts(lsof.output) : undefined;
  return parsePsFacts(ps.output).map((f) => ({ ...f, openFiles: counts?.get(f.pid) }));
}

/** Pids in a stopped state ('T' or 't'), so a killed debugger's victims can be continued. */
function stoppedPids(pids: readonly number[], procDir = '/proc'): Set<number> {
  const out = new Set<number>();
  for (const pid of pids) {
    try {
      const s = parseProcStat(pid, readFileSync(`${procDir}/${pid}/stat`, 'latin1'));
      if (s && (s.state === 'T' || s.state === 't')) out.add(pid);
    } catch {
      // gone
    }
  }
  return out;
}

/** CAP_SYS_PTRACE (bit 19) in this process's effective capabilities. */
function hasPtraceCapability(procDir: string): boolean {
  try {
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`${procDir}/self/status`, 'latin1'))?.[1];
    return eff !== undefined && (BigInt(`0x${eff}`) & (1n << 19n)) !== 0n;
  } catch {
    return false;
  }
}

/**
 * Why a debugger started by the agent may not attach to a build's processes, or undefined when it may. Yama's
 * ptrace_scope 1 allows only descendants (the debugger is the build's sibling, not its parent), 2 only
 * CAP_SYS_PTRACE, 3 nobody.
 */
export function ptraceDenied(procDir = '/proc'): string | undefined {
  let scope: number;
  try {
    scope = Number(readFileSync(`${procDir}/sys/kernel/yama/ptrace_scope`, 'latin1').trim());
  } catch {
    return undefined; // no Yama: classic rules, the same user may attach
  }
  if (scope === 3) return 'kernel.yama.ptrace_scope is 3 (no attaching at all)';
  if (scope >= 1 && !hasPtraceCapability(procDir)) return `kernel.yama.ptrace_scope is ${scope} and the agent lacks CAP_SYS_PTRACE`;
  return undefined;
}

/**
 * Linux stacks: eu-stack (one run per process) or else gdb (one batch run attaching to each in turn).
 * A debugger killed at the time limit can leave its process stopped: those are sent SIGCONT.
 */
export async function stacksLinux(pids: readonly number[], limits: InspectLimits, procDir = '/proc'): Promise<StackReport> {
  const envPath = process.env['PATH'];
  const targets = pids.slice(0, STACK_MAX_PROCESSES);
  const euStack = resolveExecutable('eu-stack', envPath);
  const gdb = euStack ? undefined : resolveExecutable('gdb', envPath);
  if ((!euStack && !gdb) || targets.length === 0) return { tool: undefined, text: '' };
  const denied = ptraceDenied(procDir);
  if (denied) return { tool: undefined, text: '', note: `${euStack ? 'eu-stack' : 'gdb'} may not attach: ${denied}` };
  const stoppedBefore = stoppedPids(targets);
  // no symbol downloads (debuginfod would reach the network and take minutes)
  const env = { DEBUGINFOD_URLS: '', LC_ALL: 'C' };
  let text = '';
  let tool: string;
  try {
    if (euStack) {
      tool = 'eu-stack';
      const deadline = Date.now() + limits.timeoutMs;
      for (const pid of targets) {
        const left = deadline - Date.now();
        const room = limits.maxBytes - Buffer.byteLength(text);
        if (left <= 0 || room <= 0 || limits.signal?.aborted) break;
        const run = await runTool(euStack, ['-p', String(pid)], { timeoutMs: left, maxBytes: room, signal: limits.signal, env });
        text += `--- pid ${pid}\n${run.output}${run.cut ? '\n[cut: time or size limit]\n' : ''}`;
      }
    } else {
      tool = 'gdb';
      const args = ['-nx', '-batch', '-iex', 'set debuginfod enabled off', '-ex', 'set confirm off', '-ex', 'set pagination off', '-ex', 'set width 0'];
      // `file` between processes: each attach then loads its own executable (not the first one's symbols)
      for (const pid of targets) {
        args.push('-ex', `echo --- pid ${pid}\\n`, '-ex', `attach ${pid}`, '-ex', `thread apply all bt ${GDB_MAX_FRAMES}`, '-ex', 'detach', '-ex', 'file');
      }
      const run = await runTool(gdb!, args, { timeoutMs: limits.timeoutMs, maxBytes: limits.maxBytes, signal: limits.signal, env });
      text = run.output + (run.cut ? '\n[cut: time or size limit]\n' : '');
    }
  } finally {
    for (const pid of stoppedPids(targets)) {
      if (stoppedBefore.has(pid)) continue;
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
  }
  return { tool, text };
}

/** macOS stacks: `sample` for one second per process, to a temporary file. */
export async function stacksDarwin(pids: readonly number[], limits: InspectLimits): Promise<StackReport> {
  const sample = resolveExecutable('sample', process.env['PATH'] ?? '/usr/bin:/bin');
  if (!sample) return { tool: undefined, text: '' };
  const deadline = Date.now() + limits.timeoutMs;
  let text = '';
  for (const pid of pids.slice(0, STACK_MAX_PROCESSES)) {
    const left = deadline - Date.now();
    const room = limits.maxBytes - Buffer.byteLength(text);
    if (left < SAMPLE_SECONDS * 1000 || room <= 0 || limits.signal?.aborted) break;
    const file = path.join(os.tmpdir(), `bbagent-sample-${process.pid}-${pid}.txt`);
    const run = await runTool(sample, [String(pid), String(SAMPLE_SECONDS), '-mayDie', '-file', file], {
      timeoutMs: left,
      maxBytes: room,
      signal: limits.signal,
    });
    let body = run.output;
    try {
      body = readFileSync(file, 'utf8').slice(0, room);
    } catch {
      // sample failed: its own output says why
    } finally {
      rmSync(file, { force: true });
    }
    text += `--- pid ${pid}\n${body}\n`;
  }
  return { tool: 'sample', text };
}
