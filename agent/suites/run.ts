// Running a suite with confirm-failures: the suite runs once, the reports it wrote are parsed, each unexpected
// failure is rerun K times in a fresh process (confirm.ts) and classified (classify.ts), and the per-test times are
// recorded (durations.ts) so the next chunked run balances by itself. Processes, parsing and the report search are
// injected (run-types.ts); run-process.ts gives the real runner, the CLI and the `suite` command the rest.
import { AgentError, errorMessage } from '../errors.js';
import type { RunOutcome } from './classify.js';
import { confirmFailures, MAX_CONFIRMED } from './confirm.js';
import { measureUnits, prepareChunk } from './run-chunk.js';
import { recordDurations } from './run-durations.js';
import { rerunArgv } from './run-template.js';
import { type SuiteCounts, type SuiteRunDeps, type SuiteRunOptions, type SuiteRunResult, type SuiteTest, type TestClassification } from './run-types.js';

/** A report older than the run by more than this is stale (ms): it covers file systems with 2 s mtimes (FAT). */
export const STALE_SLACK_MS = 2000;
/** The variable a rerun finds its test's id in (for a template that runs a script rather than naming {test}). */
export const RERUN_TEST_ENV = 'BBAGENT_SUITE_TEST';

class Interrupted extends Error {}

export async function runSuite(options: SuiteRunOptions, deps: SuiteRunDeps): Promise<SuiteRunResult> {
  if (options.repeatFailures > 0 && options.rerun === undefined) {
    throw new AgentError('E_SUITE_RERUN_TEMPLATE', `reruns were asked for (${options.repeatFailures}) without a rerun template`);
  }
  const nowMs = deps.nowMs ?? Date.now;
  const { command, chunk } = await prepareChunk(options, deps);
  if (chunk !== undefined && chunk.units === 0) {
    return failed({ ...emptyResult(null), chunk }, 'E_SUITE_NO_TESTS', `the tests to chunk are empty: ${unitsWhere(options)}`);
  }
  if (chunk !== undefined && chunk.selected.length === 0) {
    // more chunks than units: running the command without tests would run them all
    deps.note(`suite: chunk ${chunk.this}/${chunk.total} is empty: nothing to run`);
    return { ...emptyResult(0), chunk, verdict: 'pass' };
  }
  const startedMs = nowMs();
  const rc = await deps.runner.run(command, { kind: 'suite' });
  const result = emptyResult(rc);
  if (chunk !== undefined) result.chunk = chunk;
  if (deps.signal?.aborted === true) return { ...result, interrupted: true, rc: null };

  const found = await deps.findReports(options.results, options.workdir);
  const fresh = found.filter((f) => f.mtimeMs >= startedMs - STALE_SLACK_MS);
  result.stale_reports = found.length - fresh.length;
  result.reports = fresh.map((f) => f.path);
  if (result.stale_reports > 0) deps.note(`suite: ignored ${result.stale_reports} report(s) matching ${options.results} written before the run`);
  if (fresh.length === 0) {
    return failed(
      result,
      'E_SUITE_NO_RESULTS',
      `no report matching ${JSON.stringify(options.results)} in ${options.workdir} was written by the run (rc ${rc})`,
    );
  }
  let tests: readonly SuiteTest[];
  try {
    tests = await deps.parse(result.reports, options.format);
  } catch (err) {
    const code = err instanceof AgentError ? err.code : 'E_SUITE_PARSE';
    return failed(result, code, errorMessage(err));
  }
  result.tests = [...tests];
  countStatuses(result.counts, tests);
  deps.note(
    `suite: ${result.reports.length} report(s), ${result.counts.total} tests: ${result.counts.passed} passed, ${result.counts.failed} failed, ${result.counts.errors} errors, ${result.counts.skipped} skipped`,
  );
  const unitSeconds = chunk === undefined ? undefined : measureUnits(chunk, tests, options.workdir, deps.note);
  if (options.durationsFile !== undefined) await recordDurations(options.durationsFile, tests, deps.note, unitSeconds);

  try {
    result.classifications = await confirm(options, deps, tests);
  } catch (err) {
    if (err instanceof Interrupted) return { ...result, interrupted: true, verdict: 'fail' };
    throw err;
  }
  return decide(result);
}

function unitsWhere(options: SuiteRunOptions): string {
  const glob = options.testsGlob === undefined ? [] : [`no file matches ${JSON.stringify(options.testsGlob)} in ${options.workdir}`];
  const listed = options.tests === undefined ? [] : [`${options.tests.length} listed`];
  return [...listed, ...glob].join(', ');
}

