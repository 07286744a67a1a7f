// `bbagent create-worker`: makes a worker directory with bbagent.json and the info/ files, taking the same
// arguments as `buildbot-worker create-worker` and printing what it did the same way. The master is not contacted.

import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makedirs } from '../fs/makedirs.js';
import {
  DEFAULT_MASTER_PORT,
  configPath,
  layerFromOverrides,
  mergeLayers,
  parseFieldText,
  writeConfig,
  type ConfigField,
  type ConfigOverrides,
} from '../config/load.js';
import { CONFIG_FILE } from '../config/schema.js';
import { AgentError } from '../errors.js';
import { EXIT_FAILED, EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';

const COMMAND = 'bbagent create-worker';

export const CREATE_WORKER_USAGE = `Usage: bbagent create-worker [options] BASEDIR MASTERHOST[:PORT] WORKERNAME PASSWORD

Creates BASEDIR (if needed) with bbagent.json and info/admin, info/host. PORT defaults to ${DEFAULT_MASTER_PORT}
(write an IPv6 address as [addr]:port). The master is not contacted. Put -- before the arguments when one
starts with '-' (a password, say).

Options:
  -f, --force                 overwrite an existing BASEDIR/bbagent.json
  -r, --relocatable           store basedir as '.' (the directory holding bbagent.json)
  -n, --no-logrotate          never rotate bbagent.log (same as --log-size 0)
  -s, --log-size BYTES        rotate bbagent.log at this size (default 10000000)
  -l, --log-count N|None      rotated log files to keep (default 10; None keeps all)
  -k, --keepalive SECONDS     keepalive interval, 0 disables (default 60; buildbot-worker's is 600): a master
                              silent for one interval (3-15 s) after one is taken for dead and reconnected
      --keepalive-timeout SECONDS|None
                              how long a master may stay silent after a keepalive (default None: one
                              interval, 3-15 s); raise it for a master known to stall longer
      --umask UMASK|None      umask for the worker, e.g. 0o22, 022 or 18 (default None: inherited)
      --maxdelay SECONDS      longest wait between connection attempts (default 300)
      --maxretries N|None     give up after N failed connection attempts in a row (default None: never)
      --numcpus N|None        CPU count reported to the master (default None: detected)
      --protocol PROTOCOL     pb or msgpack (also msgpack_experimental_v7) (default pb)
      --connection-string S   Twisted-style client endpoint overriding MASTERHOST:PORT (e.g. tls:host:port)
      --master HOST:PORT      a further master to fail over to, after MASTERHOST:PORT (once per master, in order)
      --proxy-connection-string S
                              reach the masters through this HTTP CONNECT proxy (tcp:host=H:port=P or http://H:P)
      --use-tls               connect to the master over TLS
      --tls-ca-file FILE      trust the CA in this PEM file for the master's certificate (with --use-tls)
      --delete-leftover-dirs  delete build directories the master no longer needs
      --confine-to-basedir    refuse file and transfer paths, and shell workdirs, that lead out of BASEDIR
  -a, --allow-shutdown HOW    let the worker request a graceful shutdown: signal (SIGHUP) or file
  -q, --quiet                 print nothing but errors
  -h, --help                  show this help`;

const OPTIONS: OptionSpec = {
  force: { type: 'boolean', short: 'f' },
  relocatable: { type: 'boolean', short: 'r' },
  'no-logrotate': { type: 'boolean', short: 'n' },
  'log-size': { type: 'string', short: 's' },
  'log-count': { type: 'string', short: 'l' },
  keepalive: { type: 'string', short: 'k' },
  'keepalive-timeout': { type: 'string' },
  umask: { type: 'string' },
  maxdelay: { type: 'string' },
  maxretries: { type: 'string' },
  numcpus: { type: 'string' },
  protocol: { type: 'string' },
  'connection-string': { type: 'string' },
  master: { type: 'string', multiple: true },
  'proxy-connection-string': { type: 'string' },
  'use-tls': { type: 'boolean' },
  'tls-ca-file': { type: 'string' },
  'delete-leftover-dirs': { type: 'boolean' },
  'confine-to-basedir': { type: 'boolean' },
  'allow-shutdown': { type: 'string', short: 'a' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** Options that set a config field directly (their text is parsed like the environment's). */
const FIELD_OPTIONS: Partial<Record<string, ConfigField>> = {
  'log-size': 'logSize',
  'log-count': 'logCount',
  keepalive: 'keepalive',
  'keepalive-timeout': 'keepaliveTimeout',
  umask: 'umask',
  maxdelay: 'maxdelay',
  maxretries: 'maxretries',
  numcpus: 'numcpus',
  protocol: 'protocol',
  'connection-string': 'connectionString',
  'proxy-connection-string': 'proxyConnectionString',
  'use-tls': 'useTls',
  'tls-ca-file': 'tlsCaFile',
  'delete-leftover-dirs': 'deleteLeftoverDirs',
  'confine-to-basedir': 'confineToBasedir',
  'allow-shutdown': 'allowShutdown',
};

const MASTER_ARG = 'MASTERHOST:PORT argument';
const POSITIONAL_SOURCES: Partial<Record<ConfigField, string>> = {
  basedir: 'BASEDIR argument',
  masterHost: MASTER_ARG,
  masterPort: MASTER_ARG,
  name: 'WORKERNAME argument',
  password: 'PASSWORD argument',
};

/** MASTERHOST[:PORT] as buildbot-worker's validateMasterArgument reads it ([v6addr]:port for IPv6). */
export function parseMasterArgument(arg: string): { host: string; port: number } {
  if (arg.includes('://') || arg.startsWith('http:')) {
    throw new AgentError('E_CONFIG', `${MASTER_ARG}: expected MASTERHOST[:PORT], not a URL, got ${JSON.stringify(arg)}`);
  }
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(arg);
  if (v6) {
    host = v6[1] ?? '';
    port = v6[2];
  } else {
    const parts = arg.split(':');
    if (parts.length > 2) {
      throw new AgentError('E_CONFIG', `${MASTER_ARG}: expected MASTERHOST[:PORT] (enclose an IPv6 address in []), got ${JSON.stringify(arg)}`);
    }
    host = parts[0] ?? '';
    port = parts[1];
  }
  if (host === '') throw new AgentError('E_CONFIG', `${MASTER_ARG}: the master host is empty in ${JSON.stringify(arg)}`);
  return {
    host: parseFieldText('masterHost', host, MASTER_ARG),
    port: port === undefined ? DEFAULT_MASTER_PORT : parseFieldText('masterPort', port, MASTER_ARG),
  };
}

export async function createWorkerCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 4);
    if (values['help']) {
      io.out(CREATE_WORKER_USAGE);
      return EXIT_OK;
    }
    if (positionals.length !== 4) {
      throw new UsageError(
        `${COMMAND}: expected 4 arguments BASEDIR MASTERHOST[:PORT] WORKERNAME PASSWORD, got ${positionals.length} (see '${COMMAND} --help')`,
      );
    }
    const [basedirArg, masterArg, name, password] = positionals as [string, string, string, string];

    // Everything is validated before anything is created.
    const basedir = path.resolve(basedirArg);
    const master = parseMasterArgument(masterArg);
    const overrides: ConfigOverrides = {};
    const sources: Partial<Record<ConfigField, string>> = {};
    for (const [option, field] of Object.entries(FIELD_OPTIONS)) {
      const value = values[option];
      if (field === undefined || value === undefined) continue;
      (overrides as Record<string, unknown>)[field] = value;
      sources[field] = `--${option}`;
    }
    const further = values['master'] as string[] | undefined;
    if (further?.length) {
      overrides.masters = [masterArg, ...further].join('\n');
      sources.masters = '--master';
    }
    if (values['no-logrotate']) {
      if (values['log-size'] !== undefined) {
        throw new UsageError(`${COMMAND}: --no-logrotate and --log-size cannot be used together (see '${COMMAND} --help')`);
      }
      overrides.logSize = 0;
      sources.logSize = '--no-logrotate';
    }
    // The positional arguments go through the same rules as flags, so an empty name is refused here too.
    const positional = layerFromOverrides(
      { basedir, masterHost: master.host, masterPort: master.port, name, password },
      (field) => POSITIONAL_SOURCES[field] ?? field,
    );
    const flags = layerFromOverrides(overrides, (field) => sources[field] ?? field);
    const config = mergeLayers([positional, flags], { basedir }, (fields) => `${COMMAND}: missing ${fields.join(', ')}`);

    const file = configPath(basedir);
    if (existsSync(file) && !values['force']) {
      throw new AgentError('E_EXISTS', `${COMMAND}: ${file} already exists; use --force to overwrite it`);
    }
    if (existsSync(basedir) && !statSync(basedir).isDirectory()) {
      throw new AgentError('E_EXISTS', `${COMMAND}: ${basedir} exists and is not a directory`);
    }

    const quiet = values['quiet'] === true;
    const say = (line: string): void => {
      if (!quiet) io.out(line);
    };
    try {
      makeBaseDir(basedir, say);
      if (existsSync(file)) say(`overwriting existing ${CONFIG_FILE}`);
      writeConfig(basedir, config, { relocatable: values['relocatable'] === true });
      makeInfoFiles(basedir, say);
    } catch (err) {
      io.err(`${err instanceof Error ? err.message : String(err)}; failed to configure worker in ${basedir}`);
      return EXIT_FAILED;
    }
    say(`worker configured in ${basedir}`);
    return EXIT_OK;
  });
}

