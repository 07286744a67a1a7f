// esbuild plugins shared by scripts/build.mjs and scripts/release/build-binaries.
import { readFile } from 'node:fs/promises';

/**
 * ws requires `https` and `tls` when it is loaded, though a ws:// connection uses neither (they serve wss://
 * only). Loading them costs about 4 MiB of idle RSS (OpenSSL's TLS code and tables are paged in). This plugin
 * makes those two requires lazy in the bundle: the module loads at its first use. It fails the build if ws
 * changes the lines it rewrites, rather than bundle ws unchanged.
 * @returns {import('esbuild').Plugin}
 */
export function lazyWsBuiltins() {
  return {
    name: 'lazy-ws-builtins',
    setup(b) {
      b.onLoad({ filter: /[\\/]node_modules[\\/]ws[\\/]lib[\\/]websocket\.js$/ }, async (args) => {
        let src = await readFile(args.path, 'utf8');
        for (const mod of ['https', 'tls']) {
          const line = `const ${mod} = require('${mod}');`;
          if (!src.includes(line)) throw new Error(`lazy-ws-builtins: ${args.path} no longer has "${line}"; update scripts/esbuild-plugins.mjs`);
          src = src.replace(line, `const ${mod} = new Proxy({}, { get: (_target, key) => require('${mod}')[key] });`);
        }
        return { contents: src, loader: 'js' };
      });
    },
  };
}
