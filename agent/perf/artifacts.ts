// The files a perf run leaves in its output directory: perfherder-data.json (the Perfherder artifact) and
// perf-stats.json (every statistic, the outliers, the gate's report, the fingerprint), each written to a temporary
// name and renamed, so a reader never sees half a file.

import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import { ensureDir } from '../fs/makedirs.js';
import type { PerfherderData } from './perfherder.js';
import type { PerfResult } from './types.js';

export const PERFHERDER_FILE = 'perfherder-data.json';
export const STATS_FILE = 'perf-stats.json';

async function writeJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
    await rename(tmp, file);
  } catch (err) {
    throw new AgentError('E_PERF_RESULTS_FILE', `cannot write ${file}: ${errorMessage(err)}`);
  }
}

/** Writes both artifacts into `dir` (made if missing); returns their paths. */
export async function writePerfArtifacts(dir: string, result: PerfResult, data: PerfherderData): Promise<{ perfherder: string; stats: string }> {
  try {
    ensureDir(dir);
  } catch (err) {
    throw new AgentError('E_PERF_RESULTS_FILE', `cannot make the output directory ${dir}: ${errorMessage(err)}`);
  }
  const perfherder = path.join(dir, PERFHERDER_FILE);
  const stats = path.join(dir, STATS_FILE);
  await writeJson(perfherder, data);
  await writeJson(stats, result);
  return { perfherder, stats };
}

/** One line for people: the value, the CI, the CV, the outliers, per subtest. */
export function summaryLines(result: PerfResult): string[] {
  return result.subtests.map((s) => {
    const out = s.outliers.outliers.length ? `, ${s.outliers.outliers.length} outlier(s) at ${s.outliers.outliers.map((o) => o.index).join(',')}` : '';
    const cold = s.outliers.coldFirst ? ' (cold first run)' : '';
    return (
      `${result.suite}/${s.name}: ${fmt(s.value)}${s.unit ? ` ${s.unit}` : ''} (${result.filter}; median ${fmt(s.stats.median)}, ${ciLabel(s)} ${fmt(s.ci.low)}..${fmt(s.ci.high)} ` +
      `±${s.ciHalfWidthPercent.toFixed(2)}%, CV ${s.stats.cvPercent.toFixed(2)}%, MAD ${fmt(s.stats.mad)}, n=${s.stats.n} of ${s.replicates.length}${out}${cold})`
    );
  });
}

/** '95% CI', or the lower coverage a short series gives (fewer than 6 values: [min, max]). */
function ciLabel(s: PerfResult['subtests'][number]): string {
  return s.ci.coverage >= s.ci.confidence ? `${Math.round(100 * s.ci.confidence)}% CI` : `${(100 * s.ci.coverage).toFixed(1)}% CI (too few values for 95%)`;
}

function fmt(v: number): string {
  return Number(v.toPrecision(6)).toString();
}
