// Test reports into the one result model (../model.ts): JUnit XML, TAP 13/14 and mozlog raw JSON lines, the
// format told or recognised from the report's first bytes. Reports stream (a chunk at a time, memory bounded);
// a broken report is one AgentError naming the file and line.
import { AgentError } from '../../errors.js';
import { addCounts, countResult, emptyCounts, type ParsedReport, type ReportFormat, type SuiteResults, type TestResult } from '../model.js';
import { parseJunit } from './junit.js';
import { parseMozlog } from './mozlog.js';
import { DEFAULT_LIMITS, readTextChunks, type ParseLimits } from './source.js';
import { parseTap } from './tap.js';

export { DEFAULT_LIMITS, textChunks, type ParseLimits } from './source.js';

export type FormatChoice = 'auto' | ReportFormat;
export const FORMATS: readonly FormatChoice[] = ['auto', 'junit', 'tap', 'mozlog'];

export interface ParseOptions {
  /** Default 'auto': recognised from the report's start (XML, JSON lines with an action, TAP lines). */
  format?: FormatChoice;
  /** Called with each result as it is read, in report order. */
  onTest?: (test: TestResult) => void;
  /** Keep every result in SuiteResults.tests (default true); false keeps only the counts (a huge report). */
  keepTests?: boolean;
  limits?: Partial<ParseLimits>;
}

type FormatParser = (chunks: AsyncIterable<string>, file: string, limits: ParseLimits, emit: (test: TestResult) => void) => Promise<void>;

const PARSERS: Record<ReportFormat, FormatParser> = { junit: parseJunit, tap: parseTap, mozlog: parseMozlog };

/** Parses one report file. */
export async function parseReport(file: string, options: ParseOptions = {}): Promise<SuiteResults> {
  return parseReports([file], options);
}

/** Parses report files one after the other into one result (counts added up, results in the order given). */
export async function parseReports(files: readonly string[], options: ParseOptions = {}): Promise<SuiteResults> {
  const results: SuiteResults = { ...emptyCounts(), tests: [], reports: [] };
  for (const file of files) {
    const report = await parseReportChunks(readTextChunks(file), file, options, results.tests);
    addCounts(results, report.counts);
    results.reports.push(report);
  }
  return results;
}

/**
 * Parses one report from decoded text chunks (a file, standard input, a string in tests); `file` names it in
 * errors. Results go to onTest and, unless keepTests is false, onto `into`.
 */
export async function parseReportChunks(
  chunks: AsyncIterable<string>,
  file: string,
  options: ParseOptions = {},
  into: TestResult[] = [],
): Promise<ParsedReport> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const { format, chunks: all } = await withFormat(chunks, file, options.format ?? 'auto');
  const counts = emptyCounts();
  const keep = options.keepTests !== false;
  const onTest = options.onTest;
  await PARSERS[format](all, file, limits, (test) => {
    countResult(counts, test.status);
    if (keep) into.push(test);
    onTest?.(test);
  });
  return { file, format, counts };
}

/** The format of a report from its start, or undefined when it looks like none of them. */
export function detectFormat(head: string): ReportFormat | undefined {
  const text = head.replace(/^\uFEFF/, '');
  const start = text.trimStart();
  if (start.startsWith('<')) return 'junit';
  const lines = text.split('\n', 50);
  // a TAP version line after a few lines of a wrapper's output (npm's "> pkg test" banner) still makes it TAP
  if (lines.some((l) => /^TAP version \d+\s*$/i.test(l))) return 'tap';
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('{')) return /"action"\s*:/.test(line) ? 'mozlog' : undefined;
    if (/^TAP version \d+$/i.test(line) || /^(?:not )?ok\b/.test(line) || /^1\.\.\d+/.test(line) || /^# Subtest:/.test(line)) return 'tap';
    if (!line.startsWith('#')) return undefined;
  }
  return undefined;
}

/** Enough of the start to recognise a format (a leading comment block, an XML declaration). */
const SNIFF_CHARS = 4096;

async function withFormat(chunks: AsyncIterable<string>, file: string, choice: FormatChoice): Promise<{ format: ReportFormat; chunks: AsyncIterable<string> }> {
  if (choice !== 'auto') {
    if (!Object.hasOwn(PARSERS, choice))
      throw new AgentError('E_SUITE_REPORT_FORMAT', `unknown report format '${String(choice)}' (one of ${FORMATS.join(', ')})`);
    return { format: choice, chunks };
  }
  const iterator = chunks[Symbol.asyncIterator]();
  const head: string[] = [];
  let length = 0;
  while (length < SNIFF_CHARS) {
    const next = await iterator.next();
    if (next.done === true) break;
    head.push(next.value);
    length += next.value.length;
  }
  const text = head.join('');
  const format = detectFormat(text.slice(0, SNIFF_CHARS * 4));
  if (format === undefined) {
    const what = text.trim() === '' ? 'is empty' : 'is not JUnit XML, TAP or mozlog JSON lines';
    throw new AgentError('E_SUITE_REPORT_FORMAT', `${file}: the report ${what} (give --format to read it as one)`);
  }
  async function* replay(): AsyncGenerator<string> {
    if (text.length > 0) yield text;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return;
      yield next.value;
    }
  }
  return { format, chunks: replay() };
}
