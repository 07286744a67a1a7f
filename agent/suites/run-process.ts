// The real process runner of a suite run: each process (the suite, every rerun) is one RunProcess, with the shell
// command's headers, timers and tree kill, its output streamed to the sink. `kill` ends the process running now,
// whole tree, and refuses to start another: an interrupted suite stops its reruns too.
import type { ProcessControl } from '../../platforms/types.js';
import type { Logger } from '../log.js';
import type { ForensicsWhen } from '../process/hang-forensics.js';
import { RunProcess, type ProcessSink } from '../process/run-process.js';
import type { ProcessRegistry } from '../process/tracking.js';
import type { RunPurpose, SuiteProcessRunner } from './run-types.js';

export interface ProcessRunnerOptions {
  workdir: string;
  environ: Record<string, string>;
  sink: ProcessSink;
  platform: ProcessControl;
  logger: Logger;
  now: () => number;
  /** Seconds without output, and in all, per process (null: none), as a shell step's. */
  timeout: number | null;
  maxTime: number | null;
  sigtermTime: number | null;
  interruptSignal: string;
  logEnviron: boolean;
  /** When to collect hang forensics before a kill (default: before a timeout kill). */
  forensics?: ForensicsWhen;
  registry?: ProcessRegistry;
  inheritedTrackingId?: string;
}

export class SuiteProcesses implements SuiteProcessRunner {
  private current: RunProcess | undefined;
  private killed: string | undefined;

  constructor(private readonly opts: ProcessRunnerOptions) {}

  async run(command: string | readonly string[], purpose: RunPurpose, env: Record<string, string> = {}): Promise<number> {
    if (this.killed !== undefined) return -1;
    const o = this.opts;
    if (purpose.kind === 'rerun') o.sink.text('header', `\nsuite: rerun ${purpose.attempt} of ${purpose.test}\n`);
    const proc = new RunProcess(
      {
        command: typeof command === 'string' ? command : [...command],
        workdir: o.workdir,
        environ: { ...o.environ, ...env },
        sendStdout: true,
        sendStderr: true,
        sendRC: false,
        timeout: o.timeout,
        maxTime: o.maxTime,
        sigtermTime: o.sigtermTime,
        initialStdin: null,
        // the environment is shown once, for the suite; a rerun's differs only by BBAGENT_SUITE_TEST
        logEnviron: o.logEnviron && purpose.kind === 'suite',
        logfiles: {},
        usePTY: false,
        interruptSignal: o.interruptSignal,
        forensics: o.forensics,
        registry: o.registry,
        inheritedTrackingId: o.inheritedTrackingId,
      },
      o.sink,
      o.platform,
      o.logger,
      o.now,
    );
    this.current = proc;
    try {
      return await proc.start();
    } finally {
      this.current = undefined;
    }
  }

  /** Kills the running process's tree (its rc then comes back as -1) and every later run returns -1 at once. */
  kill(why: string): void {
    this.killed = why;
    this.current?.kill(why);
  }
}
