// Lint rules: typescript-eslint's recommended set, plus the house rules: the floors (each file imports only from
// the floors below its own), nothing outside platforms/ looks at process.platform, no recursive mkdir, the size bound.
import tseslint from 'typescript-eslint';

/** The floors, top first: each entry is one floor, its files (globs) and how an import names them. */
const FLOORS = [
  { name: 'the bundle entry (agent/main.ts)', files: ['agent/main.ts'], imported: ['**/main.js'] },
  { name: 'the command line (agent/cli)', files: ['agent/cli/**/*.ts'], imported: ['**/cli/**'] },
  { name: 'the composition root (agent/agent.ts)', files: ['agent/agent.ts'], imported: ['**/agent.js'] },
  { name: 'the control socket and the metrics (agent/control)', files: ['agent/control/**/*.ts'], imported: ['**/control/**'] },
  { name: 'one hosted worker (agent/hosted-worker.ts)', files: ['agent/hosted-worker.ts'], imported: ['**/hosted-worker.js'] },
  { name: 'the shutdown stages (agent/shutdown.ts)', files: ['agent/shutdown.ts'], imported: ['**/shutdown.js'] },
  { name: 'the connection and its protocols (agent/connection)', files: ['agent/connection/**/*.ts'], imported: ['**/connection/**'] },
  { name: 'the worker core (agent/worker)', files: ['agent/worker/**/*.ts'], imported: ['**/worker/**'] },
  { name: 'the commands (agent/commands)', files: ['agent/commands/**/*.ts'], imported: ['**/commands/**'] },
  {
    name: 'the process runner, fetching, suites and perf (agent/process, agent/artifacts, agent/suites, agent/perf)',
    files: ['agent/process/**/*.ts', 'agent/artifacts/**/*.ts', 'agent/suites/**/*.ts', 'agent/perf/**/*.ts'],
    imported: ['**/process/**', '**/artifacts/**', '**/suites/**', '**/perf/**'],
  },
  {
    name: 'transfers and the output pipeline (agent/transfer, agent/output)',
    files: ['agent/transfer/**/*.ts', 'agent/output/**/*.ts'],
    imported: ['**/transfer/**', '**/output/**'],
  },
  { name: 'file work (agent/fs)', files: ['agent/fs/**/*.ts'], imported: ['**/fs/**'] },
  {
    name: 'Python compatibility, config, timers and the platforms',
    files: ['agent/py/**/*.ts', 'agent/config/**/*.ts', 'agent/timers.ts', 'agent/memory.ts', 'agent/loop-monitor.ts', 'platforms/**/*.ts'],
    imported: ['**/py/**', '**/config/**', '**/timers.js', '**/memory.js', '**/loop-monitor.js', '**/platforms/**'],
  },
  // the ground floor (errors.ts, log.ts, layout.ts, version.ts, v8-tuning.ts) is importable from everywhere
];

function floorRules() {
  return FLOORS.map((floor, i) => {
    const above = FLOORS.slice(0, i);
    const patterns = above.length
      ? [
          {
            group: above.flatMap((f) => f.imported),
            message: `${floor.name} imports only from the floors below it (FLOORS in eslint.config.js, docs/architecture.md)`,
          },
        ]
      : [];
    if (floor.files.includes('platforms/**/*.ts')) {
      // (these globs also cover agent/ files on this floor, where the pattern never matches: they import by ../)
      patterns.push({ regex: '(^|/)agent/(?!errors\\.js$)', message: 'platforms/ implements interfaces; of the agent it imports only agent/errors.ts' });
    }
    return { files: floor.files, rules: { 'no-restricted-imports': ['error', { patterns }] } };
  });
}

export default tseslint.config(
  { ignores: ['build/', 'dist/', 'node_modules/', 'bin/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['agent/**/*.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'platform', message: 'platform checks belong in platforms/' }],
    },
  },
  // Node's recursive mkdir never returns where mkdir fails with ENOENT under an existing parent (/proc): the
  // agent and platforms/ create directories only through the level-by-level walk of platforms/common/makedirs.ts
  // (the agent through agent/fs/makedirs.ts, the same walk with Python's errors).
  {
    files: ['agent/**/*.ts', 'platforms/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.name=/^mkdir(Sync)?$/] > ObjectExpression > Property[key.name='recursive']",
          message: 'recursive mkdir loops forever under /proc: use makedirs() from agent/fs/makedirs.ts (platforms/: platforms/common/makedirs.ts)',
        },
        {
          selector: "CallExpression[callee.property.name=/^mkdir(Sync)?$/] > ObjectExpression > Property[key.name='recursive']",
          message: 'recursive mkdir loops forever under /proc: use makedirs() from agent/fs/makedirs.ts (platforms/: platforms/common/makedirs.ts)',
        },
      ],
    },
  },
  // The floors of the house, top first (docs/architecture.md): a file imports only from the floors below its own,
  // so data flows one way (master -> connection -> worker -> commands -> process/transfer -> output). Files on one
  // floor may import each other. platforms/ may import nothing of the agent but its error root (agent/errors.ts).
  ...floorRules(),
  // The size bound: a file over 400 lines or a function over 80 is split by meaning (an exception says why).
  {
    files: ['agent/**/*.ts', 'platforms/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 80 }],
    },
  },
  // Tooling (bench, release, demo, the harness) is what tests import, never the other way round.
  {
    files: ['scripts/**/*.ts', 'scripts/**/*.mjs'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '(^|/)test/', message: 'scripts/ never imports test/: shared helpers belong in scripts/harness/' }] },
      ],
    },
  },
);
