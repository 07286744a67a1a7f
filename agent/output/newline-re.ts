// The master's `newline_re` (Python `re` source) as the RegExp that splits a command's output into lines.

import { AgentError } from '../errors.js';
import { pythonRegexSource } from '../py/regex.js';

/** buildbot-worker's default newline_re, as the master also sends it in set_worker_settings. */
export const DEFAULT_NEWLINE_RE = '(\\r\\n|\\r(?=.)|\\033\\[u|\\033\\[[0-9]+;[0-9]+[Hf]|\\033\\[2J|\\x08+)';

/** The newline_re as a global JavaScript RegExp; a source neither dialect can use fails with E_NEWLINE_RE. */
export function pythonRegexToJs(source: string): RegExp {
  try {
    return new RegExp(pythonRegexSource(source), 'g');
  } catch (err) {
    throw new AgentError('E_NEWLINE_RE', `newline_re ${JSON.stringify(source)} is not a usable regex: ${(err as Error).message}`);
  }
}

/** The source of the default newline_re's RegExp (a regex with this source can only match at \r, ESC or backspace). */
export const DEFAULT_NEWLINE_RE_JS_SOURCE = pythonRegexToJs(DEFAULT_NEWLINE_RE).source;
