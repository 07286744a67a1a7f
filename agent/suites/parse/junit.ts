// JUnit XML, streamed through saxes (a strict, non-validating XML 1.0 parser that never reads a DTD): Ant/Jenkins
// reports (testsuites > testsuite > testcase, suites nested at any depth, or a lone testsuite or testcase as the
// root), Surefire's reruns (flakyFailure/flakyError: failed, then passed on a rerun; rerunFailure/rerunError: failed
// every run), and the `status`/`result` attributes CTest and GoogleTest write. Only the text of a test's failure,
// error or skipped element is collected, so system-out logs cost no memory; no entity is ever expanded.
import { SaxesParser, type SaxesTagPlain } from 'saxes';
import { AgentError } from '../../errors.js';
import { clipMessage, MAX_MESSAGE_CHARS, type TestResult, type TestStatus } from '../model.js';
import type { ParseLimits } from './source.js';

type Outcome = 'failure' | 'error' | 'skipped';

/** Child elements of a testcase that say how it went; Surefire's rerun elements count runs. */
const OUTCOMES: ReadonlyMap<string, Outcome> = new Map([
  ['failure', 'failure'],
  ['error', 'error'],
  ['skipped', 'skipped'],
]);
const RERUNS: ReadonlyMap<string, 'flaky' | 'rerun'> = new Map([
  ['flakyFailure', 'flaky'],
  ['flakyError', 'flaky'],
  ['rerunFailure', 'rerun'],
  ['rerunError', 'rerun'],
]);
/** A testcase's own status attribute that means it did not run (CTest: notrun, disabled; GoogleTest result). */
const NOT_RUN = new Set(['notrun', 'disabled', 'skipped', 'suppressed']);

interface OpenCase {
  name: string;
  group: string;
  /** The test's source file as the report names it (the testcase's `file`, else its testsuite's), or ''. */
  source: string;
  duration: number;
  line: number;
  /** The element depth of the testcase: a testcase inside a testcase (no tool writes one) is part of the outer. */
  depth: number;
  outcomes: Set<Outcome>;
  messages: string[];
  messageChars: number;
  flaky: number;
  reruns: number;
  notRun: boolean;
}

/** Parses one JUnit report, calling `emit` for each testcase in document order. */
export async function parseJunit(chunks: AsyncIterable<string>, file: string, limits: ParseLimits, emit: (test: TestResult) => void): Promise<void> {
  const state = new JunitState(file, limits, emit);
  const parser = new SaxesParser({ position: true });
  state.attach(parser);
  try {
    for await (const chunk of chunks) {
      parser.write(chunk);
      state.checkToken(parser);
    }
    parser.close();
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw malformed(file, parser.line, err);
  }
  state.finish(parser.line);
}

class JunitState {
  private readonly suites: string[] = [];
  /** The `file` attribute of each open testsuite ('' when it has none). */
  private readonly suiteFiles: string[] = [];
  private depth = 0;
  private current: OpenCase | undefined;
  /** The depth of the element whose text is being collected (0: none). */
  private capturing = 0;
  private sawJunit = false;

  constructor(
    private readonly file: string,
    private readonly limits: ParseLimits,
    private readonly emit: (test: TestResult) => void,
  ) {}

  attach(parser: SaxesParser<object>): void {
    const collect = (text: string): void => this.collect(text);
    parser.on('doctype', (doctype) => {
      // entities are never expanded: a declaration is an attack (XXE, billion laughs) or a report we cannot read
      if (/<!ENTITY/i.test(doctype)) throw this.error(parser.line, 'the DOCTYPE declares entities, which are never expanded (XXE)');
    });
    parser.on('opentag', (tag) => {
      this.open(tag, parser.line);
      // saxes keeps character data only while a text handler is set: system-out and the like are skipped unbuffered
      if (this.capturing === this.depth && this.capturing > 0) parser.on('text', collect);
    });
    parser.on('closetag', (tag) => {
      if (this.capturing === this.depth && this.capturing > 0) {
        this.capturing = 0;
        parser.off('text');
      }
      this.close(tag.name);
    });
    parser.on('cdata', (text) => {
      if (this.capturing > 0) this.collect(text);
    });
  }

  /** Fails when saxes holds one token (an attribute, a CDATA section, captured text) over the limit. */
  checkToken(parser: SaxesParser<object>): void {
    // saxes accumulates the token it is reading in its private `text`; reading its length is the only way to bound it
    const held = (parser as unknown as { text: string }).text.length;
    if (held > this.limits.maxTokenChars) {
      const what = `one attribute value, CDATA section or message is longer than ${this.limits.maxTokenChars} characters`;
      throw new AgentError('E_SUITE_REPORT_LIMIT', `${this.file}:${parser.line}: ${what}`);
    }
  }

  finish(line: number): void {
    if (!this.sawJunit) throw this.error(line, 'no <testsuites>, <testsuite> or <testcase> element: not a JUnit report');
  }