function emptyResult(rc: number | null): SuiteRunResult {
  const counts: SuiteCounts = { total: 0, passed: 0, failed: 0, errors: 0, skipped: 0, regressions: 0, intermittent: 0, known_intermittent: 0, not_rerun: 0 };
  return { version: 1, verdict: 'fail', rc, interrupted: false, reports: [], stale_reports: 0, counts, tests: [], classifications: [] };
}

function failed(result: SuiteRunResult, code: string, message: string): SuiteRunResult {
  return { ...result, verdict: 'fail', error: { code, message } };
}

function countStatuses(counts: SuiteCounts, tests: readonly SuiteTest[]): void {
  counts.total = tests.length;
  for (const t of tests) {
    if (t.status === 'pass') counts.passed++;
    else if (t.status === 'fail') counts.failed++;
    else if (t.status === 'error') counts.errors++;
    else counts.skipped++;
  }
}

/** Reruns the failures (fail and error, in report order; a test failing twice is rerun once) and classifies them. */
async function confirm(options: SuiteRunOptions, deps: SuiteRunDeps, tests: readonly SuiteTest[]): Promise<TestClassification[]> {
  const failing = new Map<string, SuiteTest>();
  for (const t of tests) if ((t.status === 'fail' || t.status === 'error') && !failing.has(t.id)) failing.set(t.id, t);
  if (failing.size === 0) return [];
  const known = (id: string): boolean => failing.get(id)?.known_intermittent === true;
  // without reruns only the known intermittents are classified; the other failures stay failures
  const ids = options.repeatFailures > 0 ? [...failing.keys()] : [...failing.keys()].filter(known);
  if (options.repeatFailures > 0) {
    const capped = Math.min(ids.filter((id) => !known(id)).length, options.maxConfirmed ?? MAX_CONFIRMED);
    deps.note(`suite: rerunning ${capped} failing test(s) up to ${options.repeatFailures} time(s) each`);
  }
  const words = options.rerun ?? [];
  const stopIfAborted = (): void => {
    if (deps.signal?.aborted === true) throw new Interrupted();
  };
  const { classified } = await confirmFailures(ids, {
    policy: { reruns: options.repeatFailures, stopAtFirstPass: options.stopAtFirstPass === true },
    maxTests: options.maxConfirmed ?? MAX_CONFIRMED,
    knownIntermittent: known,
    runOne: async (id, attempt): Promise<RunOutcome> => {
      stopIfAborted();
      const t = failing.get(id)!;
      const argv = rerunArgv(words, { id, name: t.name, group: t.group });
      const rc = await deps.runner.run(argv, { kind: 'rerun', test: id, attempt }, { [RERUN_TEST_ENV]: id });
      stopIfAborted();
      return rc === 0 ? 'pass' : 'fail';
    },
  });
  const out: TestClassification[] = [];
  for (const [id, c] of classified) {
    const t = failing.get(id)!;
    out.push({ test: id, name: t.name, group: t.group, ...c });
    const rate = c.rate === undefined ? '' : `, failure rate ${c.rate.toFixed(2)} (95% CI ${c.interval!.low.toFixed(2)}-${c.interval!.high.toFixed(2)})`;
    deps.note(`suite: ${id}: ${c.kind}, ${c.failures} of ${c.reruns} rerun(s) failed${rate}`);
  }
  return out;
}

/** The verdict from the counts and classifications (see SuiteVerdict). */
function decide(result: SuiteRunResult): SuiteRunResult {
  const c = result.counts;
  for (const k of result.classifications) {
    if (k.kind === 'regression') c.regressions++;
    else if (k.kind === 'intermittent') c.intermittent++;
    else c.known_intermittent++;
  }
  // each failing test counts once, even when a report lists it twice
  const failing = new Set(result.tests.filter((t) => t.status === 'fail' || t.status === 'error').map((t) => t.id)).size;
  const explained = c.intermittent + c.known_intermittent;
  c.not_rerun = failing - result.classifications.length;
  if (failing - explained > 0) return { ...result, verdict: 'fail' };
  if (failing > 0) return { ...result, verdict: 'intermittent' };
  if (result.rc !== 0) {
    return failed(result, 'E_SUITE_EXIT', `the suite exited with rc ${String(result.rc)} but its reports name no failing test`);
  }
  return { ...result, verdict: 'pass' };
}
