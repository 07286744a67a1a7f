// Finding the reports a suite wrote: the `--results` glob (Python's glob, `**` across directories, as the glob
// command's) relative to the suite's working directory, each match with its modification time so that reports
// left by an earlier run are told apart. Sorted, so the reports parse in the same order on every OS.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { TimeSlicer } from '../fs/time-slice.js';
import { pyGlob } from '../py/glob.js';
import type { ReportFile } from './run-types.js';

export async function findReports(pattern: string, workdir: string): Promise<ReportFile[]> {
  const full = path.isAbsolute(pattern) ? pattern : path.join(workdir, pattern);
  const paths = await pyGlob(full, { recursive: true, slicer: new TimeSlicer() });
  const out: ReportFile[] = [];
  for (const p of paths.sort()) {
    try {
      const s = await stat(p);
      if (s.isFile()) out.push({ path: p, mtimeMs: s.mtimeMs });
    } catch {
      // gone between the glob and the stat: not a report of this run
    }
  }
  return out;
}
