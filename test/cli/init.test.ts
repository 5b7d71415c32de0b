import { describe, expect, it } from 'vitest';
import { builtInPairOnPostgres, createDatabase } from '../support/postgres.js';
import { projectDirectory, runCli, tableRow } from './run-cli.js';

const config = (source: string, target: string) => `
import { z } from 'zod';
import { builtInEntities, col, defineConfig, defineEntity } from 'meter-sync';

const alarmThreshold = defineEntity({
  name: 'alarm_threshold',
  table: 'sync.alarm_threshold',
  columns: z.object({
    register_id: col.bigint(),
    level: col.text(),
    tenant_id: col.bigint(),
    threshold: col.numeric().nullable(),
    note: col.text().nullable(),
  }),
  key: ['register_id', 'level'],
  tenantColumn: 'tenant_id',
  source: { table: 'register_alarm', columns: { level: 'severity', threshold: 'limit_value' } },
});
const meterLabel = defineEntity({
  name: 'meter_label',
  table: 'meter_label',
  columns: z.object({ meter_id: col.bigint(), label: col.text().nullable(), since: col.date().nullable() }),
  key: ['meter_id'],
  source: { query: "SELECT meter_id, 'M-' || name AS label, current_date AS since FROM meter" },
});
export default defineConfig({
  source: ${JSON.stringify(source)},
  target: ${JSON.stringify(target)},
  tenantId: 1,
  entities: [...builtInEntities, alarmThreshold, meterLabel],
});
`;

const columnsOf = async (
  pool: { query(text: string, values: unknown[]): Promise<{ rows: unknown[] }> },
  schema: string,
  table: string,
) =>
  (
    await pool.query(
      `SELECT column_name AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
       FROM information_schema.columns c
       JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) AND a.attname = c.column_name
       WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.ordinal_position`,
      [schema, table],
    )
  ).rows;

describe('meter-sync init with the entities of a config file', () => {
  it('prints, then creates, tables shaped on the source; never alters them; reports drift', async () => {
    const { remote } = await builtInPairOnPostgres([1]);
    const local = await createDatabase('init_local');
    await remote.pool.query(`
      CREATE TABLE register_alarm (register_id bigint NOT NULL, severity varchar(10) NOT NULL,
        tenant_id bigint NOT NULL, limit_value numeric(10,2), note text,
        PRIMARY KEY (register_id, severity));
      INSERT INTO register_alarm VALUES (101, 'high', 1, 250.5, NULL), (102, 'low', 1, NULL, 'n')`);
    const root = projectDirectory({ 'meter-sync.config.ts': config(remote.url, local.url) });

    const printed = await runCli(['init', '--print'], { cwd: root });
    expect(printed.stderr).toBe('');
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain('CREATE TABLE IF NOT EXISTS "device"');
    expect(printed.stdout).toContain(
      [
        'CREATE SCHEMA IF NOT EXISTS "sync";',
        'CREATE TABLE "sync"."alarm_threshold" (',
        '  "register_id" bigint NOT NULL,',
        '  "level" character varying(10) NOT NULL,',
        '  "tenant_id" bigint NOT NULL,',
        '  "threshold" numeric(10,2),',
        '  "note" text,',
        '  PRIMARY KEY ("register_id", "level")',
        ');',
      ].join('\n'),
    );
    expect(printed.stdout).toContain(
      'CREATE TABLE "meter_label" (\n  "meter_id" integer NOT NULL,\n  "label" text,\n  "since" date,\n  PRIMARY KEY ("meter_id")\n);',
    );
    const before = await local.pool.query(
      "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname IN ('public', 'sync')",
    );
    expect(before.rows[0].n).toBe(0);

    const init = await runCli(['init'], { cwd: root });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(
      /has the tables device, meter, register, device_register, sync\.alarm_threshold, meter_label/,
    );
    expect(await columnsOf(local.pool, 'sync', 'alarm_threshold')).toEqual([
      { name: 'register_id', type: 'bigint', not_null: true },
      { name: 'level', type: 'character varying(10)', not_null: true },
      { name: 'tenant_id', type: 'bigint', not_null: true },
      { name: 'threshold', type: 'numeric(10,2)', not_null: false },
      { name: 'note', type: 'text', not_null: false },
    ]);

    const sync = await runCli(['sync'], { cwd: root });
    expect(sync.code).toBe(0);
    expect(tableRow(sync.stdout, 'alarm_threshold')).toEqual(['2', '0', '0', '0', 'ok']);
    expect(tableRow(sync.stdout, 'meter_label')).toEqual(['2', '0', '0', '0', 'ok']);

    // Drift: a column gone, a type changed, the key no longer unique. init changes none of it.
    await local.pool.query(`
      ALTER TABLE sync.alarm_threshold DROP COLUMN note;
      ALTER TABLE meter_label ALTER COLUMN label TYPE integer USING NULL, DROP CONSTRAINT meter_label_pkey`);
    const drift = await runCli(['init', '--json'], { cwd: root });
    expect(drift.code).toBe(1);
    const result = JSON.parse(drift.stdout);
    expect(result).toMatchObject({
      ok: false,
      exitCode: 1,
      existing: ['sync.alarm_threshold', 'meter_label'],
    });
    expect(result.findings).toEqual(
      expect.arrayContaining([
        {
          entity: 'alarm_threshold',
          column: 'note',
          level: 'error',
          message: 'missing on the target table',
        },
        {
          entity: 'meter_label',
          column: 'label',
          level: 'error',
          message: 'source type text and target type integer do not compare',
        },
        {
          entity: 'meter_label',
          column: null,
          level: 'error',
          message:
            'the key (meter_id) is not backed by a primary key or unique constraint on the target',
        },
      ]),
    );
    expect((await columnsOf(local.pool, 'sync', 'alarm_threshold')).length).toBe(4);
    expect(await columnsOf(local.pool, 'public', 'meter_label')).toContainEqual({
      name: 'label',
      type: 'integer',
      not_null: false,
    });
  });
});
