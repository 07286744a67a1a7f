// `bbagent status [BASEDIR] [--json]`: asks the agent running in BASEDIR over its control socket what it is
// doing (each worker's connection, running commands, output figures) and prints it as a table or as JSON.
// Exit codes, after systemctl's and LSB's status: 0 the agent answered, 3 it is not running, 1 it could not be
// asked (it does not answer, or BASEDIR is not a worker directory), 2 a bad command line.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { askAgent, endpointFor, NotRunningError } from '../control/client.js';
import type { AgentStatus } from '../control/status.js';
import { configPath } from '../config/load.js';
import { AgentError, errorMessage } from '../errors.js';
import { EXIT_FAILED, EXIT_OK, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { PIDFILE, isProcessAlive, pidfilePath, pidfileProcessAlive, readPidfile } from './pidfile.js';
import { formatStatus } from './status-format.js';

const COMMAND = 'bbagent status';

/** The agent is not running (LSB: "program is not running"; systemctl status says 3 too). */
export const EXIT_NOT_RUNNING = 3;

export const STATUS_USAGE = `Usage: bbagent status [--json] [BASEDIR]

Shows what the agent running in BASEDIR (default: the current directory) is doing: for each worker its master
and protocol, whether it is connected and since when, the last connection error, reconnects, the commands
running (builder, command, elapsed time, output sent) and the output sent, spooled and dropped. The agent
answers over its control socket (BASEDIR/.bbagent/run/control.sock, owner-only; a named pipe on Windows).

Exit codes: 0 the agent answered, 3 it is not running, 1 it could not be asked (no answer, or BASEDIR is not
a worker directory), 2 a bad command line.

Options:
      --json    print the agent's reply as JSON (the format is in docs/operations.md)
  -h, --help    show this help`;

const OPTIONS: OptionSpec = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export async function statusCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 1);
    if (values['help']) {
      io.out(STATUS_USAGE);
      return EXIT_OK;
    }
    const dir = path.resolve(positionals[0] ?? '.');
    if (!existsSync(configPath(dir)) && !existsSync(pidfilePath(dir))) {
      io.err(`${COMMAND}: invalid worker directory '${dir}' (no ${path.basename(configPath(dir))} or ${PIDFILE} in it)`);
      return EXIT_FAILED;
    }
    let status: AgentStatus;
    try {
      status = replyStatus(await askAgent(endpointFor(dir, 'client'), { request: 'status' }));
    } catch (err) {
      if (!(err instanceof NotRunningError)) throw err;
      return notRunning(dir, io);
    }
    if (values['json'] === true) io.out(JSON.stringify(status, null, 2));
    else for (const line of formatStatus(status)) io.out(line);
    return EXIT_OK;
  });
}

/** The status in the agent's reply; E_CONTROL for a reply that is not one. */
function replyStatus(reply: unknown): AgentStatus {
  const r = reply as { ok?: unknown; error?: unknown; status?: unknown };
  if (r?.ok !== true || typeof r.status !== 'object' || r.status === null) {
    throw new AgentError('E_CONTROL', `${COMMAND}: the agent refused: ${typeof r?.error === 'string' ? r.error : JSON.stringify(reply).slice(0, 200)}`);
  }
  return r.status as AgentStatus;
}

/** Nothing answers: not running (3), unless the pidfile names a live agent whose socket is missing (1). */
function notRunning(dir: string, io: CliIO): number {
  let pid: number | null = null;
  try {
    pid = readPidfile(pidfilePath(dir));
  } catch (err) {
    io.err(`${COMMAND}: ${errorMessage(err)}`);
  }
  if (pid !== null && isProcessAlive(pid) && pidfileProcessAlive(pidfilePath(dir), pid)) {
    io.err(
      `${COMMAND}: bbagent process ${pid} (from ${PIDFILE}) is running in ${dir}, but its control socket does not answer ` +
        `(it is starting, or it is an older bbagent without one; see bbagent.log)`,
    );
    return EXIT_FAILED;
  }
  io.out(`bbagent not running in ${dir}`);
  return EXIT_NOT_RUNNING;
}
