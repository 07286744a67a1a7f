// scripts/release/build-binaries: builds bbagent as one Node single executable (SEA) per OS and architecture:
// bundle -> SEA blob (made by the pinned Node itself) -> inject into the official Node binary -> sign (macOS)
// -> structural checks -> dist/bbagent-<os>-<arch>[.exe] and dist/SHA256SUMS.
//
// Usage: scripts/release/build-binaries [--target ID]... [--no-check] [--no-code-cache] [--no-install-tools]
//   ID: linux-x64 linux-arm64 win-x64 darwin-x64 darwin-arm64 (default: all five)
// Missing build tools (g++, make, the aarch64 cross compiler, osslsigncode) are installed with apt-get first
// (as root, or through password-less sudo) unless --no-install-tools; see build-tools.ts.

import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { manifestHash, type AssetManifest } from '../../platforms/sea/extract.js';
import { NODE_PTY_MANIFEST_ASSET } from '../../platforms/sea/index.js';
import { lazyWsBuiltins } from '../esbuild-plugins.mjs';
import { ensureTools, realHost, toolsFor } from './build-tools.js';
import { checkBinary } from './check.js';
import { adhocSign, removeSignature } from './macho.js';
import { linuxStrip, nodePtyRuntime } from './node-pty.js';
import { NODE_PTY_VERSION, NODE_VERSION, SEA_EXEC_ARGV, SEA_FUSE, SEA_MACHO_SEGMENT, SEA_RESOURCE, TARGETS, findTarget, type Target } from './targets.js';
import { BuildError, gzipSize, mib, nodePackageDir, run, sha256File, which } from './tools.js';

// The header above, for --help (the bundle this runs from has no comments left to print).
const USAGE = `Usage: scripts/release/build-binaries [--target ID]... [--no-check] [--no-code-cache] [--no-install-tools]
  ID: linux-x64 linux-arm64 win-x64 darwin-x64 darwin-arm64 (default: all five)
  Missing build tools are installed with apt-get (as root or with password-less sudo) unless --no-install-tools.`;

const root = process.cwd();
/**
 * The V8 flags the executables start with: SEA_EXEC_ARGV, or for an experiment (scripts/bench) the
 * space-separated flags in BBAGENT_SEA_EXEC_ARGV.
 */
const execArgv = process.env['BBAGENT_SEA_EXEC_ARGV'] !== undefined ? process.env['BBAGENT_SEA_EXEC_ARGV'].split(/\s+/).filter(Boolean) : SEA_EXEC_ARGV;
const cache = path.join(root, 'build', 'cache');
const dist = path.join(root, 'dist');
const started = Date.now();
const log = (s: string): void => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${s}`);

interface Built {
  target: Target;
  file: string;
  size: number;
  gzip: number;
  sha256: string;
  seconds: number;
}

/** The agent as one CommonJS file for the SEA (no source map: a SEA cannot read it). */
async function bundle(): Promise<string> {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const out = path.join(cache, 'sea', 'bbagent-sea.cjs');
  await build({
    entryPoints: [path.join(root, 'agent', 'main.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${NODE_VERSION.split('.')[0]}`,
    external: ['node-pty', '@lydell/node-pty'],
    define: {
      BBAGENT_VERSION: JSON.stringify(pkg.version),
      // ws probes for optional native helpers with require(); inside a SEA that require cannot load them.
      'process.env.WS_NO_BUFFER_UTIL': '"1"',
      'process.env.WS_NO_UTF_8_VALIDATE': '"1"',
    },
    minifySyntax: true,
    minifyWhitespace: true,
    legalComments: 'none',
    logLevel: 'warning',
    logOverride: { 'empty-import-meta': 'silent' },
    plugins: [lazyWsBuiltins()],
  });
  return out;
}

