// `bbagent suite <subcommand>`: test suites from any ShellCommand. The subcommands are a table (one line each,
// its code loaded only when it runs); `bbagent suite SUB --help` prints a subcommand's own help.
import { EXIT_OK, EXIT_USAGE, type CliIO } from './io.js';

export interface SuiteSubcommand {
  /** One line for `bbagent suite --help`: the synopsis, then what it does. */
  synopsis: string;
  summary: string;
  run: (argv: string[], io: CliIO) => Promise<number>;
}

export const SUITE_SUBCOMMANDS: Record<string, SuiteSubcommand> = {
  chunk: {
    synopsis: 'chunk --total N --this K [--durations FILE] [--by test|group] [LIST|-]',
    summary: 'print the test ids of chunk K of N, one a line',
    run: async (argv, io) => (await import('./suite-chunk.js')).suiteChunkCommand(argv, io),
  },
  parse: {
    synopsis: 'parse [--format auto|junit|tap|mozlog] [--json] FILE...',
    summary: 'read JUnit XML, TAP or mozlog reports into one summary (or JSON)',
    run: async (argv, io) => (await import('./suite-parse.js')).suiteParseCommand(argv, io),
  },
  run: {
    synopsis: "run --results GLOB [--format F] [--repeat-failures K --rerun 'CMD {test}'] -- CMD...",
    summary: 'run a suite, rerun its failures, classify them',
    run: async (argv, io) => (await import('./suite-run.js')).suiteRunCommand(argv, io),
  },
};

export function suiteUsage(): string {
  const lines = Object.values(SUITE_SUBCOMMANDS).flatMap((s) => [`  bbagent suite ${s.synopsis}`, `      ${s.summary}`]);
  return `Usage: bbagent suite <subcommand> [options]

Subcommands:
${lines.join('\n')}

'bbagent suite <subcommand> --help' shows a subcommand's options.`;
}

export async function suiteCommand(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(suiteUsage());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const sub = Object.hasOwn(SUITE_SUBCOMMANDS, name) ? SUITE_SUBCOMMANDS[name] : undefined;
  if (sub === undefined) {
    io.err(`bbagent suite: unknown subcommand '${name}' (one of ${Object.keys(SUITE_SUBCOMMANDS).join(', ')}; see 'bbagent suite --help')`);
    return EXIT_USAGE;
  }
  return sub.run(rest, io);
}
