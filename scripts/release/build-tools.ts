// The programs scripts/release/build-binaries needs for a set of targets, and installing the missing ones from
// Debian's packages with apt-get (as scripts/ensure-buildbot does for Buildbot): directly as root, through
// `sudo -n` otherwise (never a password prompt), and a refusal that names the apt-get line when neither works.

import { execFileSync } from 'node:child_process';
import { BuildError } from './tools.js';
import type { Target } from './targets.js';

export interface Tool {
  /** The program looked up on PATH. */
  command: string;
  /** The Debian package that provides it. */
  debianPackage: string;
  /** Which targets need it and for what, for messages. */
  why: string;
}

/** What the targets need, each program once (node-gyp compiles node-pty's Linux addon; osslsigncode: Windows). */
export function toolsFor(targets: readonly Target[]): Tool[] {
  const tools: Tool[] = [];
  const add = (command: string, debianPackage: string, why: string): void => {
    if (!tools.some((t) => t.command === command)) tools.push({ command, debianPackage, why });
  };
  for (const t of targets) {
    if (t.os === 'linux') {
      add('make', 'make', 'node-gyp (node-pty for Linux)');
      add('python3', 'python3', 'node-gyp (node-pty for Linux)');
      add('g++', 'g++', 'node-gyp (node-pty for Linux)');
      add('strip', 'binutils', 'stripping the Linux executables');
    }
    if (t.id === 'linux-arm64') {
      add('aarch64-linux-gnu-g++', 'g++-aarch64-linux-gnu', 'cross-compiling node-pty for linux-arm64');
      add('aarch64-linux-gnu-strip', 'binutils-aarch64-linux-gnu', 'stripping the linux-arm64 executable');
    }
    if (t.os === 'win32') add('osslsigncode', 'osslsigncode', 'removing the stale Authenticode signature of node.exe');
  }
  return tools;
}

export interface InstallHost {
  which(cmd: string): string | undefined;
  isRoot: boolean;
  /** Runs a command, throwing on failure (output goes to the caller's stderr). */
  run(cmd: string, args: string[]): void;
  log(line: string): void;
}

export function aptLine(packages: readonly string[]): string {
  return `apt-get install -y ${packages.join(' ')}`;
}

function describe(missing: readonly Tool[]): string {
  return missing.map((t) => `${t.command} (${t.why})`).join(', ');
}

/**
 * Installs the Debian packages of the missing tools, unless `install` is false. Throws a BuildError that names
 * the programs, why they are needed and the apt-get line when they cannot be installed from here.
 */
export function ensureTools(tools: readonly Tool[], install: boolean, host: InstallHost): Tool[] {
  const missing = tools.filter((t) => host.which(t.command) === undefined);
  if (missing.length === 0) return [];
  const packages = [...new Set(missing.map((t) => t.debianPackage))];
  const missingText = `missing: ${describe(missing)}`;
  if (!install) throw new BuildError(`${missingText}; install them with: ${aptLine(packages)} (or drop --no-install-tools)`);
  if (host.which('apt-get') === undefined) {
    throw new BuildError(`${missingText}; apt-get not found: install the Debian packages ${packages.join(' ')} or their equivalents by hand`);
  }
  let prefix: string[] = [];
  if (!host.isRoot) {
    if (host.which('sudo') === undefined) throw new BuildError(`${missingText}; not root and no sudo: run as root: ${aptLine(packages)}`);
    prefix = ['sudo', '-n'];
  }
  host.log(`installing ${packages.join(' ')} with apt-get (${missingText})`);
  const apt = (args: string[]): void => {
    const [cmd, ...rest] = [...prefix, 'apt-get', ...args];
    try {
      host.run(cmd!, rest);
    } catch (err) {
      const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
      const hint = host.isRoot ? '' : ' (sudo -n needs a password-less sudo: run it yourself as root)';
      throw new BuildError(`${missingText}; ${[...prefix, 'apt-get', ...args].join(' ')} failed${hint}: ${why}`);
    }
  };
  apt(['update', '-qq']);
  apt(['install', '-y', '-qq', '--no-install-recommends', ...packages]);
  const still = tools.filter((t) => host.which(t.command) === undefined);
  if (still.length > 0) throw new BuildError(`still missing after apt-get install ${packages.join(' ')}: ${describe(still)}`);
  return missing;
}

/** The real host: this process's PATH and uid; apt-get runs non-interactively, its errors (stderr) shown. */
export function realHost(which: (cmd: string) => string | undefined, log: (line: string) => void): InstallHost {
  return {
    which,
    isRoot: process.getuid?.() === 0,
    run: (cmd, args) => {
      execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    },
    log,
  };
}
