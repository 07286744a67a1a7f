// One replicate: start the measured command, wait for it, and time it from spawn to exit (monotonic clock). Its
// output is captured (bounded) for PERFMETRIC lines and handed to an optional sink; a non-zero exit or a signal
// fails the run, naming the replicate and the status. The process runs in its own group, so an interrupt or a
// timeout kills its whole tree.

import { AgentError, errorMessage } from '../errors.js';
import { startDelay } from '../timers.js';
import type { ExitStatus, ProcessControl } from '../../platforms/types.js';

/** Output kept per replicate for PERFMETRIC lines and error reports; beyond it the oldest text is dropped. */
export const MAX_CAPTURE_CHARS = 1024 * 1024;

export interface ReplicateRequest {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Kill the replicate after this many ms (undefined: no limit). */
  timeoutMs?: number;
  /** Receives the replicate's output as it comes (e.g. the step log); optional. */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  signal?: AbortSignal;
  /** Names the replicate in errors ('replicate 3', 'warm-up 1'). */
  label: string;
}

export interface ReplicateResult {
  wallMs: number;
  stdout: string;
  stderr: string;
}

function capped(prev: string, more: string): string {
  const s = prev + more;
  return s.length > MAX_CAPTURE_CHARS ? s.slice(s.length - MAX_CAPTURE_CHARS) : s;
}

export async function runReplicate(pc: ProcessControl, req: ReplicateRequest): Promise<ReplicateResult> {
  if (req.signal?.aborted) throw new AgentError('E_PERF_COMMAND', `${req.label}: interrupted before it started`);
  const start = process.hrtime.bigint();
  let handle;
  try {
    handle = pc.spawn({ argv: req.argv, cwd: req.cwd, env: req.env, pty: false, stdinPipe: false });
  } catch (err) {
    throw new AgentError('E_PERF_COMMAND', `${req.label}: cannot start '${req.argv[0] ?? ''}': ${errorMessage(err)}`);
  }
  let stdout = '';
  let stderr = '';
  handle.onStdout((d) => {
    const t = d.toString('utf8');
    stdout = capped(stdout, t);
    req.onOutput?.('stdout', t);
  });
  handle.onStderr((d) => {
    const t = d.toString('utf8');
    stderr = capped(stderr, t);
    req.onOutput?.('stderr', t);
  });
  let why: string | undefined;
  const kill = (reason: string): void => {
    why ??= reason;
    void pc.killProcesses('KILL', { group: handle.pid, root: handle.pid }).catch(() => undefined);
  };
  const onAbort = (): void => kill('interrupted');
  req.signal?.addEventListener('abort', onAbort);
  // startDelay, not setTimeout: a --timeout past 2^31 ms would make a plain timer fire at once
  const timer = req.timeoutMs === undefined ? undefined : startDelay(() => kill(`timed out after ${req.timeoutMs} ms`), req.timeoutMs);
  const status = await new Promise<ExitStatus>((resolve) => handle.onExit(resolve));
  const end = process.hrtime.bigint();
  timer?.cancel();
  req.signal?.removeEventListener('abort', onAbort);
  if (why !== undefined) throw new AgentError('E_PERF_COMMAND', `${req.label}: ${why}`);
  if (status.code !== 0) {
    const how = status.code === null ? `was killed by signal ${status.signal ?? '?'}` : `exited with rc ${status.code}`;
    const tail = (stderr || stdout).trimEnd().split('\n').slice(-3).join(' | ');
    throw new AgentError('E_PERF_COMMAND', `${req.label}: '${req.argv.join(' ').slice(0, 200)}' ${how}${tail ? `: ${tail.slice(0, 300)}` : ''}`);
  }
  return { wallMs: Number(end - start) / 1e6, stdout, stderr };
}
