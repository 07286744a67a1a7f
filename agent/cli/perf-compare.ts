// `bbagent perf compare --baseline FILE --new FILE`: one line per subtest (medians, change, Perfherder's t,
// Mann-Whitney's p, verdict); exit 1 when any subtest is a likely regression, 0 otherwise (also when the machine
// fingerprints differ: then nothing is compared and the new result is a new baseline).

import { ALERT_THRESHOLD_PERCENT, compareResults, loadResults, type Comparison } from '../perf/compare.js';
import { EXIT_FAILED, EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';

const COMMAND = 'bbagent perf compare';

export const PERF_COMPARE_USAGE = `Usage: bbagent perf compare --baseline FILE --new FILE [--threshold PCT] [--json]

Compares each subtest's replicates (perf-stats.json or perfherder-data.json, both with replicates) with
Perfherder's t-test (windows 12/24/12, t > 7) and a two-sided Mann-Whitney U (p < 0.05). A subtest that got
worse by at least --threshold percent (default ${ALERT_THRESHOLD_PERCENT}) with both tests significant is a likely
regression: exit 1. Results of different machine fingerprints are not compared (a new baseline): exit 0.

Options:
      --baseline FILE   the earlier result
      --new FILE        the result to judge
      --threshold PCT   the smallest change that counts (default ${ALERT_THRESHOLD_PERCENT})
      --json            print the comparison as one JSON object
  -h, --help            show this help`;

const OPTIONS: OptionSpec = {
  baseline: { type: 'string' },
  new: { type: 'string' },
  threshold: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

function lines(c: Comparison): string[] {
  if (c.status === 'new-baseline')
    return [`machine fingerprint changed (${c.fingerprintChanges.join('; ')}): not compared, the new result starts a new baseline`];
  const out = c.subtests.map(
    (s) =>
      `${s.key}: ${fmt(s.baselineMedian)} -> ${fmt(s.newMedian)}${s.unit ? ` ${s.unit}` : ''} (${s.deltaPercent >= 0 ? '+' : ''}${s.deltaPercent.toFixed(2)}%), ` +
      `t=${Number.isFinite(s.t) ? s.t.toFixed(2) : 'inf'}, Mann-Whitney p=${s.mannWhitneyP.toPrecision(3)}: ${s.verdict}`,
  );
  for (const k of c.missing) out.push(`${k}: only in the baseline`);
  for (const k of c.added) out.push(`${k}: only in the new result`);
  out.push(c.regressions > 0 ? `${c.regressions} likely regression(s)` : 'no likely regression');
  return out;
}

function fmt(v: number): string {
  return Number(v.toPrecision(6)).toString();
}

export async function perfCompareCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values } = parseCommandLine(COMMAND, argv, OPTIONS, 0);
    if (values.help === true) {
      io.out(PERF_COMPARE_USAGE);
      return EXIT_OK;
    }
    if (typeof values.baseline !== 'string' || typeof values.new !== 'string')
      throw new UsageError(`${COMMAND}: --baseline FILE and --new FILE are required (see '${COMMAND} --help')`);
    const threshold = values.threshold === undefined ? ALERT_THRESHOLD_PERCENT : Number(values.threshold);
    if (!Number.isFinite(threshold) || threshold < 0)
      throw new UsageError(`${COMMAND}: --threshold must be a percentage >= 0, got '${String(values.threshold)}'`);
    const comparison = compareResults(await loadResults(values.baseline), await loadResults(values.new), threshold);
    if (values.json === true) io.out(JSON.stringify(comparison));
    else for (const line of lines(comparison)) io.out(line);
    return comparison.regressions > 0 ? EXIT_FAILED : EXIT_OK;
  });
}
