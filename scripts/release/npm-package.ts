// The npm package of a release, bbagent-<version>.tgz: `npm install -g ./bbagent-<version>.tgz` (or its URL) with no
// compiler. It holds the launcher (bin/) and the bundle (build/bbagent.cjs, which has every other dependency
// inside), and depends on @lydell/node-pty alone, whose per-platform packages carry prebuilt addons. Its
// package.json has no scripts: the repository's `prepare` (which builds the bundle in a clone) would be an
// install script for npm, which warns about it and, allowed, would fail for want of the sources.

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BuildError, run } from './tools.js';

interface RepoPackage {
  name: string;
  version: string;
  description?: string;
  license?: string;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** The files of the package, relative to the repository root. */
export const NPM_FILES = ['bin/bbagent.cjs', 'build/bbagent.cjs', 'README.md'] as const;

/**
 * package.json of the packed package: the repository's identity, bin and runtime dependencies; no scripts. The
 * optional ones stay optional: node-windows carries winsw.exe, which `bbagent service install` uses on Windows
 * (npm installs it only there: it declares itself Windows-only).
 */
export function npmManifest(pkg: RepoPackage): Record<string, unknown> {
  const { name, version, description, license, bin, engines, dependencies, optionalDependencies } = pkg;
  const manifest: Record<string, unknown> = { name, version, description, license, bin, engines, files: ['bin/', 'build/'], dependencies: dependencies ?? {} };
  if (optionalDependencies && Object.keys(optionalDependencies).length > 0) manifest['optionalDependencies'] = optionalDependencies;
  return manifest;
}

/** Builds the bundle (into a directory of its own: build/ may be in use), then packs the package into `out`. */
export function packNpm(root: string, out: string): string {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as RepoPackage;
  const stage = mkdtempSync(path.join(os.tmpdir(), 'bbagent-npm-'));
  try {
    const built = path.join(stage, 'bundle');
    run(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, env: { ...process.env, BBAGENT_BUILD_DIR: built } });
    const pack = path.join(stage, 'package');
    for (const f of NPM_FILES) {
      mkdirSync(path.dirname(path.join(pack, f)), { recursive: true });
      copyFileSync(f.startsWith('build/') ? path.join(built, path.basename(f)) : path.join(root, f), path.join(pack, f));
    }
    writeFileSync(path.join(pack, 'package.json'), JSON.stringify(npmManifest(pkg), null, 2) + '\n');
    const printed = run('npm', ['pack', '--pack-destination', out, '--silent', '--no-audit', '--no-fund'], { cwd: pack }).trim().split('\n');
    const name = printed[printed.length - 1] ?? '';
    if (!name.endsWith('.tgz')) throw new BuildError(`npm pack printed no tarball name (got '${printed.join(' ')}')`);
    return name;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
