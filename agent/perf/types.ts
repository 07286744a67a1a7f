// What a perf run produces, in one place: the options it takes and the result the CLI, the remote command and the
// artifacts (perf-stats.json, perfherder-data.json) are made from.

import type { AdaptivePolicy, StopReason } from './adaptive.js';
import type { MedianInterval } from './bootstrap.js';
import type { OrderStatisticInterval } from './order-ci.js';
import type { MachineFingerprint } from './fingerprint.js';
import type { GateMode, GateReport } from './gate.js';
import type { OutlierReport } from './outliers.js';
import type { GateRecheck } from './recheck.js';
import type { SeriesStats } from './stats.js';

/** Talos's typical count (pageload: 25 cycles), the fixed count when no target CI is given. */
export const DEFAULT_REPEAT = 25;
/** Adaptive bounds when only --target-ci is given: the fewest values with a 95% CI of the median, and the fixed
 * count, so an adaptive run never costs more than a fixed one (scripts/bench/perf-replicates.ts measures both). */
export const DEFAULT_ADAPTIVE_MIN = 6;
export const DEFAULT_ADAPTIVE_MAX = DEFAULT_REPEAT;

export interface PerfRunOptions {
  /** The suite's name (Perfherder's suite name, and the subtest's when the metric is the wall time). */
  name: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Fixed replicate count (ignored when `adaptive` is given). */
  repeat: number;
  /** Runs before the replicates, not measured. */
  warmup: number;
  /** The filter spec (parsed by parseFilterSpec). */
  filter: string;
  adaptive?: AdaptivePolicy;
  quietHost: GateMode;
  /** Sample the host again after every this many replicates (undefined or 0: only before the run). */
  recheckEvery?: number;
  /** Kill a replicate after this long (ms). */
  timeoutMs?: number;
  /** Perfherder framework name. */
  framework: string;
  signal?: AbortSignal;
  /** The replicates' output as it comes. */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** One line per event (gate, warm-up, replicate), for a log or stderr. */
  onProgress?: (line: string) => void;
}

export interface SubtestResult {
  name: string;
  unit: string;
  /** Every measured replicate, in order (warm-up excluded; nothing dropped). */
  replicates: number[];
  /** Indices of the replicates left after the series filters (ignore_first, ignore_max, ignore_min). */
  keptIndices: number[];
  /** The filter's summary (median, mean or Talos's geometric mean) of the kept replicates. */
  value: number;
  /** Statistics of the kept replicates. */
  stats: SeriesStats;
  /** The exact, distribution-free 95% CI of the median of the kept replicates (order statistics). */
  ci: OrderStatisticInterval;
  /** The bootstrap 95% CI of the median of the kept replicates (percentile method; undercovers for small n). */
  bootstrapCi: MedianInterval;
  /** ci.halfWidth as a percentage of the median (what --target-ci is compared with). */
  ciHalfWidthPercent: number;
  /** Flagged on all replicates; reported, never dropped. */
  outliers: OutlierReport;
}

export interface PerfResult {
  format: 'bbagent-perf-stats';
  version: 1;
  suite: string;
  framework: string;
  /** 'wall-time': the command's wall time; 'perfmetric': its PERFMETRIC lines. */
  metricSource: 'wall-time' | 'perfmetric';
  filter: string;
  warmup: number;
  replicatesRun: number;
  stopReason: StopReason;
  adaptive: AdaptivePolicy | null;
  /** The suite's value: the one subtest's, or the geometric mean of several (null if one is <= 0). */
  value: number | null;
  lowerIsBetter: true;
  subtests: SubtestResult[];
  fingerprint: MachineFingerprint;
  /** The gate's last sample; null when the gate was off. */
  gate: GateReport | null;
  /** The samples between replicates (--recheck-every), in order; empty when not asked for. */
  gateRechecks: GateRecheck[];
  startedAt: string;
  durationMs: number;
}
