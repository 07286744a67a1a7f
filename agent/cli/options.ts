// The command-line flags that set a config field: one table from which `create-worker` and `start` take their
// option specs, the field each flag sets, and their help lines. A flag's default is never written here: it is
// read from CONFIG_DEFAULTS, the config's own defaults, so help and the file it describes cannot drift apart.

import { CONFIG_DEFAULTS, PROTOCOL_NAMES } from '../config/schema.js';
import { formatUmask, type ConfigField, type ConfigOverrides } from '../config/load.js';
import type { OptionSpec } from './io.js';

export interface FieldFlag {
  /** The long option, without its dashes. */
  flag: string;
  short?: string;
  field: ConfigField;
  /** The value's placeholder in help; none for an on/off flag (it sets true). */
  metavar?: string;
  /** What it does; "(default ...)" is added from CONFIG_DEFAULTS. */
  help: string;
  /** What a null default means, shown as "None: <meaning>". */
  none?: string;
  /** Said after the default, e.g. how buildbot-worker's differs. */
  note?: string;
}

export const FIELD_FLAGS: readonly FieldFlag[] = [
  { flag: 'log-size', short: 's', field: 'logSize', metavar: 'BYTES', help: 'rotate bbagent.log at this size' },
  { flag: 'log-count', short: 'l', field: 'logCount', metavar: 'N|None', help: 'rotated log files to keep', none: 'keep all' },
  {
    flag: 'keepalive',
    short: 'k',
    field: 'keepalive',
    metavar: 'SECONDS',
    help: 'keepalive interval, 0 disables',
    note: "buildbot-worker's is 600; a master silent for one interval (3-15 s) after one is taken for dead and reconnected",
  },
  {
    flag: 'keepalive-timeout',
    field: 'keepaliveTimeout',
    metavar: 'SECONDS|None',
    help: 'how long a master may stay silent after a keepalive; raise it for a master known to stall longer',
    none: 'one interval, 3-15 s',
  },
  { flag: 'umask', field: 'umask', metavar: 'UMASK|None', help: 'umask for the worker, e.g. 0o22, 022 or 18', none: 'inherited' },
  { flag: 'maxdelay', field: 'maxdelay', metavar: 'SECONDS', help: 'longest wait between connection attempts' },
  { flag: 'maxretries', field: 'maxretries', metavar: 'N|None', help: 'give up after N failed connection attempts in a row', none: 'never' },
  { flag: 'numcpus', field: 'numcpus', metavar: 'N|None', help: 'CPU count reported to the master', none: 'detected' },
  { flag: 'protocol', field: 'protocol', metavar: 'PROTOCOL', help: protocolHelp() },
  {
    flag: 'connection-string',
    field: 'connectionString',
    metavar: 'S',
    help: 'Twisted-style client endpoint overriding MASTERHOST:PORT (e.g. tls:host=H:port=P)',
    none: 'MASTERHOST:PORT',
  },
  {
    flag: 'proxy-connection-string',
    field: 'proxyConnectionString',
    metavar: 'S',
    help: 'reach the masters through this HTTP CONNECT proxy (tcp:host=H:port=P or http://[USER:PASSWORD@]H:P)',
    none: 'direct',
  },
  {
    flag: 'failover-grace',
    field: 'failoverGrace',
    metavar: 'SECONDS',
    help: 'with several masters: how long a lost master is retried before the worker moves to the next one',
  },
  { flag: 'use-tls', field: 'useTls', help: 'connect to the master over TLS' },
  { flag: 'tls-ca-file', field: 'tlsCaFile', metavar: 'FILE', help: "trust the CA in this PEM file for the master's certificate", none: 'the system CAs' },
  { flag: 'delete-leftover-dirs', field: 'deleteLeftoverDirs', help: 'delete build directories the master no longer needs' },
  { flag: 'confine-to-basedir', field: 'confineToBasedir', help: 'refuse file and transfer paths, and shell workdirs, that lead out of BASEDIR' },
  {
    flag: 'allow-shutdown',
    short: 'a',
    field: 'allowShutdown',
    metavar: 'HOW',
    help: 'let the worker request a graceful shutdown: signal (SIGHUP) or file',
    none: 'never',
  },
  { flag: 'log-level', field: 'logLevel', metavar: 'LEVEL', help: 'info, or debug to log keepalive replies, logins and heap compactions too' },
  { flag: 'log-format', field: 'logFormat', metavar: 'FORMAT', help: 'text, or json for one JSON object per message (time, level, msg)' },
  {
    flag: 'metrics-addr',
    field: 'metricsAddr',
    metavar: 'HOST:PORT|None',
    help: 'serve Prometheus metrics at http://HOST:PORT/metrics (a loopback address unless --metrics-allow-remote)',
    none: 'no metrics',
  },
  { flag: 'metrics-allow-remote', field: 'metricsAllowRemote', help: 'let --metrics-addr listen on a non-loopback address (it has no authentication)' },
];

