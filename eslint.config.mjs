// Flat config: typescript-eslint's recommended rules plus type-aware promise rules on src/, zero warnings, and the layering rules that keep the
// pure core (src/core, src/shared, src/cli) and the webview free of runtime `vscode` imports,
// and src/shared and the webview free of src/core. `npm run lint` also runs
// scripts/check-layers.mjs (no import cycle, no upward edge between the core's layers).
import tseslint from 'typescript-eslint';

const vscodeAtRuntime = {
  name: 'vscode',
  message: 'src/core, src/shared, src/cli and webview must not import vscode at runtime.',
  allowTypeImports: true,
};
const editorLayer = {
  group: ['**/editor/**', '**/editor'],
  message: 'The core must not depend on the editor layer.',
};
/** The layering of the rest of the import graph is checked by scripts/check-layers.mjs. */
const coreLayer = {
  group: ['**/core/**', '**/core'],
  message:
    'src/shared and the webview import nothing from src/core (see scripts/check-layers.mjs).',
};

const noVscode = {
  'no-restricted-imports': ['error', { paths: [vscodeAtRuntime], patterns: [editorLayer] }],
};
const noCore = {
  'no-restricted-imports': [
    'error',
    { paths: [vscodeAtRuntime], patterns: [editorLayer, coreLayer] },
  ],
};

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      'out/**',
      'test-results/**',
      '**/*.js',
      '**/*.mjs',
      // The scripts in plain JavaScript (the lab's launcher, the test runner) are linted too.
      '!scripts/**/*.mjs',
    ],
  },
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
  // Type-aware rules on the product code: promises that are neither awaited nor handled,
  // promises where a callback expects void, awaits of non-promises.
  {
    files: ['src/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    files: ['src/core/**/*.ts', 'src/cli/**/*.ts'],
    rules: noVscode,
  },
  { files: ['src/shared/**/*.ts', 'webview/**/*.ts'], rules: noCore },
  {
    files: ['src/cli/**/*.ts', 'scripts/**/*.ts', 'scripts/**/*.mjs', 'test/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  // The lab and the bench run from scripts/ (TypeScript or plain .mjs) and never import test/
  // (their machinery is in scripts/harness); unit tests start nothing: pure builders come from
  // test/fixtures.
  {
    files: ['scripts/**/*.ts', 'scripts/**/*.mjs'],
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
                '!**/scripts/harness/writeReasons',
              ],
              message: 'Unit tests start no server or host: take pure builders from test/fixtures.',
            },
          ],
        },
      ],
    },
  },
);