  private open(tag: SaxesTagPlain, line: number): void {
    this.depth++;
    if (this.depth > this.limits.maxDepth) {
      throw new AgentError('E_SUITE_REPORT_LIMIT', `${this.file}:${line}: elements nest deeper than ${this.limits.maxDepth} levels`);
    }
    // any root is read (a wrapper of another tool's making may hold testcases): no JUnit element at all fails at the end
    const name = tag.name;
    if (name === 'testsuites') this.sawJunit = true;
    else if (name === 'testsuite') {
      this.sawJunit = true;
      this.suites.push(attr(tag, 'name'));
      this.suiteFiles.push(attr(tag, 'file') || (this.suiteFiles.at(-1) ?? ''));
    } else if (name === 'testcase') {
      this.sawJunit = true;
      if (this.current === undefined) this.current = this.openCase(tag, line);
    } else if (this.current !== undefined) this.openChild(tag);
  }

  private openCase(tag: SaxesTagPlain, line: number): OpenCase {
    const classname = attr(tag, 'classname') || attr(tag, 'class');
    const status = attr(tag, 'status').toLowerCase();
    const result = attr(tag, 'result').toLowerCase();
    return {
      name: attr(tag, 'name'),
      group: classname || (this.suites.at(-1) ?? ''),
      source: attr(tag, 'file') || (this.suiteFiles.at(-1) ?? ''),
      duration: seconds(attr(tag, 'time')),
      line,
      depth: this.depth,
      outcomes: new Set(),
      messages: [],
      messageChars: 0,
      flaky: 0,
      reruns: 0,
      notRun: NOT_RUN.has(status) || NOT_RUN.has(result),
    };
  }

  /** A child of the open testcase (only its direct children count: a rerun's own stack trace is not the test's). */
  private openChild(tag: SaxesTagPlain): void {
    const c = this.current!;
    if (this.capturing > 0) return;
    const outcome = OUTCOMES.get(tag.name);
    if (outcome !== undefined) {
      c.outcomes.add(outcome);
      const message = attr(tag, 'message');
      if (message !== '') this.addMessage(message);
      this.capturing = this.depth;
      return;
    }
    const rerun = RERUNS.get(tag.name);
    if (rerun === 'flaky') c.flaky++;
    else if (rerun === 'rerun') c.reruns++;
  }

  private collect(text: string): void {
    const trimmed = text.trim();
    if (trimmed !== '') this.addMessage(trimmed);
  }

  private addMessage(text: string): void {
    const c = this.current!;
    if (c.messageChars > MAX_MESSAGE_CHARS) return;
    c.messages.push(text);
    c.messageChars += text.length;
  }

  private close(name: string): void {
    if (name === 'testsuite') {
      this.suites.pop();
      this.suiteFiles.pop();
    } else if (name === 'testcase' && this.current?.depth === this.depth) {
      this.emit(this.result(this.current));
      this.current = undefined;
    }
    this.depth--;
  }

  private result(c: OpenCase): TestResult {
    const status: TestStatus = c.outcomes.has('error') ? 'error' : c.outcomes.has('failure') ? 'fail' : c.outcomes.has('skipped') || c.notRun ? 'skip' : 'pass';
    const test: TestResult = {
      name: c.name,
      group: c.group,
      id: c.group === '' ? c.name : `${c.group}::${c.name}`,
      status,
      duration_s: c.duration,
      message: status === 'pass' ? '' : clipMessage(c.messages.join('\n')),
      file: this.file,
      line: c.line,
    };
    if (c.source !== '') test.source = c.source;
    if (status === 'pass' && c.flaky > 0) {
      test.flaky = true;
      test.rerun_failures = c.flaky;
      test.raw_status = 'flaky';
    } else if (c.reruns > 0) test.rerun_failures = c.reruns;
    return test;
  }

  private error(line: number, what: string): AgentError {
    return new AgentError('E_SUITE_REPORT_MALFORMED', `${this.file}:${line}: ${what}`);
  }
}

function attr(tag: SaxesTagPlain, name: string): string {
  return tag.attributes[name] ?? '';
}

/** A time attribute in seconds ("1.5", "1,234.5" as some tools group digits); NaN when absent or not a number. */
function seconds(text: string): number {
  if (text === '') return NaN;
  const value = Number(text.includes(',') ? text.replace(/,/g, '') : text);
  return Number.isFinite(value) && value >= 0 ? value : NaN;
}

function malformed(file: string, line: number, err: unknown): AgentError {
  // saxes prefixes its messages with line:column: keep its reason only, the line is ours
  const reason = (err instanceof Error ? err.message : String(err)).replace(/^(?:[^:]*:)?\d+:\d+: /, '').replace(/\.$/, '');
  const hint = /undefined entity/.test(reason) ? " (only XML's five predefined entities and character references are read)" : '';
  return new AgentError('E_SUITE_REPORT_MALFORMED', `${file}:${line}: not well-formed XML: ${reason}${hint}`);
}
