// `perf` (bbagent's own, version 1.0): a perf run as a remote command, with the CLI's options as arguments. The
// step log gets the progress, the replicates' output, one summary line per subtest and the PERFHERDER_DATA line
// (Treeherder's log parser finds it there); the master-side step gets the structured result under the status key
// 'perf' (sendJsonStatus): {result, perfherder} on success, {error: {code, message, gate}} when the run failed as
// data (noisy host, a failing replicate, bad PERFMETRIC output: rc 1). Bad arguments fail the command
// (CommandArgsError), as buildbot-worker does. With `out`, perfherder-data.json and perf-stats.json are written
// there (relative to workdir).

import path from 'node:path';
import { AgentError, CommandArgsError } from '../errors.js';
import { VERSION } from '../version.js';
import { buildEnvironment } from '../process/environment.js';
import { ensureDir } from '../fs/makedirs.js';
import { DEFAULT_CHECK_EVERY } from '../perf/adaptive.js';
import { DEFAULT_FILTER } from '../perf/filters.js';
import { GATE_MODES, type GateMode, type GateReport } from '../perf/gate.js';
import { DEFAULT_ADAPTIVE_MAX, DEFAULT_ADAPTIVE_MIN, DEFAULT_REPEAT, type PerfRunOptions } from '../perf/types.js';
import { argOptInt, argOptNumber, argOptSeconds, argOptString, argPath, argString, confinePath, describe } from './args.js';
import { sendJsonStatus } from './json-status.js';
import { relPath } from './relative-args.js';
import type { CommandArgs, CommandDefinition, CommandEnv, CommandIO, WorkerCommand } from './types.js';

/** The status key of the structured result (master/bbagent_buildbot/perf.py reads it). */
export const PERF_STATUS_KEY = 'perf';

function argv(args: CommandArgs, env: CommandEnv): string[] {
  const v = args['command'];
  if (typeof v === 'string' && v !== '') return env.platform.shellArgv(v);
  if (Array.isArray(v) && v.length > 0 && v.every((w) => typeof w === 'string')) return v as string[];
  throw new CommandArgsError(`argument 'command' must be a string or a non-empty list of strings, got ${describe(v)}`);
}

/** The perf runner, its statistics and Perfherder output: loaded when a perf step starts, not at the agent's start. */
async function loadPerfRunner() {
  const [run, artifacts, perfherder, quietHost] = await Promise.all([
    import('../perf/run.js'),
    import('../perf/artifacts.js'),
    import('../perf/perfherder.js'),
    import('../../platforms/common/quiet-host.js'),
  ]);
  return { ...run, ...artifacts, ...perfherder, ...quietHost };
}

export function perfOptions(args: CommandArgs, env: CommandEnv, workdir: string, checkRunOptions: (o: PerfRunOptions) => unknown): PerfRunOptions {
  const mode = (argOptString(args, 'quiet_host') ?? 'refuse') as GateMode;
  if (!GATE_MODES.includes(mode)) throw new CommandArgsError(`argument 'quiet_host' must be one of ${GATE_MODES.join(', ')}, got ${describe(mode)}`);
  const target = argOptNumber(args, 'target_ci');
  const timeout = argOptSeconds(args, 'timeout');
  const min = argOptInt(args, 'min') ?? DEFAULT_ADAPTIVE_MIN;
  const options: PerfRunOptions = {
    name: argString(args, 'name'),
    argv: argv(args, env),
    cwd: workdir,
    env: buildEnvironment(env.environ, args['env'], env.platform.pathListSeparator),
    repeat: argOptInt(args, 'repeat') ?? DEFAULT_REPEAT,
    warmup: argOptInt(args, 'warmup') ?? 0,
    filter: argOptString(args, 'filter') ?? DEFAULT_FILTER,
    quietHost: mode,
    recheckEvery: argOptInt(args, 'recheck_every') ?? 0,
    framework: argOptString(args, 'framework') ?? 'bbagent',
    ...(target === undefined
      ? {}
      : {
          adaptive: {
            targetPercent: target,
            min,
            // repeat caps an adaptive run too (never below min)
            max: argOptInt(args, 'max') ?? Math.max(min, argOptInt(args, 'repeat') ?? DEFAULT_ADAPTIVE_MAX),
            checkEvery: argOptInt(args, 'check_every') ?? DEFAULT_CHECK_EVERY,
          },
        }),
    ...(timeout === undefined || timeout === Infinity ? {} : { timeoutMs: timeout * 1000 }),
  };
  try {
    checkRunOptions(options);
  } catch (err) {
    if (err instanceof AgentError) throw new CommandArgsError(err.message);
    throw err;
  }
  return options;
}

class PerfCommand implements WorkerCommand {
  private readonly abort = new AbortController();

  constructor(
    private readonly args: CommandArgs,
    private readonly io: CommandIO,
    private readonly env: CommandEnv,
  ) {}

  async run(): Promise<void> {
    const { io, env, args } = this;
    io.stepEnvironment(args['env']);
    const workdir = argPath(args, 'workdir', env);
    const outArg = argOptString(args, 'out');
    const out = outArg === undefined ? undefined : path.resolve(workdir, outArg);
    if (out !== undefined) confinePath(env, out);
    const { checkRunOptions, runPerf, perfherderData, perfherderLine, summaryLines, writePerfArtifacts, currentQuietHostProbe } = await loadPerfRunner();
    const options = perfOptions(args, env, workdir, checkRunOptions);
    // as a shell step does: the workdir is made when missing (an OSError naming it fails the command otherwise)
    ensureDir(workdir);
    const line = (stream: 'stdout' | 'stderr', text: string): void => io.text(stream, `${text}\n`);
    try {
      const result = await runPerf(
        { ...options, signal: this.abort.signal, onProgress: (l) => line('stdout', `perf: ${l}`), onOutput: (s, t) => io.text(s, t) },
        { processControl: env.platform, probe: currentQuietHostProbe(), agentVersion: VERSION },
      );
      const data = perfherderData(result);
      if (out !== undefined) await writePerfArtifacts(out, result, data);
      for (const l of summaryLines(result)) line('stdout', l);
      line('stdout', perfherderLine(data));
      sendJsonStatus(io, PERF_STATUS_KEY, { result, perfherder: data });
      io.status('rc', 0);
    } catch (err) {
      if (!(err instanceof AgentError) || !err.code.startsWith('E_PERF_')) throw err;
      line('stderr', `perf: ${err.message}`);
      const gate = (err as { report?: GateReport }).report ?? null;
      sendJsonStatus(io, PERF_STATUS_KEY, { error: { code: err.code, message: err.message, gate } });
      io.status('rc', 1);
    }
  }

  interrupt(): void {
    this.abort.abort();
  }
}

export const perfCommand: CommandDefinition = {
  names: ['perf'],
  version: '1.0',
  requiredArgs: ['workdir', 'name', 'command'],
  relativeArgs: relPath('workdir', 'workdir'),
  create(args, io, env) {
    return new PerfCommand(args, io, env);
  },
};
