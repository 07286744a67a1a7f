// Recording a run's per-test times into a durations file (durations.ts), published atomically, so the next
// `bbagent suite chunk --durations FILE` balances by itself. Two runs recording into one file at once: the last
// one wins whole (never a torn file), and the other's samples are lost, which only costs balance.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../errors.js';
import { ensureDir } from '../fs/makedirs.js';
import { publishFile } from '../fs/publish-file.js';
import { emptyHistory, formatHistory, KEEP_SAMPLES, MAX_AGE_RUNS, parseHistory, recordRun, type DurationHistory } from './durations.js';
import type { SuiteTest } from './run-types.js';

/**
 * Adds the tests' times (and the units' times, seconds per unit, when the run had units) to `file` (created with
 * its directory if missing). A file that cannot be read as a durations file is started afresh, and a file that
 * cannot be written is skipped: both are noted, neither fails the run (durations only balance chunks).
 */
export async function recordDurations(
  file: string,
  tests: readonly SuiteTest[],
  note: (line: string) => void,
  units: ReadonlyMap<string, number> = new Map(),
): Promise<void> {
  let history: DurationHistory = emptyHistory();
  try {
    history = parseHistory(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') note(`suite: durations: starting ${file} afresh: ${errorMessage(err)}`);
  }
  const next = recordRun(
    history,
    tests.map((t) => ({ name: t.id, status: t.status, duration_s: t.duration_s })),
    KEEP_SAMPLES,
    MAX_AGE_RUNS,
    units,
  );
  try {
    ensureDir(path.dirname(file));
    const tmp = `${file}.${process.pid}.tmp`;
    await publishFile(tmp, file, (t) => writeFile(t, formatHistory(next)));
    const unitCount = next.units.size > 0 ? ` and ${next.units.size} unit(s)` : '';
    note(`suite: durations of ${next.tests.size} test(s)${unitCount} recorded in ${file}`);
  } catch (err) {
    note(`suite: durations: could not write ${file}: ${errorMessage(err)}`);
  }
}
