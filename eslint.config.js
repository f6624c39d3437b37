// @ts-check
import js from '@eslint/js';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

// Workflow code is replayed deterministically in Temporal's sandbox: no Node built-ins, no I/O
// modules, no clocks or randomness beyond what the sandbox provides. Activity modules may be
// imported for their types only.
const nodeBuiltins = builtinModules.flatMap((name) => [name, `node:${name}`]);
const ioModules = [
  '@temporalio/activity',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/testing',
  'better-sqlite3',
  'pino',
  'fastify',
  'commander',
  '@cedar-policy/cedar-wasm',
  '@cedar-policy/cedar-wasm/nodejs',
  'undici',
  'pg',
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', '.tools/**', 'bench/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', fetch: 'readonly', AbortSignal: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-console': 'error',
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'Workflow code must stay deterministic: no Node built-ins (use an activity).',
            allowTypeImports: true,
          })),
          patterns: [
            {
              // The package and any path inside it (e.g. @temporalio/client/lib/connection.js).
              group: ioModules.flatMap((name) => [name, `${name}/**`]),
              message: 'Workflow code must stay deterministic: no I/O modules (use an activity).',
              allowTypeImports: true,
            },
            {
              // At any depth below workflows/.
              group: ['**/activities', '**/activities/**', '**/store/**', '**/server/**', '**/config/**', '**/workers/**', '**/dev/**', '**/policies/**'],
              message: 'Workflow code may import activities and other I/O zones for their types only (import type).',
              allowTypeImports: true,
            },
          ],
        },
      ],
      'no-restricted-syntax': ['error', { selector: 'ImportExpression', message: 'No dynamic import() in workflow code: the bundle must be known at build time.' }],
      'no-restricted-globals': [
        'error',
        { name: 'setInterval', message: 'Use sleep() or condition() from @temporalio/workflow.' },
        { name: 'fetch', message: 'Workflows do no I/O: call an activity.' },
        { name: 'process', message: 'Workflows must not read the environment.' },
      ],
    },
  },
  {
    // Only entry points talk to the terminal.
    files: ['dev/start.ts', 'dev/provision.ts', 'workers/main.ts', 'server/main.ts', 'cli/index.ts', 'test/bench/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
