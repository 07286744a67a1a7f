// Per-step output limits: the agent's config, overridden by variables the step sets in its environment.

import { AgentError } from '../errors.js';

export type OutputPolicy = 'spool' | 'throttle' | 'truncate';

export interface OutputLimits {
  /** Bytes per second; null: unlimited (output goes exactly as buildbot-worker sends it). */
  rate: number | null;
  burst: number;
  policy: OutputPolicy;
}

/** The variables a step sets to override its limits. */
export const LIMIT_ENV = { rate: 'BBAGENT_OUTPUT_RATE', burst: 'BBAGENT_OUTPUT_BURST', policy: 'BBAGENT_OUTPUT_POLICY' } as const;

/** "65536", "64k", "10M", "unlimited" -> bytes (or null for unlimited). */
export function parseByteSize(text: string, what: string): number | null {
  const t = text.trim().toLowerCase();
  if (t === 'unlimited' || t === 'none' || t === '') return null;
  const m = /^(\d+)([kmg]i?b?)?$/.exec(t);
  if (!m) throw new AgentError('E_OUTPUT_LIMIT', `${what}: expected a number of bytes like 65536, 64k or 10M, got ${JSON.stringify(text)}`);
  const unit = m[2]?.[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

/** Applies a step's BBAGENT_OUTPUT_* variables (from its `env` argument) to the configured limits. */
export function limitsFromStepEnv(base: OutputLimits, env: unknown): OutputLimits {
  if (typeof env !== 'object' || env === null) return base;
  const e = env as Record<string, unknown>;
  const out = { ...base };
  const rate = e[LIMIT_ENV.rate];
  if (typeof rate === 'string') out.rate = parseByteSize(rate, LIMIT_ENV.rate);
  const burst = e[LIMIT_ENV.burst];
  if (typeof burst === 'string') out.burst = parseByteSize(burst, LIMIT_ENV.burst) ?? Number.MAX_SAFE_INTEGER;
  const policy = e[LIMIT_ENV.policy];
  if (typeof policy === 'string') {
    if (policy !== 'spool' && policy !== 'throttle' && policy !== 'truncate') {
      throw new AgentError('E_OUTPUT_LIMIT', `${LIMIT_ENV.policy}: expected spool, throttle or truncate, got ${JSON.stringify(policy)}`);
    }
    out.policy = policy;
  }
  return out;
}
