// shlex.quote, as buildbot-worker's shell_quote uses it to show an argv in the header of a step.

/** Characters shlex.quote leaves unquoted (its _find_unsafe is the complement of this set). */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** shlex.quote of each argument, joined by spaces (an empty argument becomes "", as buildbot-worker shows it). */
export function shellQuote(args: string[]): string {
  return args
    .map((a) => {
      if (a === '') return '""';
      if (SAFE_WORD.test(a)) return a;
      return `'${a.replace(/'/g, `'"'"'`)}'`;
    })
    .join(' ');
}
