// The vocabulary of a suite run (run.ts): what it is asked, what it is given (a process runner, a parser, a report
// finder, all injected so the orchestration is tested without processes), and the result it hands back, which the
// CLI prints and the `suite` remote command sends to the master as JSON.
import type { Interval } from './classify.js';

/** What a run reads of one parsed test (the parsers' TestResult, model.ts, has these and more). */
export interface SuiteTest {
  /** The key naming the test across runs: {test} of the rerun template, the key of its recorded duration. */
  id: string;
  name: string;
  group: string;
  status: 'pass' | 'fail' | 'skip' | 'error';
  /** Seconds; NaN when the report gives none (JSON: null). */
  duration_s: number;
  message: string;
  /** The test's source file as the report names it (JUnit `file`), for mapping it to a unit (units.ts). */
  source?: string;
  /** The report itself says this failure is a known intermittent (mozlog's known_intermittent). */
  known_intermittent?: boolean;
}

/** Parses the reports the suite wrote (files in the order found) into tests; throws an AgentError naming file:line. */
export type ParseReports = (files: readonly string[], format: string) => Promise<readonly SuiteTest[]>;

export interface ReportFile {
  path: string;
  mtimeMs: number;
}

/** Why a process runs: the suite itself, or one rerun of one test. */
export type RunPurpose = { kind: 'suite' } | { kind: 'rerun'; test: string; attempt: number };

export interface SuiteProcessRunner {
  /**
   * Runs one process to its end (output streamed wherever the runner sends it) and resolves its exit code; a
   * string runs through the shell, a list is an argv. Rejects only when the agent cannot run or kill it.
   */
  run(command: string | readonly string[], purpose: RunPurpose, env?: Record<string, string>): Promise<number>;
}

export interface SuiteRunOptions {
  command: string | readonly string[];
  /** Where the reports are, a glob relative to `workdir` (Python's glob, `**` across directories). */
  results: string;
  workdir: string;
  /** A parser's format name, or 'auto'. */
  format: string;
  /** Reruns of each unexpected failure (0: none; failures then stay failures). */
  repeatFailures: number;
  /** The rerun template's words (run-template.ts); required when repeatFailures > 0. */
  rerun?: readonly string[];
  /** Stop rerunning a test at its first pass (fewer runs; the rate is then only indicative). */
  stopAtFirstPass?: boolean;
  /** At most this many failures are rerun (default MAX_CONFIRMED); the rest stay failures. */
  maxConfirmed?: number;
  /** A durations file (durations.ts) to record this run's times into; absent: none recorded. Never what the chunk
   *  is cut on (chunkDurations is), so that chunks run one after the other cannot overlap. */
  durationsFile?: string;
  /** Which chunk of the units to run (default: all of them, 1 of 1). */
  chunk?: ChunkSpec;
  /** The units to split (test files, manifests): listed, and/or the files a glob relative to workdir matches. The
   *  command's `{tests}` word becomes this run's units (units.ts). Neither: an unchunked run. */
  tests?: readonly string[];
  testsGlob?: string;
  /** Seconds per unit to balance the chunk on, the same for every chunk of the list (the master's, or a pinned
   *  file's); absent or naming no unit: cut by count. */
  chunkDurations?: ReadonlyMap<string, number>;
}

export interface ChunkSpec {
  total: number;
  /** 1-based. */
  this: number;
  by: 'test' | 'group';
}

/** What a chunked run ran and measured (result.chunk). */
export interface SuiteChunk {
  total: number;
  this: number;
  by: 'test' | 'group';
  /** How many units the list had. */
  units: number;
  /** This chunk's units, sorted by code units. */
  selected: string[];
  /** 'count': no duration for any unit, contiguous slices; 'durations': balanced on chunkDurations. */
  balanced_on: 'count' | 'durations';
  /** snapshotId of the units' durations the split was cut on (equal on two chunks: cut from the same). */
  snapshot: string | null;
  /** This chunk's and the mean chunk's expected seconds (null when cut by count). */
  expected_s: number | null;
  mean_s: number | null;
  /** Units of the list with no duration (each counted as the mean). */
  unknown_units: number;
  /** This run's seconds per selected unit, the sum of its tests' (units no test mapped to are absent). */
  unit_durations: Record<string, number>;
  /** Timed tests that mapped to no selected unit. */
  unmapped_tests: number;
}

export interface SuiteRunDeps {
  runner: SuiteProcessRunner;
  parse: ParseReports;
  /** The files the glob matches now, with their modification times. */
  findReports: (pattern: string, workdir: string) => Promise<ReportFile[]>;
  /** A line for the step's header stream (what the run does: reports found, reruns, classifications). */
  note: (line: string) => void;
  /** Aborted when the run is interrupted: no more reruns start. */
  signal?: AbortSignal;
  /** Wall clock in ms (default Date.now): reports older than the run are stale. */
  nowMs?: () => number;
  /** Sees each file a tests glob matches before it is used (a confined worker refuses one outside BASEDIR). */
  confine?: (path: string) => void;
}

export type ClassificationKind = 'regression' | 'intermittent' | 'known-intermittent';

export interface TestClassification {
  /** The test's id ({test} of the rerun template, the key of its recorded duration). */
  test: string;
  name: string;
  group: string;
  kind: ClassificationKind;
  reruns: number;
  failures: number;
  rate?: number;
  interval?: Interval;
}

export interface SuiteCounts {
  /** As the reports say, before any rerun. */
  total: number;
  passed: number;
  failed: number;
  errors: number;
  skipped: number;
  /** Of the failed and errored tests: how the reruns classified them, and those left unclassified. */
  regressions: number;
  intermittent: number;
  known_intermittent: number;
  /** Failures not rerun: past maxConfirmed, or no reruns were asked for. */
  not_rerun: number;
}

/**
 * 'fail': a regression, a failure not rerun, no usable report, or a non-zero exit with no failure reported;
 * 'intermittent': failures, all of them intermittent or known-intermittent; 'pass': none failed.
 */
export type SuiteVerdict = 'pass' | 'intermittent' | 'fail';

export interface SuiteRunResult {
  /** Shape version of this document, for the master-side step. */
  version: 1;
  verdict: SuiteVerdict;
  /** The suite command's exit code (null: interrupted before it ended). */
  rc: number | null;
  interrupted: boolean;
  /** The reports parsed, and how many matched the glob but predate the run (ignored). */
  reports: string[];
  stale_reports: number;
  counts: SuiteCounts;
  tests: SuiteTest[];
  classifications: TestClassification[];
  /** Why the run has no (complete) result: no report, a report that does not parse, the suite exited non-zero alone. */
  error?: { code: string; message: string };
  /** A chunked run (units given): what it ran and measured. */
  chunk?: SuiteChunk;
}
