// `shell`: runs a command string through the shell or an argv directly, with buildbot-worker's arguments.

import path from 'node:path';
import { RunProcess, type LogfileSpec } from '../process/run-process.js';
import { buildEnvironment } from '../process/environment.js';
import { forensicsWhen } from '../process/hang-forensics.js';
import { TRACKING_ENV } from '../process/tracking.js';
import { CommandArgsError } from '../errors.js';
import { argBool, argOptSeconds, argOptString, argPath, confinePath, describe } from './args.js';
import { type CommandArgs, type CommandDefinition } from './types.js';
import { PyTuple } from '../py/values.js';
import { relPath } from './relative-args.js';

/** Real and displayed argv: a ('obfuscated', real, fake) tuple shows `fake` in the header. */
function parseCommand(v: unknown): { real: string | string[]; fake: string | string[] } {
  if (typeof v === 'string') return { real: v, fake: v };
  if (!Array.isArray(v) || v.length === 0) throw new CommandArgsError(`argument 'command' must be a string or a non-empty list, got ${describe(v)}`);
  const real: string[] = [];
  const fake: string[] = [];
  for (const w of v) {
    if (typeof w === 'string') {
      real.push(w);
      fake.push(w);
    } else if (typeof w === 'number') {
      real.push(String(w));
      fake.push(String(w));
    } else if (isObfuscated(w)) {
      real.push(w.items[1]);
      fake.push(w.items[2]);
    } else {
      throw new CommandArgsError(`argument 'command' has an element that is not a string: ${describe(w)}`);
    }
  }
  return { real, fake };
}

/** ('obfuscated', real, fake): only a real tuple counts, as in buildbot-worker (over msgpack it is a list). */
function isObfuscated(w: unknown): w is PyTuple & { items: [string, string, string] } {
  if (!(w instanceof PyTuple)) return false;
  const [tag, real, fake] = w.items;
  return w.items.length === 3 && tag === 'obfuscated' && typeof real === 'string' && typeof fake === 'string';
}

function parseLogfiles(v: unknown): Record<string, LogfileSpec> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new CommandArgsError(`argument 'logfiles' must be a map, got ${describe(v)}`);
  const out: Record<string, LogfileSpec> = {};
  for (const [name, spec] of Object.entries(v as Record<string, unknown>)) {
    if (typeof spec === 'string') out[name] = spec;
    else if (typeof spec === 'object' && spec !== null && typeof (spec as { filename?: unknown }).filename === 'string') {
      const s = spec as { filename: string; follow?: unknown };
      out[name] = s.follow === undefined ? { filename: s.filename } : { filename: s.filename, follow: Boolean(s.follow) };
    } else throw new CommandArgsError(`logfile '${name}' must be a filename or {'filename': ...}, got ${describe(spec)}`);
  }
  return out;
}

export const shellCommand: CommandDefinition = {
  names: ['shell'],
  requiredArgs: ['workdir', 'command'],
  relativeArgs: relPath('workdir', 'workdir'),
  create(args: CommandArgs, io, env) {
    let proc: RunProcess | undefined;
    let interrupted = false;
    return {
      async run() {
        const { real, fake } = parseCommand(args['command']);
        io.stepEnvironment(args['env']);
        const usePTY = args['usePTY'];
        if (usePTY !== undefined && usePTY !== null && typeof usePTY !== 'boolean' && usePTY !== 0 && usePTY !== 1) {
          throw new CommandArgsError(`Unexpected usePTY argument value: ${describe(usePTY)}. Expected boolean.`);
        }
        const workdir = argPath(args, 'workdir', env);
        const logfiles = parseLogfiles(args['logfiles']);
        // RunProcess reads each logfile at path.join(workdir, filename): a confined worker checks that path.
        for (const spec of Object.values(logfiles)) confinePath(env, path.join(workdir, typeof spec === 'string' ? spec : spec.filename));
        proc = new RunProcess(
          {
            command: real,
            fakeCommand: fake,
            workdir,
            environ: buildEnvironment(env.environ, args['env'], env.platform.pathListSeparator),
            sendStdout: argBool(args, 'want_stdout', true),
            sendStderr: argBool(args, 'want_stderr', true),
            sendRC: true,
            timeout: argOptSeconds(args, 'timeout') ?? null,
            maxTime: argOptSeconds(args, 'maxTime') ?? null,
            sigtermTime: argOptSeconds(args, 'sigtermTime') ?? null,
            initialStdin: argOptString(args, 'initial_stdin') ?? null,
            logEnviron: argBool(args, 'logEnviron', true),
            logfiles,
            usePTY: argBool(args, 'usePTY', false),
            interruptSignal: argOptString(args, 'interruptSignal') || 'KILL',
            forensics: forensicsWhen(args['env']),
            registry: env.processes,
            inheritedTrackingId: env.environ[TRACKING_ENV],
          },
          io,
          env.platform,
          env.logger,
          env.now,
        );
        if (interrupted) return;
        await proc.start();
      },
      interrupt() {
        interrupted = true;
        proc?.kill('command interrupted');
      },
    };
  },
};
