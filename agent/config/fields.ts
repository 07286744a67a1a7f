// The config's field table: one rule per schema field (what a valid value looks like, how it is parsed from
// JSON and from text), and the one-line messages that name a field, its source and the fault.

import { AgentError } from '../errors.js';
import { MASTERS_EXPECT, mastersFromJson, mastersFromText } from './masters.js';
import { parseMetricsAddr } from './metrics.js';
import { proxyProblem } from './proxy.js';
import { PROTOCOL_NAMES, type WorkerConfig } from './schema.js';

/** A field of the schema (one setting; `workers` is not one: load.ts reads it apart). */
export type ConfigField = keyof WorkerConfig;

/** Environment variables are BBAGENT_ + the field in SCREAMING_SNAKE (masterHost -> BBAGENT_MASTER_HOST). */
export const ENV_PREFIX = 'BBAGENT_';

const BAD = Symbol('bad');
type Parsed<T> = T | typeof BAD;

interface FieldRule<T> {
  /** What a valid value looks like, completing "<field> must be ...". */
  expect: string;
  /** A value from JSON (the file) or a typed override. */
  fromJson(v: unknown): Parsed<T>;
  /** A value typed as text (environment variable, command-line flag). */
  fromText(s: string): Parsed<T>;
  /** Never echo the value in messages (the password). */
  secret?: boolean;
}

const DECIMAL = /^[0-9]+$/;

function int(min: number, max: number, expect: string): FieldRule<number> {
  const check = (n: number): Parsed<number> => (Number.isInteger(n) && n >= min && n <= max ? n : BAD);
  return {
    expect,
    fromJson: (v) => (typeof v === 'number' ? check(v) : BAD),
    fromText: (s) => (DECIMAL.test(s) ? check(Number(s)) : BAD),
  };
}

/** null is spelled None (buildbot-worker's spelling) or null in text, null in JSON. */
function nullable<T>(rule: FieldRule<T>, expect: string): FieldRule<T | null> {
  return {
    expect,
    fromJson: (v) => (v === null ? null : rule.fromJson(v)),
    fromText: (s) => (/^(none|null)$/i.test(s) ? null : rule.fromText(s)),
  };
}

function text(expect: string, ok: (s: string) => boolean, secret = false): FieldRule<string> {
  const check = (s: string): Parsed<string> => (ok(s) ? s : BAD);
  return { expect, secret, fromJson: (v) => (typeof v === 'string' ? check(v) : BAD), fromText: check };
}

function bool(): FieldRule<boolean> {
  return {
    expect: 'true or false',
    fromJson: (v) => (typeof v === 'boolean' ? v : BAD),
    fromText: (s) => {
      const t = s.toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(t)) return true;
      if (['false', 'no', 'off', '0'].includes(t)) return false;
      return BAD;
    },
  };
}

/** A list of strings: a JSON array in the file, one value per line in text (environment). */
function stringList(): FieldRule<string[]> {
  return {
    expect: 'a list of strings',
    secret: true,
    fromJson: (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? [...(v as string[])] : BAD),
    fromText: (s) => s.split('\n').filter((x) => x.length > 0),
  };
}

