import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// What a consumer runs, in both module systems: the library, the test helpers, one sync.
const consumer = {
  esm: `
import { builtIns, createSyncAgent, performSync } from 'meter-sync';
import { createTestDatabases } from 'meter-sync/testing';
const { source, target } = await createTestDatabases({ tenants: [1] });
const result = await performSync({ source: source.pool, target: target.pool, tenantId: 1 });
console.log(JSON.stringify({ ok: result.ok, registers: result.entities.register.inserted,
  agent: typeof createSyncAgent, entity: builtIns.register.name }));
`,
  cjs: `
const { builtIns, createSyncAgent, performSync } = require('meter-sync');
const { createTestDatabases } = require('meter-sync/testing');
(async () => {
  const { source, target } = await createTestDatabases({ tenants: [1] });
  const result = await performSync({ source: source.pool, target: target.pool, tenantId: 1 });
  console.log(JSON.stringify({ ok: result.ok, registers: result.entities.register.inserted,
    agent: typeof createSyncAgent, entity: builtIns.register.name }));
})();
`,
};

/** The part of `attw --format json` the test reads. */
interface AttwReport {
  problems: Record<string, { resolutionKind?: string }[]>;
  analysis: {
    entrypoints: Record<
      string,
      { resolutions: Record<string, { resolution?: { fileName: string } }> }
    >;
  };
}

describe('the published package', () => {
  let project: string;
  beforeAll(() => {
    // A consumer project with meter-sync installed (linked to this build).
    project = mkdtempSync(join(tmpdir(), 'meter-sync-consumer-'));
    mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(root, join(project, 'node_modules', 'meter-sync'), 'dir');
    symlinkSync(
      join('..', 'meter-sync', packageJson.bin['meter-sync']),
      join(project, 'node_modules', '.bin', 'meter-sync'),
    );
    writeFileSync(join(project, 'consumer.mjs'), consumer.esm);
    writeFileSync(join(project, 'consumer.cjs'), consumer.cjs);
  });
  afterAll(() => {
    rmSync(project, { recursive: true, force: true });
  });

  it('packs only the built files, README, LICENSE and package.json', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
    });
    const files: string[] = JSON.parse(stdout)[0].files.map((file: { path: string }) => file.path);
    const outside = files.filter(
      (file) =>
        !/^dist\/[\w.-]+\.(js|cjs|d\.ts|d\.cts)$/.test(file) &&
        !['README.md', 'LICENSE', 'package.json'].includes(file),
    );
    expect(outside).toEqual([]);
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/cli.js',
        'dist/index.js',
        'dist/index.cjs',
        'dist/index.d.ts',
        'dist/index.d.cts',
        'dist/testing.js',
        'dist/testing.cjs',
        'dist/testing.d.ts',
        'dist/testing.d.cts',
      ]),
    );
  });

  it('passes publint and arethetypeswrong', async () => {
    // JSON, because attw's human format changes with the terminal; a problem also fails the exit code.
    const args = ['run', '--silent', 'check:package', '--', '--format', 'json'];
    const { stdout } = await run('npm', args, { cwd: root });
    expect(stdout).toMatch(/All good!/);
    const report: AttwReport = JSON.parse(stdout.slice(stdout.indexOf('\n{') + 1));
    const problems = Object.values(report.problems)
      .flat()
      .filter((problem) => problem.resolutionKind !== 'node10');
    expect(problems).toEqual([]);
    const declarations = (subpath: string, kind: string) =>
      report.analysis.entrypoints[subpath]?.resolutions[kind]?.resolution?.fileName;
    for (const [subpath, file] of [
      ['.', 'index'],
      ['./testing', 'testing'],
    ] as const) {
      expect(declarations(subpath, 'node16-cjs')).toMatch(new RegExp(`/dist/${file}\\.d\\.cts$`));
      expect(declarations(subpath, 'node16-esm')).toMatch(new RegExp(`/dist/${file}\\.d\\.ts$`));
    }
  }, 120_000);

  it.each(['mjs', 'cjs'])('works when imported from a consumer.%s', async (extension) => {
    const { stdout } = await run(process.execPath, [`consumer.${extension}`], { cwd: project });
    expect(JSON.parse(stdout)).toEqual({
      ok: true,
      registers: 4,
      agent: 'function',
      entity: 'register',
    });
  });

  it('installs a meter-sync command that runs', async () => {
    const { stdout } = await run(join(project, 'node_modules', '.bin', 'meter-sync'), [
      '--version',
    ]);
    expect(stdout.trim()).toBe(packageJson.version);
  });
});
