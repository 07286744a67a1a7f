// Lint rules: typescript-eslint's recommended set, plus the layering rule of ../shared/STYLE.md:
// nothing outside platforms/ looks at process.platform; and no recursive mkdir (see platforms/common/makedirs.ts).
import tseslint from 'typescript-eslint';

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
  // Layering (../shared/STYLE.md): a stage only imports from the stages below it.
  // master -> connection -> commands -> process/transfer -> output; platforms/ knows nothing of agent/.
  {
    files: ['agent/commands/**/*.ts', 'agent/process/**/*.ts', 'agent/transfer/**/*.ts', 'agent/output/**/*.ts', 'agent/fs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/connection/**', '**/protocols/**', '**/worker/**', '**/cli/**', '**/agent.js'],
              message: 'commands and the stages below them never know the worker, the protocol or the CLI',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['agent/output/**/*.ts', 'agent/process/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/connection/**', '**/protocols/**', '**/worker/**', '**/cli/**', '**/commands/*.js', '!**/commands/types.js'],
              message: 'output and process are below commands: only the command types may be imported',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['platforms/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '(^|/)agent/', message: 'platforms/ implements interfaces; it does not import the agent' }] }],
    },
  },
  // Tooling (bench, release, demo, the harness) is what tests import, never the other way round.
  {
    files: ['scripts/**/*.ts', 'scripts/**/*.mjs'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '(^|/)test/', message: 'scripts/ never imports test/: shared helpers belong in scripts/harness/' }] }],
    },
  },
);
