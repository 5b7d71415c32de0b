import { describe, expect, it } from 'vitest';
import { builtInPairOnPostgres, createDatabase } from '../support/postgres.js';
import { projectDirectory, runCli } from './run-cli.js';

describe('meter-sync check', () => {
  it('passes the built-ins on a set-up pair, and writes nothing', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const run = await runCli(['check', '--source', remote.url, '--target', local.url]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // The test role is a superuser: it may write to the source, which is worth a warning.
    expect(run.stdout).toMatch(
      /device\s+warning\s+the role may INSERT, UPDATE, DELETE, TRUNCATE on the source table; SELECT alone is enough/,
    );
    expect(run.stdout).toMatch(/check: 0 errors, \d+ warnings in 4 entities/);
    const { rows } = await local.pool.query('SELECT count(*)::int AS n FROM register');
    expect(rows[0].n).toBe(0);
  });

  it('finds missing tables and columns, unbacked keys, and schemas that do not fit the data', async () => {
    const remote = await createDatabase('check_remote');
    const local = await createDatabase('check_local');
    await remote.pool.query(`
      CREATE ROLE check_reader LOGIN;
      CREATE TABLE reading (
        id bigint PRIMARY KEY, counter bigint, small bigint, label text, taken text,
        note text, remark text, gauge_kind text);
      INSERT INTO reading VALUES
        (1, 9007199254740993, 5, 'a', '2024-01-01', NULL, 'x', 'k'),
        (2, 3, -7, 'b', 'not a date', 'n', NULL, 'k');
      GRANT SELECT ON reading TO check_reader;
      CREATE TABLE gauge (gauge_id int PRIMARY KEY, tenant_id bigint NOT NULL, reading numeric(8,2));
      GRANT SELECT ON gauge TO check_reader`);
    await local.pool.query(`
      CREATE TABLE reading (id bigint, counter bigint, small bigint, label integer, taken text,
        note text, remark text);
      CREATE TABLE gauge_copy (gauge_id int PRIMARY KEY, tenant_id text NOT NULL, reading numeric)`);
    const reader = new URL(remote.url);
    reader.username = 'check_reader';
    const root = projectDirectory({
      'meter-sync.config.ts': `
import { z } from 'zod';
import { col, defineConfig, defineEntity } from 'meter-sync';

const reading = defineEntity({
  name: 'reading',
  table: 'reading',
  columns: z.object({
    id: col.bigint(),
    counter: z.number().nullable(),
    small: z.number().nullable(),
    label: z.number().nullable(),
    taken: z.date().nullable(),
    note: z.string(),
    remark: z.string().nullable(),
    kind: z.string().nullable(),
  }),
  key: ['id'],
  source: { table: 'reading', columns: { kind: 'gauge_kind' } },
});
const gauge = defineEntity({
  name: 'gauge',
  table: 'gauge_copy',
  columns: z.object({ gauge_id: col.int(), tenant_id: col.bigint(), reading: col.numeric().nullable() }),
  key: ['gauge_id'],
  tenantColumn: 'tenant_id',
  source: { query: 'SELECT gauge_id, tenant_id, reading FROM gauge WHERE tenant_id = $1' },
});
const missing = defineEntity({
  name: 'missing',
  table: 'nowhere',
  columns: z.object({ id: col.bigint() }),
  key: ['id'],
});
export default defineConfig({
  source: ${JSON.stringify(reader.toString())},
  target: ${JSON.stringify(local.url)},
  tenantId: 1,
  entities: [reading, gauge, missing],
});
`,
    });
    const run = await runCli(['check', '--json'], { cwd: root });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const result = JSON.parse(run.stdout);
    const found = (entity: string, column: string | null, level: string) =>
      result.findings
        .filter(
          (f: { entity: string; column: string | null; level: string }) =>
            f.entity === entity && f.column === column && f.level === level,
        )
        .map((f: { message: string }) => f.message);
    expect(result).toMatchObject({
      ok: false,
      exitCode: 1,
      entities: ['reading', 'gauge', 'missing'],
    });
    expect(found('reading', 'counter', 'error')).toEqual([
      expect.stringMatching(
        /z\.number\(\) on a bigint column: values reach 9007199254740993, beyond 2\^53/,
      ),
    ]);
    expect(found('reading', 'small', 'warning')).toEqual([
      expect.stringMatching(/exact only up to 2\^53 \(today's values fit\)/),
    ]);
    expect(found('reading', 'label', 'error')).toEqual([
      'source type text and target type integer do not compare',
      'z.number() on a text column: the column does not hold numbers',
    ]);
    expect(found('reading', 'taken', 'warning')).toEqual([
      expect.stringMatching(/z\.date\(\) on a text column: text is not a date/),
    ]);
    expect(found('reading', 'note', 'error')).toEqual([
      'the source holds NULLs but the schema is not .nullable()',
    ]);
    expect(found('reading', 'remark', 'error')).toEqual([]);
    expect(found('reading', 'kind', 'error')).toEqual(['missing on the target table']);
    expect(found('reading', null, 'error')).toEqual([
      'the key (id) is not backed by a primary key or unique constraint on the target',
    ]);
    // SELECT only: no warning about writes.
    expect(found('reading', null, 'warning')).toEqual([]);
    // The query's result is described without reading it: its types are the source's.
    expect(found('gauge', 'tenant_id', 'error')).toEqual([
      'source type bigint and target type text do not compare',
    ]);
    expect(found('gauge', 'reading', 'warning')).toEqual([]);
    expect(found('gauge', null, 'error')).toEqual([]);
    expect(found('missing', null, 'error')).toEqual([
      'source table nowhere does not exist, or the role cannot see it',
      'target table nowhere does not exist; meter-sync init creates it',
    ]);

    const text = await runCli(['check', '--entities', 'reading'], { cwd: root });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(
      /^check of postgres:\/\/check_reader@127\.0\.0\.1:\d+\/check_remote_/,
    );
    expect(text.stdout).toMatch(/^entity\s+column\s+level\s+message$/m);
    expect(text.stdout).toMatch(/^reading\s+note\s+error\s+the source holds NULLs/m);
    expect(text.stdout).toMatch(/check: 6 errors, 2 warnings in 1 entity/);
  });
});
