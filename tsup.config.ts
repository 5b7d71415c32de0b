import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The library and its test helpers (`meter-sync/testing`), for ESM and CommonJS consumers.
    entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    // Both configs build into dist/ at once: leave the CLI's files to the other one.
    clean: ['!cli.js'],
    target: 'node20',
    splitting: false,
  },
  {
    // The `meter-sync` command: ESM only, it is run, never imported.
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    // The library is imported by its name, which resolves to dist/index.js: a config file's
    // entities and the CLI then share one copy of meter-sync (and of its zod schemas).
    external: ['meter-sync'],
    clean: false,
    target: 'node20',
    splitting: false,
  },
]);
