// scripts/release/make-release: builds the release directory an operator serves over HTTP(S) and installs from:
// the executables of build-binaries, SHA256SUMS (sha256sum's format), install.sh (Linux, macOS), install.ps1
// (Windows) and the npm package bbagent-<version>.tgz (npm-package.ts); with the Windows executable, also winsw.exe,
// the service wrapper `bbagent service install` copies (from node-windows's npm package, its SHA-256 checked
// against WINSW_SOURCE). The two install scripts are copied from this directory with the default base URL filled in.
//
// Usage: scripts/release/make-release [--out DIR] [--target ID]... [--base-url URL] [--no-build [--dist DIR]]
//                                     [build-binaries flags]

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { packNpm } from './npm-package.js';
import { TARGETS, findTarget, type Target } from './targets.js';
import { BuildError, nodePackageDir, sha256File } from './tools.js';
import { WINSW_SOURCE } from '../../platforms/win32/winsw-config.js';

const USAGE = `Usage: scripts/release/make-release [--out DIR] [--target ID]... [--base-url URL] [--no-build [--dist DIR]]
                                    [--no-check] [--no-code-cache] [--no-install-tools]
  Builds the executables (scripts/release/build-binaries, which installs missing build tools with apt-get unless
  --no-install-tools), then writes DIR (default: dist/release) with them, SHA256SUMS, install.sh and install.ps1.
  ID: ${TARGETS.map((t) => t.id).join(' ')} (default: all five)
  Also bbagent-VERSION.tgz, for npm install -g (no compiler needed: prebuilt node-pty).
  --base-url URL  where DIR will be served: the install scripts' default for their --base-url / -BaseUrl
  --no-build      take the executables already in dist/ (or --dist DIR) instead of building them`;

