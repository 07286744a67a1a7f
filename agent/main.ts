// The bundle's entry point (build/bbagent.cjs): runs the command line and sets the exit code. Anything that
// escapes as an exception is a bug in bbagent: one line on stderr, exit code 1.

import { runCli } from './cli/index.js';
import { errorMessage } from './errors.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bbagent: unexpected error: ${errorMessage(err).split('\n')[0] ?? ''}\n`);
    if (process.env['BBAGENT_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  },
);
