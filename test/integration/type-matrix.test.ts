import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, defineEntity, performSync } from '../../src/index.js';
import { createDatabase, openPool } from '../support/postgres.js';

/**
 * Every built-in type family, as a value and (where sensible) as a key, synced under default and
 * odd session settings on each side, with three schema styles, in a sync and a dry run: the
 * target shows what the source shows, the dry run counts what the sync does, a converged run
 * writes nothing, and a change only content shows (case in citext, a numeric's scale, -0, json
 * spacing, array bounds) is a change.
 */
const ODD =
  '-c DateStyle=SQL,DMY -c IntervalStyle=iso_8601 -c extra_float_digits=-15 -c bytea_output=escape -c TimeZone=America/St_Johns';

const TYPES = `CREATE EXTENSION IF NOT EXISTS citext;
  CREATE TYPE mood AS ENUM ('calm', 'busy');
  CREATE DOMAIN positive AS int CHECK (VALUE > 0);
  CREATE TYPE pair AS (a int, b text);`;

const COLUMNS: [string, string, string][] = [
  // name, type, value of row 1 (row 2 holds NULLs)
  ['i2', 'smallint', '-32768'],
  ['i8', 'bigint', '9223372036854775807'],
  ['num', 'numeric', '1.50'],
  ['num_nan', 'numeric', 'NaN'],
  ['f4', 'real', '-0'],
  ['f8', 'double precision', '0.30000000000000004'],
  ['f8_inf', 'double precision', '-Infinity'],
  ['cash', 'money', '1234.56'],
  ['vc', 'varchar(10)', 'ab c'],
  ['ch', 'char(5)', 'ab'],
  ['ci', 'citext', 'AbC'],
  ['nm', 'name', 'n'],
  ['txt', 'text', 'tab\there\nnew line\r\\ back\\N end'],
  ['bin', 'bytea', '\\x00ff5c27'],
  ['flag', 'boolean', 'false'],
  ['d', 'date', '0044-03-15 BC'],
  ['d_inf', 'date', 'infinity'],
  ['t', 'time', '23:59:59.999999'],
  ['ttz', 'timetz', '10:00:00+05:45'],
  ['ts', 'timestamp', '2024-02-29 12:00:00.000001'],
  ['tstz', 'timestamptz', '2024-02-29 12:00:00.000001+02'],
  ['iv', 'interval', '-1 days +02:03:04.5'],
  ['u', 'uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'],
  ['ip', 'inet', '10.1.2.3/16'],
  ['net', 'cidr', '10.1.0.0/16'],
  ['mac', 'macaddr', '08:00:2b:01:02:03'],
  ['js', 'json', '{"b": 1,  "a": [1, 2], "b": 2}'],
  ['jsb', 'jsonb', '{"n": 12345678901234567890.5, "t": 1e-400}'],
  ['doc', 'xml', '<a x="1">b</a>'],
  ['bits', 'bit(4)', '1010'],
  ['vbits', 'varbit', '101'],
  ['r', 'int4range', '[1,5)'],
  ['tr', 'tstzrange', '[2024-01-01 00:00+00,2024-02-01 00:00+00)'],
  ['mr', 'int4multirange', '{[1,3),[5,8)}'],
  ['arr', 'int[]', '[0:1]={1,2}'],
  ['grid', 'text[]', '{{a,b},{"c d",NULL}}'],
  ['m', 'mood', 'busy'],
  ['pos', 'positive', '7'],
  ['pr', 'pair', '(1,"x y")'],
];

const DDL = `CREATE TABLE matrix (id int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})`;
const INSERT = `INSERT INTO matrix (id, ${COLUMNS.map(([n]) => n).join(', ')}) VALUES
  (1, ${COLUMNS.map((_, i) => `$${i + 1}`).join(', ')}), (2, ${COLUMNS.map(() => 'NULL').join(', ')})`;
const AS_TEXT = `SELECT id, ${COLUMNS.map(([n]) => `${n}::text`).join(', ')} FROM matrix ORDER BY id`;

/** Changes only content shows: equal under the type's equality, different to the eye. */
const CONTENT_CHANGES = [
  "UPDATE matrix SET ci = 'abc' WHERE id = 1",
  'UPDATE matrix SET num = 1.5 WHERE id = 1',
  'UPDATE matrix SET f4 = 0 WHERE id = 1',
  `UPDATE matrix SET js = '{"b": 1, "a": [1, 2], "b": 2}' WHERE id = 1`,
  "UPDATE matrix SET arr = '{1,2}' WHERE id = 1",
];

type Style = 'z.string()' | 'z.unknown()' | 'col.text()';
function matrixEntity(style: Style) {
  const value = () =>
    style === 'z.string()'
      ? z.string().nullable()
      : style === 'z.unknown()'
        ? z.unknown()
        : col.text().nullable();
  return defineEntity({
    name: 'matrix',
    table: 'matrix',
    columns: z.object({
      id: z.number(),
      ...Object.fromEntries(COLUMNS.map(([n]) => [n, value()])),
    }),
    key: ['id'],
  });
}

async function pools(sourceOdd: boolean, targetOdd: boolean, ddl: string) {
  const remote = await createDatabase('matrix_remote');
  const local = await createDatabase('matrix_local');
  await remote.pool.query(`${TYPES} ${ddl}`);
  await local.pool.query(`${TYPES} ${ddl}`);
  const open = (url: string, odd: boolean) =>
    odd ? new pg.Pool({ connectionString: url, options: ODD, max: 2 }) : openPool(url, 2);
  return {
    remote,
    local,
    source: open(remote.url, sourceOdd),
    target: open(local.url, targetOdd),
  };
}

