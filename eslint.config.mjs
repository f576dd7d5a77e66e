// Flat config: typescript-eslint strict, zero warnings, and the layering rule that keeps the
// pure core (src/core, src/shared, src/cli) and the webview free of runtime `vscode` imports.
import tseslint from 'typescript-eslint';

const noVscode = {
  'no-restricted-imports': [
    'error',
    {
      paths: [
        {
          name: 'vscode',
          message: 'src/core, src/shared, src/cli and webview must not import vscode at runtime.',
          allowTypeImports: true,
        },
      ],
      patterns: [
        {
          group: ['**/editor/**', '**/editor'],
          message: 'The core must not depend on the editor layer.',
        },
      ],
    },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'out/**', 'test-results/**', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    files: ['src/core/**/*.ts', 'src/shared/**/*.ts', 'src/cli/**/*.ts', 'webview/**/*.ts'],
    rules: noVscode,
  },
  { files: ['src/cli/**/*.ts', 'scripts/**/*.ts', 'test/**/*.ts'], rules: { 'no-console': 'off' } },
  // The lab and the bench run from scripts/ and never import test/ (their machinery is in
  // scripts/harness); unit tests start nothing: pure builders come from test/fixtures.
  {
    files: ['scripts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/test/**'],
              message: 'scripts/ must not import test/: shared machinery lives in scripts/harness.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/unit/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '../integration/**',
                '../system/**',
                '../editor/**',
                '../support/**',
                '**/scripts/harness/**',
                '!**/scripts/harness/processes',
                '!**/scripts/harness/inventory',
              ],
              message: 'Unit tests start no server or host: take pure builders from test/fixtures.',
            },
          ],
        },
      ],
    },
  },
);
