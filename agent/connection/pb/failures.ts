// What the master sees of our errors over PB: Python exception names and MROs, as buildbot-worker's would be, for
// error answers and for the failure `complete` carries.

import type { CommandFailure } from '../../commands/types.js';
import { AgentError } from '../../errors.js';
import { osErrorClass } from '../../py/errno.js';
import { EXC_TAIL, pythonParents, qualifyType } from '../../py/exceptions.js';
import type { PythonError } from './errors.js';
import { CopyableFailure } from './jelly.js';

// ---- Python exception names, so the master sees what buildbot-worker would send ----

function py(type: string, ...parents: string[]): PythonError {
  return { pyType: type, pyParents: [type, ...parents, ...EXC_TAIL] };
}

/** Which Python exception the master sees for an error our methods threw (error answers). */
export function describePbError(err: unknown): PythonError {
  const e = err as Partial<PythonError> & { code?: unknown; pyType?: unknown };
  if (typeof e?.pyType === 'string') {
    const q = qualifyType(e.pyType);
    return Array.isArray(e.pyParents) ? { pyType: q, pyParents: e.pyParents } : { pyType: q, pyParents: pythonParents(q) };
  }
  switch (err instanceof AgentError ? err.code : undefined) {
    case 'E_UNKNOWN_COMMAND':
      // buildbot_worker.base.UnknownCommand(pb.Error), as in the capture of startCommand('bogus')
      return py('buildbot_worker.base.UnknownCommand', 'twisted.spread.pb.Error');
    case 'E_COMMAND_ARGS':
      // Command.setup raises ValueError("... is missing args: ...")
      return { pyType: 'builtins.ValueError', pyParents: pythonParents('builtins.ValueError') };
    case 'E_PB_ARGS':
      return { pyType: 'builtins.TypeError', pyParents: pythonParents('builtins.TypeError') };
    case 'E_JELLY':
      return py('twisted.spread.jelly.InsecureJelly');
    default:
      break;
  }
  const osError = typeof e?.code === 'string' ? osErrorClass(e.code) : undefined;
  if (osError) {
    const q = `builtins.${osError}`;
    return { pyType: q, pyParents: pythonParents(q) };
  }
  return { pyType: 'builtins.RuntimeError', pyParents: pythonParents('builtins.RuntimeError') };
}

/** "file:line:function" frames (commands/failure.ts) as a Python traceback, which the master shows. */
function formatTraceback(f: CommandFailure, qualified: string): string {
  const frames = f.traceback
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(.*):(\d+):(.*)$/.exec(l);
      return m ? `  File "${m[1]}", line ${m[2]}, in ${m[3]}` : `  ${l}`;
    });
  return `Traceback (most recent call last):\n${frames.length ? `${frames.join('\n')}\n` : ''}${qualified}: ${f.message}\n`;
}

/** The failure `complete` carries: a CopyableFailure as a deferred's errback sends it (pickled, with traceback). */
export function completeFailure(f: CommandFailure): CopyableFailure {
  const type = qualifyType(f.type);
  return new CopyableFailure({
    type,
    value: f.message,
    traceback: formatTraceback(f, type),
    parents: pythonParents(type),
    unsafeTracebacks: true,
    pickled: true,
  });
}
