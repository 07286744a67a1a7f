// `bbagent perf run`: the quiet-host gate, warm-up, replicates (fixed or adaptive), then the statistics on stdout,
// the PERFHERDER_DATA line, and the two artifacts in --out. Progress goes to stderr. SIGINT and SIGTERM kill the
// running replicate and end the run with exit 1. A noisy host (gate refuse, or wait that timed out) exits 1.

import path from 'node:path';
import { AgentError } from '../errors.js';
import { VERSION } from '../version.js';
import { DEFAULT_ADAPTIVE_MAX, DEFAULT_ADAPTIVE_MIN, DEFAULT_REPEAT, type PerfRunOptions } from '../perf/types.js';
import { GATE_MODES, type GateMode } from '../perf/gate.js';
import { DEFAULT_CHECK_EVERY } from '../perf/adaptive.js';
import { DEFAULT_FILTER } from '../perf/filters.js';
import { checkRunOptions, runPerf } from '../perf/run.js';
import { perfherderData, perfherderLine } from '../perf/perfherder.js';
import { summaryLines, writePerfArtifacts } from '../perf/artifacts.js';
import { currentPlatform } from '../../platforms/index.js';
import { currentQuietHostProbe } from '../../platforms/common/quiet-host.js';
import { EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';

const COMMAND = 'bbagent perf run';

export const PERF_RUN_USAGE = `Usage: bbagent perf run --name SUITE [options] -- CMD...

Runs CMD (an argv, after --) as replicates and measures its wall time in ms, or, when it prints lines
'PERFMETRIC <name> <value> [unit]', those values (one subtest each). Prints one summary line per subtest
(value, median, exact 95% CI of the median, CV, MAD, outliers) and a 'PERFHERDER_DATA: {json}' line; writes
perfherder-data.json and perf-stats.json into --out.

Options:
      --name SUITE          the suite's name (required; 1-80 characters, no spaces)
      --repeat N            replicates to run (default ${DEFAULT_REPEAT}; with --target-ci, the default --max)
      --warmup W            unmeasured runs first (default 0)
      --filter SPEC         Talos filters, e.g. ignore_first:5,median (ignore_first:N, ignore_max, ignore_min,
                            then one of median, mean, geometric_mean; default ${DEFAULT_FILTER})
      --quiet-host MODE     wait | refuse | off (default refuse): sample the host first and wait for quiet, or
                            refuse, when other work uses >= 3% of the CPU, steal or throttling is seen
      --recheck-every N     sample the host again (a 1 s window) after every N replicates: refuse fails the run
                            when it turned noisy, wait waits and lists the replicates since as suspect
      --target-ci PCT       adaptive: stop when the 95% CI of the median is within ±PCT% of it
      --min N --max N       adaptive bounds (default ${DEFAULT_ADAPTIVE_MIN}, and --repeat: ${DEFAULT_ADAPTIVE_MAX})
      --check-every K       adaptive: look at the CI every K replicates from --min on (default ${DEFAULT_CHECK_EVERY})
      --timeout SECONDS     kill a replicate that runs longer
      --framework NAME      Perfherder framework name (default bbagent)
      --out DIR             where the artifacts go (default: the current directory)
      --json                print perf-stats.json's content instead of the summary lines
  -h, --help                show this help`;

const OPTIONS: OptionSpec = {
  name: { type: 'string' },
  repeat: { type: 'string' },
  warmup: { type: 'string' },
  filter: { type: 'string' },
  'quiet-host': { type: 'string' },
  'target-ci': { type: 'string' },
  min: { type: 'string' },
  max: { type: 'string' },
  'check-every': { type: 'string' },
  'recheck-every': { type: 'string' },
  timeout: { type: 'string' },
  framework: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

type Values = Record<string, string | boolean | undefined>;

function integer(values: Values, name: string, dflt: number): number {
  const v = values[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`${COMMAND}: --${name} must be a whole number, got '${String(v)}'`);
  return Number(v);
}

function decimal(values: Values, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`${COMMAND}: --${name} must be a number > 0, got '${String(v)}'`);
  return n;
}

export function runOptions(values: Values, argv: string[], io: CliIO): PerfRunOptions {
  if (typeof values.name !== 'string') throw new UsageError(`${COMMAND}: --name SUITE is required (see '${COMMAND} --help')`);
  const mode = (values['quiet-host'] ?? 'refuse') as GateMode;
  if (!GATE_MODES.includes(mode)) throw new UsageError(`${COMMAND}: --quiet-host must be one of ${GATE_MODES.join(', ')}, got '${String(mode)}'`);
  const target = decimal(values, 'target-ci');
  if (target === undefined && (values.min !== undefined || values.max !== undefined || values['check-every'] !== undefined))
    throw new UsageError(`${COMMAND}: --min, --max and --check-every shape adaptive runs: give --target-ci too`);
  const repeat = integer(values, 'repeat', DEFAULT_REPEAT);
  const min = integer(values, 'min', DEFAULT_ADAPTIVE_MIN);
  const timeout = decimal(values, 'timeout');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(io.env)) if (v !== undefined) env[k] = v;
  const options: PerfRunOptions = {
    name: values.name,
    argv,
    cwd: process.cwd(),
    env,
    repeat,
    warmup: integer(values, 'warmup', 0),
    filter: typeof values.filter === 'string' ? values.filter : DEFAULT_FILTER,
    quietHost: mode,
    ...(values['recheck-every'] === undefined ? {} : { recheckEvery: integer(values, 'recheck-every', 0) }),
    framework: typeof values.framework === 'string' ? values.framework : 'bbagent',
    ...(target === undefined
      ? {}
      : {
          adaptive: {
            targetPercent: target,
            min,
            // --repeat caps an adaptive run too (never below --min)
            max: integer(values, 'max', Math.max(min, values.repeat === undefined ? DEFAULT_ADAPTIVE_MAX : repeat)),
            checkEvery: integer(values, 'check-every', DEFAULT_CHECK_EVERY),
          },
        }),
    ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
  };
  try {
    checkRunOptions(options);
  } catch (err) {
    if (err instanceof AgentError && (err.code === 'E_PERF_OPTIONS' || err.code === 'E_PERF_FILTER')) throw new UsageError(`${COMMAND}: ${err.message}`);
    throw err;
  }
  return options;
}

export async function perfRunCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, Infinity);
    if (values.help === true) {
      io.out(PERF_RUN_USAGE);
      return EXIT_OK;
    }
    const options = runOptions(values, positionals, io);
    const out = path.resolve(typeof values.out === 'string' ? values.out : '.');
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const result = await runPerf(
        { ...options, signal: abort.signal, onProgress: (line) => io.err(`perf: ${line}`) },
        { processControl: currentPlatform(), probe: currentQuietHostProbe(), agentVersion: VERSION },
      );
      const data = perfherderData(result);
      await writePerfArtifacts(out, result, data);
      if (values.json === true) io.out(JSON.stringify(result));
      else for (const line of summaryLines(result)) io.out(line);
      io.out(perfherderLine(data));
      return EXIT_OK;
    } finally {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
    }
  });
}
