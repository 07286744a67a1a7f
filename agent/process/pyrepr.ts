// Python-compatible text renderings used in buildbot-worker's headers (repr of bytes/str/dict, shlex quoting),
// so logs read the same whichever worker ran the step.

function reprQuoted(body: string, hasSingle: boolean, hasDouble: boolean, prefix: string): string {
  const quote = hasSingle && !hasDouble ? '"' : "'";
  return `${prefix}${quote}${quote === "'" ? body.replace(/'/g, "\\'") : body}${quote}`;
}

/** repr() of the UTF-8 bytes of a string, e.g. b'make all'. */
export function reprBytes(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  let body = '';
  for (const b of bytes) {
    if (b === 0x5c) body += '\\\\';
    else if (b === 0x09) body += '\\t';
    else if (b === 0x0a) body += '\\n';
    else if (b === 0x0d) body += '\\r';
    else if (b < 0x20 || b >= 0x7f) body += `\\x${b.toString(16).padStart(2, '0')}`;
    else body += String.fromCharCode(b);
  }
  return reprQuoted(body, s.includes("'"), s.includes('"'), 'b');
}

/** repr() of a str: printable non-ASCII stays as it is. */
export function reprStr(s: string): string {
  let body = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') body += '\\\\';
    else if (ch === '\t') body += '\\t';
    else if (ch === '\n') body += '\\n';
    else if (ch === '\r') body += '\\r';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0)) body += `\\x${c.toString(16).padStart(2, '0')}`;
    else body += ch;
  }
  return reprQuoted(body, s.includes("'"), s.includes('"'), '');
}

/** repr() of a JSON-like value as Python would print it (dicts, lists, str, numbers, bools, None). */
export function reprValue(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return reprStr(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (Array.isArray(v)) return `[${v.map(reprValue).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${reprStr(k)}: ${reprValue(x)}`)
      .join(', ')}}`;
  }
  return String(v);
}

/** shlex.quote as buildbot-worker's shell_quote uses it (an empty argument becomes ""). */
export function shellQuote(args: string[]): string {
  return args
    .map((a) => {
      if (a === '') return '""';
      if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a)) return a;
      return `'${a.replace(/'/g, `'"'"'`)}'`;
    })
    .join(' ');
}
