// POSIX process start: a pipe-connected child that leads its own process group, or a child under a PTY
// (node-pty, its own session). Launch problems are found before spawning and thrown as SpawnError values.

import { spawn as cpSpawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { SpawnError, type ExitStatus, type ProcessHandle, type SpawnRequest } from '../types.js';
import { osConstants } from './signals.js';
import { readPipe } from './pipe-reader.js';
import { requireFromDisk, seaNodePtyDir } from '../sea/index.js';

/** Where a name without a slash resolves on PATH, as execvp would find it; undefined when nowhere. */
/** An absolute directory with no empty, '.' or '..' segment and no trailing slash: path.join would not change it. */
const NORMAL_DIR = /^(?:\/(?!\.\.?(?:\/|$))[^/]+)+$/;

/**
 * path.join(dir || '.', file) for a PATH entry and a file name without '/'. A normal directory is joined with a
 * slash: path.join normalises character by character, and a step's 9 PATH entries made its separator test the
 * one function of a 50-step build that V8 compiled with TurboFan (--trace-opt), paging in 5.3 MiB of compiler.
 */
export function joinPathEntry(dir: string, file: string): string {
  return file !== '.' && file !== '..' && NORMAL_DIR.test(dir) ? `${dir}/${file}` : path.join(dir || '.', file);
}

export function resolveExecutable(file: string, envPath: string | undefined): string | undefined {
  const isExec = (p: string): boolean => {
    try {
      // a missing candidate (most PATH entries) returns undefined rather than throwing: an exception per
      // entry was most of a short step's launch CPU
      if (!statSync(p, { throwIfNoEntry: false })?.isFile()) return false;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (file.includes('/')) return isExec(file) ? file : undefined;
  for (const dir of (envPath ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const candidate = joinPathEntry(dir, file);
    if (isExec(candidate)) return candidate;
  }
  return undefined;
}

function checkLaunch(req: SpawnRequest): string {
  try {
    if (!statSync(req.cwd).isDirectory()) throw new SpawnError('ENOTDIR', `[Errno 20] Not a directory: '${req.cwd}'`, 20);
  } catch (err) {
    if (err instanceof SpawnError) throw err;
    throw new SpawnError('ENOENT', `[Errno 2] No such file or directory: '${req.cwd}'`, 2);
  }
  const file = req.argv[0];
  if (file === undefined || file === '') throw new SpawnError('ENOENT', 'empty command', 2);
  const resolved = resolveExecutable(file, req.env['PATH']);
  if (!resolved) throw new SpawnError('ENOENT', `[Errno 2] No such file or directory: '${file}'`, 2);
  return resolved;
}

function pipeSpawn(req: SpawnRequest, file: string): ProcessHandle {
  const child = cpSpawn(file, req.argv.slice(1), {
    cwd: req.cwd,
    env: req.env,
    argv0: req.argv[0],
    detached: true, // setsid(): the child leads a new process group, so kills reach the whole group
    stdio: ['pipe', 'pipe', 'pipe'],
    windowsHide: true,
  });
  if (child.pid === undefined) throw new SpawnError('ESPAWN', `could not start '${req.argv[0]}'`);
  const stdin = child.stdin!;
  stdin.on('error', () => {}); // EPIPE when the child exits without reading its stdin
  if (!req.stdinPipe) stdin.end();
  let exitCb: ((s: ExitStatus) => void) | undefined;
  let status: ExitStatus | undefined;
  let exited: ExitStatus | undefined;
  let open = 2;
  // the end is reported once the process exited and both pipes closed (as child_process's 'close')
  const settle = (): void => {
    if (status || !exited || open > 0) return;
    status = exited;
    exitCb?.(status);
  };
  const closed = (): void => {
    open--;
    settle();
  };
  let onOut: (data: Buffer) => void = () => {};
  let onErr: (data: Buffer) => void = () => {};
  const out = readPipe(child.stdout!, (d) => onOut(d), closed, req.directReads ?? true);
  const err = readPipe(child.stderr!, (d) => onErr(d), closed, req.directReads ?? true);
  const onEnd = (code: number | null, signal: NodeJS.Signals | null): void => {
    exited ??= { code, signal: signal ? (osConstants.signals[signal] ?? null) : null };
    settle();
  };
  child.on('exit', onEnd);
  child.on('close', onEnd); // after 'exit'; alone when the launch failed late (no 'exit' then)
  child.on('error', () => {}); // launch errors were checked before; later ones surface through 'close'
  return {
    pid: child.pid,
    onStdout: (cb) => (onOut = cb),
    onStderr: (cb) => (onErr = cb),
    onExit: (cb) => {
      exitCb = cb;
      if (status) cb(status);
    },
    writeStdin: (data) => stdin.write(data),
    closeStdin: () => stdin.end(),
    pause: () => {
      out.pause();
      err.pause();
    },
    resume: () => {
      out.resume();
      err.resume();
    },
    closeOutput: () => {
      out.destroy();
      err.destroy();
    },
  };
}

type NodePty = typeof import('@lydell/node-pty');
let nodePty: NodePty | undefined;
function loadNodePty(): NodePty {
  // Loaded on first use only: most workers never run a PTY step, and the native module costs start-up time.
  // In the single executable node-pty is embedded and extracted to a per-user cache on first use. Elsewhere
  // (npm install, the bundle, tests) it is @lydell/node-pty: node-pty with prebuilt addons, so no compiler.
  if (nodePty === undefined) {
    const seaDir = seaNodePtyDir();
    nodePty = (
      seaDir !== undefined
        ? requireFromDisk(path.join(seaDir, 'lib', 'index.js'))
        : createRequire(typeof __filename === 'string' ? __filename : import.meta.url)('@lydell/node-pty')
    ) as NodePty;
  }
  return nodePty;
}

/**
 * buildbot-worker runs PTY children with a 0x0 window and without adding TERM. node-pty always sets a size
 * (0 means its default, 80x24) and TERM, so a tiny sh prologue restores both before exec'ing the real program.
 */
const PTY_PROLOGUE = 'stty rows 0 cols 0 2>/dev/null; [ -n "$BBAGENT_UNSET_TERM" ] && unset TERM; unset BBAGENT_UNSET_TERM; exec "$@"';

function ptySpawn(req: SpawnRequest, file: string): ProcessHandle {
  const env = { ...req.env };
  if (env['TERM'] === undefined) env['BBAGENT_UNSET_TERM'] = '1';
  const term = loadNodePty().spawn('/bin/sh', ['-c', PTY_PROLOGUE, req.argv[0] ?? file, file, ...req.argv.slice(1)], {
    cwd: req.cwd,
    env,
    encoding: null,
  } as import('@lydell/node-pty').IPtyForkOptions);
  let exitCb: ((s: ExitStatus) => void) | undefined;
  let status: ExitStatus | undefined;
  term.onExit(({ exitCode, signal }) => {
    status = signal ? { code: null, signal } : { code: exitCode, signal: null };
    exitCb?.(status);
  });
  return {
    pid: term.pid,
    onStdout: (cb) => term.onData((d) => cb(typeof d === 'string' ? Buffer.from(d) : Buffer.from(d as Uint8Array))),
    onStderr: () => {}, // a PTY merges stderr into stdout
    onExit: (cb) => {
      exitCb = cb;
      if (status) cb(status);
    },
    writeStdin: (data) => term.write(typeof data === 'string' ? data : data.toString('binary')),
    closeStdin: () => {},
    pause: () => term.pause(),
    resume: () => term.resume(),
    closeOutput: () => {},
  };
}

export function posixSpawn(req: SpawnRequest): ProcessHandle {
  const file = checkLaunch(req);
  return req.pty ? ptySpawn(req, file) : pipeSpawn(req, file);
}
