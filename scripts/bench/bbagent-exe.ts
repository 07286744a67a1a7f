// Which bbagent the benchmarks run (--bbagent sea|bundle|PATH): by default the single executable users install
// (dist/bbagent-<os>-<arch>, built from this checkout when it is missing or older than its sources), or the
// bundle build/bbagent.cjs on the Node that runs the benchmark, or any executable given by path.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readdirSync, readSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { SEA_EXEC_ARGV, findTarget, type Target } from '../release/targets.js';

export type BbagentKind = 'sea' | 'bundle' | 'path';

export interface BbagentRun {
  kind: BbagentKind;
  /** The executable to run; undefined for the bundle (process.execPath build/bbagent.cjs). */
  executable: string | undefined;
  /** For the report's header: what ran. */
  label: string;
  /** The process's executable name, to check the measured pid is bbagent itself (/proc/<pid>/exe). */
  exeName: RegExp;
}

/** What a single executable is built from: newer files here make dist/ stale. */
const SOURCES = ['agent', 'platforms', 'scripts/release', 'scripts/esbuild-plugins.mjs', 'package.json', 'package-lock.json'];

/** The release target of this machine (linux-x64 on the usual bench host). */
export function hostTarget(): Target {
  const os = process.platform === 'win32' ? 'win' : process.platform;
  const t = findTarget(`${os}-${process.arch}`);
  if (!t) throw new Error(`no single-executable target for ${os}-${process.arch}: run the bundle (--bbagent bundle)`);
  return t;
}

/** The newest file under `paths` (relative to root), or undefined when there is none. */
export function newestSource(root: string, paths: readonly string[] = SOURCES): { file: string; mtimeMs: number } | undefined {
  let best: { file: string; mtimeMs: number } | undefined;
  const visit = (p: string): void => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) visit(path.join(p, e));
    } else if (!/\.test\.ts$/.test(p) && (best === undefined || st.mtimeMs > best.mtimeMs)) best = { file: path.relative(root, p), mtimeMs: st.mtimeMs };
  };
  for (const p of paths) visit(path.join(root, p));
  return best;
}

/** Builds dist/<target> with scripts/release/build-binaries when it is missing or older than its sources; says why. */
export function ensureSingleExecutable(root: string, t: Target, log: (s: string) => void): string {
  const file = path.join(root, 'dist', t.output);
  let reason: string | undefined;
  if (!existsSync(file)) reason = 'it is missing';
  else {
    const newest = newestSource(root);
    if (newest && newest.mtimeMs > statSync(file).mtimeMs) reason = `${newest.file} is newer`;
  }
  if (reason !== undefined) {
    log(`bench: building ${path.relative(root, file)} (${reason}): scripts/release/build-binaries --target ${t.id}`);
    execFileSync(path.join(root, 'scripts', 'release', 'build-binaries'), ['--target', t.id], { cwd: root, stdio: 'inherit' });
  } else log(`bench: ${path.relative(root, file)} is up to date with its sources`);
  return file;
}

/**
 * Copies an executable as a download or `install` writes it: 64 KiB at a time, then mode 755. The file the build
 * wrote in one 100 MB write sits in the page cache in large folios, and each page fault then maps more of it:
 * the same pages touched show ~15 MiB more RSS than a file written in 64 KiB pieces (or read from disk at boot).
 */
export function installCopy(from: string, to: string): void {
  const src = openSync(from, 'r');
  const dst = openSync(to, 'w', 0o755);
  try {
    const buf = Buffer.alloc(64 * 1024);
    for (let n; (n = readSync(src, buf, 0, buf.length, null)) > 0;) writeSync(dst, buf, 0, n);
  } finally {
    closeSync(src);
    closeSync(dst);
  }
  chmodSync(to, 0o755);
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Resolves --bbagent (sea, the default; bundle; or a path), building the single executable if needed. */
export function resolveBbagent(spec: string, root: string, bundle: string, log: (s: string) => void): BbagentRun {
  if (spec === 'bundle') {
    return { kind: 'bundle', executable: undefined, label: `the bundle ${path.relative(root, bundle)} on node ${process.version}`, exeName: /^node/ };
  }
  if (spec === 'sea') {
    const file = ensureSingleExecutable(root, hostTarget(), log);
    return {
      kind: 'sea',
      executable: file,
      label: `the single executable ${path.relative(root, file)} (its Node starts with ${SEA_EXEC_ARGV.join(' ') || 'no flags'})`,
      exeName: new RegExp(`^${escape(path.basename(file))}$`),
    };
  }
  const file = path.resolve(spec);
  if (!existsSync(file)) throw new Error(`--bbagent ${spec}: no such file (sea, bundle or the path of an executable)`);
  // any executable name: a wrapper script may exec another program (e.g. node with V8 flags and the bundle)
  return { kind: 'path', executable: file, label: `the executable ${file}`, exeName: /./ };
}
