// A process that uses the artifact cache without end, for the kill -9 fault test: it opens the cache at argv[2]
// (lock + sweep), says "ready", then publishes new entries for ever: a file written in small chunks, then a
// tree "extracted" from it, so that a kill lands in a produce, a rename, a marker write or an eviction
// (argv[3]: the floor in bytes, so that the small tmpfs forces evictions).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ArtifactCache, extractedKey, fileKey } from '../../../agent/artifacts/cache.js';

const FILE_BYTES = 256 * 1024;
const CHUNK_BYTES = 16 * 1024;
const TREE_FILES = 8;
/** Each file-system step of a publish or removal takes this much longer, so random kills land in every step. */
const STEP_DELAY_MS = 3;

/**
 * Slows the fs/promises calls the cache makes (the bundle calls them through the module object, so replacing
 * them here is seen there): without it, the steps between a rename and its marker take microseconds on a
 * tmpfs and 50 random kills would rarely land in them.
 */
function slowDownFileSystem(): void {
  const fsp = createRequire(__filename)('node:fs/promises') as Record<string, unknown>;
  for (const name of ['rename', 'rm', 'utimes', 'mkdir', 'lstat', 'stat', 'open', 'opendir']) {
    const orig = fsp[name] as (...args: unknown[]) => Promise<unknown>;
    fsp[name] = async (...args: unknown[]) => {
      await new Promise((r) => setTimeout(r, STEP_DELAY_MS));
      return orig(...args);
    };
  }
}

async function main(): Promise<void> {
  slowDownFileSystem();
  const root = process.argv[2]!;
  const floorBytes = Number(process.argv[3] ?? '0');
  const cache = await ArtifactCache.open({ root, floor: { bytes: floorBytes, percent: 0 } });
  process.stdout.write('ready\n');
  for (;;) {
    const content = randomBytes(FILE_BYTES);
    const digest = createHash('sha256').update(content).digest('hex');
    await cache.get(fileKey('sha256', digest), {
      expectedBytes: FILE_BYTES,
      produce: async (tmp) => {
        const fh = await open(tmp, 'w');
        try {
          for (let at = 0; at < content.length; at += CHUNK_BYTES) await fh.write(content, at, CHUNK_BYTES);
          await fh.sync();
        } finally {
          await fh.close();
        }
      },
    });
    await cache.get(extractedKey('sha256', digest), {
      expectedBytes: FILE_BYTES,
      produce: async (dir) => {
        await mkdir(path.join(dir, 'sub'));
        const part = FILE_BYTES / TREE_FILES;
        for (let i = 0; i < TREE_FILES; i++) await writeFile(path.join(dir, i % 2 ? 'sub' : '', `f${i}`), content.subarray(i * part, (i + 1) * part));
      },
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`cache-child: ${String(err)}\n`);
  process.exit(1);
});
