// Python `re` source turned into JavaScript RegExp source with the same meaning, for the regexes a master sends
// (newline_re): the two dialects differ in `.`, octal escapes and named groups.

/**
 * The JavaScript source of a Python regex. Python's `.` excludes only '\n' (JS also excludes '\r', U+2028,
 * U+2029), octal escapes like `\033` are legal in Python only, and named groups are spelled `(?P<n>)`.
 */
export function pythonRegexSource(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const rest = source.slice(i + 1);
      const octal = /^(0[0-7]{0,2}|[0-7]{3})/.exec(rest);
      if (octal) {
        out += `\\x${parseInt(octal[1]!, 8).toString(16).padStart(2, '0')}`;
        i += octal[1]!.length;
        continue;
      }
      out += c + (source[i + 1] ?? '');
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (source[i + 1] === ']' || (source[i + 1] === '^' && source[i + 2] === ']')) {
        // a leading ']' is literal in both dialects; copy it so it does not close the class
        const lead = source[i + 1] === '^' ? '^]' : ']';
        out += lead.replace(']', '\\]');
        i += lead.length;
      }
      continue;
    }
    if (c === '.') {
      out += '[^\\n]';
      continue;
    }
    if (c === '(' && source.startsWith('?P<', i + 1)) {
      out += '(?<';
      i += 3;
      continue;
    }
    if (c === '(' && source.startsWith('?P=', i + 1)) {
      const end = source.indexOf(')', i);
      out += `\\k<${source.slice(i + 4, end)}>`;
      i = end;
      continue;
    }
    out += c;
  }
  return out;
}
