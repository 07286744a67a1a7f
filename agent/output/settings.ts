// Output settings of a connection: buildbot-worker's defaults, replaced by the master's set_worker_settings.

import { AgentError } from '../errors.js';
import { DEFAULT_NEWLINE_RE, pythonRegexToJs } from './newline-re.js';

export interface OutputSettings {
  bufferSize: number;
  bufferTimeoutMs: number;
  maxLineLength: number;
  newlineRe: RegExp;
}

export function defaultOutputSettings(): OutputSettings {
  return { bufferSize: 64 * 1024, bufferTimeoutMs: 5000, maxLineLength: 4096, newlineRe: pythonRegexToJs(DEFAULT_NEWLINE_RE) };
}

/** Validates the master's set_worker_settings args; throws naming the bad key. */
export function parseWorkerSettings(args: unknown): OutputSettings {
  if (typeof args !== 'object' || args === null) throw new AgentError('E_SETTINGS', 'set_worker_settings: args must be a map');
  const a = args as Record<string, unknown>;
  for (const k of ['newline_re', 'max_line_length', 'buffer_timeout', 'buffer_size']) {
    if (!(k in a)) throw new AgentError('E_SETTINGS', 'message did not contain obligatory settings for worker');
  }
  const num = (k: string, min: number): number => {
    const v = a[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
      throw new AgentError('E_SETTINGS', `set_worker_settings: '${k}' must be a number >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  if (typeof a['newline_re'] !== 'string') throw new AgentError('E_SETTINGS', `set_worker_settings: 'newline_re' must be a string`);
  return {
    bufferSize: num('buffer_size', 1),
    bufferTimeoutMs: num('buffer_timeout', 0) * 1000,
    maxLineLength: num('max_line_length', 2),
    newlineRe: pythonRegexToJs(a['newline_re']),
  };
}
