// The `suite` command's arguments (what the master-side RunSuite step sends), read into a suite run's options:
// the suite's command as a shell step's (a string runs through the shell, a list is an argv), the report glob and
// format, the reruns and their template, the name its durations are recorded under, the chunk to run
// (suite-chunk-args.ts, version 1.1), and the shell step's timers.
import path from 'node:path';
import { CommandArgsError, errorMessage } from '../errors.js';
import { BASEDIR_LAYOUT } from '../layout.js';
import { buildEnvironment } from '../process/environment.js';
import { checkFormat } from '../suites/run-parse.js';
import { checkTemplate, splitTemplate } from '../suites/run-template.js';
import type { SuiteRunOptions } from '../suites/run-types.js';
import { readChunkArgs } from './suite-chunk-args.js';
import { argBool, argOptInt, argOptSeconds, argOptString, argPath, argString, describe } from './args.js';
import type { CommandArgs, CommandEnv } from './types.js';

/** The directory in BASEDIR the command records durations in: BASEDIR/suites/durations/NAME.json. */
export const DURATIONS_DIR = 'durations';
/** Reruns per failure at most: 10 extra runs is the budget; 100 leaves room and bounds a typo. */
export const MAX_REPEAT_FAILURES = 100;

export interface SuiteCommandSpec {
  options: SuiteRunOptions;
  environ: Record<string, string>;
  timeout: number | null;
  maxTime: number | null;
  sigtermTime: number | null;
  interruptSignal: string;
  logEnviron: boolean;
}

export function readSuiteArgs(args: CommandArgs, env: CommandEnv): SuiteCommandSpec {
  const repeatFailures = argOptInt(args, 'repeat_failures') ?? 0;
  if (repeatFailures < 0 || repeatFailures > MAX_REPEAT_FAILURES) {
    throw new CommandArgsError(`argument 'repeat_failures' must be an integer in 0..${MAX_REPEAT_FAILURES}, got ${repeatFailures}`);
  }
  const rerun = readRerun(args['rerun']);
  if (repeatFailures > 0 && rerun === undefined) throw new CommandArgsError(`argument 'rerun' is needed when 'repeat_failures' is ${repeatFailures}`);
  const maxConfirmed = argOptInt(args, 'max_confirmed');
  if (maxConfirmed !== undefined && maxConfirmed < 0) throw new CommandArgsError(`argument 'max_confirmed' must be an integer >= 0, got ${maxConfirmed}`);
  const durations = argOptString(args, 'durations');
  const command = readCommand(args['command']);
  return {
    options: {
      command,
      ...readChunkArgs(args, command),
      results: argString(args, 'results'),
      workdir: argPath(args, 'workdir', env),
      format: readFormat(argOptString(args, 'format') ?? 'auto'),
      repeatFailures,
      rerun,
      stopAtFirstPass: argBool(args, 'stop_at_first_pass', false),
      maxConfirmed,
      durationsFile: durations === undefined ? undefined : durationsFile(env.basedir, durations),
    },
    environ: buildEnvironment(env.environ, args['env'], env.platform.pathListSeparator),
    timeout: argOptSeconds(args, 'timeout') ?? null,
    maxTime: argOptSeconds(args, 'maxTime') ?? null,
    sigtermTime: argOptSeconds(args, 'sigtermTime') ?? null,
    interruptSignal: argOptString(args, 'interruptSignal') || 'KILL',
    logEnviron: argBool(args, 'logEnviron', true),
  };
}

function readFormat(format: string): string {
  try {
    return checkFormat(format);
  } catch (err) {
    throw new CommandArgsError(`argument 'format': ${errorMessage(err)}`);
  }
}

function readCommand(v: unknown): string | string[] {
  if (typeof v === 'string' && v !== '') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((w) => typeof w === 'string')) return v as string[];
  throw new CommandArgsError(`argument 'command' must be a non-empty string or list of strings, got ${describe(v)}`);
}

/** A string template is split into words (no shell, run-template.ts); a list is taken as the words already. */
function readRerun(v: unknown): readonly string[] | undefined {
  if (v === undefined || v === null) return undefined;
  try {
    if (typeof v === 'string') return checkTemplate(splitTemplate(v), v);
    if (Array.isArray(v) && v.every((w) => typeof w === 'string')) return checkTemplate(v as string[], JSON.stringify(v));
  } catch (err) {
    throw new CommandArgsError(`argument 'rerun': ${errorMessage(err)}`);
  }
  throw new CommandArgsError(`argument 'rerun' must be a string or a list of strings, got ${describe(v)}`);
}

/**
 * BASEDIR/suites/durations/NAME.json: NAME is the step's (RunSuite sends builder and step name), with every
 * character but letters, digits, '.', '_' and '-' made '_', so it names one file inside that directory.
 */
export function durationsFile(basedir: string, name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_');
  if (safe === '' || /^\.+$/.test(safe)) throw new CommandArgsError(`argument 'durations' must name a file, got ${JSON.stringify(name)}`);
  return path.join(basedir, BASEDIR_LAYOUT.suites, DURATIONS_DIR, `${safe}.json`);
}