/** "pb or msgpack (also msgpack_experimental_v7)": the config's list of protocol names and aliases. */
function protocolHelp(): string {
  const names = Object.entries(PROTOCOL_NAMES);
  const own = names.filter(([name, p]) => name === p).map(([name]) => name);
  const aliases = names.filter(([name, p]) => name !== p).map(([name, p]) => `${name} for ${p}`);
  return `${own.slice(0, -1).join(', ')}${own.length > 1 ? ' or ' : ''}${own.at(-1) ?? ''}${aliases.length ? ` (also ${aliases.join(', ')})` : ''}`;
}

/** parseArgs options for these flags: a value for those with a metavar, on/off for the others. */
export function fieldOptionSpec(flags: readonly FieldFlag[]): OptionSpec {
  const spec: OptionSpec = {};
  for (const f of flags) spec[f.flag] = { type: f.metavar === undefined ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  return spec;
}

/** The config values these flags gave (text, parsed later with the field's rules) and the flag that gave each. */
export function fieldOverrides(
  flags: readonly FieldFlag[],
  values: Readonly<Record<string, unknown>>,
): { overrides: ConfigOverrides; sources: Partial<Record<ConfigField, string>> } {
  const overrides: ConfigOverrides = {};
  const sources: Partial<Record<ConfigField, string>> = {};
  for (const f of flags) {
    const value = values[f.flag];
    if (typeof value !== 'string' && typeof value !== 'boolean') continue;
    (overrides as Record<string, unknown>)[f.field] = value;
    sources[f.field] = `--${f.flag}`;
  }
  return { overrides, sources };
}

/** The given flags as argv again (to hand them to another process). */
export function fieldArgv(flags: readonly FieldFlag[], values: Readonly<Record<string, unknown>>): string[] {
  const argv: string[] = [];
  for (const f of flags) {
    const value = values[f.flag];
    if (value === true) argv.push(`--${f.flag}`);
    else if (typeof value === 'string') argv.push(`--${f.flag}=${value}`);
  }
  return argv;
}

/** A field's default as the command line spells it: None for null, 0o022 for a umask. */
export function defaultText(field: ConfigField): string {
  const value = (CONFIG_DEFAULTS as Partial<Record<ConfigField, unknown>>)[field];
  if (value === null || value === undefined) return 'None';
  if (field === 'umask' && typeof value === 'number') return formatUmask(value);
  return String(value);
}

const HELP_COLUMN = 30;
const HELP_WIDTH = 112;

/** One option's help: the names, then the text in a column of its own, wrapped (long names get a line of their own). */
export function helpEntry(names: string, text: string): string[] {
  const head = `  ${names}`;
  const indent = ' '.repeat(HELP_COLUMN);
  const lines: string[] = [];
  let line = indent;
  if (head.length <= HELP_COLUMN - 2) line = head.padEnd(HELP_COLUMN);
  else lines.push(head);
  let empty = true;
  for (const word of text.split(' ')) {
    if (!empty && line.length + 1 + word.length > HELP_WIDTH) {
      lines.push(line);
      line = indent;
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** The help lines of field flags, each with its default from CONFIG_DEFAULTS (unless `defaults` is false). */
export function fieldFlagsHelp(flags: readonly FieldFlag[], defaults = true): string {
  return flags
    .flatMap((f) => {
      const names = `${f.short ? `-${f.short}, ` : '    '}--${f.flag}${f.metavar ? ` ${f.metavar}` : ''}`;
      if (f.metavar === undefined || !defaults) return helpEntry(names, f.help);
      const def = defaultText(f.field);
      const shown = def === 'None' && f.none ? `None: ${f.none}` : def;
      return helpEntry(names, `${f.help} (default ${shown}${f.note ? `; ${f.note}` : ''})`);
    })
    .join('\n');
}
