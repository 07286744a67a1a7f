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
);
