// `suite` (bbagent's own, version 1.1: 1.0 plus chunks, suite-chunk-args.ts): runs a test suite as a shell step
// runs its command (output to the step's stdio, the same timers and tree kill), parses the reports it wrote, reruns
// each unexpected failure in a fresh process and classifies it (agent/suites/run.ts). The structured result goes
// to the master as JSON under the status key 'suite' (json-status.ts), and rc is 1 when the verdict is 'fail',
// else 0 (-1 when interrupted).

import { forensicsWhen } from '../process/hang-forensics.js';
import { TRACKING_ENV } from '../process/tracking.js';
import type { SuiteProcesses } from '../suites/run-process.js';
import type { SuiteRunResult } from '../suites/run-types.js';
import { confinePath } from './args.js';
import { sendJsonStatus } from './json-status.js';
import { forMaster } from './suite-result.js';
import { relPath } from './relative-args.js';
import type { CommandDefinition } from './types.js';

/** The status key of the result document (master/bbagent_buildbot/suite.py reads it). */
export const SUITE_STATUS_KEY = 'suite';

export const suiteCommand: CommandDefinition = {
  names: ['suite'],
  version: '1.1',
  requiredArgs: ['workdir', 'command', 'results'],
  relativeArgs: relPath('workdir', 'workdir'),
  create(args, io, env) {
    let processes: SuiteProcesses | undefined;
    const interrupted = new AbortController();
    return {
      async run() {
        io.stepEnvironment(args['env']);
        const { readSuiteArgs, SuiteProcesses, runSuite, parseSuiteReports, findReports } = await loadSuiteRunner();
        const spec = readSuiteArgs(args, env);
        processes = new SuiteProcesses({
          workdir: spec.options.workdir,
          environ: spec.environ,
          sink: io,
          platform: env.platform,
          logger: env.logger,
          now: env.now,
          timeout: spec.timeout,
          maxTime: spec.maxTime,
          sigtermTime: spec.sigtermTime,
          interruptSignal: spec.interruptSignal,
          logEnviron: spec.logEnviron,
          forensics: forensicsWhen(args['env']),
          registry: env.processes,
          inheritedTrackingId: env.environ[TRACKING_ENV],
        });
        if (interrupted.signal.aborted) processes.kill('command interrupted');
        const result = await runSuite(spec.options, {
          runner: processes,
          parse: parseSuiteReports,
          // a confined worker reads no report outside BASEDIR (the glob may hold '..' or meet a symlink)
          findReports: async (pattern, workdir) => {
            const found = await findReports(pattern, workdir);
            for (const f of found) confinePath(env, f.path);
            return found;
          },
          note: (line) => io.text('header', `${line}\n`),
          signal: interrupted.signal,
          confine: (p) => void confinePath(env, p),
        });
        sendJsonStatus(io, SUITE_STATUS_KEY, forMaster(result));
        io.status('rc', rcOf(result));
      },
      interrupt() {
        interrupted.abort();
        processes?.kill('command interrupted');
      },
    };
  },
};

/**
 * The suite runner and the report parsers (saxes, ...), loaded when a suite step starts: an agent that runs none
 * does not evaluate them at its start (in the bundle, a dynamic import is a module evaluated on first use).
 */
async function loadSuiteRunner() {
  const [args, processes, run, parse, reports] = await Promise.all([
    import('./suite-args.js'),
    import('../suites/run-process.js'),
    import('../suites/run.js'),
    import('../suites/run-parse.js'),
    import('../suites/run-reports.js'),
  ]);
  return {
    readSuiteArgs: args.readSuiteArgs,
    SuiteProcesses: processes.SuiteProcesses,
    runSuite: run.runSuite,
    parseSuiteReports: parse.parseSuiteReports,
    findReports: reports.findReports,
  };
}

/** The command's rc, as the CLI's exit code: 1 on a 'fail' verdict, -1 when interrupted, else 0. */
export function rcOf(result: SuiteRunResult): number {
  if (result.interrupted) return -1;
  return result.verdict === 'fail' ? 1 : 0;
}