/** The line of each install script that make-release rewrites to hold the default base URL. */
export const BASE_URL_LINES = {
  'install.sh': { pattern: /^BASE_URL=''(?= *#)/m, line: (url: string) => `BASE_URL='${url}'` },
  'install.ps1': { pattern: /^ {2}\[string\]\$BaseUrl = ''(?=,)/m, line: (url: string) => `  [string]$BaseUrl = '${url}'` },
} as const;

export type InstallScript = keyof typeof BASE_URL_LINES;

/** Refuses a base URL the scripts could not hold safely inside single quotes or use for HTTP. */
export function checkBaseUrl(url: string): string {
  if (!/^https?:\/\/[^\s'"`$\\]+$/.test(url)) {
    throw new BuildError(`--base-url '${url}': expected an http:// or https:// URL without spaces, quotes, '$', '\\' or backquotes`);
  }
  return url.replace(/\/+$/, '');
}

/** The install script's text with `baseUrl` as its default (unchanged when undefined). */
export function withBaseUrl(name: InstallScript, text: string, baseUrl: string | undefined): string {
  if (baseUrl === undefined) return text;
  const { pattern, line } = BASE_URL_LINES[name];
  if (!pattern.test(text)) throw new BuildError(`${name}: the default base URL line is missing (expected to match ${String(pattern)})`);
  return text.replace(pattern, line(checkBaseUrl(baseUrl)));
}

/** SHA256SUMS in sha256sum's text format, sorted by name. */
export function sha256sums(dir: string, files: readonly string[]): string {
  return [...files]
    .sort((a, b) => a.localeCompare(b))
    .map((f) => `${sha256File(path.join(dir, f))}  ${f}\n`)
    .join('');
}

export interface ReleaseOptions {
  root: string;
  /** Where the executables are (default: ROOT/dist, where build-binaries writes them). */
  dist?: string;
  out: string;
  targets: readonly Target[];
  baseUrl?: string;
  /** Also pack the npm package (default true). */
  npm?: boolean;
  /** winsw.exe to ship with a Windows executable (default: fetched from the npm registry into build/cache). */
  winsw?: string;
}

/** winsw.exe from node-windows's npm package (the only copy on the registry), checked against WINSW_SOURCE. */
export function fetchWinsw(cache: string, log: (s: string) => void): string {
  const pkg = nodePackageDir(cache, { nodePackage: WINSW_SOURCE.npmPackage, nodeBinary: WINSW_SOURCE.file }, WINSW_SOURCE.version, log);
  const exe = path.join(pkg, WINSW_SOURCE.file);
  const got = sha256File(exe);
  if (got !== WINSW_SOURCE.sha256) throw new BuildError(`${exe}: SHA-256 ${got}, expected ${WINSW_SOURCE.sha256} (WINSW_SOURCE)`);
  return exe;
}

/** Writes the release directory from the executables in ROOT/dist; returns the file names it holds. */
export function assembleRelease(opts: ReleaseOptions): string[] {
  const dist = opts.dist ?? path.join(opts.root, 'dist');
  const absent = opts.targets.filter((t) => !existsSync(path.join(dist, t.output)));
  if (absent.length > 0) {
    throw new BuildError(`not built: ${absent.map((t) => path.join(dist, t.output)).join(', ')} (run without --no-build, or build-binaries --target ...)`);
  }
  // Replaces an earlier release directory, never another directory that happens to be named.
  if (existsSync(opts.out) && readdirSync(opts.out).length > 0 && !existsSync(path.join(opts.out, 'SHA256SUMS'))) {
    throw new BuildError(`--out ${opts.out}: not empty and not a release directory (no SHA256SUMS): choose another`);
  }
  rmSync(opts.out, { recursive: true, force: true });
  mkdirSync(opts.out, { recursive: true });
  const files: string[] = [];
  for (const t of opts.targets) {
    copyFileSync(path.join(dist, t.output), path.join(opts.out, t.output));
    chmodSync(path.join(opts.out, t.output), 0o755);
    files.push(t.output);
  }
  if (opts.targets.some((t) => t.output.endsWith('.exe'))) {
    const winsw = opts.winsw ?? fetchWinsw(path.join(opts.root, 'build', 'cache'), (line) => console.log(`make-release: ${line}`));
    copyFileSync(winsw, path.join(opts.out, 'winsw.exe'));
    files.push('winsw.exe');
  }
  for (const name of Object.keys(BASE_URL_LINES) as InstallScript[]) {
    const text = readFileSync(path.join(opts.root, 'scripts', 'release', name), 'utf8');
    writeFileSync(path.join(opts.out, name), withBaseUrl(name, text, opts.baseUrl), { mode: 0o755 });
    files.push(name);
  }
  if (opts.npm !== false) files.push(packNpm(opts.root, opts.out));
  writeFileSync(path.join(opts.out, 'SHA256SUMS'), sha256sums(opts.out, files));
  return [...files, 'SHA256SUMS'];
}

function buildBinaries(root: string, targets: readonly Target[], passThrough: string[]): void {
  const args = [...targets.flatMap((t) => ['--target', t.id]), ...passThrough];
  const r = spawnSync(path.join(root, 'scripts', 'release', 'build-binaries'), args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new BuildError(`build-binaries ${args.join(' ')} failed (exit ${String(r.status ?? r.signal)})`);
}

function main(): number {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      target: { type: 'string', multiple: true },
      'base-url': { type: 'string' },
      'no-build': { type: 'boolean' },
      dist: { type: 'string' },
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
  const root = process.cwd();
  const targets: Target[] = [];
  for (const id of values.target ?? TARGETS.map((t) => t.id)) {
    const t = findTarget(id);
    if (!t) throw new BuildError(`unknown target '${id}' (known: ${TARGETS.map((x) => x.id).join(', ')})`);
    if (!targets.includes(t)) targets.push(t);
  }
  const baseUrl = values['base-url'] === undefined ? undefined : checkBaseUrl(values['base-url']);
  if (values.dist !== undefined && values['no-build'] !== true) throw new BuildError('--dist DIR goes with --no-build (a build writes dist/)');
  if (values['no-build'] !== true) {
    const pass = (['no-check', 'no-code-cache', 'no-install-tools'] as const).filter((f) => values[f] === true).map((f) => `--${f}`);
    buildBinaries(root, targets, pass);
  }
  const out = path.resolve(root, values.out ?? path.join('dist', 'release'));
  const dist = values.dist !== undefined ? path.resolve(root, values.dist) : undefined;
  const files = assembleRelease({ root, out, targets, ...(baseUrl !== undefined ? { baseUrl } : {}), ...(dist !== undefined ? { dist } : {}) });
  const shown = path.relative(root, out).startsWith('..') ? out : path.relative(root, out);
  console.log(`make-release: ${shown}: ${files.join(' ')}`);
  if (baseUrl === undefined) console.log('make-release: no --base-url: the install scripts need --base-url / -BaseUrl when run');
  else console.log(`make-release: install with: curl -fsSL ${baseUrl}/install.sh | sudo sh -s -- --help`);
  return readdirSync(out).length > 0 ? 0 : 1;
}

// Run as the make-release entry point only (the unit tests import the functions above).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exit(main());
  } catch (err) {
    console.error(`make-release: ${err instanceof Error ? err.message : String(err)}`);
    if (!(err instanceof BuildError) && err instanceof Error) console.error(err.stack);
    process.exit(1);
  }
}
