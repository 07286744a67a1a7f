// The parser a suite run uses: the reports parsed one after the other into the one result model (parse/), and the
// format checked before the suite runs (a typo must not cost a whole suite run).
import { AgentError } from '../errors.js';
import type { TestResult } from './model.js';
import { FORMATS, parseReports, type FormatChoice } from './parse/index.js';

export function checkFormat(format: string): FormatChoice {
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new AgentError('E_SUITE_REPORT_FORMAT', `unknown report format '${format}' (one of ${FORMATS.join(', ')})`);
  }
  return format as FormatChoice;
}

export async function parseSuiteReports(files: readonly string[], format: string): Promise<TestResult[]> {
  return (await parseReports(files, { format: checkFormat(format) })).tests;
}
