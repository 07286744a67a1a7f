// Loads, validates and writes the agent's configuration: command-line flags > BBAGENT_* environment >
// <basedir>/bbagent.json > CONFIG_DEFAULTS. Every refusal is one line naming the field, its source and the fault.

import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../errors.js';
import { CONFIG_DEFAULTS, CONFIG_FILE, type AgentConfig } from './schema.js';

export type ConfigField = keyof AgentConfig;

/** Values given on the command line: typed, or as the text the user typed (parsed like environment values). */
export type ConfigOverrides = { [K in ConfigField]?: AgentConfig[K] | string };

/** One layer of configuration: the values it sets and where each came from (for error messages). */
export interface ConfigLayer {
  values: Partial<AgentConfig>;
  sources: Partial<Record<ConfigField, string>>;
}

/** Environment variables are BBAGENT_ + the field in SCREAMING_SNAKE (masterHost -> BBAGENT_MASTER_HOST). */
export const ENV_PREFIX = 'BBAGENT_';

/** buildbot-worker's port when MASTERHOST:PORT has no port. */
export const DEFAULT_MASTER_PORT = 9989;

const REQUIRED: readonly ConfigField[] = ['masterHost', 'masterPort', 'name', 'password'];

// ---------------------------------------------------------------------------------------------------------
// Field rules. One entry per schema field: adding a field to AgentConfig without a rule fails to compile.

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

const RULES: { [K in ConfigField]: FieldRule<AgentConfig[K]> } = {
  basedir: text('a non-empty path', (s) => s.length > 0),
  masterHost: text('a host name or IP address (not a URL)', hostLike),
  masterPort: int(1, 65535, 'an integer from 1 to 65535'),
  name: text('a non-empty string', (s) => s.length > 0),
  password: text('a string', () => true, true),
  protocol: choice('"pb" or "msgpack"', { pb: 'pb', msgpack: 'msgpack', msgpack_experimental_v7: 'msgpack' }),
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
  deflate: bool(),
  leanUpdates: bool(),
  redact: stringList(),
  redactFile: nullable(
    text('', (s) => s.length > 0),
    'a path or null',
  ),
};

/** The schema's fields in the order the file lists them. */
export const CONFIG_FIELDS = Object.keys(RULES) as ConfigField[];

function isField(key: string): key is ConfigField {
  return Object.hasOwn(RULES, key);
}

