// Lint rules: typescript-eslint's recommended set, plus the layering rule of ../shared/STYLE.md:
// nothing outside platforms/ looks at process.platform.
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
  // Layering (../shared/STYLE.md): a stage only imports from the stages below it.
  // master -> connection -> commands -> process/transfer -> output; platforms/ knows nothing of agent/.
  {
    files: ['agent/commands/**/*.ts', 'agent/process/**/*.ts', 'agent/transfer/**/*.ts', 'agent/output/**/*.ts', 'agent/fs/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/connection/**', '**/cli/**', '**/agent.js'], message: 'commands and the stages below them never know the protocol or the CLI' }] }],
    },
  },
  {
    files: ['agent/output/**/*.ts', 'agent/process/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/connection/**', '**/cli/**', '**/commands/*.js', '!**/commands/types.js'], message: 'output and process are below commands: only the command types may be imported' }] }],
    },
  },
  {
    files: ['platforms/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/agent/**'], message: 'platforms/ implements interfaces; it does not import the agent' }] }],
    },
  },
);
