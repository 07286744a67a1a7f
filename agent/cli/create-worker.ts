// `bbagent create-worker`: makes a worker directory with bbagent.json and the info/ files, taking the same
// arguments as `buildbot-worker create-worker` and printing what it did the same way. The master is not contacted.
// With --from-buildbot-worker it takes the settings from a buildbot-worker basedir's buildbot.tac instead
// (migrate.ts), read without running it.

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
  type ConfigLayer,
} from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { CONFIG_DEFAULTS, CONFIG_FILE } from '../config/schema.js';
import { AgentError } from '../errors.js';
import { EXIT_FAILED, EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { BUILDBOT_WORKER_KEEPALIVE, copyInfoFiles, migrationFromTac, runningBuildbotWorker, tacPath } from './migrate.js';
import { FIELD_FLAGS, fieldFlagsHelp, fieldOptionSpec, fieldOverrides, helpEntry } from './options.js';
import { readTac } from './tac.js';

const COMMAND = 'bbagent create-worker';

/** The flags that are no setting of the config. */
const OWN_FLAGS: readonly { names: string; help: string }[] = [
  { names: '-f, --force', help: 'overwrite an existing BASEDIR/bbagent.json' },
  { names: '-r, --relocatable', help: "store basedir as '.' (the directory holding bbagent.json)" },
  { names: '-n, --no-logrotate', help: 'never rotate bbagent.log (same as --log-size 0)' },
  { names: '    --master HOST:PORT', help: 'a further master to fail over to, after MASTERHOST:PORT (once per master, in order of preference)' },
  {
    names: '    --from-buildbot-worker DIR',
    help: "take master, name, password and options from DIR/buildbot.tac (read, never run) and keep DIR/info; writes DIR/bbagent.json, or TARGET/bbagent.json when TARGET is given; flags given too override the tac's values",
  },
  { names: '-q, --quiet', help: 'print nothing but errors' },
  { names: '-h, --help', help: 'show this help' },
];

export const CREATE_WORKER_USAGE = `Usage: bbagent create-worker [options] BASEDIR MASTERHOST[:PORT] WORKERNAME PASSWORD
       bbagent create-worker [options] --from-buildbot-worker DIR [TARGET]

Creates BASEDIR (if needed) with bbagent.json and info/admin, info/host. PORT defaults to ${DEFAULT_MASTER_PORT}
(write an IPv6 address as [addr]:port). The master is not contacted. Put -- before the arguments when one
starts with '-' (a password, say).

Options:
${OWN_FLAGS.slice(0, -2)
  .flatMap((f) => helpEntry(f.names, f.help))
  .join('\n')}
${fieldFlagsHelp(FIELD_FLAGS)}
${OWN_FLAGS.slice(-2)
  .flatMap((f) => helpEntry(f.names, f.help))
  .join('\n')}`;

const OPTIONS: OptionSpec = {
  force: { type: 'boolean', short: 'f' },
  relocatable: { type: 'boolean', short: 'r' },
  'no-logrotate': { type: 'boolean', short: 'n' },
  master: { type: 'string', multiple: true },
  'from-buildbot-worker': { type: 'string' },
  ...fieldOptionSpec(FIELD_FLAGS),
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
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

type Values = Readonly<Record<string, unknown>>;

export async function createWorkerCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 4);
    if (values['help']) {
      io.out(CREATE_WORKER_USAGE);
      return EXIT_OK;
    }
    const quiet = values['quiet'] === true;
    const say = (line: string): void => {
      if (!quiet) io.out(line);
    };
    // Everything is validated before anything is created.
    const from = values['from-buildbot-worker'];
    const plan = typeof from === 'string' ? fromBuildbotWorker(from, positionals, values, say) : fromArguments(positionals, values);
    const { basedir } = plan.config;
    const file = configPath(basedir);
    if (existsSync(file) && !values['force']) {
      throw new AgentError('E_EXISTS', `${COMMAND}: ${file} already exists; use --force to overwrite it`);
    }
    if (existsSync(basedir) && !statSync(basedir).isDirectory()) {
      throw new AgentError('E_EXISTS', `${COMMAND}: ${basedir} exists and is not a directory`);
    }
    try {
      makeBaseDir(basedir, say);
      if (existsSync(file)) say(`overwriting existing ${CONFIG_FILE}`);
      writeConfig(basedir, plan.config, { relocatable: values['relocatable'] === true || plan.relocatable });
      if (plan.infoFrom !== undefined) copyInfoFiles(plan.infoFrom, basedir, say);
      makeInfoFiles(basedir, say);
    } catch (err) {
      io.err(`${err instanceof Error ? err.message : String(err)}; failed to configure worker in ${basedir}`);
      return EXIT_FAILED;
    }
    say(`worker configured in ${basedir}`);
    plan.after.forEach(say);
    return EXIT_OK;
  });
}