export function envVarName(field: ConfigField): string {
  return ENV_PREFIX + field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

export function flagName(field: ConfigField): string {
  return '--' + field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function show(value: unknown, secret: boolean): string {
  if (secret) return value === null ? 'null' : `a ${Array.isArray(value) ? 'list' : typeof value}`;
  const s = value === undefined ? 'nothing' : JSON.stringify(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function configError(source: string, message: string): AgentError {
  return new AgentError('E_CONFIG', `${source}: ${message}`);
}

function badValue(field: ConfigField, value: unknown, source: string): AgentError {
  const rule = RULES[field];
  return configError(source, `${field} must be ${rule.expect}, got ${show(value, rule.secret === true)}`);
}

/** Parses one field's value typed as text (an environment variable or a flag); throws E_CONFIG naming source. */
export function parseFieldText<K extends ConfigField>(field: K, value: string, source: string): AgentConfig[K] {
  const rule = RULES[field] as FieldRule<AgentConfig[K]>;
  const v = rule.fromText(value);
  if (v === BAD) throw badValue(field, value, source);
  return v;
}

function parseFieldJson<K extends ConfigField>(field: K, value: unknown, source: string): AgentConfig[K] {
  const rule = RULES[field] as FieldRule<AgentConfig[K]>;
  const v = rule.fromJson(value);
  if (v === BAD) throw badValue(field, value, source);
  return v;
}

function setField<K extends ConfigField>(layer: ConfigLayer, field: K, value: AgentConfig[K], source: string): void {
  layer.values[field] = value;
  layer.sources[field] = source;
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

function unknownKeysError(keys: string[], source: string): AgentError {
  const described = keys.map((k) => {
    const near = CONFIG_FIELDS.find((f) => f.toLowerCase() === k.toLowerCase().replace(/[-_]/g, '') || distance(f, k) <= 2);
    return near ? `"${k}" (did you mean "${near}"?)` : `"${k}"`;
  });
  const what = keys.length === 1 ? 'unknown key' : 'unknown keys';
  return configError(source, `${what} ${described.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------------------
// Layers

/** The file's (or any JSON object's) values; unknown keys and wrongly typed values are refused. */
export function layerFromJson(raw: unknown, source: string, relativeTo: string): ConfigLayer {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw configError(source, `expected a JSON object of settings, got ${show(raw, false)}`);
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  const unknown = entries.map(([k]) => k).filter((k) => !isField(k));
  if (unknown.length > 0) throw unknownKeysError(unknown, source);
  const layer: ConfigLayer = { values: {}, sources: {} };
  for (const [key, value] of entries) {
    const field = key as ConfigField;
    let v = parseFieldJson(field, value, source);
    // '.' (a relocatable config) and other relative paths are relative to the config file's directory.
    if (field === 'basedir') v = path.resolve(relativeTo, v as string);
    setField(layer, field, v, source);
  }
  return layer;
}

/**
 * BBAGENT_<FIELD> environment variables. Empty variables count as unset; unknown BBAGENT_* variables are
 * ignored (other parts of bbagent use that prefix for their own purposes). The base directory is not taken
 * from the environment: it is where the config file is read from.
 */
export function layerFromEnv(env: NodeJS.ProcessEnv): ConfigLayer {
  const layer: ConfigLayer = { values: {}, sources: {} };
  for (const field of CONFIG_FIELDS) {
    if (field === 'basedir') continue;
    const name = envVarName(field);
    const value = env[name];
    if (value === undefined || value === '') continue;
    setField(layer, field, parseFieldText(field, value, name), name);
  }
  return layer;
}

/** Command-line values; text is parsed like environment values. sourceOf names the flag in messages. */
export function layerFromOverrides(
  overrides: ConfigOverrides,
  sourceOf: (field: ConfigField) => string = flagName,
  relativeTo: string = process.cwd(),
): ConfigLayer {
  const layer: ConfigLayer = { values: {}, sources: {} };
  const unknown = Object.keys(overrides).filter((k) => !isField(k));
  if (unknown.length > 0) throw unknownKeysError(unknown, 'command line');
  for (const field of CONFIG_FIELDS) {
    const value = overrides[field];
    if (value === undefined) continue;
    const source = sourceOf(field);
    let v = typeof value === 'string' ? parseFieldText(field, value, source) : parseFieldJson(field, value, source);
    if (field === 'basedir') v = path.resolve(relativeTo, v as string);
    setField(layer, field, v, source);
  }
  return layer;
}

/**
 * Stacks layers (lowest precedence first) over CONFIG_DEFAULTS and checks what no single layer can: that the
 * required fields are set and that fields agree. `missing` describes, for a missing field, where to set it.
 */
export function mergeLayers(layers: readonly ConfigLayer[], defaults: { basedir: string }, missing: (fields: ConfigField[]) => string): AgentConfig {
  const values: Partial<AgentConfig> = { ...CONFIG_DEFAULTS, ...defaults };
  const sources: Partial<Record<ConfigField, string>> = {};
  for (const layer of layers) {
    Object.assign(values, layer.values);
    Object.assign(sources, layer.sources);
  }
  const absent = REQUIRED.filter((f) => values[f] === undefined);
  if (absent.length > 0) throw new AgentError('E_CONFIG', missing(absent));
  const config = values as AgentConfig;
  // msgpack authenticates with HTTP Basic auth, where the first ':' ends the user name.
  if (config.protocol === 'msgpack' && config.name.includes(':')) {
    throw configError(sources.name ?? 'config', `name must not contain ':' with protocol msgpack, got ${show(config.name, false)}`);
  }
  return config;
}

// ---------------------------------------------------------------------------------------------------------
// Public entry points

export function configPath(basedir: string): string {
  return path.join(path.resolve(basedir), CONFIG_FILE);
}

/**
 * Validates a complete configuration object (the parsed file): unknown keys and bad values are refused,
 * missing optional fields take CONFIG_DEFAULTS, a missing basedir is `relativeTo` (the file's directory).
 */
export function validateConfig(raw: unknown, source: string, relativeTo: string = process.cwd()): AgentConfig {
  const layer = layerFromJson(raw, source, relativeTo);
  return mergeLayers(
    [layer],
    { basedir: path.resolve(relativeTo) },
    (fields) => `${source}: ${fields.length === 1 ? 'required key' : 'required keys'} ${fields.join(', ')} ${fields.length === 1 ? 'is' : 'are'} missing`,
  );
}

/** Reads <basedir>/bbagent.json and applies the environment and the command-line overrides over it. */
export function loadConfig(basedir: string, overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const dir = path.resolve(basedir);
  const file = configPath(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw configError(file, `not found; is ${dir} a bbagent worker directory? (create one with "bbagent create-worker")`);
    }
    throw configError(file, `cannot read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw configError(file, `not valid JSON: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  const layers = [layerFromJson(raw, file, dir), layerFromEnv(env), layerFromOverrides(overrides, flagName, dir)];
  return mergeLayers(
    layers,
    { basedir: dir },
    (fields) =>
      `${file}: ${fields.length === 1 ? 'required key' : 'required keys'} ${fields.join(', ')} ${fields.length === 1 ? 'is' : 'are'} missing` +
      ` (or set ${fields.map(envVarName).join(', ')})`,
  );
}

export function formatUmask(umask: number): string {
  return `0o${umask.toString(8).padStart(3, '0')}`;
}

/**
 * Writes <basedir>/bbagent.json atomically (a temporary file in the same directory, then rename) with mode 0600,
 * because it holds the worker's password. `relocatable` stores basedir as '.' (the file's own directory).
 * The config is validated first, so a bad value is never written. Returns the file's path.
 */
export function writeConfig(basedir: string, config: AgentConfig, opts: { relocatable?: boolean } = {}): string {
  const dir = path.resolve(basedir);
  const file = configPath(dir);
  const out: Record<string, unknown> = {};
  for (const field of CONFIG_FIELDS) {
    const value = config[field];
    if (field === 'basedir') out[field] = opts.relocatable ? '.' : path.resolve(dir, config.basedir);
    else if (field === 'umask') out[field] = value === null ? null : formatUmask(value as number);
    else out[field] = value;
  }
  validateConfig(out, file, dir);
  const tmp = path.join(dir, `.${CONFIG_FILE}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o600);
    // The umask may have taken bits off 0600; the file must be exactly owner read/write.
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(out, null, 2) + '\n');
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // the temporary file was never created, or is already gone
    }
    throw new AgentError('E_CONFIG_WRITE', `${file}: cannot write: ${(err as Error).message}`);
  }
  return file;
}
