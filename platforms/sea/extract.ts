// Extraction of embedded files (node-pty's runtime) from a single executable to a per-user cache directory, so
// that native code can be loaded from disk. Pure of SEA specifics: the reader of embedded files is injected.

import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makedirs } from '../common/makedirs.js';
import { AgentError, type ErrorCode } from '../../agent/errors.js';

/** One embedded file: where it goes below the extraction directory, which asset holds it, its mode. */
export interface ManifestFile {
  path: string;
  asset: string;
  mode: number;
  sha256: string;
}

/** What the build embeds as the asset `<prefix>/manifest.json`. */
export interface AssetManifest {
  /** e.g. "node-pty" */
  name: string;
  version: string;
  /** sha256 over the files' paths, modes and hashes: the cache key, so a changed build never reuses old files. */
  hash: string;
  files: ManifestFile[];
}

/** Written last into an extraction: a directory without it is incomplete and never used. */
export const COMPLETE_MARKER = '.bbagent-complete';

export class ExtractError extends AgentError {
  declare readonly code: Extract<ErrorCode, `E_SEA_${string}`>;
  constructor(code: Extract<ErrorCode, `E_SEA_${string}`>, message: string) {
    super(code, message);
    this.name = 'ExtractError';
  }
}

/** The manifest hash of a set of files: sha256 of "path\0mode\0sha256\n" lines in path order. */
export function manifestHash(files: readonly Pick<ManifestFile, 'path' | 'mode' | 'sha256'>[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    h.update(`${f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`);
  }
  return h.digest('hex');
}

/** Directory name of one extraction: keyed by name, version and a prefix of the manifest hash. */
export function extractionDirName(m: Pick<AssetManifest, 'name' | 'version' | 'hash'>): string {
  return `${m.name}-${m.version}-${m.hash.slice(0, 16)}`;
}

/**
 * Extracts the manifest's files below `cacheRoot` once; later calls (and other processes) find the finished
 * directory and return at once. Files are written to a private temporary directory that is renamed into
 * place, so a reader never sees half a tree; when two processes race, the loser's rename fails and it uses
 * the winner's directory. Every file's content is checked against its sha256 before it is written.
 */
export function extractAssets(manifest: AssetManifest, read: (asset: string) => Buffer, cacheRoot: string): string {
  if (manifestHash(manifest.files) !== manifest.hash) {
    throw new ExtractError('E_SEA_MANIFEST', `embedded ${manifest.name} manifest is inconsistent (hash mismatch)`);
  }
  const finalDir = path.join(cacheRoot, extractionDirName(manifest));
  if (existsSync(path.join(finalDir, COMPLETE_MARKER))) return finalDir;
  makedirs(cacheRoot, { existOk: true, mode: 0o700 });
  checkPrivate(cacheRoot);
  const tmp = path.join(cacheRoot, `.tmp-${extractionDirName(manifest)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    for (const f of manifest.files) {
      const rel = path.normalize(f.path);
      if (path.isAbsolute(rel) || rel.split(path.sep).includes('..')) {
        throw new ExtractError('E_SEA_MANIFEST', `embedded file path escapes the extraction directory: ${f.path}`);
      }
      const data = read(f.asset);
      const digest = createHash('sha256').update(data).digest('hex');
      if (digest !== f.sha256) throw new ExtractError('E_SEA_ASSET', `embedded file ${f.path} is corrupt (sha256 ${digest}, expected ${f.sha256})`);
      const dest = path.join(tmp, rel);
      makedirs(path.dirname(dest), { existOk: true, mode: 0o700 });
      writeFileSync(dest, data, { mode: f.mode & 0o777 });
      chmodSync(dest, f.mode & 0o777); // the umask may have cleared execute bits (spawn-helper needs them)
    }
    writeFileSync(path.join(tmp, COMPLETE_MARKER), `${manifest.hash}\n`);
    try {
      if (existsSync(finalDir) && !existsSync(path.join(finalDir, COMPLETE_MARKER))) {
        // Left by a crash of a release that renamed before writing the marker: not ours to trust.
        rmSync(finalDir, { recursive: true, force: true });
      }
      renameSync(tmp, finalDir);
    } catch (err) {
      // Another process renamed its complete copy first (EEXIST / ENOTEMPTY / EPERM on Windows).
      if (!existsSync(path.join(finalDir, COMPLETE_MARKER))) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return finalDir;
}

/** Refuses a cache directory that another user owns or can write: native code is loaded from it. */
function checkPrivate(dir: string): void {
  const getuid = (process as { getuid?: () => number }).getuid;
  if (getuid === undefined) return; // Windows: per-user %LOCALAPPDATA% is protected by its ACL
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new ExtractError('E_SEA_CACHE', `cache path ${dir} is not a directory`);
  if (st.uid !== getuid.call(process)) throw new ExtractError('E_SEA_CACHE', `cache directory ${dir} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o022) !== 0) chmodSync(dir, st.mode & 0o755);
}
