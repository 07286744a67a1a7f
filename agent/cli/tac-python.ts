// The little Python that a buildbot.tac is made of, read without running it: the file cut into logical
// statements (brackets and backslashes join lines, comments dropped), and Python literals (strings, integers,
// None, True, False) turned into values. Anything else is left for the caller to refuse.

/** A value a literal can have. */
export type PyLiteral = string | number | boolean | null;

/** One logical statement: where it starts, its indentation, its code without comments (lines joined by ' '). */
export interface Statement {
  line: number;
  indent: number;
  code: string;
}

/** A statement the caller cannot carry over: `line` is where it is, `reason` says why. */
export class TacSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const OPEN = '([{';
const CLOSE = ')]}';

/** Cuts Python source into logical statements (only what buildbot.tac needs: no triple-quoted strings). */
export function statements(text: string): Statement[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const out: Statement[] = [];
  let current: Statement | undefined;
  let depth = 0;
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const { code, opened, continued } = scanLine(raw, lineNo);
    if (current === undefined) {
      if (code.trim() === '' && !continued) return;
      current = { line: lineNo, indent: raw.length - raw.trimStart().length, code: code.trim() };
    } else {
      current.code = `${current.code} ${code.trim()}`.trim();
    }
    depth += opened;
    if (depth < 0) throw new TacSyntaxError(lineNo, 'a closing bracket that was never opened');
    if (depth === 0 && !continued) {
      out.push(current);
      current = undefined;
    }
  });
  if (current !== undefined) throw new TacSyntaxError(current.line, 'a bracket or line continuation that never ends');
  return out;
}

/** One physical line: its code with the comment cut off, the brackets it opens (net), and a trailing backslash. */
function scanLine(raw: string, lineNo: number): { code: string; opened: number; continued: boolean } {
  let opened = 0;
  let quote: string | undefined;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '#') return { code: raw.slice(0, i), opened, continued: false };
    if (c === "'" || c === '"') {
      if (raw.startsWith(c.repeat(3), i)) throw new TacSyntaxError(lineNo, 'a triple-quoted string');
      quote = c;
    } else if (OPEN.includes(c)) opened++;
    else if (CLOSE.includes(c)) opened--;
  }
  if (quote !== undefined) throw new TacSyntaxError(lineNo, 'a string that does not end on its line');
  const continued = /\\\s*$/.test(raw);
  return { code: continued ? raw.replace(/\\\s*$/, '') : raw, opened, continued };
}

/** Splits `a, b=(c, d), 'e,f'` at its top-level commas (a trailing comma is allowed). */
export function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (OPEN.includes(c)) depth++;
    else if (CLOSE.includes(c)) depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last !== '') parts.push(last);
  return parts;
}

const INTEGER = /^[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7]*|[1-9][0-9_]*)$/;

/**
 * A Python literal, or undefined when `text` is not one. Integers as Python reads them (0o22, 0x1f, 1_000);
 * a legacy octal such as 022 (Python 2, which buildbot-worker's `--umask 022` writes) is read as octal.
 */
export function parseLiteral(text: string): PyLiteral | undefined {
  const t = text.trim();
  if (t === 'None') return null;
  if (t === 'True') return true;
  if (t === 'False') return false;
  if (INTEGER.test(t)) return parseInteger(t);
  return parseString(t);
}

function parseInteger(t: string): number | undefined {
  const sign = t.startsWith('-') ? -1 : 1;
  const body = t.replace(/^[+-]/, '').replace(/_/g, '');
  let n: number;
  if (/^0[xX]/.test(body)) n = parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) n = parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) n = parseInt(body.slice(2), 2);
  else if (/^0[0-7]+$/.test(body)) n = parseInt(body, 8);
  else n = Number(body);
  return Number.isSafeInteger(n) ? sign * n : undefined;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  n: '\n',
  r: '\r',
  t: '\t',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '\n': '',
};

/** One string literal ('...' or "..." with an optional r, u or b prefix), or undefined. */
function parseString(t: string): string | undefined {
  const m = /^([rRuUbB]{0,2})(['"])([\s\S]*)\2$/.exec(t);
  if (!m) return undefined;
  const [, prefix = '', quote = '', body = ''] = m;
  if (/[uU].*[bB]|[bB].*[uU]/.test(prefix) || (prefix.length === 2 && !/[rR]/.test(prefix))) return undefined;
  const raw = /[rR]/.test(prefix);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c === quote) return undefined; // two strings side by side, or an unescaped quote
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = body[i + 1];
    if (next === undefined) return undefined;
    if (raw) {
      out += c + next;
      i++;
      continue;
    }
    const decoded = decodeEscape(body, i + 1);
    if (decoded === undefined) return undefined;
    out += decoded.text;
    i = decoded.end - 1;
  }
  return out;
}

/** The escape after a backslash at `at`: what it stands for and where it ends. */
function decodeEscape(body: string, at: number): { text: string; end: number } | undefined {
  const c = body[at] as string;
  if (Object.hasOwn(SIMPLE_ESCAPES, c)) return { text: SIMPLE_ESCAPES[c] as string, end: at + 1 };
  const octal = /^[0-7]{1,3}/.exec(body.slice(at));
  if (octal) return { text: String.fromCodePoint(parseInt(octal[0], 8)), end: at + octal[0].length };
  const width = c === 'x' ? 2 : c === 'u' ? 4 : c === 'U' ? 8 : 0;
  if (width > 0) {
    const hex = body.slice(at + 1, at + 1 + width);
    if (!new RegExp(`^[0-9a-fA-F]{${width}}$`).test(hex)) return undefined;
    const cp = parseInt(hex, 16);
    return cp <= 0x10ffff ? { text: String.fromCodePoint(cp), end: at + 1 + width } : undefined;
  }
  if (c === 'N') return undefined; // \N{NAME}: no table of Unicode names here
  return { text: `\\${c}`, end: at + 1 }; // Python keeps an unknown escape as it is
}
