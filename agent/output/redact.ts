// Replaces secret values with <redacted> before output leaves the host, also when a value is split across
// the chunks a process writes: the longest tail that could start a secret is held back until more text comes.

export const REDACTED = '<redacted>';

export class Redactor {
  private readonly secrets: string[];
  private held = '';

  constructor(values: readonly string[]) {
    // longest first, so a secret that contains another is replaced whole
    this.secrets = [...new Set(values.filter((v) => v.length > 0))].sort((a, b) => b.length - a.length);
  }

  get active(): boolean {
    return this.secrets.length > 0;
  }

  /** Redacts what can be decided now; keeps back a tail that may be the start of a secret. */
  push(text: string): string {
    if (!this.active) return text;
    const all = this.replace(this.held + text);
    const keep = this.partialTail(all);
    this.held = all.slice(all.length - keep);
    return all.slice(0, all.length - keep);
  }

  /** At the end of the stream: the held tail, redacted (it can no longer complete a secret). */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }

  private replace(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    return out;
  }

  /** Length of the longest suffix of text that is a proper prefix of some secret. */
  private partialTail(text: string): number {
    let best = 0;
    for (const s of this.secrets) {
      const max = Math.min(s.length - 1, text.length);
      for (let n = max; n > best; n--) {
        if (text.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
