// Process control on Windows: cmd.exe, taskkill /T for trees, PATHEXT for programs. Not yet exercised on a
// real Windows host.
// Tracking markers are not supported: Windows has no readable environment of other processes, and the
// process tree is what taskkill /T finds (a per-command job object would need native code; see
// docs/compatibility.md).

import { execFile, spawn as cpSpawn } from 'node:child_process';
import { searchPath } from '../common/find-program.js';
import { signalProcess } from '../common/signal-process.js';
import { SpawnError, type ExitStatus, type ProcessControl } from '../process-control.js';

/** taskkill normally answers at once; a wedged one must not hold a command's end forever (ms). */
const TASKKILL_TIMEOUT_MS = 10_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What win32ProcessControl runs; tests replace it. */
export interface Win32Deps {
  /** Runs a program and calls `done` when it ended (default: execFile with TASKKILL_TIMEOUT_MS). */
  run?: (file: string, args: readonly string[], done: () => void) => void;
}

/** A variable of a Windows environment, whose names are case-insensitive (PATH is usually spelt Path). */
function envVar(environ: Record<string, string | undefined>, name: string): string | undefined {
  if (environ[name] !== undefined) return environ[name];
  const key = Object.keys(environ).find((k) => k.toUpperCase() === name);
  return key === undefined ? undefined : environ[key];
}

/**
 * The program search of cmd.exe: the directories of PATH (';'-separated), each name tried as given and then
 * with every extension of PATHEXT, in order.
 */
export function win32FindProgram(name: string, environ: Record<string, string | undefined>, isExecutable?: (p: string) => boolean): string | null {
  const pathext = envVar(environ, 'PATHEXT');
  const exts = pathext ? ['', ...pathext.split(';')] : [''];
  return searchPath(name, (envVar(environ, 'PATH') ?? '').split(';'), exts, isExecutable);
}

export function win32ProcessControl(deps: Win32Deps = {}): ProcessControl {
  const run =
    deps.run ??
    ((file: string, args: readonly string[], done: () => void): void => {
      execFile(file, args, { windowsHide: true, timeout: TASKKILL_TIMEOUT_MS }, () => done());
    });
  return {
    supportsPty: false,
    shellArgv: (command) => [process.env['COMSPEC'] ?? 'cmd.exe', '/c', command],
    spawn(req) {
      if (req.pty) throw new SpawnError('ENOTSUP', 'usePTY is not supported on Windows yet');
      const child = cpSpawn(req.argv[0] ?? '', req.argv.slice(1), {
        cwd: req.cwd,
        env: req.env,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
      if (child.pid === undefined) throw new SpawnError('ENOENT', `could not start '${req.argv[0]}'`, 2);
      if (!req.stdinPipe) child.stdin!.end();
      child.stdin!.on('error', () => {});
      let cb: ((s: ExitStatus) => void) | undefined;
      let status: ExitStatus | undefined;
      child.on('close', (code) => {
        status = { code: code ?? 1, signal: null };
        cb?.(status);
      });
      return {
        pid: child.pid,
        onStdout: (f) => child.stdout!.on('data', f),
        onStderr: (f) => child.stderr!.on('data', f),
        onExit: (f) => {
          cb = f;
          if (status) f(status);
        },
        writeStdin: (d) => child.stdin!.write(d),
        closeStdin: () => child.stdin!.end(),
        pause: () => child.stdout!.pause(),
        resume: () => child.stdout!.resume(),
        closeOutput: () => {
          child.stdout!.destroy();
          child.stderr!.destroy();
        },
      };
    },
    findProgram: (name, environ) => win32FindProgram(name, environ),
    tracksMarkers: false,
    // Not supported: only the root is known (taskkill /T finds the rest when killing).
    findProcesses: async (q) => (q.root !== undefined && alive(q.root) ? [{ pid: q.root, start: undefined }] : []),
    killProcesses(_sig, q) {
      // Only the root, and only while the caller knows it unreaped: `group` is the same pid, but once the process
      // was reaped that pid may be another program's, which taskkill /T would kill with its whole tree. (A tree
      // whose root ended cannot be found through it anyway: Windows links children to a live parent only.)
      const root = q.root;
      if (root === undefined) return Promise.resolve([]);
      return new Promise((resolve) => run('taskkill', ['/PID', String(root), '/T', '/F'], () => resolve([{ pid: root, start: undefined }])));
    },
    // process.kill ends the process (TerminateProcess) for TERM, KILL and INT: there is no gentler request.
    signalProcess,
    inspectProcesses: async (pids) =>
      pids.map((pid) => ({ pid, ppid: undefined, state: undefined, cpuSeconds: undefined, wchan: undefined, openFiles: undefined, command: '?' })),
    // Not supported: no stack tool is looked for on Windows.
    collectStacks: async () => ({ tool: undefined, text: '' }),
    processStartMs: () => undefined,
    signalNumber: (name) => ({ KILL: 9, TERM: 15, INT: 2 })[name],
    removeTreeArgv: (p) => ['cmd.exe', '/c', 'rmdir', '/s', '/q', p],
    chmodTreeArgv: (p) => ['attrib', '-R', `${p}\\*`, '/S'],
    copyTreeArgv: (from, to) => ['xcopy', '/E', '/I', '/H', '/K', '/Y', from, to],
  };
}
