// A worker's masters in order (bbagent.json `masters`, the repeatable --master flag): the agent attaches to the
// first that accepts and fails over down the list (agent/connection/failover.ts). The single masterHost/masterPort
// of buildbot-worker's form stays valid and means a list of one; when `masters` is set, masterHost and masterPort
// name its first entry.

import { PROTOCOL_NAMES, type MasterEntry, type WorkerConfig } from './schema.js';

/** buildbot-worker's port when HOST:PORT has no port. */
export const DEFAULT_MASTER_PORT = 9989;

export const MASTERS_EXPECT =
  'a list of masters in order, each "HOST:PORT" or {"host": ..., "port": ...} with optional protocol, connectionString, useTls and tlsCaFile';

const ENTRY_KEYS = ['host', 'port', 'protocol', 'connectionString', 'useTls', 'tlsCaFile'] as const;

const hostLike = (s: string): boolean => s.length > 0 && !/\s/.test(s) && !s.includes('/');
const portLike = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;

/** HOST[:PORT] ([v6addr]:port for IPv6), as buildbot-worker reads MASTERHOST[:PORT]; undefined if malformed. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const v6 = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(s);
  const parts = v6 ? [v6[1] ?? '', v6[2]] : s.split(':');
  if (parts.length > 2) return undefined;
  const [host = '', portText] = parts;
  const port = portText === undefined ? DEFAULT_MASTER_PORT : /^[0-9]+$/.test(portText) ? Number(portText) : NaN;
  return hostLike(host) && portLike(port) ? { host, port } : undefined;
}

function optional<T>(v: unknown, ok: (v: unknown) => v is T): T | undefined | false {
  if (v === undefined) return undefined;
  return ok(v) ? v : false;
}

const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isPathOrNull = (v: unknown): v is string | null => v === null || (typeof v === 'string' && v.length > 0);
const isProtocolName = (v: unknown): v is keyof typeof PROTOCOL_NAMES => typeof v === 'string' && Object.hasOwn(PROTOCOL_NAMES, v);

function entryFromJson(v: unknown): MasterEntry | undefined {
  if (typeof v === 'string') return parseHostPort(v);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (!Object.keys(o).every((k) => (ENTRY_KEYS as readonly string[]).includes(k))) return undefined;
  if (typeof o['host'] !== 'string' || !hostLike(o['host']) || !portLike(o['port'])) return undefined;
  const entry: MasterEntry = { host: o['host'], port: o['port'] };
  const protocol = optional(o['protocol'], isProtocolName);
  const connectionString = optional(o['connectionString'], isPathOrNull);
  const useTls = optional(o['useTls'], isBool);
  const tlsCaFile = optional(o['tlsCaFile'], isPathOrNull);
  if (protocol === false || connectionString === false || useTls === false || tlsCaFile === false) return undefined;
  if (protocol !== undefined) entry.protocol = PROTOCOL_NAMES[protocol];
  if (connectionString !== undefined) entry.connectionString = connectionString;
  if (useTls !== undefined) entry.useTls = useTls;
  if (tlsCaFile !== undefined) entry.tlsCaFile = tlsCaFile;
  return entry;
}

/** The `masters` of the file (or a typed override); undefined if anything in it is malformed. */
export function mastersFromJson(v: unknown): MasterEntry[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const entries = v.map(entryFromJson);
  return entries.every((e) => e !== undefined) ? (entries as MasterEntry[]) : undefined;
}

/** Masters typed as text (BBAGENT_MASTERS, --master given once or more): HOST[:PORT] separated by commas or lines. */
export function mastersFromText(s: string): MasterEntry[] | undefined {
  const entries = s
    .split(/[\n,]/)
    .map((x) => x.trim())
    .filter((x) => x.length > 0)
    .map(parseHostPort);
  return entries.every((e) => e !== undefined) ? (entries as MasterEntry[]) : undefined;
}

/**
 * Makes masterHost/masterPort name the list's first master when `masters` is set (a config may then leave them
 * out); returns a fault to report, or undefined. `mastersWins`: the list was given where the single master was
 * not (a more specific source, or the single master is absent).
 */
export function reconcileMasters(config: Partial<WorkerConfig>, mastersWins: boolean): string | undefined {
  const first = config.masters?.[0];
  if (first === undefined) return undefined;
  if (config.connectionString) {
    return 'connectionString and masters cannot both be set: give each master its own connectionString in its masters entry';
  }
  if (!mastersWins && config.masterHost !== undefined && (config.masterHost !== first.host || config.masterPort !== first.port)) {
    return `masterHost/masterPort (${config.masterHost}:${config.masterPort}) overrides masters, whose first entry is ${first.host}:${first.port}: set masters instead (--master HOST:PORT, once per master)`;
  }
  config.masterHost = first.host;
  config.masterPort = first.port;
  const name = config.name ?? '';
  const msgpack = config.masters?.find((m) => (m.protocol ?? config.protocol) === 'msgpack');
  if (msgpack && name.includes(':')) return `name must not contain ':' with protocol msgpack (master ${msgpack.host}:${msgpack.port})`;
  return undefined;
}
