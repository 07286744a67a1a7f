// Telling a regression from an intermittent: an unexpected failure is rerun K times in a fresh process (Mozilla's
// confirm-failures: 9 reruns for a test, 4 for a group) and the outcomes classify it. A failure that fails every
// rerun is a `regression`; one that passes at least once is `intermittent`, with its observed failure rate and the
// rate's Wilson score interval; one the report marks known-intermittent is `known-intermittent`.
import { AgentError } from '../errors.js';

export type RunOutcome = 'pass' | 'fail';

/** Reruns of one failing test, as Mozilla's confirm-failures runs them (--repeat=9: 10 runs in all). */
export const TEST_RERUNS = 9;
/** Reruns of one failing group (a manifest or directory), as confirm-failures runs them (--repeat=4). */
export const GROUP_RERUNS = 4;

export interface RerunPolicy {
  /** At most this many reruns after the original failure. */
  reruns: number;
  /**
   * Stop at the first pass: the classification is the same (a pass already makes it intermittent) at a fraction of
   * the runs, but the failure rate is then biased upwards (a run that stops at a pass is a negative-binomial
   * sample) and its interval only indicative. Default false: all K reruns, an unbiased rate.
   */
  stopAtFirstPass?: boolean;
}

/** Whether the runner should rerun the test once more, given the reruns' outcomes so far. */
export function wantsAnotherRerun(policy: RerunPolicy, outcomes: readonly RunOutcome[]): boolean {
  if (outcomes.length >= policy.reruns) return false;
  return !(policy.stopAtFirstPass === true && outcomes.includes('pass'));
}

export interface Interval {
  low: number;
  high: number;
}

/**
 * The Wilson score interval of a failure rate (failures of n runs) at z standard normal quantiles (1.96: 95%):
 * unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n failures, which are the usual
 * counts here. (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n).
 */
export function wilsonInterval(failures: number, n: number, z = 1.96): Interval {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(failures) || failures < 0 || failures > n) {
    throw new AgentError('E_SUITE_RERUNS', `a Wilson interval needs 0 <= failures <= n with n >= 1 integers, got ${failures} of ${n}`);
  }
  const p = failures / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denominator;
  // at 0 (or n) failures the bound is exactly 0 (or 1): say so rather than a rounding error away from it
  return { low: failures === 0 ? 0 : Math.max(0, centre - half), high: failures === n ? 1 : Math.min(1, centre + half) };
}

export interface FailureToClassify {
  /** The outcomes of the reruns, in order (the original failure is not one of them). */
  reruns: readonly RunOutcome[];
  /** The report lists the failing status as known-intermittent (mozlog's known_intermittent, a quarantine list). */
  knownIntermittent?: boolean;
}

export interface Classification {
  kind: 'regression' | 'intermittent' | 'known-intermittent';
  /** How many reruns ran, and how many of them failed. */
  reruns: number;
  failures: number;
  /**
   * failures / reruns, and its Wilson 95% interval (absent without reruns). The original failure is left out: it
   * is why the test was rerun, so counting it would bias the rate upwards.
   */
  rate?: number;
  interval?: Interval;
}

/**
 * Classifies an unexpected failure from its reruns. A known-intermittent failure needs no reruns; if it has some
 * and fails every one, it is a regression all the same (the known-intermittent label must not hide a test that
 * now always fails). Anything else needs at least one rerun.
 */
export function classifyFailure(failure: FailureToClassify): Classification {
  const reruns = failure.reruns.length;
  const failures = failure.reruns.filter((o) => o === 'fail').length;
  if (reruns === 0) {
    if (failure.knownIntermittent === true) return { kind: 'known-intermittent', reruns, failures };
    throw new AgentError('E_SUITE_RERUNS', 'an unexpected failure cannot be classified without at least one rerun');
  }
  const stats = { reruns, failures, rate: failures / reruns, interval: wilsonInterval(failures, reruns) };
  if (failures === reruns) return { kind: 'regression', ...stats };
  return { kind: failure.knownIntermittent === true ? 'known-intermittent' : 'intermittent', ...stats };
}
