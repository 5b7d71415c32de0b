import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtInEntities,
  col,
  createRegistry,
  defineEntity,
  performSync,
} from '../../src/index.js';
import {
  createMemoryDatabase,
  createTestClientSystem,
  createTestDatabases,
  createTestSyncDatabase,
} from '../../src/testing/index.js';

describe('meter-sync/testing', () => {
  it('gives a seeded Client System and an empty sync database that performSync fills', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1, 2] });
    expect(target.db.public.many('SELECT * FROM register')).toEqual([]);

    const result = await performSync({ source: source.pool, target: target.pool, tenantId: 2 });
    expect(result.ok).toBe(true);
    expect(result.entities.meter.inserted).toBe(6);
    const { rows } = await target.pool.query(
      'SELECT register_id FROM register ORDER BY register_id',
    );
    expect(rows.map((row) => Number(row.register_id))).toEqual([201, 202, 203, 204]);
  });

  it('seeds only the tenants asked for, or nothing', async () => {
    const three = await createTestClientSystem({ tenants: [3] });
    expect(three.db.public.many('SELECT register_id FROM register ORDER BY 1')).toEqual([
      { register_id: 301 },
      { register_id: 302 },
      { register_id: 303 },
      { register_id: 304 },
    ]);
    expect(three.db.public.many('SELECT count(*)::int AS n FROM meter_element')).toEqual([
      { n: 6 },
    ]);
    const empty = await createTestClientSystem({ seed: false });
    expect(empty.db.public.many('SELECT * FROM device')).toEqual([]);
  });

  it("runs extra SQL on either side for a custom entity's tables", async () => {
    const alarm = defineEntity({
      name: 'alarm',
      table: 'alarm',
      columns: z.object({ alarm_id: col.bigint(), tenant_id: col.bigint(), level: col.text() }),
      key: ['alarm_id'],
      tenantColumn: 'tenant_id',
    });
    const { source, target } = await createTestDatabases({
      tenants: [1],
      sql: "CREATE TABLE alarm (alarm_id int PRIMARY KEY, tenant_id int, level text); INSERT INTO alarm VALUES (1, 1, 'high')",
      targetSql: 'CREATE TABLE alarm (alarm_id bigint PRIMARY KEY, tenant_id bigint, level text)',
    });
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      tenantId: 1,
      entities: createRegistry([...builtInEntities, alarm]),
    });
    expect(result.entities.alarm).toMatchObject({ status: 'ok', inserted: 1 });
    const sync = await createTestSyncDatabase({ sql: 'CREATE TABLE notes (id int)' });
    expect(sync.db.public.many('SELECT * FROM notes')).toEqual([]);
  });

  it('makes an empty in-memory database with optional SQL', async () => {
    const { db, pool } = await createMemoryDatabase(
      'CREATE TABLE t (id int); INSERT INTO t VALUES (7)',
    );
    expect(db.public.many('SELECT id FROM t')).toEqual([{ id: 7 }]);
    expect((await pool.query('SELECT id FROM t WHERE id = $1', [7])).rows).toEqual([{ id: 7 }]);
  });
});

describe('meter-sync/testing describes columns as PostgreSQL does', () => {
  const reading = (table: string, value: z.ZodType) =>
    defineEntity({
      name: 'reading',
      table,
      columns: z.object({ id: z.number(), value }),
      key: ['id'],
      source: { table: 'reading' },
    });
  const pair = (sourceType: string, value: string, targetSql: string) =>
    createTestDatabases({
      seed: false,
      sql: `CREATE TABLE reading (id int PRIMARY KEY, value ${sourceType}); INSERT INTO reading VALUES (1, ${value});`,
      targetSql,
    });

  it('with the types the DDL declared, where pg-mem reads back integer, float and text', async () => {
    const { target } = await createTestDatabases({
      seed: false,
      targetSql: `CREATE SCHEMA local_copy;
        CREATE TABLE local_copy.reading (a bigint, b varchar(5), c numeric(10,2), d char(3), e timestamptz, f text[]);
        ALTER TABLE local_copy.reading ADD COLUMN g smallint;`,
    });
    const { rows } = await target.pool.query(
      "SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = 'local_copy' AND table_name = 'reading'",
    );
    expect(rows.map((row) => [row.name, row.type, row.type_name])).toEqual([
      ['a', 'bigint', 'int8'],
      ['b', 'character varying(5)', 'varchar'],
      ['c', 'numeric(10,2)', 'numeric'],
      ['d', 'character(3)', 'bpchar'],
      ['e', 'timestamp with time zone', 'timestamptz'],
      ['f', 'text[]', '_text'],
      ['g', 'smallint', 'int2'],
    ]);
  });

  it('syncs into a schema-qualified table, and numeric(p,s) values keep their scale', async () => {
    const { source, target } = await pair(
      'numeric(10,2)',
      '1.5',
      'CREATE SCHEMA local_copy; CREATE TABLE local_copy.reading (id int PRIMARY KEY, value numeric(10,2));',
    );
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      entities: [reading('local_copy.reading', z.string().regex(/^\d+\.\d\d$/))],
    });
    expect(result.entities.reading.error).toBeUndefined();
    expect(result.entities.reading.inserted).toBe(1);
  });

  it('checks a varchar limit as on PostgreSQL: the row is named, not a driver error', async () => {
    const { source, target } = await pair(
      'text',
      "'seven!!'",
      'CREATE TABLE reading (id int PRIMARY KEY, value varchar(5));',
    );
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      entities: [reading('reading', z.string())],
    });
    expect(result.entities.reading.error?.message).toMatch(
      /reading: source row \(id=1\) column "value" holds 7 characters, more than the 5/,
    );
  });

  it('refuses a bigint beyond 2^53, which pg-mem cannot hold exactly', async () => {
    const { source, target } = await pair(
      'bigint',
      '9007199254740993',
      'CREATE TABLE reading (id int PRIMARY KEY, value bigint);',
    );
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      entities: [reading('reading', z.bigint())],
    });
    expect(result.entities.reading.error?.message).toMatch(
      /column "value" holds 9007199254740992, beyond 2\^53: pg-mem holds bigint values as JS numbers/,
    );
  });

  it('refuses a numeric column without a scale, whose scale pg-mem would drop', async () => {
    await expect(
      createTestSyncDatabase({ sql: 'CREATE TABLE reading (id int, value numeric)' }),
    ).rejects.toThrow(/column "value" is numeric without a scale, which pg-mem does not keep/);
    await expect(
      createMemoryDatabase(
        'CREATE TABLE reading (id int); ALTER TABLE reading ADD COLUMN v decimal',
      ),
    ).rejects.toThrow(/column "v" is decimal without a scale/);
  });
});
