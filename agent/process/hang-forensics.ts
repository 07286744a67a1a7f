// Hang forensics: before a step is killed for a timeout (or on interrupt, when the step asks), record what its
// processes were doing: the process tree with state, CPU time, wait channel, open files and command line, plus
// stacks where a debugger is installed. Bounded in time and size; the kill waits for it, nothing else does.

import { CommandArgsError } from '../errors.js';
import type { ProcessControl, ProcessFacts, ProcessQuery, StackReport } from '../../platforms/types.js';
import type { Logger } from '../log.js';
import { valueWithin } from '../timers.js';
import type { ProcessSink } from './sink.js';

/** The step variable that says when to collect forensics: `timeout` (default), `always` (also on interrupt), `off`. */
export const HANG_ENV = 'BBAGENT_HANG_FORENSICS';
/** A step that declares a log of this name in `logfiles` gets the full report there (a stock master drops undeclared logs). */
export const HANG_LOG = 'hang';
/** Every header line of a report starts with this, so a reader (or a test) can pick the report out of stdio. */
export const HANG_PREFIX = 'hang: ';
/**
 * The hard total (ms): the kill comes at most this much later because of forensics, from the process scan to the
 * last stack, whatever the platform's calls do (each wait is cut at what is left of it). "A few seconds", and
 * short enough that with a few seconds of sigtermTime every process is still gone well within the fault suite's
 * sigtermTime + 5 s. docs/processes.md and docs/compatibility.md give this figure.
 */
export const FORENSICS_TIMEOUT_MS = 3000;
/** Of which finding the processes may take (ms; at most half of the total). */
const FIND_TIMEOUT_MS = 1000;
/** And reading their facts (ms). */
const INSPECT_TIMEOUT_MS = 1000;
/**
 * A platform call gets its own limit this much below the time the agent waits for it (ms), so that it can stop
 * its tools and answer with what it has before the wait is cut.
 */
const ANSWER_MARGIN_MS = 200;
/** Stacks are not started with less time left than this (ms): a debugger needs longer to attach. */
const STACKS_MIN_MS = 250;
/** The report (table and stacks) is cut at this size (bytes). */
export const FORENSICS_MAX_BYTES = 256 * 1024;
/** Longest note on what was not examined (characters). */
const NOTE_MAX_CHARS = 1000;
/** Longest command line shown in the table (characters). */
const COMMAND_MAX_CHARS = 400;

export type ForensicsWhen = 'off' | 'timeout' | 'always';
export type KillReason = 'timeout' | 'maxTime' | 'interrupt';

/** When the step wants forensics, from its `env` argument; throws naming the variable on a bad value. */
export function forensicsWhen(stepEnv: unknown): ForensicsWhen {
  if (typeof stepEnv !== 'object' || stepEnv === null) return 'timeout';
  const v = (stepEnv as Record<string, unknown>)[HANG_ENV];
  if (v === undefined || v === null) return 'timeout';
  const t = typeof v === 'string' ? v.trim().toLowerCase() : '';
  if (t === 'off' || t === '0' || t === 'no' || t === 'false') return 'off';
  if (t === 'timeout' || t === '' || t === '1' || t === 'yes' || t === 'true') return 'timeout';
  if (t === 'always' || t === 'interrupt') return 'always';
  throw new CommandArgsError(`${HANG_ENV}: expected timeout, always or off, got ${JSON.stringify(v)}`);
}

export function wantsForensics(when: ForensicsWhen, reason: KillReason): boolean {
  return when === 'always' || (when === 'timeout' && reason !== 'interrupt');
}

export interface HangReport {
  /** One line saying what this is. */
  title: string;
  /** The process table (one line per process, tree order, children indented under their parent). */
  table: string;
  /** Stack traces, '' when no tool ran. */
  stacks: string;
  /** The tool that produced them, undefined when none is installed. */
  tool: string | undefined;
  /** Why there are no stacks although a tool is installed (e.g. the kernel forbids attaching). */
  stackNote: string | undefined;
  /** What could not be examined and why (e.g. command lines of processes hung in the kernel), one line each. */
  notes: string[];
  processes: number;
}

