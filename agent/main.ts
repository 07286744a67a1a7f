// The bundle's entry point (build/bbagent.cjs, and the single executable): runs the command line and sets the
// exit code. Anything that escapes as an exception is a bug in bbagent: one line on stderr, exit code 1.

import './v8-tuning.js';
import { runSeaFork } from '../platforms/sea/index.js';
import { runCli } from './cli/index.js';
import { errorMessage } from './errors.js';

// Inside the single executable, node-pty's child_process.fork() of its helper script (Windows: conpty's
// console-list agent) re-runs this entry point; the helper runs instead of the command line.
if (!runSeaFork()) {
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
}
