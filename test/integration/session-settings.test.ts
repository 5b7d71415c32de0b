import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, defineEntity, performSync } from '../../src/index.js';
import { createDatabase, openPool } from '../support/postgres.js';

/**
 * Whatever a company sets on its pools, values arrive as the source shows them: the library pins
 * the settings that change how values print, per transaction, on both sides.
 */
const ODD =
  '-c DateStyle=German,DMY -c IntervalStyle=sql_standard -c extra_float_digits=0 -c bytea_output=escape -c TimeZone=Asia/Kathmandu -c lc_monetary=C';

const DDL = `CREATE TABLE sample (k float8 PRIMARY KEY, day date, at timestamptz, local timestamp,
  span interval, ratio float8, third float8, bytes bytea, during daterange, price numeric(12,2))`;
const ROWS = `INSERT INTO sample VALUES
  (0.1, '2024-03-02', '2024-03-02 23:30:00.000001+00', '2024-03-13 01:02:03.5', '-1 days -2 hours', 0.30000000000000004, 1.0/3, '\\x00ff5c27', '[2024-03-02,2024-03-15)', 1.50),
  (-0.5, '2024-12-13', NULL, NULL, '1 year 2 mons 3 days 04:05:06.7', 'NaN', '-Infinity', '\\x', 'empty', NULL)`;

const plain = z.object({
  k: z.number(),
  day: z.date().nullable(),
  at: z.date().nullable(),
  local: z.date().nullable(),
  span: z.string().nullable(),
  // z.number() refuses NaN and ±Infinity, which a float8 holds.
  ratio: z.number().or(z.nan()).nullable(),
  third: z.union([z.number(), z.literal(Number.NEGATIVE_INFINITY)]).nullable(),
  bytes: z.instanceof(Buffer).nullable(),
  during: z.string().nullable(),
  price: z.string().nullable(),
});
const precise = z.object({
  k: col.double(),
  day: col.date().nullable(),
  at: col.timestamptz().nullable(),
  local: col.timestamp().nullable(),
  span: col.text().nullable(),
  ratio: col.double().nullable(),
  third: col.double().nullable(),
  bytes: col.text().nullable(),
  during: col.text().nullable(),
  price: col.numeric().nullable(),
});

// Read back under the defaults, so the comparison itself depends on no odd setting.
const asText = `SELECT k::text, day::text, at::text, local::text, span::text, ratio::text, third::text,
  bytes::text, during::text, price::text FROM sample ORDER BY k`;

const settings = [
  ['default', 'default'],
  ['odd', 'default'],
  ['default', 'odd'],
  ['odd', 'odd'],
] as const;

describe.each([
  ['plain zod', plain],
  ['col schemas', precise],
] as const)('session settings do not change what arrives, with %s', (_style, columns) => {
  it.each(settings)('source %s, target %s', async (sourceSettings, targetSettings) => {
    const remote = await createDatabase('settings_remote');
    const local = await createDatabase('settings_local');
    await remote.pool.query(`${DDL}; ${ROWS}`);
    await local.pool.query(DDL);
    const pool = (url: string, odd: boolean) =>
      odd ? new pg.Pool({ connectionString: url, options: ODD, max: 2 }) : openPool(url, 2);
    const source = pool(remote.url, sourceSettings === 'odd');
    const target = pool(local.url, targetSettings === 'odd');
    try {
      const sample = defineEntity({ name: 'sample', table: 'sample', columns, key: ['k'] });
      const sync = (dryRun = false) => performSync({ source, target, entities: [sample], dryRun });
      const planned = await sync(true);
      const first = await sync();
      expect(first.entities.sample.error).toBeUndefined();
      expect(first.entities.sample).toMatchObject({ inserted: 2 });
      expect(planned.entities.sample).toMatchObject({ inserted: 2 });
      expect((await local.pool.query(asText)).rows).toEqual((await remote.pool.query(asText)).rows);
      expect((await sync()).entities.sample).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
      // A change on the source is applied, found by a key that is a float.
      await remote.pool.query("UPDATE sample SET span = '-1 days +2 hours' WHERE k = 0.1");
      expect((await sync(true)).entities.sample).toMatchObject({ updated: 1 });
      expect((await sync()).entities.sample).toMatchObject({ updated: 1 });
      expect((await local.pool.query(asText)).rows).toEqual((await remote.pool.query(asText)).rows);
      // Settings pinned per transaction do not stay on the pool's connections.
      const { rows } = await target.query('SHOW DateStyle');
      expect(rows[0].DateStyle).toBe(targetSettings === 'odd' ? 'German, DMY' : 'ISO, MDY');
    } finally {
      if (sourceSettings === 'odd') await source.end();
      if (targetSettings === 'odd') await target.end();
    }
  });
});

describe('the settings a sync runs under, whatever the pools set', () => {
  it('turns JIT and parallel workers off, and plans cursors for all their rows, on both sides for its own transactions, and only for them', async () => {
    const remote = await createDatabase('settings_remote');
    const local = await createDatabase('settings_local');
    // The target records the settings its writes ran under, in columns the entity does not sync.
    await local.pool.query(`CREATE TABLE seen (id int PRIMARY KEY, jit text, workers text,
        fraction text, target_jit text, target_workers text);
      CREATE FUNCTION record_settings() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.target_jit := current_setting('jit');
        NEW.target_workers := current_setting('max_parallel_workers_per_gather');
        RETURN NEW;
      END $$;
      CREATE TRIGGER record_settings BEFORE INSERT ON seen FOR EACH ROW EXECUTE FUNCTION record_settings()`);
    // Pools as a company might set them: JIT for every statement, parallel workers allowed.
    const eager = '-c jit=on -c jit_above_cost=0 -c max_parallel_workers_per_gather=4';
    const source = new pg.Pool({ connectionString: remote.url, options: eager, max: 2 });
    const target = new pg.Pool({ connectionString: local.url, options: eager, max: 2 });
    try {
      const seen = defineEntity({
        name: 'seen',
        table: 'seen',
        columns: z.object({
          id: col.int(),
          jit: col.text(),
          workers: col.text(),
          fraction: col.text(),
        }),
        key: ['id'],
        source: {
          query: `SELECT 1 AS id, current_setting('jit') AS jit,
            current_setting('max_parallel_workers_per_gather') AS workers,
            current_setting('cursor_tuple_fraction') AS fraction`,
        },
      });
      const result = await performSync({ source, target, entities: [seen] });
      expect(result.entities.seen.error).toBeUndefined();
      expect((await local.pool.query('SELECT * FROM seen')).rows).toEqual([
        { id: 1, jit: 'off', workers: '0', fraction: '1', target_jit: 'off', target_workers: '0' },
      ]);
      // Outside the run's transactions, the pools keep their own settings.
      for (const pool of [source, target])
        expect((await pool.query("SELECT current_setting('jit') AS jit")).rows).toEqual([
          { jit: 'on' },
        ]);
    } finally {
      await source.end();
      await target.end();
    }
  });
});
