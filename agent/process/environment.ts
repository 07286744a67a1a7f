// Builds a child's environment from the worker's and a step's `env`, with buildbot-worker's rules.

import { CommandArgsError } from '../errors.js';

const SUBST = /\$\{([0-9a-zA-Z_]*)\}/g;

/**
 * `None` deletes a key; a list is joined with the path separator; PYTHONPATH gets the worker's PYTHONPATH
 * appended; `${NAME}` expands from the worker's environment (empty when unset).
 */
export function buildEnvironment(base: Record<string, string>, env: unknown, pathSep: string): Record<string, string> {
  if (env === undefined || env === null) return { ...base };
  if (typeof env !== 'object' || Array.isArray(env)) throw new CommandArgsError(`'env' must be a map, got ${Array.isArray(env) ? 'a list' : typeof env}`);
  const wanted: Record<string, unknown> = { ...(env as Record<string, unknown>) };
  if (Object.keys(wanted).length === 0) return { ...base };
  for (const [k, v] of Object.entries(wanted)) {
    if (Array.isArray(v)) wanted[k] = v.join(pathSep);
  }
  if ('PYTHONPATH' in wanted && typeof wanted['PYTHONPATH'] === 'string') wanted['PYTHONPATH'] += pathSep + '${PYTHONPATH}';
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (!(k in wanted) || wanted[k] !== null) out[k] = v;
  }
  for (const [k, v] of Object.entries(wanted)) {
    if (v === null || v === undefined) continue;
    if (typeof v !== 'string') throw new CommandArgsError(`'env' values must be strings or lists; key '${k}' is incorrect`);
    out[k] = v.replace(SUBST, (_m, name: string) => base[name] ?? '');
  }
  return out;
}
