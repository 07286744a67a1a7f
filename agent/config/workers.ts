// The `workers` of bbagent.json: further workers in the same agent process, each its own master connection and
// base directory. An entry holds per-worker fields over the top level, which stays worker #1.

import path from 'node:path';
import { CONFIG_FIELDS, configError, isField, parseFieldJson, show, unknownKeysError, type ConfigField } from './fields.js';
import { reconcileMasters } from './masters.js';
import type { WorkerConfig } from './schema.js';

export const WORKERS_KEY = 'workers';

/**
 * Whose each field is. 'worker': an entry may set it for its worker (the master connection, the base directory,
 * what the worker does with its builders, its secrets). 'agent': one value for the whole process (the umask, the
 * log file, the output budgets, how shutdown is asked for), set at the top level only.
 */
export const FIELD_SCOPE: { readonly [K in ConfigField]: 'agent' | 'worker' } = {
  basedir: 'worker',
  masterHost: 'worker',
  masterPort: 'worker',
  name: 'worker',
  password: 'worker',
  protocol: 'worker',
  keepalive: 'worker',
  keepaliveTimeout: 'worker',
  maxdelay: 'worker',
  maxretries: 'worker',
  umask: 'agent',
  allowShutdown: 'agent',
  deleteLeftoverDirs: 'worker',
  confineToBasedir: 'worker',
  numcpus: 'worker',
  useTls: 'worker',
  tlsCaFile: 'worker',
  connectionString: 'worker',
  masters: 'worker',
  failoverGrace: 'worker',
  proxyConnectionString: 'worker',
  logSize: 'agent',
  logCount: 'agent',
  outputRate: 'agent',
  outputBurst: 'agent',
  outputPolicy: 'agent',
  agentOutputRate: 'agent',
  agentOutputBurst: 'agent',
  spoolMaxBytes: 'agent',
  spoolMaxAgeS: 'agent',
  collapseProgress: 'agent',
  outputBatchBytes: 'agent',
  outputBatching: 'agent',
  deflate: 'worker',
  leanUpdates: 'worker',
  redact: 'worker',
  redactFile: 'worker',
  logLevel: 'agent',
  cacheDir: 'agent',
  cacheFastPath: 'agent',
  logFormat: 'agent',
  metricsAddr: 'agent',
  metricsAllowRemote: 'agent',
};

/** How messages name worker i of [top level, ...entries]. */
export function workerLabel(i: number): string {
  return i === 0 ? 'the top level' : `${WORKERS_KEY}[${i - 1}]`;
}

/**
 * The file's `workers` (raw JSON; undefined: none), each made a complete WorkerConfig: the top level's settings
 * with the entry's over them. Relative basedirs resolve against `relativeTo` (the file's directory).
 */
export function workerEntries(raw: unknown, top: WorkerConfig, source: string, relativeTo: string): WorkerConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw configError(source, `${WORKERS_KEY} must be a list of objects of settings, got ${show(raw, false)}`);
  return raw.map((entry, i) => workerEntry(entry, top, source, relativeTo, `${WORKERS_KEY}[${i}]`));
}

function workerEntry(entry: unknown, top: WorkerConfig, source: string, relativeTo: string, label: string): WorkerConfig {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw configError(source, `${label} must be an object of settings, got ${show(entry, false)}`);
  }
  const keys = Object.keys(entry);
  const unknown = keys.filter((k) => !isField(k));
  if (unknown.length > 0) throw unknownKeysError(unknown, source, `${label}.`, CONFIG_FIELDS);
  const agentWide = (keys as ConfigField[]).find((k) => FIELD_SCOPE[k] === 'agent');
  if (agentWide !== undefined) throw configError(source, `${label}.${agentWide} is agent-wide: set it at the top level only`);
  if (!keys.includes('basedir')) throw configError(source, `${label}.basedir is missing: each worker needs a base directory of its own`);
  // the fields only: the top level as loaded also lists the workers
  const config = Object.fromEntries(CONFIG_FIELDS.map((f) => [f, top[f]])) as unknown as WorkerConfig;
  // the top level's connection string would override the entry's own master address
  const ownMaster = keys.includes('masterHost') || keys.includes('masterPort');
  if (!keys.includes('connectionString') && (ownMaster || keys.includes('masters'))) config.connectionString = null;
  // nor would the top level's list of masters
  if (!keys.includes('masters') && (ownMaster || keys.includes('connectionString'))) config.masters = [];
  const values = entry as Record<ConfigField, unknown>;
  for (const field of keys as ConfigField[]) setParsed(config, field, values[field], source, `${label}.${field}`);
  const fault = reconcileMasters(config, !ownMaster);
  if (fault !== undefined) throw configError(source, `${label}: ${fault}`);
  config.basedir = path.resolve(relativeTo, config.basedir);
  if (config.protocol === 'msgpack' && config.name.includes(':')) {
    throw configError(source, `${label}.name must not contain ':' with protocol msgpack, got ${show(config.name, false)}`);
  }
  return config;
}

function setParsed<K extends ConfigField>(config: WorkerConfig, field: K, value: unknown, source: string, label: string): void {
  config[field] = parseFieldJson(field, value, source, label);
}

/** The master a worker connects to, for telling workers apart: the connection string, or host:port. */
function masterOf(w: WorkerConfig): string {
  return w.connectionString ?? `${w.masterHost.toLowerCase()}:${w.masterPort}`;
}

/** `inner` is `outer` or lies under it. */
function within(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/**
 * Checks what only all workers together show (index 0 is the top level): base directories distinct and none
 * inside another (the outer worker's leftover-directory clean-up would delete the inner one), and no two
 * workers with the same name on the same master (the master would take one for the other).
 */
export function checkWorkers(workers: readonly WorkerConfig[], source: string): void {
  workers.forEach((w, i) => {
    for (let j = 0; j < i; j++) {
      const other = workers[j] as WorkerConfig;
      const clash = basedirClash(other, w, j, i) ?? basedirClash(w, other, i, j);
      if (clash !== undefined) throw configError(source, clash);
      if (w.name === other.name && masterOf(w) === masterOf(other)) {
        throw configError(source, `${workerLabel(i)}.name "${w.name}" on master ${masterOf(w)} is ${workerLabel(j)}'s already: give each worker its own name`);
      }
    }
  });
}

function basedirClash(outer: WorkerConfig, inner: WorkerConfig, outerIndex: number, innerIndex: number): string | undefined {
  if (!within(outer.basedir, inner.basedir)) return undefined;
  const which = `${workerLabel(innerIndex)}.basedir ${inner.basedir}`;
  if (inner.basedir === outer.basedir) return `${which} is ${workerLabel(outerIndex)}'s basedir too: each worker needs its own`;
  const hint = outerIndex === 0 ? ' (set "basedir" at the top level, e.g. "w1", to put the workers side by side)' : '';
  return `${which} is inside ${workerLabel(outerIndex)}'s basedir ${outer.basedir}, whose leftover-directory clean-up would delete it${hint}`;
}
