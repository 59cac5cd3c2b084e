// @ts-check
// Lint: typescript-eslint's strict and stylistic type-checked presets over src/, test/, bench/ and docker/.
// A rule is turned off or tuned only here, each with the reason it does not fit this codebase.
import eslint from '@eslint/js';
import globals from 'globals';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', 'data/', 'fixtures/', 'bench/out/', '.tmp/'] },
  eslint.configs.recommended,
  tseslint.configs.strictTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Numbers, booleans and null/undefined print as themselves in messages ("exited null"); objects, unknowns and
      // `any` still need an explicit String() or JSON.stringify().
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowNullish: true, allowAny: false, allowNever: false, allowRegExp: false },
      ],
      // `string[]` for simple element types, `Array<{ ... }>` / `Array<[a, b]>` for complex ones, as the code writes them.
      '@typescript-eslint/array-type': ['error', { default: 'array-simple' }],
      // With noUncheckedIndexedAccess the compiler flags every unchecked index, Map.get and optional field; `!` is the
      // visible claim that the code above checked it (bounds-checked loops, has() before get(), spawn with 'pipe').
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `() => resolve()` and `(x) => void list.push(x)`-style arrow shorthands are the idiom in callbacks.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // `async` is kept on functions that fill a Promise-returning contract (a command's run(), onRecords) without
      // awaiting: it turns a synchronous throw into a rejection, which callers rely on.
      '@typescript-eslint/require-await': 'off',
      // An express error handler is known by its four parameters, so an unused `_next` must stay; `_` marks it unused.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // `catch (err) { reject(err); }` passes a caught error on as it is (its type is unknown, but it is what was thrown).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
    },
  },
  {
    // Tests read untyped JSON answers (supertest's `res.body`, `res.json()`, JSON.parse) and check their shape with chai.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/restrict-plus-operands': [
        'error',
        { allowAny: true, allowBoolean: false, allowNullish: false, allowNumberAndString: false, allowRegExp: false },
      ],
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowAny: true, allowNumber: true, allowBoolean: true, allowNullish: true, allowNever: false, allowRegExp: false },
      ],
      // Mocha hooks and callbacks assign variables that TypeScript's narrowing cannot follow (after() runs even when
      // before() skipped, a flag is cleared by a timer), so `server?.kill()` and `while (sending)` are not dead code.
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  {
    // Plain CommonJS scripts (the winston transport users copy, this file): no type information.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The browser page's scripts (ES modules; uPlot is a global from its own script tag).
    files: ['src/ui/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser, uPlot: 'readonly' } },
  },
);
