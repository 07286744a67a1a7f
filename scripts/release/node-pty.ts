// node-pty's runtime for one target, as files to embed in the single executable: package.json, lib/*.js and the
// native directory prebuilds/<os>-<arch>/. node-pty 1.1.0 ships prebuilds for darwin and win32; for Linux the
// addon is compiled here with node-gyp against the pinned Node package's headers (cross-compiled for arm64
// with Debian's g++-aarch64-linux-gnu), binding old glibc symbol versions so the addon runs on old glibc.
//
// npm installs use @lydell/node-pty instead (prebuilt, no compiler; see docs/install.md). The executables keep
// Microsoft's node-pty: its sources compile here, and @lydell's linux-arm64 addon asks for glibc 2.34 (forkpty,
// openpty), above the 2.28 that the official Node 22 binary needs, which this build keeps. node-pty is not an
// npm dependency (its install script would compile at every `npm ci`): `npm pack node-pty@NODE_PTY_VERSION`
// fetches it into the build cache, as the Node packages are; node-addon-api (its build dependency, headers
// only) is a devDependency, found by binding.gyp from the work directory under the repository.

import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BuildError, nodeGypScript, nodePackageDir, run, sha256, which } from './tools.js';
import { NODE_PTY_VERSION, type Target } from './targets.js';

export interface RuntimeFile {
  /** Path below the extraction directory, '/'-separated. */
  rel: string;
  /** Where the build reads it from. */
  source: string;
  mode: number;
}

/**
 * glibc moved forkpty/openpty from libutil into libc in 2.34 (new symbol versions); pthread_sigmask got a new
 * version in 2.32. Binding the original versions keeps the addon loadable on every glibc the pinned Node
 * runs on (Node 22's own floor is 2.28, from fcntl64 and others). libutil.so.1 is linked explicitly so the
 * old-version symbols resolve on a pre-2.34 glibc, where they live there; on newer ones it is an empty stub.
 */
function glibcCompatHeader(arch: Target['arch']): string {
  const base = arch === 'x64' ? 'GLIBC_2.2.5' : 'GLIBC_2.17';
  return ['forkpty', 'openpty', 'pthread_sigmask'].map((sym) => `__asm__(".symver ${sym},${sym}@${base}");`).join('\n') + '\n';
}

const CROSS: Record<Target['arch'], Record<string, string> | undefined> = {
  x64: undefined,
  arm64: {
    CC: 'aarch64-linux-gnu-gcc',
    CXX: 'aarch64-linux-gnu-g++',
    LINK: 'aarch64-linux-gnu-g++',
    AR: 'aarch64-linux-gnu-ar',
    STRIP: 'aarch64-linux-gnu-strip',
  },
};

/** The strip program for a Linux target, or undefined when the toolchain lacks it. */
export function linuxStrip(arch: Target['arch']): string | undefined {
  return which(CROSS[arch]?.['STRIP'] ?? 'strip');
}

/** Compiles node-pty's addon for a Linux target (cached by node-pty version, Node version and flags). */
/** node-pty's npm package (sources, lib/, darwin and win32 prebuilds), unpacked in the build cache. */
export function nodePtyPackage(cache: string, log: (s: string) => void): string {
  return nodePackageDir(cache, { nodePackage: 'node-pty', nodeBinary: 'binding.gyp' }, NODE_PTY_VERSION, log);
}

function buildLinuxAddon(root: string, cache: string, t: Target, nodeDir: string, log: (s: string) => void): string {
  const ptyDir = nodePtyPackage(cache, log);
  const ptyVersion = (JSON.parse(readFileSync(path.join(ptyDir, 'package.json'), 'utf8')) as { version: string }).version;
  const header = glibcCompatHeader(t.arch);
  const key = sha256(Buffer.from(`${ptyVersion}\n${nodeDir}\n${header}`)).slice(0, 12);
  const work = path.join(cache, 'node-pty', `${t.id}-${ptyVersion}-${key}`);
  const out = path.join(work, 'build', 'Release', 'pty.node');
  if (existsSync(out)) return out;
  const cross = CROSS[t.arch];
  if (cross && !which(cross['CXX']!)) {
    throw new BuildError(`${t.id}: the cross compiler ${cross['CXX']} is missing (apt-get install g++-aarch64-linux-gnu)`);
  }
  log(`${t.id}: compiling node-pty ${ptyVersion} with node-gyp against Node ${path.basename(path.dirname(nodeDir))}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  for (const entry of ['package.json', 'binding.gyp', 'src']) cpSync(path.join(ptyDir, entry), path.join(work, entry), { recursive: true });
  writeFileSync(path.join(work, 'glibc-compat.h'), header);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...cross,
    CXXFLAGS: `-include ${path.join(work, 'glibc-compat.h')}`,
    LDFLAGS: '-Wl,--no-as-needed -l:libutil.so.1 -Wl,--as-needed',
  };
  // The work dir lies under the repository, so binding.gyp's require('node-addon-api') finds ours.
  run(process.execPath, [nodeGypScript(root), 'rebuild', `--nodedir=${nodeDir}`, `--arch=${t.arch}`, '-j', '2'], { cwd: work, env });
  if (!existsSync(out)) throw new BuildError(`${t.id}: node-gyp finished without ${out}`);
  return out;
}

/** The runtime files of node-pty for target `t`. */
export function nodePtyRuntime(root: string, cache: string, t: Target, nodeDir: string, log: (s: string) => void): RuntimeFile[] {
  const ptyDir = nodePtyPackage(cache, log);
  const files: RuntimeFile[] = [{ rel: 'package.json', source: path.join(ptyDir, 'package.json'), mode: 0o644 }];
  const walk = (dir: string, rel: string, keep: (name: string) => boolean): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(p).isDirectory()) walk(p, r, keep);
      else if (keep(name)) files.push({ rel: r, source: p, mode: statSync(p).mode & 0o111 ? 0o755 : 0o644 });
    }
  };
  walk(path.join(ptyDir, 'lib'), 'lib', (n) => n.endsWith('.js') && !n.endsWith('.test.js'));
  const native = `prebuilds/${t.os}-${t.arch}`;
  if (t.os === 'linux') {
    files.push({ rel: `${native}/pty.node`, source: buildLinuxAddon(root, cache, t, nodeDir, log), mode: 0o755 });
  } else {
    const dir = path.join(ptyDir, native);
    if (!existsSync(dir)) throw new BuildError(`${t.id}: node-pty has no prebuilt directory ${dir}`);
    // Debug symbols (.pdb, ~28 MB on Windows) are not needed at run time.
    walk(dir, native, (n) => !n.endsWith('.pdb'));
    // spawn-helper must stay executable (npm may unpack it without the bit).
    for (const f of files) if (f.rel.endsWith('/spawn-helper')) f.mode = 0o755;
  }
  return files;
}