function makeBaseDir(basedir: string, say: (line: string) => void): void {
  if (existsSync(basedir)) {
    say('updating existing installation');
    return;
  }
  say(`mkdir ${basedir}`);
  try {
    makedirs(basedir, { existOk: true });
  } catch (err) {
    throw new AgentError('E_CREATE', `error creating directory ${basedir}: ${(err as Error).message}`);
  }
}

/** buildbot-worker's placeholder texts; existing files are never overwritten (the admin may have edited them). */
export const INFO_ADMIN_TEXT = 'Your Name Here <admin@youraddress.invalid>\n';
export const INFO_HOST_TEXT = 'Please put a description of this build host here\n';

function makeInfoFiles(basedir: string, say: (line: string) => void): void {
  const infoDir = path.join(basedir, 'info');
  if (!existsSync(infoDir)) {
    say(`mkdir ${infoDir}`);
    try {
      mkdirSync(infoDir);
    } catch (err) {
      throw new AgentError('E_CREATE', `error creating directory ${infoDir}: ${(err as Error).message}`);
    }
  }
  let created = false;
  for (const [file, contents] of [
    ['admin', INFO_ADMIN_TEXT],
    ['host', INFO_HOST_TEXT],
  ] as const) {
    const filepath = path.join(infoDir, file);
    if (existsSync(filepath)) continue;
    say(`Creating ${path.join('info', file)}, you need to edit it appropriately.`);
    try {
      writeFileSync(filepath, contents);
    } catch (err) {
      throw new AgentError('E_CREATE', `could not write ${filepath}: ${(err as Error).message}`);
    }
    created = true;
  }
  if (!existsSync(path.join(infoDir, 'access_uri'))) say(`Not creating ${path.join('info', 'access_uri')} - add it if you wish`);
  if (created) say(`Please edit the files in ${infoDir} appropriately.`);
}
