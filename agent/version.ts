// The agent's version: esbuild defines BBAGENT_VERSION from package.json when bundling; unbundled runs
// (vitest, tsx) see no such global and report a development version.

declare const BBAGENT_VERSION: string | undefined;

export const VERSION: string = typeof BBAGENT_VERSION === 'string' ? BBAGENT_VERSION : '0.0.0-dev';
