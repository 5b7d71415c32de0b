import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../support/postgres.js';
import {
  casesSource,
  matrix,
  onPostgresSource,
  tapOutcomes,
  unitTestSource,
} from './pgmem-matrix.js';

// The packed tarball installed from scratch in fresh projects, next to the project's own zod
// (meter-sync's peer): zod 3.25 written with its 'zod/v4' API, and zod 4, and pg-mem for a unit
// test on meter-sync/testing. Needs the npm registry (or a warm npm cache) and `npm run build`
// first.

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version as string;

const flavours = [
  { zod: 'zod@~3.25.0', api: 'zod/v4' },
  { zod: 'zod@^4.0.0', api: 'zod' },
] as const;

/** A custom entity as a project writes it: its own zod, meter-sync's col schemas. */
const entitySource = (api: string) => `import pg from 'pg';
import { z } from '${api}';
import {
  builtInEntities,
  col,
  createRegistry,
  defineEntity,
  performSync,
  type RowOf,
} from 'meter-sync';

export const alarmThreshold = defineEntity({
  name: 'alarm_threshold',
  table: 'alarm_threshold',
  columns: z.object({
    register_id: col.bigint(),
    level: z.enum(['low', 'high']),
    tenant_id: col.bigint(),
    threshold: col.numeric(),
    note: col.text().nullable(),
    enabled: col.boolean(),
  }),
  key: ['register_id', 'level'],
  tenantColumn: 'tenant_id',
  source: { table: 'register_alarm', columns: { level: 'severity', threshold: 'limit_value' } },
  references: [{ entity: 'register', columns: { register_id: 'register_id' } }],
  onMissing: { set: { enabled: false } },
});

// Rejected twice: by the compiler, and by defineEntity when it runs.
function defineBroken() {
  return defineEntity({
    name: 'broken',
    table: 'broken',
    columns: z.object({ id: col.bigint() }),
    // @ts-expect-error 'nope' is not in columns
    key: ['nope'],
  });
}
let brokenError = 'none';
try {
  defineBroken();
} catch (error) {
  brokenError = (error as Error).name;
}

const registry = createRegistry([...builtInEntities, alarmThreshold]);

const row: RowOf<typeof alarmThreshold> = alarmThreshold.columns.parse({
  register_id: '9007199254740993',
  level: 'high',
  tenant_id: 7,
  threshold: '1.50',
  note: null,
  enabled: 't',
});
const id: bigint = row.register_id;

// Compiled, never called: the project's pg pools and the result typed by 'only'.
export async function syncAlarms(url: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: url });
  const result = await performSync({
    source: pool,
    target: pool,
    tenantId: 7,
    entities: registry,
    only: ['alarm_threshold'],
  });
  return result.entities.alarm_threshold.inserted;
}

console.log(
  JSON.stringify({
    order: registry.entities.map((entity) => entity.name),
    key: alarmThreshold.key,
    id: id.toString(),
    threshold: row.threshold,
    enabled: row.enabled,
    rejected: alarmThreshold.columns.safeParse({ ...row, level: 'medium' }).success,
    brokenError,
  }),
);
`;

const tsconfig = {
  compilerOptions: {
    strict: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    skipLibCheck: false,
    types: ['node'],
    outDir: 'out',
  },
  files: ['entity.ts', 'cases.ts', 'matrix.test.ts', 'on-postgres.ts'],
};

const npm = (args: string[], cwd: string) =>
  run('npm', args, { cwd, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 });

