import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, defineEntity, performSync } from '../../src/index.js';
import { createDatabase } from '../support/postgres.js';

/**
 * The target holds exactly the source's values whatever schema a definition uses: the schema
 * validates, the source's own text is what is written.
 */
const DDL = `CREATE TABLE sample (id bigint PRIMARY KEY, opened_at timestamptz, day date,
  doc jsonb, raw json, amount numeric, ratio float8, big bigint)`;

const SAMPLE_ROWS = `INSERT INTO sample VALUES
  (1, '2024-03-02 10:11:12.123456+00', '2024-03-02', '{"big": 12345678901234567890, "tiny": 1e-400, "x": [1.10, -0]}',
   '{"b": 1,  "a": [ 1 , 2 ],"b": 2}', 1.50, 0.30000000000000004, 9007199254740993),
  (2, '0044-03-15 12:00:00.000001+00 BC', 'infinity', '"text"', 'null', -0.000, 1e-300, -9223372036854775808),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`;

const plain = z.object({
  id: z.bigint(),
  opened_at: z.date().nullable(),
  day: z.union([z.date(), z.string()]).nullable(),
  doc: z.unknown(),
  raw: z.any(),
  amount: z.string().nullable(),
  ratio: z.number().nullable(),
  big: z.bigint().nullable(),
});

const precise = z.object({
  id: col.bigint(),
  opened_at: col.timestamptz().nullable(),
  day: col.date().nullable(),
  doc: col.json().nullable(),
  raw: col.json().nullable(),
  amount: col.numeric().nullable(),
  ratio: col.double().nullable(),
  big: col.bigint().nullable(),
});

const asText =
  'SELECT id, opened_at::text, day::text, doc::text, raw::text, amount::text, ratio::text, big::text FROM sample ORDER BY id';

describe.each([
  ['plain zod', plain],
  ['col schemas', precise],
] as const)('values arrive exactly, with %s', (_style, columns) => {
  it('keeps microseconds, BC dates, JSON numbers beyond a double, json bytes and float digits', async () => {
    const remote = await createDatabase('exact_remote');
    const local = await createDatabase('exact_local');
    await remote.pool.query(`${DDL}; ${SAMPLE_ROWS}`);
    await local.pool.query(DDL);
    const sample = defineEntity({ name: 'sample', table: 'sample', columns, key: ['id'] });
    const first = await performSync({
      source: remote.pool,
      target: local.pool,
      entities: [sample],
    });
    expect(first.entities.sample).toMatchObject({ status: 'ok', inserted: 3 });
    const source = (await remote.pool.query(asText)).rows;
    expect((await local.pool.query(asText)).rows).toEqual(source);
    // json keeps its text byte for byte: key order, spacing, the repeated key.
    expect(source[0].raw).toBe('{"b": 1,  "a": [ 1 , 2 ],"b": 2}');
    const again = await performSync({
      source: remote.pool,
      target: local.pool,
      entities: [sample],
    });
    expect(again.entities.sample).toMatchObject({ inserted: 0, updated: 0, unchanged: 3 });
    // A change only JSON's text shows is a change.
    await remote.pool.query(`UPDATE sample SET raw = '{"a": [1, 2], "b": 2}' WHERE id = 1`);
    const third = await performSync({
      source: remote.pool,
      target: local.pool,
      entities: [sample],
    });
    expect(third.entities.sample).toMatchObject({ updated: 1 });
    expect((await local.pool.query(asText)).rows).toEqual((await remote.pool.query(asText)).rows);
  });
});

