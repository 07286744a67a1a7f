// TAP 13 and 14, line by line: test points (ok / not ok, # SKIP and # TODO), plans, YAML diagnostics (message,
// duration_ms), subtests (indented 4 spaces a level, named by their `# Subtest:` comment) and Bail out!. Every
// test point is a result, as node --test counts them, except a point whose diagnostics say `type: 'suite'` (a
// describe block); a failing suite none of whose tests failed (a hook failed) is an error result of its own. A
// missing or short top-level plan means the producer stopped early: that is an error result, not lost tests.
import { AgentError } from '../../errors.js';
import { clipMessage, type TestResult, type TestStatus } from '../model.js';
import { forEachLine, type ParseLimits } from './source.js';
import { MAX_YAML_CHARS, readDiagnostics } from './tap-yaml.js';

/** Subtests indent by this many spaces a level (TAP 14). */
const INDENT = 4;

interface Point {
  ok: boolean;
  name: string;
  directive: 'skip' | 'todo' | undefined;
  reason: string;
  level: number;
  indent: number;
  line: number;
  group: string;
  /** Its subtests' block, when it had one. */
  children: Block | undefined;
  yaml: string[] | undefined;
  yamlChars: number;
  inYaml: boolean;
}

/** The test points at one level under one parent. */
interface Block {
  points: number;
  failed: boolean;
  plan: number | undefined;
}

export async function parseTap(chunks: AsyncIterable<string>, file: string, limits: ParseLimits, emit: (test: TestResult) => void): Promise<void> {
  const state = new TapState(file, limits.maxDepth, emit);
  await forEachLine(chunks, file, limits.maxTokenChars, (line, lineNo) => state.line(line, lineNo));
  state.end();
}

class TapState {
  /** blocks[l]: the points at level l under the parent open at level l - 1. */
  private readonly blocks: Block[] = [newBlock()];
  /** names[l]: the `# Subtest:` name of the point to come at level l (the parent of level l + 1). */
  private readonly names: (string | undefined)[] = [];
  private pending: Point | undefined;
  private sawTap = false;
  private bailed = false;
  private lastLine = 0;

  constructor(
    private readonly file: string,
    private readonly maxDepth: number,
    private readonly emit: (test: TestResult) => void,
  ) {}

