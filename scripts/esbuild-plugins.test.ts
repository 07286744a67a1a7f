// The bundle's lazy `https`/`tls` in ws (scripts/esbuild-plugins.mjs): loading ws must not load TLS, and
// wss:// must still reach TLS when it is used.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { lazyWsBuiltins } from './esbuild-plugins.mjs';
import { REPO_ROOT } from './harness/bbagent-worker.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-esbuild-plugins-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Bundles `source` as the bbagent bundle is built (CJS for node), with or without the plugin, and runs it. */
async function bundleAndRun(source: string, withPlugin: boolean): Promise<string> {
  const entry = path.join(scratch, `entry-${withPlugin ? 'lazy' : 'plain'}.ts`);
  const out = path.join(scratch, `out-${withPlugin ? 'lazy' : 'plain'}.cjs`);
  writeFileSync(entry, source);
  await build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    external: ['bufferutil', 'utf-8-validate'],
    nodePaths: [path.join(REPO_ROOT, 'node_modules')],
    logLevel: 'silent',
    plugins: withPlugin ? [lazyWsBuiltins()] : [],
  });
  return execFileSync(process.execPath, [out], { encoding: 'utf8' }).trim();
}

const loaded = `const loaded = (m) => process.moduleLoadList.includes('NativeModule ' + m);`;

describe('lazyWsBuiltins', () => {
  it('ws loads without https and tls; they load on first use', async () => {
    const source = `import WebSocket from 'ws';
${loaded}
const before = { ws: typeof WebSocket, tls: loaded('tls'), https: loaded('https') };
// a wss:// client goes through tls.connect (the connection is refused; only the module load matters)
const ws = new WebSocket('wss://127.0.0.1:1/');
ws.on('error', () => {});
console.log(JSON.stringify({ before, after: { tls: loaded('tls') } }));
ws.terminate();`;
    expect(JSON.parse(await bundleAndRun(source, true))).toEqual({ before: { ws: 'function', tls: false, https: false }, after: { tls: true } });
    // without the plugin ws loads both at once (what the plugin exists for; if ws stops doing it, drop the plugin)
    expect(JSON.parse(await bundleAndRun(source, false)).before).toEqual({ ws: 'function', tls: true, https: true });
  });
});
