// Shared by the artifact-cache tests: a scratch directory and cache opened per test (closed and removed after
// it), producers that count their calls, and a byte flipper.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { ArtifactCache, type CacheOptions } from '../../agent/artifacts/cache.js';
import { RecordingLogger } from './recording-logger.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** No floor: these tests are not about disk space (the LRU tests are, on a tmpfs). */
export const NO_FLOOR = { bytes: 0, percent: 0 };

const opened: ArtifactCache[] = [];
const scratches: string[] = [];
/** Closes the caches and removes the scratch directories of each test after it (call once per test file). */
export function cleanUpAfterEach(): void {
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
    for (const d of scratches.splice(0)) rmSync(d, { recursive: true, force: true });
  });
}

export function scratch(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cache-'));
  scratches.push(d);
  return d;
}

export async function openCache(root: string, extra: Partial<CacheOptions> = {}): Promise<{ cache: ArtifactCache; log: RecordingLogger }> {
  const log = new RecordingLogger();
  const cache = await ArtifactCache.open({ root, logger: log, floor: NO_FLOOR, ...extra });
  opened.push(cache);
  return { cache, log };
}

/** A produce that writes `content` and counts its calls. */
export function producer(content: Buffer): { calls: number; produce: (p: string) => Promise<void> } {
  const p = {
    calls: 0,
    produce: async (tmp: string) => {
      p.calls++;
      await writeFile(tmp, content);
    },
  };
  return p;
}

export function flipByte(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] = b[at]! ^ 0xff;
  writeFileSync(file, b);
}

/** A produce for a tree: a few files, a subdirectory, a relative link; counts its calls. */
export function treeProducer(): { calls: number; produce: (dir: string) => Promise<void> } {
  const p = {
    calls: 0,
    produce: async (dir: string) => {
      p.calls++;
      mkdirSync(path.join(dir, 'bin'));
      writeFileSync(path.join(dir, 'bin', 'run'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
      writeFileSync(path.join(dir, 'data.bin'), Buffer.alloc(40_000, 7));
      symlinkSync('bin/run', path.join(dir, 'run'));
    },
  };
  return p;
}