/** What create-worker writes: the config, whether it is relocatable, where info/ comes from, and what to say after. */
interface Plan {
  config: AgentConfig;
  relocatable: boolean;
  infoFrom?: string;
  after: string[];
}

/** The flags' settings as a config layer (the text is parsed by each field's rule, naming the flag). */
function flagLayer(values: Values): ConfigLayer {
  const { overrides, sources } = fieldOverrides(FIELD_FLAGS, values);
  if (values['no-logrotate']) {
    if (values['log-size'] !== undefined) {
      throw new UsageError(`${COMMAND}: --no-logrotate and --log-size cannot be used together (see '${COMMAND} --help')`);
    }
    overrides.logSize = 0;
    sources.logSize = '--no-logrotate';
  }
  return layerFromOverrides(overrides, (field) => sources[field] ?? field);
}

function fromArguments(positionals: string[], values: Values): Plan {
  if (positionals.length !== 4) {
    throw new UsageError(`${COMMAND}: expected 4 arguments BASEDIR MASTERHOST[:PORT] WORKERNAME PASSWORD, got ${positionals.length} (see '${COMMAND} --help')`);
  }
  const [basedirArg, masterArg, name, password] = positionals as [string, string, string, string];
  const basedir = path.resolve(basedirArg);
  const master = parseMasterArgument(masterArg);
  // The positional arguments go through the same rules as flags, so an empty name is refused here too.
  const positional = layerFromOverrides(
    { basedir, masterHost: master.host, masterPort: master.port, name, password },
    (field) => POSITIONAL_SOURCES[field] ?? field,
  );
  // --master: further masters after MASTERHOST:PORT, in order of preference
  const further = (values['master'] as string[] | undefined) ?? [];
  const masters = further.length ? [layerFromOverrides({ masters: [masterArg, ...further].join('\n') }, () => '--master')] : [];
  const config = mergeLayers([positional, flagLayer(values), ...masters], { basedir }, (fields) => `${COMMAND}: missing ${fields.join(', ')}`);
  return { config, relocatable: false, after: [] };
}

/** The settings of DIR/buildbot.tac, with the flags over them, for TARGET (default DIR). */
function fromBuildbotWorker(dirArg: string, positionals: string[], values: Values, say: (line: string) => void): Plan {
  if (positionals.length > 1) {
    throw new UsageError(`${COMMAND}: with --from-buildbot-worker, expected at most 1 argument TARGET, got ${positionals.length} (see '${COMMAND} --help')`);
  }
  if (values['master'] !== undefined) {
    throw new UsageError(`${COMMAND}: --master is for a new worker; after --from-buildbot-worker, add further masters to bbagent.json's "masters"`);
  }
  const dir = path.resolve(dirArg);
  const tacFile = tacPath(dir);
  const migration = migrationFromTac(readTac(tacFile), dir);
  const basedir = path.resolve(positionals[0] ?? dir);
  const tacLayer = layerFromOverrides(migration.overrides, (field) => migration.sources[field] ?? tacFile);
  const config = mergeLayers([tacLayer, flagLayer(values)], { basedir }, (fields) => `${tacFile}: no ${fields.join(', ')} in it`);
  say(`read ${tacFile}`);
  const after: string[] = [];
  if (config.keepalive === BUILDBOT_WORKER_KEEPALIVE && values['keepalive'] === undefined) {
    after.push(
      `note: keepalive ${BUILDBOT_WORKER_KEEPALIVE} s (buildbot-worker's default) carried over; bbagent's default, ${CONFIG_DEFAULTS.keepalive} s, notices a dead master sooner (--keepalive ${CONFIG_DEFAULTS.keepalive})`,
    );
  }
  if (migration.basedir !== dir && migration.basedir !== basedir) {
    after.push(`note: ${tacFile} names basedir ${migration.basedir}; bbagent.json names ${basedir}`);
  }
  const pid = runningBuildbotWorker(dir);
  if (pid !== null) {
    after.push(`buildbot-worker is still running in ${dir} (pid ${pid}): stop it ("buildbot-worker stop ${dir}") before "bbagent start ${basedir}"`);
  }
  return { config, relocatable: migration.relocatable, infoFrom: dir, after };
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
