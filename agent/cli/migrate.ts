// `bbagent create-worker --from-buildbot-worker BASEDIR`: what a buildbot-worker basedir's buildbot.tac (read by
// tac.ts, never run) means as bbagent.json settings, with the tac line each came from; the info/ files carried
// to another target; and whether the old worker still runs there.

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ConfigField, ConfigOverrides } from '../config/load.js';
import { AgentError } from '../errors.js';
import { isProcessAlive } from './pidfile.js';
import { TAC_FILE, type Tac, type TacValue, type WorkerParam } from './tac.js';

/** The tac's settings for bbagent. */
export interface Migration {
  overrides: ConfigOverrides;
  /** Where each value came from: "<file> line N (param)". */
  sources: Partial<Record<ConfigField, string>>;
  /** The tac's basedir is '.' (buildbot-worker create-worker --relocatable). */
  relocatable: boolean;
  /** The tac's basedir resolved (its own directory when relocatable). */
  basedir: string;
}

/** buildbot-worker's keepalive default: carried over as is, but worth a word (bbagent's is 60). */
export const BUILDBOT_WORKER_KEEPALIVE = 600;

/** Worker parameters with the field each sets; values are the tac's (None: the field's null, or its default). */
const PARAM_FIELDS: Partial<Record<WorkerParam, ConfigField>> = {
  buildmaster_host: 'masterHost',
  port: 'masterPort',
  name: 'name',
  passwd: 'password',
  keepalive: 'keepalive',
  keepaliveTimeout: 'keepaliveTimeout',
  umask: 'umask',
  maxdelay: 'maxdelay',
  numcpus: 'numcpus',
  protocol: 'protocol',
  useTls: 'useTls',
  allow_shutdown: 'allowShutdown',
  maxRetries: 'maxretries',
  connection_string: 'connectionString',
  delete_leftover_dirs: 'deleteLeftoverDirs',
};

/** Worker's own meaning of None for parameters whose bbagent field has no null. */
const NONE_MEANS: Partial<Record<WorkerParam, unknown>> = {
  keepalive: 0, // Worker: keepalive 0 or None sends none
};

/** Parameters Worker tests for truth: create-worker writes their flags as 1 or 0. */
const TRUTH_PARAMS: ReadonlySet<WorkerParam> = new Set(['useTls', 'delete_leftover_dirs']);

function refuse(tac: Tac, v: TacValue, message: string): AgentError {
  return new AgentError('E_TAC', `${tac.file} line ${v.line}: ${message}`);
}

/** The settings of `tac` (in `dir`, the buildbot-worker basedir) as bbagent config values. */
export function migrationFromTac(tac: Tac, dir: string): Migration {
  const m: Migration = { overrides: {}, sources: {}, relocatable: false, basedir: path.resolve(dir) };
  const set = (field: ConfigField, value: unknown, v: TacValue, what: string): void => {
    (m.overrides as Record<string, unknown>)[field] = value;
    m.sources[field] = `${tac.file} line ${v.line} (${what})`;
  };
  for (const [param, v] of Object.entries(tac.args) as [WorkerParam, TacValue][]) {
    const field = PARAM_FIELDS[param];
    if (field !== undefined) {
      if (TRUTH_PARAMS.has(param) && typeof v.value !== 'string') set(field, Boolean(v.value), v, param);
      else if (v.value === null && Object.hasOwn(NONE_MEANS, param)) set(field, NONE_MEANS[param], v, param);
      // Worker: `if maxRetries and ...`: 0 retries forever, as None does
      else if (param === 'maxRetries' && v.value === 0) set(field, null, v, param);
      else if (v.value !== null || !['buildmaster_host', 'port', 'maxdelay', 'protocol'].includes(param)) set(field, v.value, v, param);
      continue;
    }
    otherParam(tac, m, param, v, set);
  }
  hostFromConnectionString(tac, m, set);
  logSettings(tac, set);
  return m;
}

type Setter = (field: ConfigField, value: unknown, v: TacValue, what: string) => void;