describe('plain zod schemas that do not fit a value', () => {
  it('refuses a bigint beyond 2^53 under z.number(), naming entity, key and column', async () => {
    const remote = await createDatabase('exact_big_remote');
    const local = await createDatabase('exact_big_local');
    const ddl = 'CREATE TABLE reg (id bigint PRIMARY KEY, counter bigint)';
    await remote.pool.query(`${ddl}; INSERT INTO reg VALUES (1, 5), (2, 9007199254740993)`);
    await local.pool.query(ddl);
    const reg = defineEntity({
      name: 'reg',
      table: 'reg',
      columns: z.object({ id: z.number().int(), counter: z.number() }),
      key: ['id'],
    });
    const result = await performSync({ source: remote.pool, target: local.pool, entities: [reg] });
    expect(result.entities.reg.status).toBe('failed');
    expect(result.entities.reg.error).toMatchObject({
      entity: 'reg',
      column: 'counter',
      key: { id: 2 },
    });
    expect(result.entities.reg.error?.message).toMatch(
      /reg: source row \(id=2\) column "counter" holds 9007199254740993, beyond 2\^53/,
    );
    expect((await local.pool.query('SELECT count(*)::int AS n FROM reg')).rows[0].n).toBe(0);
  });

  it('writes what a transforming schema outputs, and compares that', async () => {
    const remote = await createDatabase('exact_tr_remote');
    const local = await createDatabase('exact_tr_local');
    const ddl = 'CREATE TABLE tag (id int PRIMARY KEY, label text)';
    await remote.pool.query(`${ddl}; INSERT INTO tag VALUES (1, '  North '), (2, 'south')`);
    await local.pool.query(ddl);
    const tag = defineEntity({
      name: 'tag',
      table: 'tag',
      columns: z.object({
        id: z.number(),
        label: z.string().transform((s) => s.trim().toUpperCase()),
      }),
      key: ['id'],
    });
    const sync = () => performSync({ source: remote.pool, target: local.pool, entities: [tag] });
    expect((await sync()).entities.tag).toMatchObject({ inserted: 2 });
    expect((await local.pool.query('SELECT label FROM tag ORDER BY id')).rows).toEqual([
      { label: 'NORTH' },
      { label: 'SOUTH' },
    ]);
    expect((await sync()).entities.tag).toMatchObject({ inserted: 0, updated: 0, unchanged: 2 });
  });
});

describe('every plain zod kind the README names, on its column types', () => {
  it('syncs them exactly and converges', async () => {
    const remote = await createDatabase('kinds_remote');
    const local = await createDatabase('kinds_local');
    const ddl = `CREATE TYPE mood AS ENUM ('calm', 'busy');
      CREATE TABLE kinds (id int PRIMARY KEY, small smallint, ratio real, amount numeric(10,3),
        wide bigint, label uuid, addr inet, span interval, during tstzrange, day date, flag boolean,
        doc jsonb, ids int[], bytes bytea, state mood, note text)`;
    await remote.pool.query(`${ddl};
      INSERT INTO kinds VALUES (1, -3, 1.5, 2.500, 7, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.1.2.3/16',
        '1 day -02:00:03.5', '[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)', '2024-02-29', true,
        '{"k": {"n": 1}}', '{1,NULL,3}', '\\x00ff5c27', 'busy', NULL),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x')`);
    await local.pool.query(ddl);
    const kinds = defineEntity({
      name: 'kinds',
      table: 'kinds',
      columns: z.object({
        id: z.number().int().positive(),
        small: z.number().int().nullable(),
        ratio: z.coerce.number().nullable(),
        amount: z.number().nullable(),
        wide: z.bigint().nullable(),
        label: z.string().uuid().nullable(),
        addr: z.string().nullable(),
        span: z.string().nullable(),
        during: z.string().nullable(),
        day: z.coerce.date().nullable(),
        flag: z.boolean().nullable(),
        doc: z.record(z.string(), z.unknown()).nullable(),
        ids: z.array(z.number().nullable()).nullable(),
        bytes: z.instanceof(Buffer).nullable(),
        state: z.enum(['calm', 'busy']).nullable(),
        note: z.string().default('none'),
      }),
      key: ['id'],
    });
    const sync = () => performSync({ source: remote.pool, target: local.pool, entities: [kinds] });
    const first = await sync();
    expect(first.entities.kinds.error).toBeUndefined();
    expect(first.entities.kinds).toMatchObject({ inserted: 2 });
    const text = `SELECT id, small::text, ratio::text, amount::text, wide::text, label::text, addr::text,
      span::text, during::text, day::text, flag::text, doc::text, ids::text, bytes::text, state::text, note
      FROM kinds ORDER BY id`;
    const source = (await remote.pool.query(text)).rows;
    // .default('none') transforms the NULL note of row 1: the target holds the schema's output.
    expect((await local.pool.query(text)).rows).toEqual([
      { ...source[0], note: 'none' },
      source[1],
    ]);
    expect((await sync()).entities.kinds).toMatchObject({ inserted: 0, updated: 0, unchanged: 2 });
  });
});
