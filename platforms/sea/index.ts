// bbagent as a Node single executable application (SEA): detection, embedded assets, and node-pty's runtime
// extracted from the executable to a per-user cache directory on first use (native code loads from disk only).

import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { extractAssets, ExtractError, type AssetManifest } from './extract.js';

export { extractAssets, manifestHash, extractionDirName, COMPLETE_MARKER, ExtractError } from './extract.js';
export type { AssetManifest, ManifestFile } from './extract.js';

/** The asset (JSON AssetManifest) that lists node-pty's embedded files; each file is the asset `node-pty/<path>`. */
export const NODE_PTY_MANIFEST_ASSET = 'node-pty/manifest.json';

interface SeaApi {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
}

function seaApi(): SeaApi | undefined {
  try {
    // process.getBuiltinModule exists from Node 20.16 / 22.3; node:sea from 20.12. A static import would fail
    // to load on older Node and in tools that do not know the module.
    const get = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
    const sea = get?.call(process, 'node:sea') as SeaApi | undefined;
    return sea?.isSea() === true ? sea : undefined;
  } catch {
    return undefined;
  }
}

/** True when this process is bbagent's single executable (not `node build/bbagent.cjs`). */
export function isSingleExecutable(): boolean {
  return seaApi() !== undefined;
}

/** An embedded asset's bytes, or undefined when not a single executable or the asset is absent. */
export function seaAsset(key: string): Buffer | undefined {
  const sea = seaApi();
  if (!sea) return undefined;
  try {
    return Buffer.from(sea.getAsset(key));
  } catch {
    return undefined;
  }
}

/**
 * The per-user cache directory for extracted files: $BBAGENT_CACHE_DIR, else systemd's $CACHE_DIRECTORY (the
 * unit sets CacheDirectory=), else the OS convention: %LOCALAPPDATA%\bbagent\cache, ~/Library/Caches/bbagent,
 * $XDG_CACHE_HOME/bbagent or ~/.cache/bbagent.
 */
export function userCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home = os.homedir()): string {
  const explicit = env['BBAGENT_CACHE_DIR'];
  if (explicit) return explicit;
  const systemd = env['CACHE_DIRECTORY']?.split(':')[0];
  if (systemd) return path.join(systemd, 'sea');
  if (platform === 'win32') {
    const local = env['LOCALAPPDATA'] ?? path.win32.join(home, 'AppData', 'Local');
    return path.win32.join(local, 'bbagent', 'cache');
  }
  if (platform === 'darwin') return path.join(home, 'Library', 'Caches', 'bbagent');
  return path.join(env['XDG_CACHE_HOME'] || path.join(home, '.cache'), 'bbagent');
}

/** Where the cache goes when the user's own cache directory cannot be made (a service user without a home). */
function fallbackCacheDir(): string {
  const uid = (process as { getuid?: () => number }).getuid?.call(process);
  return path.join(os.tmpdir(), `bbagent-cache-${uid ?? os.userInfo().username}`);
}

let nodePtyDir: string | undefined;

/**
 * Inside the single executable: extracts node-pty's runtime (package.json, lib/, the native directory) on first
 * use and returns the directory to require it from. Outside it: undefined (node-pty comes from node_modules).
 */
export function seaNodePtyDir(): string | undefined {
  if (nodePtyDir !== undefined) return nodePtyDir;
  const manifestBytes = seaAsset(NODE_PTY_MANIFEST_ASSET);
  if (manifestBytes === undefined) return undefined;
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as AssetManifest;
  const read = (asset: string): Buffer => {
    const data = seaAsset(asset);
    if (data === undefined) throw new ExtractError('E_SEA_ASSET', `embedded file ${asset} is missing from this executable`);
    return data;
  };
  try {
    nodePtyDir = extractAssets(manifest, read, userCacheDir());
  } catch (err) {
    // A broken executable is final; a cache that cannot be made or is not ours (HOME=/nonexistent, a read-only
    // home, another owner) falls back to a private directory under the temp directory.
    if (err instanceof ExtractError && err.code !== 'E_SEA_CACHE') throw err;
    nodePtyDir = extractAssets(manifest, read, fallbackCacheDir());
  }
  return nodePtyDir;
}

/** Loads a CommonJS module from disk: inside a SEA the bundle's own require only knows built-in modules. */
export function requireFromDisk(file: string): unknown {
  return createRequire(file)(file);
}

/**
 * The file a child_process.fork() of node-pty asked this executable to run, when this process is such a fork:
 * on Windows node-pty forks lib/conpty_console_list_agent(.js) with an IPC channel, and in a SEA a fork re-runs
 * the executable's own entry with the script as argv[2] (a SEA's argv[1] repeats the executable).
 */
export function nodePtyForkTarget(argv: readonly string[], hasIpc: boolean, ptyDir: string | undefined): string | undefined {
  const script = argv[2];
  if (!hasIpc || script === undefined || ptyDir === undefined) return undefined;
  if (!/^conpty_console_list_agent(\.js)?$/.test(path.basename(script))) return undefined;
  const resolved = path.resolve(script);
  const rel = path.relative(ptyDir, resolved);
  // Only node-pty's own extracted copy: anything else is a user argument that happens to share the name.
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return resolved;
}

/**
 * Called first by the entry point. Returns true when this process is a fork of node-pty's helper script inside
 * the single executable and that script now runs (the caller must then do nothing else).
 */
export function runSeaFork(argv: readonly string[] = process.argv): boolean {
  if (typeof process.send !== 'function' || !isSingleExecutable()) return false;
  const target = nodePtyForkTarget(argv, true, seaNodePtyDir());
  if (target === undefined) return false;
  requireFromDisk(target.endsWith('.js') ? target : `${target}.js`);
  return true;
}
