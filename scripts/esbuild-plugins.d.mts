import type { Plugin } from 'esbuild';
export function lazyWsBuiltins(): Plugin;
