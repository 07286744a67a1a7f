// The YAML diagnostics block of a TAP test point (between `---` and `...`), read only as far as results need:
// top-level `key: value` pairs with plain, quoted or block (| >) scalars; nested maps and lists are passed over.
// Not a YAML parser: what it cannot read it leaves out, it never fails.

/** Characters of a diagnostics block kept at most (a stack trace is enough; a whole log is not needed). */
export const MAX_YAML_CHARS = 64 * 1024;

export function readDiagnostics(lines: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < lines.length; i++) {
    const m = /^([A-Za-z_][\w-]*):(?:\s+(.*))?$/.exec(lines[i]!);
    if (m === null) continue;
    const key = m[1]!;
    const value = (m[2] ?? '').trim();
    if (/^[|>][-+]?$/.test(value)) {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1]!.startsWith(' ') || lines[i + 1]!.trim() === '')) block.push(lines[++i]!);
      out.set(key, blockScalar(block, value));
    } else if (value !== '') out.set(key, scalar(value));
  }
  return out;
}

function blockScalar(block: string[], indicator: string): string {
  let indent = Infinity;
  for (const l of block) if (l.trim() !== '') indent = Math.min(indent, l.length - l.trimStart().length);
  const lines = block.map((l) => l.slice(Number.isFinite(indent) ? indent : 0));
  const text = indicator.startsWith('>') ? lines.join(' ') : lines.join('\n');
  return indicator.endsWith('+') ? `${text}\n` : text.replace(/\n+$/, '');
}

function scalar(value: string): string {
  if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) return value.slice(1, -1).replace(/''/g, "'");
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
    try {
      return String(JSON.parse(value));
    } catch {
      return value.slice(1, -1);
    }
  }
  return value;
}