/** Writes the node-pty manifest and the SEA config for `t`, then makes the blob with the pinned Node. */
function makeBlob(t: Target, bundlePath: string, hostNode: string, nodeDir: string, codeCache: boolean): { blob: string; assets: number } {
  const work = path.join(cache, 'sea', t.id);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const runtime = nodePtyRuntime(root, cache, t, nodeDir, log);
  const ptyVersion = NODE_PTY_VERSION;
  const assets: Record<string, string> = {};
  const files = runtime.map((f) => {
    const asset = `node-pty/${f.rel}`;
    assets[asset] = f.source;
    return { path: f.rel, asset, mode: f.mode, sha256: sha256File(f.source) };
  });
  const manifest: AssetManifest = { name: 'node-pty', version: ptyVersion, hash: manifestHash(files), files };
  const manifestPath = path.join(work, 'node-pty-manifest.json');
  writeFileSync(manifestPath, JSON.stringify(manifest));
  assets[NODE_PTY_MANIFEST_ASSET] = manifestPath;
  const blob = path.join(work, 'sea-prep.blob');
  const config = {
    main: bundlePath,
    output: blob,
    disableExperimentalSEAWarning: true,
    // V8's code cache is only valid for the V8 and CPU that made it: the blob is made by linux-x64 Node.
    useCodeCache: codeCache && t.id === 'linux-x64',
    // No startup snapshot: Node 22 cannot snapshot node:http ("CheckGlobalAndEternalHandles failed"), which ws
    // and the agent load with the code `start` runs, so a snapshot could hold only the command-line parser.
    useSnapshot: false,
    execArgv,
    assets,
  };
  const configPath = path.join(work, 'sea-config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  // Must be exactly the target's Node version: a blob from another version crashes the binary with SIGSEGV. And
  // with the V8 flags the binary starts with: V8 rejects a code cache made under other flags ("Code cache data
  // rejected", and a slower start).
  run(hostNode, [...execArgv, '--experimental-sea-config', configPath], { cwd: work });
  return { blob, assets: runtime.length };
}

/** postject in a child process: its LIEF core prints warnings about Node's ELF notes that are harmless. */
function inject(file: string, blob: string, t: Target): void {
  const cli = createRequire(path.join(root, 'package.json')).resolve('postject/dist/cli.js');
  const args = [cli, file, SEA_RESOURCE, blob, '--sentinel-fuse', SEA_FUSE];
  if (t.os === 'darwin') args.push('--macho-segment-name', SEA_MACHO_SEGMENT);
  run(process.execPath, args);
}

async function buildTarget(t: Target, bundlePath: string, hostNode: string, check: boolean, codeCache: boolean): Promise<Built> {
  const t0 = Date.now();
  const pkgDir = nodePackageDir(cache, t, NODE_VERSION, log);
  const { blob, assets } = makeBlob(t, bundlePath, hostNode, pkgDir, codeCache);
  const work = path.join(cache, 'sea', t.id, t.output);
  copyFileSync(path.join(pkgDir, t.nodeBinary), work);
  chmodSync(work, 0o755);
  if (t.os === 'linux') {
    // The official binaries carry ~18 MB of symbols; stripping before injection keeps the note intact.
    const strip = linuxStrip(t.arch);
    if (strip) run(strip, [work]);
    else log(`${t.id}: no strip for ${t.arch}, keeping symbols`);
  } else if (t.os === 'win32') {
    // postject cannot keep an Authenticode signature valid; remove it (release signing happens after).
    if (!which('osslsigncode')) throw new BuildError('osslsigncode is missing (apt-get install osslsigncode)');
    const unsigned = `${work}.unsigned`;
    run('osslsigncode', ['remove-signature', '-in', work, '-out', unsigned]);
    renameSync(unsigned, work);
  } else {
    writeFileSync(work, removeSignature(readFileSync(work)));
  }
  inject(work, blob, t);
  if (t.os === 'darwin') writeFileSync(work, adhocSign(readFileSync(work), t.output));
  if (check) {
    for (const line of checkBinary(work, t, readFileSync(blob))) log(`${t.id}: check: ${line}`);
  }
  mkdirSync(dist, { recursive: true });
  const out = path.join(dist, t.output);
  renameSync(work, out);
  chmodSync(out, 0o755);
  const size = statSync(out).size;
  const built: Built = { target: t, file: out, size, gzip: gzipSize(out), sha256: sha256File(out), seconds: (Date.now() - t0) / 1000 };
  log(`${t.id}: ${path.relative(root, out)} ${mib(size)} (gzip: ${mib(built.gzip)}), ${assets} node-pty files embedded, ${built.seconds.toFixed(1)} s`);
  return built;
}

/** Rewrites dist/SHA256SUMS: built binaries get their new sums, others already in dist/ keep theirs. */
function writeSums(built: Built[]): void {
  const sumsPath = path.join(dist, 'SHA256SUMS');
  const sums = new Map<string, string>();
  if (existsSync(sumsPath)) {
    for (const line of readFileSync(sumsPath, 'utf8').split('\n')) {
      const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
      if (m && existsSync(path.join(dist, m[2]!))) sums.set(m[2]!, m[1]!);
    }
  }
  for (const b of built) sums.set(path.basename(b.file), b.sha256);
  writeFileSync(
    sumsPath,
    [...sums.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([f, h]) => `${h}  ${f}\n`)
      .join(''),
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', multiple: true },
      'no-check': { type: 'boolean' },
      'no-code-cache': { type: 'boolean' },
      'no-install-tools': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const targets: Target[] = [];
  for (const id of values.target ?? TARGETS.map((t) => t.id)) {
    const t = findTarget(id);
    if (!t) throw new BuildError(`unknown target '${id}' (known: ${TARGETS.map((x) => x.id).join(', ')})`);
    if (!targets.includes(t)) targets.push(t);
  }
  const installed = ensureTools(toolsFor(targets), values['no-install-tools'] !== true, realHost(which, log));
  if (installed.length > 0) log(`installed ${installed.map((t) => t.command).join(', ')}`);
  log(`building ${targets.map((t) => t.id).join(', ')} from Node ${NODE_VERSION}, V8 flags: ${execArgv.join(' ') || 'none'}`);
  const bundlePath = await bundle();
  // The blob is made by the pinned linux-x64 Node, whatever the target: same version is what matters.
  const hostTarget = findTarget('linux-x64')!;
  const hostNode = path.join(nodePackageDir(cache, hostTarget, NODE_VERSION, log), hostTarget.nodeBinary);
  const built: Built[] = [];
  for (const t of targets) built.push(await buildTarget(t, bundlePath, hostNode, values['no-check'] !== true, values['no-code-cache'] !== true));
  writeSums(built);
  writeFileSync(
    path.join(dist, 'build-report.json'),
    JSON.stringify(
      {
        node: NODE_VERSION,
        seconds: (Date.now() - started) / 1000,
        binaries: built.map((b) => ({ file: path.basename(b.file), bytes: b.size, gzipBytes: b.gzip, sha256: b.sha256, seconds: b.seconds })),
      },
      null,
      2,
    ) + '\n',
  );
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s:`);
  for (const b of built)
    console.log(`  ${path.basename(b.file).padEnd(26)} ${mib(b.size).padStart(10)}  gzip ${mib(b.gzip).padStart(10)}  ${b.sha256.slice(0, 16)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`build-binaries: ${err instanceof Error ? err.message : String(err)}`);
    if (!(err instanceof BuildError) && err instanceof Error) console.error(err.stack);
    process.exit(1);
  },
);
