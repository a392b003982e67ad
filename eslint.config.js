// @ts-check
/**
 * ESLint 9 flat config: eslint's and typescript-eslint's recommended rules (syntax only, no type
 * information, so `npm run lint` stays fast on a small machine; `npm run typecheck` does the
 * typing). Runs over the TypeScript of src, test, bench and scripts and the two .mjs helpers.
 */
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import { defineConfig } from 'eslint/config'

/** The Node.js globals the .mjs helpers use (TypeScript files get no-undef from tsc instead). */
const nodeGlobals = Object.fromEntries(
  ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setImmediate', 'performance'].map((g) => [g, 'readonly']),
)

export default defineConfig(
  { ignores: ['dist/', '.bench-build/', '.tap/', 'coverage/', 'bench/node_modules/', 'bench/.cache/', 'deploy/demo/', 'var/', 'demo-run/', 'src/crypto/wasm/'] },
  // a disable comment that no longer suppresses anything fails the run, so none goes stale
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: nodeGlobals },
  },
  {
    // dependency-cruiser reads its config as CommonJS; the tests' --require preload is CommonJS too
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly', process: 'readonly' } },
  },
  {
    rules: {
      // Signed notes and canonical JSON are checked for control characters on purpose (C2SP
      // signed-note, RFC 8785): those regular expressions name them.
      'no-control-regex': 'off',
      // `_`-prefixed names are deliberately unused (positional parameters, discarded members).
      '@typescript-eslint/no-unused-vars': ['error', {
        argsIgnorePattern: '^_',
        varsIgnorePattern: '^_',
        destructuredArrayIgnorePattern: '^_',
        caughtErrors: 'none',
      }],
    },
  },
)
