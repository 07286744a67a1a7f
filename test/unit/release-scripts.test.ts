// scripts/release: the build tools build-binaries installs per target (and how it refuses when it cannot), the
// release directory's pieces (default base URL baked into the install scripts, SHA256SUMS), and the structure
// of install.ps1, which no PowerShell here can run (none in Debian or on npm).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findExecutable } from '../../scripts/harness/process.js';
import { ensureTools, toolsFor, type InstallHost } from '../../scripts/release/build-tools.js';
import { npmManifest } from '../../scripts/release/npm-package.js';
import { checkBaseUrl, fetchWinsw, sha256sums, withBaseUrl } from '../../scripts/release/release.js';
import { sha256File } from '../../scripts/release/tools.js';
import { WINSW_SOURCE } from '../../platforms/win32/winsw-config.js';
import { TARGETS, findTarget } from '../../scripts/release/targets.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const script = (name: string): string => readFileSync(path.join(REPO, 'scripts', 'release', name), 'utf8');

function fakeHost(present: string[], isRoot: boolean): InstallHost & { ran: string[][]; installs: string[] } {
  const have = new Set(present);
  const ran: string[][] = [];
  return {
    which: (cmd) => (have.has(cmd) ? `/usr/bin/${cmd}` : undefined),
    isRoot,
    ran,
    installs: [],
    run(cmd, args) {
      ran.push([cmd, ...args]);
      const i = args.indexOf('install');
      if (i >= 0) {
        // what each package brings
        const provides: Record<string, string[]> = {
          'g++-aarch64-linux-gnu': ['aarch64-linux-gnu-g++'],
          'binutils-aarch64-linux-gnu': ['aarch64-linux-gnu-strip'],
          osslsigncode: ['osslsigncode'],
        };
        for (const p of args.slice(i + 1)) for (const c of provides[p] ?? []) have.add(c);
      }
    },
    log: () => undefined,
  };
}

describe('build tools', () => {
  it('maps targets to programs and Debian packages', () => {
    expect(toolsFor([findTarget('darwin-arm64')!])).toEqual([]);
    expect(toolsFor([findTarget('win-x64')!]).map((t) => t.debianPackage)).toEqual(['osslsigncode']);
    const all = toolsFor(TARGETS);
    expect(all.map((t) => `${t.command}:${t.debianPackage}`)).toEqual([
      'make:make',
      'python3:python3',
      'g++:g++',
      'strip:binutils',
      'aarch64-linux-gnu-g++:g++-aarch64-linux-gnu',
      'aarch64-linux-gnu-strip:binutils-aarch64-linux-gnu',
      'osslsigncode:osslsigncode',
    ]);
  });

  it('installs the missing packages with apt-get as root, and nothing when all are there', () => {
    const base = ['make', 'python3', 'g++', 'strip', 'apt-get'];
    const host = fakeHost(base, true);
    const installed = ensureTools(toolsFor(TARGETS), true, host);
    expect(installed.map((t) => t.command)).toEqual(['aarch64-linux-gnu-g++', 'aarch64-linux-gnu-strip', 'osslsigncode']);
    expect(host.ran).toEqual([
      ['apt-get', 'update', '-qq'],
      ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'g++-aarch64-linux-gnu', 'binutils-aarch64-linux-gnu', 'osslsigncode'],
    ]);
    const again = fakeHost([...base, 'aarch64-linux-gnu-g++', 'aarch64-linux-gnu-strip', 'osslsigncode'], false);
    expect(ensureTools(toolsFor(TARGETS), true, again)).toEqual([]);
    expect(again.ran).toEqual([]);
  });

  it('uses sudo -n when not root, and refuses with the apt-get line when it cannot install', () => {
    const tools = toolsFor([findTarget('linux-arm64')!]);
    const present = ['make', 'python3', 'g++', 'strip', 'apt-get'];
    const sudo = fakeHost([...present, 'sudo'], false);
    ensureTools(tools, true, sudo);
    expect(sudo.ran[0]).toEqual(['sudo', '-n', 'apt-get', 'update', '-qq']);

    expect(() => ensureTools(tools, true, fakeHost(present, false))).toThrow(
      'missing: aarch64-linux-gnu-g++ (cross-compiling node-pty for linux-arm64), aarch64-linux-gnu-strip (stripping the linux-arm64 executable); not root and no sudo: run as root: apt-get install -y g++-aarch64-linux-gnu binutils-aarch64-linux-gnu',
    );
    expect(() => ensureTools(tools, false, fakeHost(present, true))).toThrow(
      /install them with: apt-get install -y g\+\+-aarch64-linux-gnu binutils-aarch64-linux-gnu \(or drop --no-install-tools\)$/,
    );
    expect(() => ensureTools(tools, true, fakeHost(['make', 'python3', 'g++', 'strip'], true))).toThrow(/apt-get not found: install the Debian packages/);
    const failing = fakeHost([...present, 'sudo'], false);
    failing.run = () => {
      throw new Error('sudo: a password is required');
    };
    expect(() => ensureTools(tools, true, failing)).toThrow(
      /sudo -n apt-get update -qq failed \(sudo -n needs a password-less sudo: .*\): sudo: a password is required/,
    );
  });
});