describe('the packed tarball in a fresh project', () => {
  const work = mkdtempSync(join(tmpdir(), 'meter-sync-tarball-'));
  let tarball: string;
  const projects = new Map<string, string>();

  beforeAll(async () => {
    const { stdout } = await npm(
      ['pack', '--json', '--ignore-scripts', '--pack-destination', work],
      root,
    );
    tarball = join(work, JSON.parse(stdout)[0].filename);
    await Promise.all(
      flavours.map(async ({ zod, api }) => {
        const project = mkdtempSync(join(work, 'project-'));
        projects.set(zod, project);
        writeFileSync(
          join(project, 'package.json'),
          JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
        );
        writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
        writeFileSync(join(project, 'entity.ts'), entitySource(api));
        writeFileSync(join(project, 'cases.ts'), casesSource(api));
        writeFileSync(join(project, 'matrix.test.ts'), unitTestSource);
        writeFileSync(join(project, 'on-postgres.ts'), onPostgresSource);
        await npm(
          [
            'install',
            '--prefer-offline',
            '--no-audit',
            '--no-fund',
            '--ignore-scripts',
            tarball,
            zod,
            'pg@^8.11.0',
            'pg-mem@^3.0.14',
            '@types/pg',
            '@types/node@^20',
            'typescript@~5.9',
          ],
          project,
        );
      }),
    );
  }, 600_000);

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  describe.each(flavours)('with $zod, written with $api', ({ zod }) => {
    const project = () => projects.get(zod) as string;

    it('type-checks a custom entity under strict', async () => {
      // A failure prints tsc's diagnostics, which is what to read.
      const check = await run(join(project(), 'node_modules', '.bin', 'tsc'), ['--noEmit'], {
        cwd: project(),
      }).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true }));
      expect(check.stdout).toBe('');
      expect(check).not.toHaveProperty('failed');
    }, 120_000);

    it('runs it: definitions, registry order and col parsing with the project zod', async () => {
      await run(join(project(), 'node_modules', '.bin', 'tsc'), [], { cwd: project() });
      const { stdout } = await run(process.execPath, [join('out', 'entity.js')], {
        cwd: project(),
      });
      expect(JSON.parse(stdout)).toEqual({
        order: ['device', 'meter', 'register', 'device_register', 'alarm_threshold'],
        key: ['register_id', 'level'],
        id: '9007199254740993',
        threshold: '1.5',
        enabled: true,
        rejected: false,
        brokenError: 'DefinitionError',
      });
    }, 120_000);

    it('loads from CommonJS too', async () => {
      const script =
        "const { col } = require('meter-sync'); console.log(String(col.bigint().parse('12')));";
      const { stdout } = await run(process.execPath, ['-e', script], { cwd: project() });
      expect(stdout.trim()).toBe('12');
    });

    it('shares one zod with the project, and installs meter-sync without PGlite', async () => {
      const { stdout } = await npm(['ls', 'zod', '--all', '--parseable'], project());
      expect(stdout.trim().split('\n')).toEqual([join(project(), 'node_modules', 'zod')]);
      const tree = await npm(['ls', '--all', '--json'], project());
      expect(JSON.parse(tree.stdout).dependencies['meter-sync'].version).toBe(version);
      const pglite = await npm(['ls', '@electric-sql/pglite', '--all', '--parseable'], project())
        .then(({ stdout }) => stdout.trim())
        .catch(({ stdout }: { stdout: string }) => stdout.trim());
      expect(pglite).toBe('');
    });

    it('has a pg-mem unit test that fails exactly where PostgreSQL 15 fails, or refuses the case', async () => {
      await run(join(project(), 'node_modules', '.bin', 'tsc'), [], { cwd: project() });
      // node:test exits non-zero when a test fails: the report is what to read.
      const unit = await run(
        process.execPath,
        ['--test', '--test-reporter=tap', join('out', 'matrix.test.js')],
        { cwd: project() },
      ).catch((error: { stdout: string }) => error);
      const onPgMem = tapOutcomes(unit.stdout);
      const [source, target] = await Promise.all([
        createDatabase('matrix_source'),
        createDatabase('matrix_target'),
      ]);
      const { stdout } = await run(process.execPath, [join('out', 'on-postgres.js')], {
        cwd: project(),
        env: { ...process.env, MATRIX_SOURCE_URL: source.url, MATRIX_TARGET_URL: target.url },
      });
      const onPostgres = JSON.parse(stdout) as Record<string, { ok: boolean; error?: string }>;

      expect(Object.keys(onPgMem).sort()).toEqual(Object.keys(matrix).sort());
      expect(Object.keys(onPostgres).sort()).toEqual(Object.keys(matrix).sort());
      for (const [name, expected] of Object.entries(matrix)) {
        const postgres = onPostgres[name];
        const pgMem = onPgMem[name];
        expect(postgres?.ok ? 'passes' : 'fails', `${name} on PostgreSQL: ${postgres?.error}`).toBe(
          expected.postgres,
        );
        if ('pgMem' in expected) {
          expect(pgMem?.ok, `${name} on pg-mem`).toBe(false);
          expect(pgMem?.detail, name).toMatch(/pg-mem/);
        } else {
          expect(pgMem?.ok, `${name} on pg-mem: ${pgMem?.detail}`).toBe(postgres?.ok);
        }
      }
    }, 120_000);

    it('says what to install when the demo runs without PGlite', async () => {
      const demo = await run(join(project(), 'node_modules', '.bin', 'meter-sync'), ['demo'], {
        cwd: project(),
      }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(demo.code).toBe(2);
      expect(demo.stderr).toMatch(/install @electric-sql\/pglite to run the demo/);
    });
  });
});
