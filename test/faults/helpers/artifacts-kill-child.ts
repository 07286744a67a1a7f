// The process the fetch kill -9 test kills: it does what `bbagent fetch --cache DIR --extract TREE` and the `fetch`
// remote command with `extract` do (fetchArtifact through the cache: the archive downloaded, its tree extracted into
// the cache, then copied into a directory of the step's own; on a warm cache, the tree's hit and the copy), and
// SIGKILLs itself just before (or just after issuing) its Nth file-system call, so that a seeded N lands in every
// phase: the download's writes, the hash of a hit, the publish renames, the extraction, the markers, the copy. A
// run that ends before call N kills itself at the end. With '-' for the cache it does what `bbagent fetch
// --extract TREE` does without one (archive beside TREE, then removed).
//
// argv: cacheRoot|- treeDir url sha256 killAt (0: never; the run prints its calls' phases) before|inflight
// Before dying it writes one line to stderr: `kill <n> <phase> <call> <path>`.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ArtifactCache } from '../../../agent/artifacts/cache.js';
import { fetchArtifact } from '../../../agent/artifacts/fetch.js';
import { silentLogger } from '../../../agent/log.js';

const [root, treeDir, url, digest, killAtArg, mode] = process.argv.slice(2) as [string, string, string, string, string, string];
const killAt = Number(killAtArg);
let calls = 0;
/** The phase of each call so far (printed by a run with killAt 0, so the test can aim at a phase). */
const phases: string[] = [];

/** What a call on `p` belongs to, from the names the cache and the extraction give their files. */
function phaseOf(call: string, p: string): string {
  if (p.includes('.complete') || p.includes('.marker')) return 'marker';
  if (root !== '-' && p.includes(`${treeDir}.extracting-`)) return 'copy'; // the step's copy of the cached tree
  if (call === 'rename') return 'publish';
  if (p.includes('.extracting-') || p.includes('.tree')) return 'extract';
  if (p.includes('.part')) return 'download';
  if (call === 'read') return p.includes('/sha256/') ? 'hash' : 'extract'; // a hit's hash, or the format sniffed
  return 'other';
}

function counted<A extends unknown[], R>(call: string, fn: (...args: A) => R, pathOf: (self: unknown, args: A) => string): (...args: A) => R {
  return function (this: unknown, ...args: A): R {
    calls++;
    if (killAt === 0) phases.push(phaseOf(call, pathOf(this, args)));
    if (calls !== killAt) return fn.apply(this, args);
    const p = pathOf(this, args);
    writeSync(2, `kill ${calls} ${phaseOf(call, p)} ${call} ${p}\n`);
    if (mode === 'before') process.kill(process.pid, 'SIGKILL');
    const r = fn.apply(this, args); // issued to the thread pool: the kill lands while it runs
    process.kill(process.pid, 'SIGKILL');
    return r;
  };
}

/** Counts the fs/promises calls and the FileHandle methods the artifact code uses (the bundle calls them through these objects). */
async function hookFileSystem(): Promise<void> {
  const fsp = createRequire(__filename)('node:fs/promises') as Record<string, (...a: unknown[]) => unknown>;
  const probe = await (fsp.open as (p: string, f: string) => Promise<object>)(__filename, 'r');
  const proto = Object.getPrototypeOf(probe) as Record<string, (...a: unknown[]) => unknown>;
  await (probe as { close(): Promise<void> }).close();
  const firstArg = (_: unknown, a: unknown[]): string => String(a[1] !== undefined && typeof a[1] === 'string' ? `${String(a[0])} -> ${a[1]}` : a[0]);
  for (const name of ['open', 'rename', 'rm', 'unlink', 'mkdir', 'rmdir', 'utimes', 'lutimes', 'chmod', 'symlink', 'link', 'copyFile', 'writeFile']) {
    const orig = fsp[name];
    if (orig) fsp[name] = counted(name, orig, firstArg);
  }
  // the synchronous calls of small files (extraction's writes, the tree copy) and of the tree walk
  const fs = createRequire(__filename)('node:fs') as Record<string, (...a: unknown[]) => unknown>;
  for (const name of ['openSync', 'copyFileSync', 'utimesSync', 'mkdirSync', 'symlinkSync', 'chmodSync', 'readFileSync']) {
    const orig = fs[name];
    if (orig) fs[name] = counted(name.replace(/Sync$/, ''), orig, firstArg);
  }
  const handlePath = new WeakMap<object, string>();
  const open = fsp.open!;
  fsp.open = async (...a: unknown[]) => {
    const fh = (await open(...a)) as object;
    handlePath.set(fh, String(a[0]));
    return fh;
  };
  for (const name of ['write', 'writev', 'writeFile', 'read', 'sync', 'datasync', 'chmod', 'utimes', 'truncate']) {
    const orig = proto[name];
    if (orig) proto[name] = counted(name, orig, (self) => handlePath.get(self as object) ?? '?');
  }
}

async function main(): Promise<void> {
  await hookFileSystem();
  const logger = silentLogger;
  const expected = { algorithm: 'sha256' as const, digest };
  if (root === '-') {
    await fetchArtifact({ url, expected, extract: treeDir, env: {}, logger });
    return done();
  }
  const cache = await ArtifactCache.open({ root, floor: { bytes: 0, percent: 0 } });
  await fetchArtifact({ url, expected, extract: treeDir, cache, env: {}, logger });
  done();
}

/** The end of a run: a kill after it. */
function done(): void {
  writeSync(2, `kill ${calls + 1} done end -\n`);
  process.stdout.write(`calls ${calls}\nphases ${phases.join(',')}\n`, () => process.kill(process.pid, 'SIGKILL'));
}

main().catch((err: unknown) => {
  writeSync(2, `artifacts-kill-child: ${String(err)}\n`);
  process.exit(1);
});