/** The Worker parameters that set no field directly. */
function otherParam(tac: Tac, m: Migration, param: WorkerParam, v: TacValue, set: Setter): void {
  switch (param) {
    case 'basedir':
      if (typeof v.value !== 'string') throw refuse(tac, v, `basedir must be a string, got ${JSON.stringify(v.value)}`);
      m.relocatable = v.value === '.';
      m.basedir = path.resolve(path.dirname(tac.file), v.value);
      return;
    case 'proxy_connection_string':
      if (v.value === null) return;
      set('proxyConnectionString', v.value, v, param);
      return;
    case 'usePTY':
    case 'unicode_encoding':
      if (v.value !== null) throw refuse(tac, v, `bbagent has no ${param} setting (it always uses UTF-8 and decides PTYs per step)`);
      return;
    default:
      return;
  }
}

/** Newer buildbot-worker writes host and port None with a connection string: the master's address is in it. */
function hostFromConnectionString(tac: Tac, m: Migration, set: Setter): void {
  const cs = tac.args.connection_string;
  if (m.overrides.masterHost !== undefined && m.overrides.masterPort !== undefined) return;
  if (cs === undefined || typeof cs.value !== 'string') {
    const v = tac.args.buildmaster_host ?? tac.args.port;
    throw new AgentError('E_TAC', `${tac.file}${v ? ` line ${v.line}` : ''}: the master's host and port are not given (and no connection_string)`);
  }
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < cs.value.length; i++) {
    const c = cs.value[i] as string;
    if (c === '\\' && i + 1 < cs.value.length) cur += cs.value[++i];
    else if (c === ':') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  const named = Object.fromEntries(parts.slice(1).flatMap((p) => (p.includes('=') ? [[p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]] : [])));
  const positional = parts.slice(1).filter((p) => !p.includes('='));
  const host = (named['host'] as string | undefined) ?? positional[0];
  const port = (named['port'] as string | undefined) ?? positional[1];
  if (host === undefined || port === undefined || !/^[0-9]+$/.test(port)) {
    throw refuse(tac, cs, `cannot find host= and port= in connection_string ${JSON.stringify(cs.value)}`);
  }
  if (m.overrides.masterHost === undefined) set('masterHost', host, cs, 'connection_string');
  if (m.overrides.masterPort === undefined) set('masterPort', Number(port), cs, 'connection_string');
}

/** rotateLength and maxRotatedFiles; without the log observer block (--no-logrotate) twistd.log never rotates. */
function logSettings(tac: Tac, set: Setter): void {
  const size = tac.vars['rotateLength'];
  const count = tac.vars['maxRotatedFiles'];
  if (tac.logRotation && size !== undefined) set('logSize', size.value, size, 'rotateLength');
  else if (!tac.logRotation) set('logSize', 0, size ?? { value: 0, line: 1 }, 'no log observer: no rotation');
  if (count !== undefined) set('logCount', count.value, count, 'maxRotatedFiles');
}

/** The buildbot-worker basedir's tac. */
export function tacPath(dir: string): string {
  return path.join(path.resolve(dir), TAC_FILE);
}

/** The pid of a buildbot-worker still running in `dir` (its twistd.pid names a live process), else null. */
export function runningBuildbotWorker(dir: string): number | null {
  try {
    const pid = Number(readFileSync(path.join(dir, 'twistd.pid'), 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 && isProcessAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Copies `from`/info/* files into `to`/info/ (never over a file already there). */
export function copyInfoFiles(from: string, to: string, say: (line: string) => void): void {
  const src = path.join(from, 'info');
  const dst = path.join(to, 'info');
  if (path.resolve(src) === path.resolve(dst) || !existsSync(src)) return;
  try {
    if (!existsSync(dst)) {
      say(`mkdir ${dst}`);
      mkdirSync(dst);
    }
    for (const name of readdirSync(src)) {
      const file = path.join(src, name);
      if (!statSync(file).isFile() || existsSync(path.join(dst, name))) continue;
      say(`copying ${file} to ${path.join(dst, name)}`);
      copyFileSync(file, path.join(dst, name));
    }
  } catch (err) {
    throw new AgentError('E_CREATE', `could not copy ${src} to ${dst}: ${(err as Error).message}`);
  }
}
