// `bbagent perf run|compare`: performance tests from any ShellCommand. `run` measures a command's replicates
// (agent/perf/, docs/perf.md); `compare` tells whether a new result regressed against a baseline (exit 1 if so).

import { EXIT_OK, EXIT_USAGE, type CliIO } from './io.js';

export const PERF_USAGE = `Usage: bbagent perf run --name SUITE [options] -- CMD...
       bbagent perf compare --baseline FILE --new FILE [--threshold PCT] [--json]

  run       measure CMD's wall time (or the PERFMETRIC lines it prints) over replicates; prints the statistics
            and a PERFHERDER_DATA line, writes perfherder-data.json and perf-stats.json
  compare   Perfherder's t-test and a Mann-Whitney U between two results; exit 1 on a likely regression

'bbagent perf run --help' and 'bbagent perf compare --help' show their options.`;

export async function perfCommand(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return (await import('./perf-run.js')).perfRunCommand(rest, io);
  if (sub === 'compare') return (await import('./perf-compare.js')).perfCompareCommand(rest, io);
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.out(PERF_USAGE);
    return EXIT_OK;
  }
  io.err(`bbagent perf: ${sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`}: expected 'run' or 'compare' (see 'bbagent perf --help')`);
  return EXIT_USAGE;
}
