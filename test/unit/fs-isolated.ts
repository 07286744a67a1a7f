// Runs a snippet of agent code in a child Node process with a deadline, so a test of something that used to
// block the event loop for ever (a synchronous loop without end) fails cleanly instead of freezing the run.
// The snippet calls `report(value)` when done; the child also measures the longest event-loop stall.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';

export interface IsolatedResult {
  /** The child was still running at the deadline (and was killed). */
  timedOut: boolean;
  /** What the snippet passed to report(). */
  value: unknown;
  /** Longest gap between two 5 ms ticks, less the 5 ms. */
  maxLagMs: number;
  stderr: string;
}

const PRELUDE = `
const __tickMs = 5;
let __last = performance.now();
let __maxLag = 0;
const __sample = () => { const t = performance.now(); __maxLag = Math.max(__maxLag, t - __last - __tickMs); __last = t; };
const __timer = setInterval(__sample, __tickMs);
function report(value: unknown): void {
  __sample();
  clearInterval(__timer);
  process.stdout.write('RESULT ' + JSON.stringify({ value, maxLagMs: __maxLag }) + '\\n', () => process.exit(0));
}
`;

/** Bundles `source` (TypeScript; imports resolve from test/unit) and runs it with node for at most `timeoutMs`. */
export async function runIsolated(source: string, timeoutMs: number): Promise<IsolatedResult> {
  const out = buildSync({
    stdin: { contents: PRELUDE + source, resolveDir: __dirname, loader: 'ts', sourcefile: 'isolated.ts' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    external: ['@lydell/node-pty', 'node-pty'],
    logLevel: 'silent',
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'isolated-'));
  const file = path.join(dir, 'run.cjs');
  writeFileSync(file, out.outputFiles[0]!.text);
  try {
    return await new Promise<IsolatedResult>((resolve, reject) => {
      const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('error', reject);
      child.on('close', () => {
        clearTimeout(timer);
        const line = /^RESULT (.*)$/m.exec(stdout)?.[1];
        const parsed = line ? (JSON.parse(line) as { value: unknown; maxLagMs: number }) : { value: undefined, maxLagMs: NaN };
        resolve({ timedOut, value: parsed.value, maxLagMs: parsed.maxLagMs, stderr });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
