// Checks shared by the fs fault tests: how long each step of a build took (as the master recorded it), the
// event-loop stalls the agent logged, and whether a concurrent builder's output kept reaching the master.

import type { BuildbotMaster } from '../../../scripts/harness/master.js';
import { pollUntil } from '../../../scripts/harness/process.js';

export interface StepTiming {
  name: string;
  results: number | null;
  /** complete_at - started_at, in the master's whole seconds. */
  seconds: number;
}

/** The steps of a finished build with their durations (worker_preparation left out). */
export async function stepTimings(master: BuildbotMaster, buildid: number): Promise<StepTiming[]> {
  const { steps } = await master.get<{ steps: { name: string; number: number; results: number | null; started_at: number; complete_at: number | null }[] }>(
    `/builds/${buildid}/steps`,
  );
  return steps
    .filter((s) => s.number > 0)
    .map((s) => ({ name: s.name, results: s.results, seconds: (s.complete_at ?? Number.POSITIVE_INFINITY) - s.started_at }));
}

/** Every "event loop blocked for N ms" the agent logged, as N. */
export function loopStalls(agentOutput: string): number[] {
  return [...agentOutput.matchAll(/event loop blocked for (\d+) ms/g)].map((m) => Number(m[1]));
}

/**
 * Samples the line count of one running step's stdio log on the master every `intervalMs`, so a test can
 * show that builder's output kept arriving while something else ran. Stop it with stop().
 */
export class LogFlow {
  /** [ms since start, lines] per sample. */
  readonly samples: [number, number][] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = performance.now();
  private busy = false;

  private constructor(
    private readonly master: BuildbotMaster,
    private readonly logid: number,
  ) {}

  static async start(master: BuildbotMaster, buildid: number, step: string, intervalMs = 200): Promise<LogFlow> {
    const { stepid } = await master.waitForStepStarted(buildid, step);
    const logid = await waitForLogId(master, stepid);
    const flow = new LogFlow(master, logid);
    await flow.sample();
    flow.timer = setInterval(() => void flow.sample(), intervalMs);
    return flow;
  }

  now(): number {
    return performance.now() - this.t0;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Lines seen by time `t` (ms since start). */
  linesAt(t: number): number {
    let n = 0;
    for (const [at, lines] of this.samples) if (at <= t) n = lines;
    return n;
  }

  /** The longest time between two samples that saw new lines, within [from, to] (ms since start). */
  longestSilence(from: number, to: number): number {
    let lastGrowth = from;
    let longest = 0;
    let prev = this.linesAt(from);
    for (const [at, lines] of this.samples) {
      if (at <= from || at > to) continue;
      if (lines > prev) {
        longest = Math.max(longest, at - lastGrowth);
        lastGrowth = at;
        prev = lines;
      }
    }
    return Math.max(longest, to - lastGrowth);
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { logs } = await this.master.get<{ logs: { num_lines: number }[] }>(`/logs/${this.logid}`);
      this.samples.push([this.now(), logs[0]?.num_lines ?? 0]);
    } catch {
      // the master is busy or restarting: no sample this time
    } finally {
      this.busy = false;
    }
  }
}

async function waitForLogId(master: BuildbotMaster, stepid: number): Promise<number> {
  return pollUntil(
    async () => {
      const { logs } = await master.get<{ logs: { logid: number; name: string }[] }>(`/steps/${stepid}/logs`);
      return logs.find((l) => l.name === 'stdio')?.logid;
    },
    { timeoutMs: 30_000, what: `the stdio log of step ${stepid}` },
  );
}
