// `bbagent restart`: stop (a worker that is not running is fine) then start. The config is checked first, so
// a running worker is never stopped for a config that cannot start.

import path from 'node:path';
import { loadConfig } from '../config/load.js';
import { EXIT_FAILED, EXIT_OK, parseCommandLine, reportErrors, type CliIO } from './io.js';
import { START_OPTIONS, START_SETTINGS_HELP, startOverrides, startWorker } from './start.js';
import { describeTimeout, stopWorker } from './stop.js';

const COMMAND = 'bbagent restart';

export const RESTART_USAGE = `Usage: bbagent restart [--nodaemon] [--quiet] [SETTINGS] [BASEDIR]

Stops the worker in BASEDIR (default: the current directory) if it is running, then starts it again.

Options:
      --nodaemon              start in the foreground, logging to stdout and bbagent.log
  -q, --quiet                 print nothing but errors
  -h, --help                  show this help

${START_SETTINGS_HELP}`;

export async function restartCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, START_OPTIONS, 1);
    if (values['help']) {
      io.out(RESTART_USAGE);
      return EXIT_OK;
    }
    const quiet = values['quiet'] === true;
    const say = (line: string): void => {
      if (!quiet) io.out(line);
    };
    const dir = path.resolve(positionals[0] ?? '.');
    loadConfig(dir, startOverrides(values), io.env);
    const stopped = await stopWorker(dir);
    if (stopped.kind === 'timeout') {
      io.err(describeTimeout(stopped.pid));
      return EXIT_FAILED;
    }
    say(stopped.kind === 'stopped' ? `bbagent process ${stopped.pid} is dead` : 'no old bbagent process found to stop');
    say('now restarting bbagent process..');
    return startWorker(dir, { nodaemon: values['nodaemon'] === true, quiet, values }, io);
  });
}
