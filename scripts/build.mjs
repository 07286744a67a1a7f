// Bundles the agent into build/bbagent.cjs (one CommonJS file; node-pty stays external because it is native).
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { lazyWsBuiltins } from './esbuild-plugins.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
// BBAGENT_BUILD_DIR: another output directory (make-release packs from one, leaving build/ to running tests).
const out = process.env.BBAGENT_BUILD_DIR ? path.resolve(process.env.BBAGENT_BUILD_DIR) : path.join(root, 'build');

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: 'linked',
  external: ['@lydell/node-pty', 'node-pty', 'bufferutil', 'utf-8-validate'],
  define: { BBAGENT_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning',
  // node-pty is loaded with createRequire(__filename ?? import.meta.url): the import.meta branch is for vitest (ESM)
  logOverride: { 'empty-import-meta': 'silent' },
  plugins: [lazyWsBuiltins()],
};

await Promise.all([
  // the agent itself
  build({ ...common, entryPoints: [path.join(root, 'agent', 'main.ts')], outfile: path.join(out, 'bbagent.cjs') }),
  // the demo driver (a local master + a sample build)
  build({ ...common, entryPoints: [path.join(root, 'scripts', 'demo.ts')], outfile: path.join(out, 'demo.cjs') }),
  // the side-by-side benchmark against buildbot-worker (scripts/bench/run)
  build({ ...common, entryPoints: [path.join(root, 'scripts', 'bench', 'main.ts')], outfile: path.join(out, 'bench.cjs') }),
]);
