// Huge reports stream: a JUnit file and a mozlog file several times larger than the heap they are given are
// parsed by the bundle's `bbagent suite parse` in a child with --max-old-space-size=32, every test counted (an
// implementation that held the file, or its results, would die of heap exhaustion instead).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeJunit, writeMozlog, type GeneratedCounts } from '../../scripts/bench/suites-parse-gen.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
const HEAP_MB = 32;
const run = promisify(execFile);

const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-parse-big-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function parseInSmallHeap(file: string): Promise<string> {
  const { stdout } = await run(process.execPath, [`--max-old-space-size=${HEAP_MB}`, BUNDLE, 'suite', 'parse', file], { timeout: 50_000 });
  return stdout.split('\n')[0]!;
}

function summary(c: GeneratedCounts): string {
  return `${c.total} tests: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped, ${c.errors} errors`;
}

describe('streaming huge reports', () => {
  beforeAll(() => {
    if (!existsSync(BUNDLE)) spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  });

  it(`parses a JUnit file 3x the heap (${HEAP_MB} MiB) and counts every test`, async () => {
    const file = path.join(dir, 'big.xml');
    const counts = await writeJunit(file, 120_000, 800);
    expect(statSync(file).size).toBeGreaterThan(3 * HEAP_MB * 1024 * 1024);
    expect(await parseInSmallHeap(file)).toBe(summary(counts));
  });

  it(`parses a mozlog file 3x the heap (${HEAP_MB} MiB) and counts every test`, async () => {
    const file = path.join(dir, 'big.log');
    const counts = await writeMozlog(file, 300_000);
    expect(statSync(file).size).toBeGreaterThan(3 * HEAP_MB * 1024 * 1024);
    expect(await parseInSmallHeap(file)).toBe(summary(counts));
  });
});
