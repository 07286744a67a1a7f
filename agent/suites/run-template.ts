// The rerun template (`--rerun 'CMD {test}'`): split into words once, without a shell, then each placeholder is
// replaced inside its word, so a test id becomes part of exactly one argv element whatever characters it holds
// (spaces, quotes, `$`, `;`): nothing ever reparses it. A template that wants a shell says so itself, and gets the
// id as a positional parameter, never as shell text: `sh -c 'run-one "$1"' sh {test}`.
import { AgentError } from '../errors.js';

/** What a rerun names: the test's id (as recorded in durations), its name and its group as the report gave them. */
export interface RerunTarget {
  id: string;
  name: string;
  group: string;
}

const PLACEHOLDERS = ['{test}', '{name}', '{group}'] as const;
const PLACEHOLDER_RE = /\{(test|name|group)\}/g;

/**
 * Splits a template into words as a POSIX shell would split a simple command, and nothing more: blanks separate
 * words; '...' keeps everything literally; "..." keeps everything but a backslash before " \ $ `; a backslash
 * outside quotes keeps the next character. No expansion, globbing, redirection or operators: `;` or `|` are
 * ordinary characters of a word.
 */
export function splitTemplate(template: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = template.indexOf("'", i + 1);
      if (end < 0) throw templateError(template, `the single quote at character ${i + 1} is never closed`);
      word += template.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      i = readDoubleQuoted(template, i, (s) => (word += s));
    } else if (c === '\\') {
      if (i + 1 >= template.length) throw templateError(template, 'it ends with a lone backslash');
      word += template[++i];
    } else word += c;
  }
  if (inWord) words.push(word);
  return words;
}

/** Reads "..." starting at `open`, hands its text to `add`, returns the index of the closing quote. */
function readDoubleQuoted(template: string, open: number, add: (s: string) => void): number {
  for (let i = open + 1; i < template.length; i++) {
    const c = template[i]!;
    if (c === '"') return i;
    if (c === '\\' && i + 1 < template.length && '"\\$`'.includes(template[i + 1]!)) add(template[++i]!);
    else add(c);
  }
  throw templateError(template, `the double quote at character ${open + 1} is never closed`);
}

function templateError(template: string, why: string): AgentError {
  return new AgentError('E_SUITE_RERUN_TEMPLATE', `rerun template ${JSON.stringify(template)}: ${why}`);
}

/** Checks a template's words: a program to run, and at least one placeholder (else every rerun runs the whole suite). */
export function checkTemplate(words: readonly string[], shown: string): readonly string[] {
  if (words.length === 0) throw templateError(shown, 'it names no program');
  if (!words.some((w) => PLACEHOLDERS.some((p) => w.includes(p)))) {
    throw templateError(shown, `it has none of the placeholders ${PLACEHOLDERS.join(', ')}: every rerun would run the same command`);
  }
  return words;
}

/** The argv of one rerun: each placeholder replaced in its own word (a word stays one argument). */
export function rerunArgv(words: readonly string[], target: RerunTarget): string[] {
  return words.map((w) => w.replace(PLACEHOLDER_RE, (_m, key: 'test' | 'name' | 'group') => (key === 'test' ? target.id : target[key])));
}