const cell = (v: string | number | undefined, width: number, left = false): string => {
  const s = v === undefined ? '-' : String(v);
  return left ? s.padEnd(width) : s.padStart(width);
};

/** The table: parents before their children, children's commands indented (as `ps f` shows a tree). */
export function formatProcessTable(facts: readonly ProcessFacts[]): string {
  const byPid = new Map(facts.map((f) => [f.pid, f]));
  const kids = new Map<number, ProcessFacts[]>();
  const roots: ProcessFacts[] = [];
  for (const f of [...facts].sort((a, b) => a.pid - b.pid)) {
    if (f.ppid !== undefined && byPid.has(f.ppid) && f.ppid !== f.pid) {
      const list = kids.get(f.ppid);
      if (list) list.push(f);
      else kids.set(f.ppid, [f]);
    } else roots.push(f);
  }
  let out = `${cell('PID', 8)} ${cell('PPID', 8)} S ${cell('CPU(s)', 8)} ${cell('FDS', 5)} ${cell('WCHAN', 20, true)} COMMAND\n`;
  const seen = new Set<number>();
  const walk = (f: ProcessFacts, depth: number): void => {
    if (seen.has(f.pid)) return;
    seen.add(f.pid);
    let cmd = f.command.replace(/[\r\n]/g, ' ');
    if (cmd.length > COMMAND_MAX_CHARS) cmd = `${cmd.slice(0, COMMAND_MAX_CHARS)}...`;
    const cpu = f.cpuSeconds === undefined ? undefined : f.cpuSeconds.toFixed(2);
    out += `${cell(f.pid, 8)} ${cell(f.ppid, 8)} ${cell(f.state, 1, true)} ${cell(cpu, 8)} ${cell(f.openFiles, 5)} ${cell(f.wchan?.slice(0, 20), 20, true)} ${'  '.repeat(depth)}${cmd}\n`;
    for (const k of kids.get(f.pid) ?? []) walk(k, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  return out;
}

/** Cuts text at `max` bytes (on a line boundary when possible), saying so. */
export function capText(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let cut = Buffer.from(text).subarray(0, max).toString('utf8');
  const nl = cut.lastIndexOf('\n');
  if (nl > max / 2) cut = cut.slice(0, nl + 1);
  return `${cut}[... cut at ${max} bytes]\n`;
}

/** Prefixes every line (the text ends with a newline). */
export function prefixLines(text: string, prefix = HANG_PREFIX): string {
  if (!text) return '';
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  return `${body
    .split('\n')
    .map((l) => prefix + l)
    .join('\n')}\n`;
}

/** What a kill writes of a report: the header block (every line prefixed) and, when the step declared the log HANG_LOG, that log's text. */
export function reportTexts(r: HangReport, declared: boolean): { header: string; log: string | undefined } {
  const stacksNote = r.tool ? `stacks (${r.tool})` : `no stacks: ${r.stackNote ?? 'neither eu-stack nor gdb (Linux) or sample (macOS) is installed'}`;
  const notes = r.notes.map((n) => `not examined: ${n}\n`).join('');
  let header = `${r.title}\n${r.table}${notes}`;
  if (declared) header += `${r.tool ? `${stacksNote} in log '${HANG_LOG}'` : stacksNote}\n`;
  else header += r.tool ? `${stacksNote}:\n${r.stacks}` : `${stacksNote}\n`;
  const log = declared ? `${r.title}\n${r.table}${notes}${r.tool ? `\n${stacksNote}:\n${r.stacks}` : `${stacksNote}\n`}` : undefined;
  return { header: prefixLines(header), log };
}

/**
 * Collects the report for the processes `query` selects. Never rejects and never takes longer than `timeoutMs`
 * (FORENSICS_TIMEOUT_MS) in all; `signal` (an interrupt that cannot wait) ends it early with what it has.
 */
export async function collectHangReport(
  platform: ProcessControl,
  query: ProcessQuery,
  why: string,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<HangReport> {
  const { signal } = opts;
  const total = opts.timeoutMs ?? FORENSICS_TIMEOUT_MS;
  const started = performance.now();
  const left = (): number => Math.max(0, total - (performance.now() - started));
  const notes: string[] = [];
  const onIncomplete = (line: string): void => void notes.push(line);
  // every wait is cut at what is left of the total: the sum can never pass it
  const step = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> => valueWithin(p, Math.min(ms, left()), fallback, signal);
  const findMs = Math.min(FIND_TIMEOUT_MS, total / 2);
  const found = await step(platform.findProcesses({ ...query, timeoutMs: Math.max(0, findMs - ANSWER_MARGIN_MS), onIncomplete }), findMs, []);
  const pids = found.map((p) => p.pid);
  const inspectMs = Math.min(INSPECT_TIMEOUT_MS, left());
  const facts =
    pids.length && inspectMs > 0
      ? await step(
          platform.inspectProcesses(pids, { timeoutMs: Math.max(0, inspectMs - ANSWER_MARGIN_MS), maxBytes: FORENSICS_MAX_BYTES, signal, onIncomplete }),
          inspectMs,
          [],
        )
      : [];
  const table = capText(facts.length ? formatProcessTable(facts) : '(no process of the step was found)\n', FORENSICS_MAX_BYTES / 4);
  let stacks: StackReport = { tool: undefined, text: '' };
  if (facts.length && !signal?.aborted && left() >= STACKS_MIN_MS) {
    // leaves first: the process that hangs is usually the deepest one, not the shell above it
    const order = [...facts].sort((a, b) => Number(facts.some((f) => f.ppid === a.pid)) - Number(facts.some((f) => f.ppid === b.pid)) || b.pid - a.pid);
    const budget = left();
    stacks = await step(
      platform.collectStacks(
        order.map((f) => f.pid),
        { timeoutMs: budget - ANSWER_MARGIN_MS, maxBytes: FORENSICS_MAX_BYTES - Buffer.byteLength(table), signal },
      ),
      budget,
      stacks,
    );
  }
  const secs = ((performance.now() - started) / 1000).toFixed(2);
  return {
    title: `process tree ${why} (${facts.length} process${facts.length === 1 ? '' : 'es'}, collected in ${secs} s)`,
    table,
    stacks: capText(stacks.text, FORENSICS_MAX_BYTES - Buffer.byteLength(table)),
    tool: stacks.tool,
    stackNote: stacks.note,
    notes: notes.map((n) => (n.length > NOTE_MAX_CHARS ? `${n.slice(0, NOTE_MAX_CHARS)}...` : n)),
    processes: facts.length,
  };
}

export interface HangReportWrite {
  reason: KillReason;
  /** The step declared the log HANG_LOG: the full report goes there, the header gets the table. */
  declared: boolean;
  sink: Pick<ProcessSink, 'text' | 'log'>;
  logger: Logger;
  signal: AbortSignal;
}

/** Collects the report before a kill for `w.reason` and writes it where the step reads it; the agent log says where. */
export async function writeHangReport(platform: ProcessControl, query: ProcessQuery, w: HangReportWrite): Promise<void> {
  const why = w.reason === 'interrupt' ? 'when interrupted' : `before the ${w.reason} kill`;
  const r = await collectHangReport(platform, query, why, { signal: w.signal });
  const { header, log } = reportTexts(r, w.declared);
  w.sink.text('header', header);
  if (log !== undefined) w.sink.log(HANG_LOG, log);
  w.logger.info(`hang forensics of ${r.processes} process(es) written ${w.declared ? `to log '${HANG_LOG}'` : 'to the stdio header'}`);
}
