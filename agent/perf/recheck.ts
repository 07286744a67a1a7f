// Re-checking the quiet-host gate between replicates (`--recheck-every N`): the gate before the run only says the
// host was quiet then; a backup, a build or a browser starting mid-run makes the later replicates slower, and the
// run should say so. After every N replicates one shorter window is sampled: in `refuse` mode a noisy window fails
// the run, naming the replicate; in `wait` mode the run waits for quiet and goes on, and the replicates since the
// last quiet window are listed as suspect (kept, like outliers: reported, never dropped).

import { AgentError } from '../errors.js';
import { quietHostGate, type GateDeps, type GateMode, type GateReport } from './gate.js';

/** A recheck's window: half the gate's, since it runs many times per run. */
export const RECHECK_WINDOW_MS = 1000;

export interface GateRecheck {
  /** The replicates run when the host was sampled (1-based count). */
  afterReplicate: number;
  /** Whether the first window was quiet. */
  quiet: boolean;
  /** Windows sampled (more than one when `wait` waited). */
  samples: number;
  /** The first window's background CPU (% of the machine) and problems. */
  backgroundPercent: number;
  problems: string[];
  /** 0-based indices of the replicates measured since the last quiet window, when this one was noisy. */
  suspect: number[];
}

export interface RecheckOptions {
  mode: Exclude<GateMode, 'off'>;
  /** Replicates run so far, and at the last quiet window. */
  afterReplicate: number;
  sinceReplicate: number;
  windowMs?: number;
  signal?: AbortSignal;
}

export async function recheckGate(deps: GateDeps, o: RecheckOptions): Promise<GateRecheck> {
  let first: GateReport | undefined;
  let last: GateReport | undefined;
  try {
    last = await quietHostGate(deps, {
      mode: o.mode,
      windowMs: o.windowMs ?? RECHECK_WINDOW_MS,
      signal: o.signal,
      onNoisy: (r) => (first ??= r),
    });
  } catch (err) {
    if (!(err instanceof AgentError) || err.code !== 'E_PERF_NOISY_HOST') throw err;
    const report = (err as { report?: GateReport }).report;
    const range = o.sinceReplicate + 1 < o.afterReplicate ? `s ${o.sinceReplicate + 1}..${o.afterReplicate}` : ` ${o.afterReplicate}`;
    throw Object.assign(new AgentError('E_PERF_NOISY_HOST', `after replicate ${o.afterReplicate} (replicate${range} may be affected), ${err.message}`), {
      report,
    });
  }
  const judged = first ?? last!;
  const suspect = first ? Array.from({ length: o.afterReplicate - o.sinceReplicate }, (_, i) => o.sinceReplicate + i) : [];
  return {
    afterReplicate: o.afterReplicate,
    quiet: first === undefined,
    samples: last?.samples ?? 1,
    backgroundPercent: judged.backgroundPercent,
    problems: judged.problems,
    suspect,
  };
}