/** '"a", "b" or "c"', for the message of a choice. */
function oneOf(names: readonly string[]): string {
  const quoted = names.map((n) => JSON.stringify(n));
  return quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}` : (quoted[0] ?? '');
}

function choice<T extends string>(expect: string, map: Record<string, T>): FieldRule<T> {
  const pick = (s: string): Parsed<T> => (Object.hasOwn(map, s) ? (map[s] as T) : BAD);
  return { expect, fromJson: (v) => (typeof v === 'string' ? pick(v) : BAD), fromText: pick };
}

const UMASK_MAX = 0o777;

/** A umask as buildbot-worker accepts it (a Python literal): 0o22, and also 022 (octal) or 18 (decimal). */
export function parseUmask(s: string): number | undefined {
  let n: number;
  if (/^0o[0-7]+$/i.test(s)) n = parseInt(s.slice(2), 8);
  else if (/^0[0-7]*$/.test(s)) n = parseInt(s, 8);
  else if (/^[1-9][0-9]*$/.test(s)) n = Number(s);
  else return undefined;
  return n <= UMASK_MAX ? n : undefined;
}

const umaskRule: FieldRule<number> = {
  expect: 'an octal umask from 0o000 to 0o777 (e.g. "0o022") or null',
  fromJson: (v) => {
    if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= UMASK_MAX ? v : BAD;
    // The file stores umasks as "0o022": JSON has no octal numbers.
    return typeof v === 'string' ? (parseUmask(v) ?? BAD) : BAD;
  },
  fromText: (s) => parseUmask(s) ?? BAD,
};

const hostLike = (s: string): boolean => s.length > 0 && !/\s/.test(s) && !s.includes('/');

/** One entry per schema field: adding a field to WorkerConfig without a rule fails to compile. */
const RULES: { [K in ConfigField]: FieldRule<WorkerConfig[K]> } = {
  basedir: text('a non-empty path', (s) => s.length > 0),
  masterHost: text('a host name or IP address (not a URL)', hostLike),
  masterPort: int(1, 65535, 'an integer from 1 to 65535'),
  name: text('a non-empty string', (s) => s.length > 0),
  password: text('a string', () => true, true),
  protocol: choice(oneOf([...new Set(Object.values(PROTOCOL_NAMES))]), PROTOCOL_NAMES),
  keepalive: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of seconds >= 0 (0 disables)'),
  keepaliveTimeout: nullable(int(1, Number.MAX_SAFE_INTEGER, ''), 'an integer number of seconds >= 1 or null (automatic: one keepalive interval, 3-15 s)'),
  maxdelay: int(1, Number.MAX_SAFE_INTEGER, 'an integer number of seconds >= 1'),
  maxretries: nullable(int(0, Number.MAX_SAFE_INTEGER, ''), 'an integer >= 0 or null (retry forever)'),
  umask: nullable(umaskRule, umaskRule.expect),
  allowShutdown: nullable(choice('', { signal: 'signal', file: 'file' }), '"signal", "file" or null'),
  deleteLeftoverDirs: bool(),
  confineToBasedir: bool(),
  numcpus: nullable(int(1, Number.MAX_SAFE_INTEGER, ''), 'an integer >= 1 or null (detect)'),
  useTls: bool(),
  tlsCaFile: nullable(
    text('', (s) => s.length > 0),
    'a path to a PEM file or null',
  ),
  connectionString: nullable(
    text('', (s) => s.length > 0),
    'a non-empty endpoint string or null',
  ),
  // failover and proxy (config/masters.ts)
  masters: { expect: MASTERS_EXPECT, fromJson: (v) => mastersFromJson(v) ?? BAD, fromText: (s) => mastersFromText(s) ?? BAD },
  failoverGrace: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of seconds >= 0'),
  proxyConnectionString: nullable(
    text('', (s) => proxyProblem(s) === undefined),
    'a proxy endpoint (tcp:host=HOST:port=PORT or http://HOST:PORT) or null',
  ),
  logSize: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of bytes >= 0 (0 never rotates)'),
  logCount: nullable(int(0, Number.MAX_SAFE_INTEGER, ''), 'an integer >= 0 or null (keep all)'),
  outputRate: nullable(int(1, Number.MAX_SAFE_INTEGER, ''), 'an integer number of bytes per second >= 1 or null (unlimited)'),
  outputBurst: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of bytes >= 0'),
  outputPolicy: choice('"spool", "throttle" or "truncate"', { spool: 'spool', throttle: 'throttle', truncate: 'truncate' }),
  agentOutputRate: nullable(int(1, Number.MAX_SAFE_INTEGER, ''), 'an integer number of bytes per second >= 1 or null (unlimited)'),
  agentOutputBurst: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of bytes >= 0'),
  spoolMaxBytes: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of bytes >= 0'),
  spoolMaxAgeS: int(0, Number.MAX_SAFE_INTEGER, 'an integer number of seconds >= 0'),
  collapseProgress: bool(),
  outputBatchBytes: nullable(int(1024, 512 * 1024, ''), 'an integer number of bytes from 1024 to 524288 or null'),
  outputBatching: choice('"aligned" or "reference"', { aligned: 'aligned', reference: 'reference' }),
  deflate: bool(),
  leanUpdates: bool(),
  redact: stringList(),
  redactFile: nullable(
    text('', (s) => s.length > 0),
    'a path or null',
  ),
  logLevel: choice('"debug" or "info"', { debug: 'debug', info: 'info' }),
  cacheDir: nullable(
    text('', (s) => s.length > 0),
    'a directory path or null (BASEDIR/cache)',
  ),
  cacheFastPath: bool(),
  logFormat: choice('"text" or "json"', { text: 'text', json: 'json' }),
  metricsAddr: nullable(
    text('', (s) => parseMetricsAddr(s) !== undefined),
    'HOST:PORT (e.g. 127.0.0.1:9101) or null (no metrics)',
  ),
  metricsAllowRemote: bool(),
};

/** The schema's fields in the order the file lists them. */
export const CONFIG_FIELDS = Object.keys(RULES) as ConfigField[];

export function isField(key: string): key is ConfigField {
  return Object.hasOwn(RULES, key);
}

export function envVarName(field: ConfigField): string {
  return ENV_PREFIX + field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

export function flagName(field: ConfigField): string {
  if (field === 'masters') return '--master'; // given once per master
  return '--' + field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function show(value: unknown, secret: boolean): string {
  if (secret) return value === null ? 'null' : `a ${Array.isArray(value) ? 'list' : typeof value}`;
  const s = value === undefined ? 'nothing' : JSON.stringify(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function configError(source: string, message: string): AgentError {
  return new AgentError('E_CONFIG', `${source}: ${message}`);
}

/** `label` names the field in the message (default: the field; `workers[1].name` in an entry). */
function badValue(field: ConfigField, value: unknown, source: string, label: string = field): AgentError {
  const rule = RULES[field];
  return configError(source, `${label} must be ${rule.expect}, got ${show(value, rule.secret === true)}`);
}

/** Parses one field's value typed as text (an environment variable or a flag); throws E_CONFIG naming source. */
export function parseFieldText<K extends ConfigField>(field: K, value: string, source: string): WorkerConfig[K] {
  const rule = RULES[field] as FieldRule<WorkerConfig[K]>;
  const v = rule.fromText(value);
  if (v === BAD) throw badValue(field, value, source);
  return v;
}

/** Parses one field's value from JSON (the file, a typed override); throws E_CONFIG naming source and label. */
export function parseFieldJson<K extends ConfigField>(field: K, value: unknown, source: string, label: string = field): WorkerConfig[K] {
  const rule = RULES[field] as FieldRule<WorkerConfig[K]>;
  const v = rule.fromJson(value);
  if (v === BAD) throw badValue(field, value, source, label);
  return v;
}

/** Levenshtein distance, for "did you mean" on misspelt keys. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/**
 * Refuses unknown keys, suggesting the key meant among `known`; `prefix` names where they are (`workers[1].`).
 */
export function unknownKeysError(keys: string[], source: string, prefix = '', known: readonly string[] = CONFIG_FIELDS): AgentError {
  const described = keys.map((k) => {
    const near = known.find((f) => f.toLowerCase() === k.toLowerCase().replace(/[-_]/g, '') || distance(f, k) <= 2);
    return near ? `"${prefix}${k}" (did you mean "${near}"?)` : `"${prefix}${k}"`;
  });
  const what = keys.length === 1 ? 'unknown key' : 'unknown keys';
  return configError(source, `${what} ${described.join(', ')}`);
}
