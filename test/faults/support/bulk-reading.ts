/**
 * A large tenant-scoped entity for the fault tests: meter readings, generated in SQL so a sync
 * of it writes for seconds. The source holds `rows` readings; the target's "before" state holds
 * the same readings with a third of the values changed, the last tenth missing and a tenth more
 * that the source does not have, so a sync inserts, updates and deletes.
 */
import { z } from 'zod';
import { col, defineEntity } from '../../../src/index.js';

export const TENANT = 1;

export const bulkReading = defineEntity({
  name: 'bulk_reading',
  table: 'bulk_reading',
  columns: z.object({
    reading_id: col.bigint(),
    tenant_id: col.int(),
    register_id: col.bigint(),
    value: col.numeric(),
    quality: col.text(),
    read_at: col.timestamptz(),
  }),
  key: ['reading_id'],
  tenantColumn: 'tenant_id',
});

const COLUMNS = `reading_id bigint PRIMARY KEY, tenant_id int NOT NULL, register_id bigint NOT NULL,
  value numeric NOT NULL, quality text NOT NULL, read_at timestamptz NOT NULL`;

/** The readings as the source has them: one generated row per id. */
const sourceRow = (g: string) =>
  `${g}, ${TENANT}, ${g} % 5000, (${g}::bigint * 7919 % 1000003) / 100.0,
   CASE WHEN ${g} % 10 = 0 THEN 'estimated' ELSE 'measured' END,
   timestamptz '2024-01-01 00:00:00+00' + ${g} * interval '1 minute'`;

/** The source table, filled. */
export function sourceSql(rows: number): string {
  return `CREATE TABLE bulk_reading (${COLUMNS});
INSERT INTO bulk_reading SELECT ${sourceRow('g')} FROM generate_series(1, ${rows}) AS g;
ANALYZE bulk_reading;`;
}

/**
 * On the target: the synced table, `bulk_reading_before` (the state each run starts from) and
 * `bulk_reading_expected` (a copy of the source, made by the same SQL), to compare against.
 */
export function targetSql(rows: number): string {
  const kept = Math.floor(rows * 0.9);
  const extra = Math.floor(rows * 0.1);
  return `CREATE TABLE bulk_reading (${COLUMNS});
CREATE TABLE bulk_reading_expected (${COLUMNS});
INSERT INTO bulk_reading_expected SELECT ${sourceRow('g')} FROM generate_series(1, ${rows}) AS g;
CREATE TABLE bulk_reading_before (${COLUMNS});
INSERT INTO bulk_reading_before
  SELECT reading_id, tenant_id, register_id,
         CASE WHEN reading_id % 3 = 0 THEN value + 1 ELSE value END, quality, read_at
    FROM bulk_reading_expected WHERE reading_id <= ${kept};
INSERT INTO bulk_reading_before SELECT ${sourceRow('g')} FROM generate_series(${rows + 1}, ${rows + extra}) AS g;
ANALYZE bulk_reading_expected, bulk_reading_before;`;
}

/** Puts the target table back in its "before" state. */
export const RESET_TARGET = `TRUNCATE bulk_reading;
INSERT INTO bulk_reading SELECT * FROM bulk_reading_before;
ANALYZE bulk_reading;`;

/**
 * How far the target table is from the "before" state and from the source: the rows on either
 * side of a two-way EXCEPT ALL (0 means equal, duplicates included).
 */
export const DISTANCES = `SELECT
  (SELECT count(*) FROM (TABLE bulk_reading EXCEPT ALL TABLE bulk_reading_before) AS a)
  + (SELECT count(*) FROM (TABLE bulk_reading_before EXCEPT ALL TABLE bulk_reading) AS b) AS "fromBefore",
  (SELECT count(*) FROM (TABLE bulk_reading EXCEPT ALL TABLE bulk_reading_expected) AS c)
  + (SELECT count(*) FROM (TABLE bulk_reading_expected EXCEPT ALL TABLE bulk_reading) AS d) AS "fromSource",
  (SELECT count(*) FROM bulk_reading) AS "rows"`;

/** An order-independent digest of a bulk_reading table, to compare it across databases. */
export const digestOf = (table: string) =>
  `SELECT count(*)::int AS rows, md5(string_agg(t::text, ',' ORDER BY reading_id)) AS digest FROM ${table} AS t`;