const SETTINGS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

describe.each(['z.string()', 'z.unknown()', 'col.text()'] as const)(
  'every type family, with %s',
  (style) => {
    it.each(SETTINGS)(
      'odd source settings %s, odd target settings %s',
      async (sourceOdd, targetOdd) => {
        const { remote, local, source, target } = await pools(sourceOdd, targetOdd, DDL);
        await remote.pool.query(
          INSERT,
          COLUMNS.map(([, , value]) => value),
        );
        const entity = matrixEntity(style);
        const sync = (dryRun = false) =>
          performSync({ source, target, entities: [entity], dryRun });
        try {
          const planned = await sync(true);
          const first = await sync();
          expect(first.entities.matrix.error).toBeUndefined();
          expect(first.entities.matrix).toMatchObject({ status: 'ok', inserted: 2 });
          expect(planned.entities.matrix).toMatchObject({ inserted: 2 });
          expect((await local.pool.query(AS_TEXT)).rows).toEqual(
            (await remote.pool.query(AS_TEXT)).rows,
          );
          expect((await sync()).entities.matrix).toMatchObject({
            inserted: 0,
            updated: 0,
            unchanged: 2,
          });
          for (const change of CONTENT_CHANGES) {
            await remote.pool.query(change);
            expect((await sync(true)).entities.matrix, change).toMatchObject({ updated: 1 });
            expect((await sync()).entities.matrix, change).toMatchObject({ updated: 1 });
            expect((await local.pool.query(AS_TEXT)).rows, change).toEqual(
              (await remote.pool.query(AS_TEXT)).rows,
            );
          }
        } finally {
          if (sourceOdd) await source.end();
          if (targetOdd) await target.end();
        }
      },
    );
  },
);

/** Keys of each family: found again after a change of another column, under odd settings. */
const KEYS: [string, string, string[]][] = [
  ['text', 'text', ['a', 'B', 'ä', '😀']],
  ['citext', 'citext', ['Abc', 'x']],
  ['numeric', 'numeric', ['1.50', '-2', '1e-20']],
  ['double precision', 'double precision', ['0.1', '-0', '1e300']],
  [
    'uuid',
    'uuid',
    ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00000000-0000-0000-0000-000000000000'],
  ],
  ['timestamptz', 'timestamptz', ['2024-02-29 12:00:00.000001+00', '1999-01-01 00:00:00+00']],
  ['date', 'date', ['2024-02-29', '0044-03-15 BC']],
  ['bigint', 'bigint', ['-9223372036854775808', '5']],
];

/** A key written another way that the type's equality (and so its unique index) takes as equal. */
const respell: Record<string, [string, string]> = {
  citext: ['ABC', 'Abc'],
  numeric: ['1.5000', '1.50'],
  'double precision': ['0', '-0'],
};

describe('keys of every family', () => {
  it.each(KEYS)('%s', async (_label, type, keys) => {
    const ddl = `CREATE TABLE keyed (k ${type} PRIMARY KEY, v text)`;
    const { remote, local, source, target } = await pools(true, true, ddl);
    await local.pool.query('ALTER TABLE keyed ADD COLUMN note text');
    const keyed = defineEntity({
      name: 'keyed',
      table: 'keyed',
      columns: z.object({ k: z.string(), v: z.string().nullable() }),
      key: ['k'],
    });
    try {
      for (const key of keys)
        await remote.pool.query('INSERT INTO keyed VALUES ($1, $2)', [key, 'one']);
      const sync = (dryRun = false) => performSync({ source, target, entities: [keyed], dryRun });
      expect((await sync()).entities.keyed).toMatchObject({ inserted: keys.length });
      await remote.pool.query("UPDATE keyed SET v = 'two'");
      expect((await sync(true)).entities.keyed).toMatchObject({
        updated: keys.length,
        inserted: 0,
        deleted: 0,
      });
      expect((await sync()).entities.keyed).toMatchObject({
        updated: keys.length,
        inserted: 0,
        deleted: 0,
      });
      const text = 'SELECT k::text, v FROM keyed ORDER BY k';
      expect((await local.pool.query(text)).rows).toEqual((await remote.pool.query(text)).rows);
      expect((await sync()).entities.keyed).toMatchObject({ updated: 0, inserted: 0, deleted: 0 });
      // A key the unique index takes for the same key, written differently, is an update of
      // that row (its local columns kept), never a delete and an insert.
      const respelled = respell[type];
      if (respelled) {
        await local.pool.query('UPDATE keyed SET note = $1', ['local']);
        await remote.pool.query('UPDATE keyed SET k = $1 WHERE k = $2', respelled);
        expect((await sync(true)).entities.keyed).toMatchObject({
          updated: 1,
          inserted: 0,
          deleted: 0,
        });
        expect((await sync()).entities.keyed).toMatchObject({
          updated: 1,
          inserted: 0,
          deleted: 0,
        });
        expect((await local.pool.query(text)).rows).toEqual((await remote.pool.query(text)).rows);
        expect(
          (await local.pool.query('SELECT count(*)::int AS n FROM keyed WHERE note IS NULL'))
            .rows[0].n,
        ).toBe(0);
      }
    } finally {
      await Promise.all([source.end(), target.end()]);
    }
  });
});
