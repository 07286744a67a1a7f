// What `bbagent start` evaluates before it is attached: the modules statically reachable from the start
// subcommand (agent/cli/start.ts; the CLI loads it with a dynamic import). In the bundle, a module reached only
// through `await import()` is evaluated at its first use, so the downloader, the archive readers, the artifact
// cache, the suite runner and parsers and the perf runner must not be reachable without one.
import path from 'node:path';
import { build, type Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { lazyWsBuiltins } from '../../scripts/esbuild-plugins.mjs';
import { REPO_ROOT } from '../../scripts/harness/bbagent-worker.js';

/**
 * The inputs reachable from `entry` through static imports (requires and `import` statements), not dynamic ones;
 * with `builtins`, also each Node built-in module they import statically, and which of them do.
 */
async function staticallyReachable(entry: string, builtins?: Map<string, string[]>): Promise<Set<string>> {
  const { metafile } = await build({
    entryPoints: [path.join(REPO_ROOT, entry)],
    absWorkingDir: REPO_ROOT,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    metafile: true,
    outfile: path.join(REPO_ROOT, 'build', 'start-lazy-load.cjs'),
    external: ['@lydell/node-pty', 'node-pty', 'bufferutil', 'utf-8-validate'],
    define: { BBAGENT_VERSION: '"0.0.0"' },
    logLevel: 'silent',
    plugins: [lazyWsBuiltins()],
  });
  const inputs: Metafile['inputs'] = metafile.inputs;
  const seen = new Set<string>();
  const queue = [entry];
  for (let f = queue.pop(); f !== undefined; f = queue.pop()) {
    if (seen.has(f)) continue;
    seen.add(f);
    for (const i of inputs[f]?.imports ?? []) {
      if (i.kind === 'dynamic-import') continue;
      if (i.external !== true) queue.push(i.path);
      else if (builtins && i.path.startsWith('node:')) builtins.set(i.path, [...(builtins.get(i.path) ?? []), f]);
    }
  }
  return seen;
}

describe('bbagent start: what loads before attaching', () => {
  it('the fetch, suite and perf machinery and the artifact cache load at first use, not at start', async () => {
    const reachable = [...(await staticallyReachable('agent/cli/start.ts'))];
    // the command table itself is there (the master sees every command), and the shell command's code
    expect(reachable).toContain('agent/commands/index.ts');
    expect(reachable).toContain('agent/commands/fetch.ts');
    expect(reachable).toContain('agent/commands/shell.ts');
    const lazy = [
      'agent/artifacts/fetch.ts',
      'agent/artifacts/cache.ts',
      'agent/artifacts/extract.ts',
      'agent/suites/run.ts',
      'agent/suites/run-parse.ts',
      'agent/perf/run.ts',
      'node_modules/tar/',
      'node_modules/saxes/',
      'node_modules/xz-decompress/',
      'node_modules/yauzl/',
    ];
    for (const prefix of lazy)
      expect(
        reachable.filter((f) => f.startsWith(prefix)),
        prefix,
      ).toEqual([]);
  });

  it('the service managers, and node:http and node:zlib outside ws (a msgpack connection), load at first use', async () => {
    const builtins = new Map<string, string[]>();
    const reachable = [...(await staticallyReachable('agent/cli/start.ts', builtins))];
    for (const f of ['platforms/linux/service.ts', 'platforms/darwin/service.ts', 'platforms/win32/service.ts', 'platforms/service/host.ts'])
      expect(reachable).not.toContain(f);
    // a PB worker without a proxy needs neither; ws loads http (its handshake) and zlib (permessage-deflate)
    const outsideWs = (m: string): string[] => (builtins.get(m) ?? []).filter((f) => !f.startsWith('node_modules/ws/'));
    expect(outsideWs('node:http')).toEqual([]);
    expect(outsideWs('node:zlib')).toEqual([]);
  });
});
