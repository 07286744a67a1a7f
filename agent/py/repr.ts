// Python's repr() of the values buildbot-worker puts in its headers (bytes, str, dicts and lists), so logs read
// the same whichever worker ran the step.

import { pyFloatRepr } from './float.js';

/** What str.isprintable() rejects: other (Cc, Cf, Cs, Co, Cn) and separators (Zs, Zl, Zp); ' ' is let through first. */
const NOT_PRINTABLE = /[\p{C}\p{Z}]/u;

function reprQuoted(body: string, hasSingle: boolean, hasDouble: boolean, prefix: string): string {
  const quote = hasSingle && !hasDouble ? '"' : "'";
  return `${prefix}${quote}${quote === "'" ? body.replace(/'/g, "\\'") : body}${quote}`;
}

const hex = (c: number, width: number): string => c.toString(16).padStart(width, '0');

/** repr() of the UTF-8 bytes of a string, e.g. b'make all'. */
export function reprBytes(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  let body = '';
  for (const b of bytes) {
    if (b === 0x5c) body += '\\\\';
    else if (b === 0x09) body += '\\t';
    else if (b === 0x0a) body += '\\n';
    else if (b === 0x0d) body += '\\r';
    else if (b < 0x20 || b >= 0x7f) body += `\\x${hex(b, 2)}`;
    else body += String.fromCharCode(b);
  }
  return reprQuoted(body, s.includes("'"), s.includes('"'), 'b');
}

/**
 * repr() of a str (CPython's unicode_repr): printable characters stay as they are, the others are escaped as
 * \xNN, \uNNNN or \UNNNNNNNN; a lone surrogate (a file name byte that is not UTF-8) is escaped too.
 */
export function reprStr(s: string): string {
  let body = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') body += '\\\\';
    else if (ch === '\t') body += '\\t';
    else if (ch === '\n') body += '\\n';
    else if (ch === '\r') body += '\\r';
    else if (c >= 0x20 && c < 0x7f) body += ch;
    else if (!NOT_PRINTABLE.test(ch)) body += ch;
    else if (c <= 0xff) body += `\\x${hex(c, 2)}`;
    else if (c <= 0xffff) body += `\\u${hex(c, 4)}`;
    else body += `\\U${hex(c, 8)}`;
  }
  return reprQuoted(body, s.includes("'"), s.includes('"'), '');
}

/**
 * repr() of a JSON-like value as Python would print it (dicts, lists, str, numbers, bools, None). A whole
 * number is shown as an int: JSON-like values cannot tell 2.0 from 2.
 */
export function reprValue(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return reprStr(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (Array.isArray(v)) return `[${v.map(reprValue).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${reprStr(k)}: ${reprValue(x)}`)
      .join(', ')}}`;
  }
  return String(v);
}
