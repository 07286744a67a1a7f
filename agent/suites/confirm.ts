// Confirm-failures on the worker: each unexpected failure rerun under a RerunPolicy through an injected runner (a
// fresh process per rerun in real use; a recorded fake in tests), then classified (classify.ts).
import { classifyFailure, type Classification, type RerunPolicy, type RunOutcome, wantsAnotherRerun } from './classify.js';

/** Failures confirmed per job at most, as Mozilla's confirm-failures (more usually means a broken build, not flakes). */
export const MAX_CONFIRMED = 10;

export interface ConfirmOptions {
  policy: RerunPolicy;
  /** Runs one test once more, in a fresh process; `attempt` counts from 1. A throw means the agent cannot run it. */
  runOne: (test: string, attempt: number) => Promise<RunOutcome>;
  /** The report marks this test's failure as known-intermittent: it is not rerun. */
  knownIntermittent?: (test: string) => boolean;
  /** Default MAX_CONFIRMED. */
  maxTests?: number;
}

export interface Confirmation {
  /** Each confirmed failure's classification, in the order given. */
  classified: Map<string, Classification>;
  /** Failures past maxTests: not rerun, so not classified (a caller counts them as failures). */
  unconfirmed: string[];
}

/** Reruns and classifies the failures one after the other (reruns of one test never overlap: no shared state). */
export async function confirmFailures(failures: readonly string[], options: ConfirmOptions): Promise<Confirmation> {
  const max = options.maxTests ?? MAX_CONFIRMED;
  const classified = new Map<string, Classification>();
  const unconfirmed: string[] = [];
  let rerun = 0;
  for (const test of failures) {
    if (options.knownIntermittent?.(test) === true) {
      classified.set(test, classifyFailure({ reruns: [], knownIntermittent: true }));
      continue;
    }
    if (rerun >= max) {
      unconfirmed.push(test);
      continue;
    }
    rerun++;
    const outcomes: RunOutcome[] = [];
    while (wantsAnotherRerun(options.policy, outcomes)) outcomes.push(await options.runOne(test, outcomes.length + 1));
    classified.set(test, classifyFailure({ reruns: outcomes }));
  }
  return { classified, unconfirmed };
}