  line(raw: string, lineNo: number): boolean {
    this.lastLine = lineNo;
    const p = this.pending;
    if (p?.inYaml === true && this.yamlLine(p, raw)) return true;
    const indent = raw.length - raw.trimStart().length;
    const content = raw.slice(indent).trimEnd();
    if (p !== undefined && p.yaml === undefined && content === '---' && indent === p.indent + 2) {
      p.yaml = [];
      p.inYaml = true;
      return true;
    }
    if (content === '' || (content.startsWith('#') && !content.startsWith('# Subtest'))) return true;
    this.flush();
    const level = Math.floor(indent / INDENT);
    if (level > this.maxDepth) {
      throw new AgentError('E_SUITE_REPORT_LIMIT', `${this.file}:${lineNo}: subtests nest deeper than ${this.maxDepth} levels (${indent} spaces)`);
    }
    const point = /^(not )?ok\b\s*(\d+)?\s*(?:- )?(.*)$/.exec(content);
    if (point !== null) {
      this.openPoint(point[1] === undefined, point[3] ?? '', level, indent, lineNo);
      return true;
    }
    const plan = /^1\.\.(\d+)\b/.exec(content);
    if (plan !== null) {
      this.sawTap = true;
      this.block(level).plan = Number(plan[1]);
    } else if (content.startsWith('# Subtest')) {
      this.sawTap = true;
      this.names[level] = unescape(content.replace(/^# Subtest:?\s*/, ''));
    } else if (/^TAP version \d+$/i.test(content)) this.sawTap = true;
    else if (content.startsWith('Bail out!')) {
      this.bailed = true;
      this.error('Bail out!', content.slice('Bail out!'.length).trim() || 'the producer bailed out: the tests after this line did not run', lineNo);
      return false;
    }
    return true;
  }

  end(): void {
    this.flush();
    if (!this.sawTap) throw new AgentError('E_SUITE_REPORT_MALFORMED', `${this.file}:${this.lastLine}: no TAP version, plan or test line: not a TAP report`);
    if (this.bailed) return;
    const top = this.blocks[0]!;
    if (top.plan === undefined) {
      this.error('TAP plan', `no plan line after ${top.points} tests: the producer stopped before the end of its run, or the report was cut`, this.lastLine);
    } else if (top.plan !== top.points) {
      this.error('TAP plan', `the plan says ${top.plan} tests, the report has ${top.points}`, this.lastLine);
    }
  }

  /** A line inside the pending point's YAML block; false when the block ended without its `...`. */
  private yamlLine(p: Point, raw: string): boolean {
    const body = p.indent + 2;
    if (raw.trim() === '...' && raw.indexOf('.') === body) {
      p.inYaml = false;
      return true;
    }
    if (raw.trim() !== '' && raw.length - raw.trimStart().length < body) {
      p.inYaml = false;
      return false;
    }
    // a blank line counts too: a block of a million empty lines must not grow the array
    if (p.yamlChars < MAX_YAML_CHARS) {
      p.yaml!.push(raw.slice(body));
      p.yamlChars += raw.length + 1;
    }
    return true;
  }

  private openPoint(ok: boolean, rest: string, level: number, indent: number, lineNo: number): void {
    this.sawTap = true;
    const { name, directive, reason } = splitDescription(rest);
    const children = this.blocks.length > level + 1 ? this.blocks[level + 1] : undefined;
    if (this.blocks.length > level + 1) this.blocks.length = level + 1;
    this.block(level).points++;
    const group = this.groupAt(level);
    const subtestName = this.names[level];
    if (this.names.length > level) this.names.length = level;
    // a point named only by its # Subtest comment (TAP 14 allows an empty description)
    const pointName = name === '' && subtestName !== undefined ? subtestName : name;
    this.pending = { ok, name: pointName, directive, reason, level, indent, line: lineNo, group, children, yaml: undefined, yamlChars: 0, inYaml: false };
  }

  private flush(): void {
    const p = this.pending;
    if (p === undefined) return;
    this.pending = undefined;
    const yaml = p.yaml === undefined ? new Map<string, string>() : readDiagnostics(p.yaml);
    const status: TestStatus = p.directive !== undefined ? 'skip' : p.ok ? 'pass' : 'fail';
    if (status === 'fail') this.block(p.level).failed = true;
    const suite = yaml.get('type') === 'suite' && p.children !== undefined;
    if (suite && (status !== 'fail' || p.children!.failed)) return;
    const message = diagnosticMessage(p, yaml);
    const ms = Number(yaml.get('duration_ms') ?? NaN);
    const result: TestResult = {
      name: p.name,
      group: p.group,
      id: p.group === '' ? p.name : `${p.group} > ${p.name}`,
      status: suite ? 'error' : status,
      duration_s: Number.isFinite(ms) && ms >= 0 ? ms / 1000 : NaN,
      message: status === 'pass' ? '' : clipMessage(message),
      file: this.file,
      line: p.line,
    };
    if (p.directive === 'todo') result.raw_status = 'todo';
    this.emit(result);
  }

  private error(name: string, message: string, lineNo: number): void {
    this.flush();
    this.emit({ name, group: '', id: name, status: 'error', duration_s: NaN, message, file: this.file, line: lineNo });
  }

  private block(level: number): Block {
    while (this.blocks.length <= level) this.blocks.push(newBlock());
    return this.blocks[level]!;
  }

  /** The names of the subtests a point at `level` sits in, outermost first. */
  private groupAt(level: number): string {
    const parts: string[] = [];
    for (let l = 0; l < level; l++) parts.push(this.names[l] ?? '(subtest)');
    return parts.join(' > ');
  }
}

function newBlock(): Block {
  return { points: 0, failed: false, plan: undefined };
}

/** A test point's description and its `# SKIP` / `# TODO` directive (`\#` escapes a hash in the description). */
function splitDescription(rest: string): { name: string; directive: 'skip' | 'todo' | undefined; reason: string } {
  let hash = -1;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '\\') i++;
    else if (rest[i] === '#') {
      hash = i;
      break;
    }
  }
  const description = unescape((hash < 0 ? rest : rest.slice(0, hash)).trim());
  const comment = hash < 0 ? '' : rest.slice(hash + 1).trim();
  const m = /^(skip|todo)\S*\s*(.*)$/i.exec(comment);
  if (m === null) return { name: description, directive: undefined, reason: '' };
  return { name: description, directive: m[1]!.toLowerCase() as 'skip' | 'todo', reason: m[2]!.trim() };
}

/** TAP escapes: `\#` is a hash, `\\` a backslash. */
function unescape(text: string): string {
  return text.replace(/\\([\\#])/g, '$1');
}

function diagnosticMessage(p: Point, yaml: Map<string, string>): string {
  if (p.directive !== undefined) return p.directive === 'todo' ? `TODO${p.reason !== '' ? `: ${p.reason}` : ''}` : p.reason;
  return yaml.get('message') ?? yaml.get('error') ?? yaml.get('reason') ?? '';
}
