// Loads, validates and writes the agent's configuration: command-line flags > BBAGENT_* environment >
// <basedir>/bbagent.json > CONFIG_DEFAULTS. Every refusal is one line naming the field, its source and the fault.

import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../errors.js';
import {
  CONFIG_FIELDS,
  configError,
  flagName,
  envVarName,
  isField,
  parseFieldJson,
  parseFieldText,
  show,
  unknownKeysError,
  type ConfigField,
} from './fields.js';
import { reconcileMasters } from './masters.js';
import { metricsAddrFault } from './metrics.js';
import { CONFIG_DEFAULTS, CONFIG_FILE, type AgentConfig, type WorkerConfig } from './schema.js';
import { checkWorkers, WORKERS_KEY, workerEntries } from './workers.js';

export { CONFIG_FIELDS, ENV_PREFIX, envVarName, flagName, parseFieldText, parseUmask, type ConfigField } from './fields.js';

/** Values given on the command line: typed, or as the text the user typed (parsed like environment values). */
export type ConfigOverrides = { [K in ConfigField]?: WorkerConfig[K] | string };

/** One layer of configuration: the values it sets and where each came from (for error messages). */
export interface ConfigLayer {
  values: Partial<WorkerConfig>;
  sources: Partial<Record<ConfigField, string>>;
}

export { DEFAULT_MASTER_PORT } from './masters.js';

const REQUIRED: readonly ConfigField[] = ['masterHost', 'masterPort', 'name', 'password'];

// ---------------------------------------------------------------------------------------------------------
// Layers

function setField<K extends ConfigField>(layer: ConfigLayer, field: K, value: WorkerConfig[K], source: string): void {
  layer.values[field] = value;
  layer.sources[field] = source;
}

/** The top level's keys: the fields, and the further workers. */
const TOP_LEVEL_KEYS: readonly string[] = [...CONFIG_FIELDS, WORKERS_KEY];

/** The file's top-level values (its `workers` are read apart); unknown keys and wrongly typed values are refused. */
export function layerFromJson(raw: unknown, source: string, relativeTo: string): ConfigLayer {
  const entries = Object.entries(settingsObject(raw, source)).filter(([k]) => k !== WORKERS_KEY);
  const unknown = entries.map(([k]) => k).filter((k) => !isField(k));
  if (unknown.length > 0) throw unknownKeysError(unknown, source, '', TOP_LEVEL_KEYS);
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

function settingsObject(raw: unknown, source: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw configError(source, `expected a JSON object of settings, got ${show(raw, false)}`);
  }
  return raw as Record<string, unknown>;
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
  const values: Partial<AgentConfig> = { ...CONFIG_DEFAULTS, ...defaults, workers: [] };
  const sources: Partial<Record<ConfigField, string>> = {};
  /** Which layer set the master list and the single master: the more specific one wins. */
  let mastersLayer = -1;
  let hostLayer = -1;
  layers.forEach((layer, i) => {
    Object.assign(values, layer.values);
    Object.assign(sources, layer.sources);
    if (layer.values.masters !== undefined) mastersLayer = i;
    if (layer.values.masterHost !== undefined || layer.values.masterPort !== undefined) hostLayer = i;
  });
  const fault = reconcileMasters(values, mastersLayer > hostLayer);
  if (fault !== undefined) throw configError(sources.masters ?? 'config', fault);
  const absent = REQUIRED.filter((f) => values[f] === undefined);
  if (absent.length > 0) throw new AgentError('E_CONFIG', missing(absent));
  const config = values as AgentConfig;
  checkNameForProtocol(config, sources.name ?? 'config', 'name');
  const metricsFault = metricsAddrFault(config);
  if (metricsFault !== undefined) throw configError(sources.metricsAddr ?? sources.metricsAllowRemote ?? 'config', metricsFault);
  return config;
}

/** msgpack authenticates with HTTP Basic auth, where the first ':' ends the user name. */
export function checkNameForProtocol(config: WorkerConfig, source: string, label: string): void {
  if (config.protocol === 'msgpack' && config.name.includes(':')) {
    throw configError(source, `${label} must not contain ':' with protocol msgpack, got ${show(config.name, false)}`);
  }
}

/** Adds the file's further workers (its `workers`) to the merged top level, and checks them all together. */
function withWorkers(top: AgentConfig, raw: unknown, source: string, relativeTo: string): AgentConfig {
  const workers = workerEntries(settingsObject(raw, source)[WORKERS_KEY], top, source, relativeTo);
  checkWorkers([top, ...workers], source);
  return { ...top, workers };
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
  const top = mergeLayers(
    [layer],
    { basedir: path.resolve(relativeTo) },
    (fields) => `${source}: ${fields.length === 1 ? 'required key' : 'required keys'} ${fields.join(', ')} ${fields.length === 1 ? 'is' : 'are'} missing`,
  );
  return withWorkers(top, raw, source, relativeTo);
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
  const top = mergeLayers(
    layers,
    { basedir: dir },
    (fields) =>
      `${file}: ${fields.length === 1 ? 'required key' : 'required keys'} ${fields.join(', ')} ${fields.length === 1 ? 'is' : 'are'} missing` +
      ` (or set ${fields.map(envVarName).join(', ')})`,
  );
  return withWorkers(top, raw, file, dir);
}

export function formatUmask(umask: number): string {
  return `0o${umask.toString(8).padStart(3, '0')}`;
}

/**
 * Writes <basedir>/bbagent.json atomically (a temporary file in the same directory, then rename) with mode 0600,
 * because it holds the worker's password. `relocatable` stores basedir as '.' (the file's own directory).
 * The config is validated first, so a bad value is never written. Returns the file's path. Only the top level
 * is written: `create-worker` makes one worker, and an operator adds `workers` by hand.
 */
export function writeConfig(basedir: string, config: WorkerConfig, opts: { relocatable?: boolean } = {}): string {
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
