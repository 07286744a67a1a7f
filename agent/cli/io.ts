// What every subcommand shares: where its output goes (injected, so tests can record it), strict option parsing
// that turns any mistake into one line naming the option, and the exit code for each kind of failure.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AgentError } from '../errors.js';

export interface CliIO {
  /** One line of normal output (a newline is added). */
  out(line: string): void;
  /** One line of error output (a newline is added). */
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** Error output is a terminal (progress bars are drawn only then). */
  isTTY?: boolean;
  /** Raw error output, no newline added (a progress line rewritten with \r). */
  errWrite?(text: string): void;
}

export function processIO(): CliIO {
  // A closed stdout (`bbagent start --nodaemon | head`) is no reason to stop: the log file still has every line.
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', () => {});
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    env: process.env,
    isTTY: process.stderr.isTTY === true,
    errWrite: (text) => void process.stderr.write(text),
  };
}

/** Exit codes: 2 for a bad invocation or configuration (a buildbot.tac to migrate too: nothing was done), 1 when doing it failed. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A bad command line: an unknown option, a missing or malformed value, the wrong number of arguments. */
export class UsageError extends AgentError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}

export function exitCodeFor(err: unknown): number {
  return err instanceof AgentError && (err.code === 'E_USAGE' || err.code === 'E_CONFIG' || err.code === 'E_TAC') ? EXIT_USAGE : EXIT_FAILED;
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface ParsedCommandLine {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `argv` strictly against `options`; `command` (e.g. "bbagent start") prefixes messages. Node's own
 * messages are cut to their first line (some add multi-line advice) and end with a pointer to --help.
 */
export function parseCommandLine(command: string, argv: string[], options: OptionSpec, maxPositionals: number): ParsedCommandLine {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    const message = (err as Error).message;
    const unknown = /^Unknown option '([^']*)'/.exec(message);
    const first = unknown ? `unknown option '${unknown[1] ?? ''}'` : (message.split('\n')[0] ?? message);
    throw new UsageError(`${command}: ${first.replace(/\.$/, '')} (see '${command} --help')`);
  }
  if (parsed.positionals.length > maxPositionals) {
    const extra = parsed.positionals.slice(maxPositionals).map((p) => `'${p}'`);
    throw new UsageError(`${command}: unexpected argument${extra.length > 1 ? 's' : ''} ${extra.join(' ')} (see '${command} --help')`);
  }
  return { values: parsed.values as ParsedCommandLine['values'], positionals: parsed.positionals };
}

/** Runs a subcommand body, turning AgentErrors into one line on stderr and their exit code. */
export async function reportErrors(io: CliIO, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    io.err(err.message);
    return exitCodeFor(err);
  }
}