describe('release directory', () => {
  it('bakes the base URL into both install scripts, and refuses URLs the scripts could not quote', () => {
    const sh = withBaseUrl('install.sh', script('install.sh'), 'https://rel.example.org/bbagent/');
    expect(sh).toMatch(/^BASE_URL='https:\/\/rel\.example\.org\/bbagent' # make-release/m);
    const ps = withBaseUrl('install.ps1', script('install.ps1'), 'http://127.0.0.1:8080/r');
    expect(ps).toMatch(/^ {2}\[string\]\$BaseUrl = 'http:\/\/127\.0\.0\.1:8080\/r', # make-release/m);
    expect(withBaseUrl('install.sh', 'x', undefined)).toBe('x');
    for (const bad of ["https://x/'; rm -rf /", 'ftp://x', 'https://x/$(id)', 'https://a b']) expect(() => checkBaseUrl(bad)).toThrow(/--base-url/);
    expect(() => withBaseUrl('install.sh', '#!/bin/sh\n', 'https://x')).toThrow(/default base URL line is missing/);
  });

  it('writes SHA256SUMS in sha256sum format, sorted', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-sums-'));
    try {
      writeFileSync(path.join(dir, 'b'), 'bee');
      writeFileSync(path.join(dir, 'a'), '');
      const sums = sha256sums(dir, ['b', 'a']);
      const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
      expect(sums).toBe(`${sha('')}  a\n${sha('bee')}  b\n`);
      const check = spawnSync('sha256sum', ['-c', '-'], { cwd: dir, input: sums, encoding: 'utf8' });
      expect(check.stdout).toBe('a: OK\nb: OK\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm package', () => {
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as Parameters<typeof npmManifest>[0];

  it('packs a package.json without scripts or devDependencies, with node-pty from prebuilds and node-windows (winsw.exe) optional', () => {
    const m = npmManifest(pkg);
    expect(Object.keys(m).sort()).toEqual(['bin', 'dependencies', 'description', 'engines', 'files', 'license', 'name', 'optionalDependencies', 'version']);
    expect(m['dependencies']).toEqual({ '@lydell/node-pty': expect.any(String) as string });
    expect(m['optionalDependencies']).toEqual({ 'node-windows': WINSW_SOURCE.version });
  });

  it('ships winsw.exe with a Windows executable: fetched from the npm registry, its SHA-256 checked', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'bbagent-winsw-'));
    try {
      const exe = fetchWinsw(cache, () => {});
      expect(sha256File(exe)).toBe(WINSW_SOURCE.sha256);
      // a tampered copy in the cache is refused
      writeFileSync(exe, 'not winsw');
      expect(() => fetchWinsw(cache, () => {})).toThrow(/SHA-256 .* expected 5859b114/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('installs nothing that runs an install script (a compiler): the lock file marks none outside devDependencies', () => {
    const lock = JSON.parse(readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
    };
    const runtime = Object.entries(lock.packages).filter(([name, p]) => name !== '' && p.dev !== true);
    expect(runtime.map(([name]) => name)).toContain('node_modules/@lydell/node-pty');
    expect(runtime.filter(([, p]) => p.hasInstallScript === true).map(([name]) => name)).toEqual([]);
    // Microsoft's node-pty (compiled by its install script on Linux) is fetched by build-binaries, not installed
    // by npm ci: a fresh clone installs with no compiler, and build-binaries installs one when it needs it.
    expect(Object.keys(lock.packages).filter((name) => name.endsWith('node_modules/node-pty'))).toEqual([]);
  });
});

describe('install.sh', () => {
  it('is POSIX sh (dash parses it; shellcheck -s sh finds nothing when installed)', () => {
    const dash = findExecutable('dash') ?? '/bin/sh';
    expect(spawnSync(dash, ['-n', path.join(REPO, 'scripts', 'release', 'install.sh')], { encoding: 'utf8' }).status).toBe(0);
    const shellcheck = findExecutable('shellcheck');
    if (shellcheck !== undefined) {
      const r = spawnSync(shellcheck, ['-s', 'sh', path.join(REPO, 'scripts', 'release', 'install.sh')], { encoding: 'utf8' });
      expect(r.stdout).toBe('');
    }
  });
});

describe('install.ps1 (structure: not run, no PowerShell here)', () => {
  const ps = script('install.ps1');
  it('takes the same choices as install.sh', () => {
    for (const p of ['BaseUrl', 'Prefix', 'Name', 'Target', 'BaseDir', 'User', 'Service', 'ServiceArgs', 'AddToPath', 'WorkerArgs']) {
      expect(ps).toMatch(new RegExp(`^ {2}\\[(string|switch|string\\[\\])\\]\\$${p}\\b`, 'm'));
    }
    expect(ps).toMatch(/\$ErrorActionPreference = 'Stop'/);
    expect(ps).not.toMatch(/^\s*exit\b/m); // run as a script block, exit would close the caller's shell
  });

  it('downloads with Invoke-WebRequest, checks Get-FileHash SHA256 against SHA256SUMS, and removes a mismatch before failing', () => {
    expect(ps).toContain('Invoke-WebRequest -UseBasicParsing -Uri "$BaseUrl/SHA256SUMS"');
    expect(ps).toContain('Invoke-WebRequest -UseBasicParsing -Uri "$BaseUrl/$File"');
    expect(ps).toContain('(Get-FileHash -LiteralPath $Download -Algorithm SHA256).Hash.ToLowerInvariant()');
    const mismatch = ps.slice(ps.indexOf('if ($Actual -ne $Expected) {'));
    expect(mismatch.indexOf('Remove-Item -LiteralPath $Download -Force')).toBeGreaterThan(0);
    expect(mismatch.indexOf('Remove-Item -LiteralPath $Download -Force')).toBeLessThan(mismatch.indexOf('Fail "checksum mismatch'));
    // nothing reaches Prefix before the check: the first write there comes after it
    expect(ps.indexOf('Copy-Item -LiteralPath $Download -Destination $New')).toBeGreaterThan(ps.indexOf('if ($Actual -ne $Expected)'));
    expect(ps).toContain('& $Dest create-worker $BaseDir @WorkerArgs');
    expect(ps).toContain('& $Dest service install --user $User @ServiceArgs $BaseDir');
  });

  it('has balanced braces and parentheses outside strings and comments (a crude parse)', () => {
    const code = ps
      .replace(/<#[^]*?#>/g, '')
      .replace(/'[^'\n]*'/g, "''")
      .replace(/"(?:`.|[^"`\n])*"/g, '""')
      .replace(/#.*$/gm, '');
    for (const [open, close] of [
      ['{', '}'],
      ['(', ')'],
      ['[', ']'],
    ] as const) {
      expect(code.split(open).length, `${open}${close}`).toBe(code.split(close).length);
    }
  });
});
