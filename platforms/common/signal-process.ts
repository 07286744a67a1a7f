// Signalling one process by pid, through Node: the same call on every OS, with different meanings (see
// ProcessControl.signalProcess: on Windows TERM, KILL and INT all end the process at once).

/** Sends SIG<name> to `pid` (negative on POSIX: a process group): true when sent, false when there is no such process. */
export function signalProcess(pid: number, name: string): boolean {
  try {
    process.kill(pid, `SIG${name}` as NodeJS.Signals);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}
