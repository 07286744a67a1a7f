// The command line: picks the subcommand and hands it the rest of argv. Exit codes: 0 done, 1 failed,
// 2 bad invocation or configuration (nothing was created or started); `status` adds 3, not running (LSB's).

import { VERSION } from '../version.js';
import { EXIT_OK, EXIT_USAGE, processIO, type CliIO } from './io.js';

export const USAGE = `Usage: bbagent <command> [options]

Commands:
  create-worker [options] BASEDIR MASTERHOST[:PORT] WORKERNAME PASSWORD
                                  create a worker directory with bbagent.json and info/ files
  create-worker --from-buildbot-worker DIR [TARGET]
                                  make a buildbot-worker directory a bbagent one (reads its buildbot.tac)
  start [--nodaemon] [BASEDIR]    start the worker (in the background unless --nodaemon)
  stop [BASEDIR]                  stop the worker
  status [--json] [BASEDIR]       show what the running worker does: connection, running commands, output
  restart [--nodaemon] [BASEDIR]  stop the worker if it is running, then start it
  service ACTION [BASEDIR]        install|uninstall|status|start|stop the worker as a system service
  fetch URL (--sha256 HEX | --sha512 HEX) [--dest PATH | --extract DIR] [--cache DIR] [--json]
                                  download a file, verified (and cached, extracted); prints its path
  suite chunk|parse ...           split a test list into chunks; read JUnit, TAP or mozlog reports
  perf run|compare ...            performance tests: replicates, statistics, Perfherder data; compare two results
  help [COMMAND]                  show this help, or a command's

Options:
  -h, --help       show this help (bbagent <command> --help for a command's options)
      --version    print the version

Settings in BASEDIR/bbagent.json can be overridden with BBAGENT_<FIELD> environment variables
(e.g. BBAGENT_MASTER_HOST, BBAGENT_MAXDELAY).`;

type Subcommand = (argv: string[], io: CliIO) => Promise<number>;

// Each subcommand's code loads when it runs: `start` does not pay for the service managers, `--version` for nothing.
const COMMANDS: Record<string, Subcommand> = {
  'create-worker': async (argv, io) => (await import('./create-worker.js')).createWorkerCommand(argv, io),
  start: async (argv, io) => (await import('./start.js')).startCommand(argv, io),
  stop: async (argv, io) => (await import('./stop.js')).stopCommand(argv, io),
  status: async (argv, io) => (await import('./status.js')).statusCommand(argv, io),
  restart: async (argv, io) => (await import('./restart.js')).restartCommand(argv, io),
  service: async (argv, io) => (await import('./service.js')).serviceCommand(argv, io),
  fetch: async (argv, io) => (await import('./fetch.js')).fetchCommand(argv, io),
  suite: async (argv, io) => (await import('./suite.js')).suiteCommand(argv, io),
  perf: async (argv, io) => (await import('./perf.js')).perfCommand(argv, io),
};

export async function runCli(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.out(USAGE);
    return EXIT_USAGE;
  }
  if (first === 'help' && rest.length > 0) return helpFor(rest, io);
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(USAGE);
    return EXIT_OK;
  }
  if (first === '--version') {
    io.out(`bbagent ${VERSION}`);
    return EXIT_OK;
  }
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (command === undefined) {
    const what = first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`;
    io.err(`bbagent: ${what} (see 'bbagent --help')`);
    return EXIT_USAGE;
  }
  return command(rest, io);
}

/** `bbagent help COMMAND`: the command's own --help. */
async function helpFor(args: string[], io: CliIO): Promise<number> {
  const [name, ...extra] = args as [string, ...string[]];
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined || extra.length > 0) {
    const what = command === undefined ? `unknown command '${name}'` : `unexpected argument '${extra[0] ?? ''}'`;
    io.err(`bbagent help: ${what} (see 'bbagent --help')`);
    return EXIT_USAGE;
  }
  return command(['--help'], io);
}
