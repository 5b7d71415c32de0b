/**
 * Incremental detection on PostgreSQL 15: each case names a way rows can change, or a way a
 * watermark can stop telling the truth, and checks the target ends up equal to the source and
 * the detection used says so.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startPostgres } from '../../scripts/postgres.js';
import { col, defineEntity, type EntityResult, type PgPool, performSync } from '../../src/index.js';
import { createDatabase, databaseUrl, openPool, recordingPool } from '../support/postgres.js';

const point = defineEntity({
  name: 'point',
  table: 'point',
  columns: z.object({
    site: col.int(),
    code: col.text(),
    tenant_id: col.int(),
    label: col.text().nullable(),
    amount: col.numeric().nullable(),
    mood: col.text().nullable(),
  }),
  key: ['site', 'code'],
  tenantColumn: 'tenant_id',
  source: { table: 'reading_point', columns: { label: 'title' } },
});

const SOURCE_DDL = `CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE reading_point (site int NOT NULL, code text NOT NULL, tenant_id int NOT NULL,
  title text, amount numeric, mood mood, PRIMARY KEY (site, code));
INSERT INTO reading_point SELECT g % 50, 'c' || g, 2 - g % 2, 'p' || g, g * 1.5, 'calm' FROM generate_series(1, 400) AS g;`;
/** The source's table with `rows` rows of tenant 1, each row g's site given by `site`. */
const tenantOneSource = (rows: number, site: string) =>
  `${SOURCE_DDL.replace(/INSERT INTO[^;]*;/, '')}
INSERT INTO reading_point SELECT ${site}, 'c' || g, 1, 'p' || g, g, 'calm' FROM generate_series(1, ${rows}) AS g;`;
const TARGET_DDL = `CREATE TABLE point (site int NOT NULL, code text NOT NULL, tenant_id int NOT NULL,
  label text, amount numeric, mood text, PRIMARY KEY (site, code))`;

type Pool = pg.Pool;

/** How a source statement begins that reads every key whole, and one that summarises buckets. */
const KEY_SET = 'COPY (SELECT string_agg(int8send(';
const BUCKETS = 'SELECT encode(string_agg(int8send(COALESCE(a.fingerprint';

async function pair(sourceDdl = SOURCE_DDL, targetDdl = TARGET_DDL) {
  const source = await createDatabase('inc_src');
  const target = await createDatabase('inc_dst');
  await source.pool.query(sourceDdl);
  await target.pool.query(targetDdl);
  return { source, target };
}

async function sync(
  source: PgPool,
  target: Pool,
  options: Partial<Parameters<typeof performSync>[0]> = {},
  tenantId = 1,
): Promise<EntityResult> {
  const result = await performSync({
    source,
    target,
    tenantId,
    entities: [point],
    ...options,
  } as Parameters<typeof performSync>[0]);
  const entity = (result.entities as Record<string, EntityResult>).point as EntityResult;
  expect(entity.error).toBeUndefined();
  return entity;
}

/** Both sides' rows of a tenant, as text, in key order. */
async function rowsOf(source: Pool, target: Pool, tenant = 1) {
  const read = async (pool: Pool, sql: string) =>
    (await pool.query(sql, [tenant])).rows.map((r) => JSON.stringify(r));
  return {
    source: await read(
      source,
      'SELECT site, code, tenant_id, title AS label, amount::text, mood::text FROM reading_point WHERE tenant_id = $1 ORDER BY site, code',
    ),
    target: await read(
      target,
      'SELECT site, code, tenant_id, label, amount::text, mood FROM point WHERE tenant_id = $1 ORDER BY site, code',
    ),
  };
}

async function expectEqual(source: Pool, target: Pool, tenant = 1) {
  const rows = await rowsOf(source, target, tenant);
  expect(rows.target).toEqual(rows.source);
}

describe('incremental detection (PostgreSQL)', () => {
  it('reads only changed rows: updates, inserts, deletes, SET x = x, delete-and-reinsert', async () => {
    const { source, target } = await pair();
    expect((await sync(source.pool, target.pool)).detection?.mode).toBe('full');
    const quiet = recordingPool(source.pool);
    const idle = await sync(quiet.pool, target.pool);
    expect(idle).toMatchObject({ inserted: 0, updated: 0, deleted: 0, unchanged: 200 });
    expect(idle.detection?.mode).toBe('incremental');
    // No row travels, no fingerprint is computed: two counts, and nothing else per row.
    expect(quiet.statements.some((s) => s.startsWith('DECLARE'))).toBe(false);
    expect(quiet.statements.some((s) => s.startsWith('SELECT encode(string_agg'))).toBe(false);

    await source.pool.query(`UPDATE reading_point SET title = 'changed' WHERE code IN ('c1', 'c3');
      UPDATE reading_point SET title = title WHERE code = 'c5';
      INSERT INTO reading_point VALUES (7, 'new', 1, 'n', 1, 'busy');
      DELETE FROM reading_point WHERE code IN ('c7', 'c9');
      DELETE FROM reading_point WHERE code = 'c11';
      INSERT INTO reading_point VALUES (11, 'c11', 1, 'back', 2, 'busy');`);
    const changed = await sync(source.pool, target.pool);
    expect(changed).toMatchObject({ inserted: 1, updated: 3, deleted: 2 });
    expect(changed.detection?.mode).toBe('incremental');
    await expectEqual(source.pool, target.pool);
  });

  it('reads the changed rows where the census found them, without a second scan; a partitioned or large table by a scan', async () => {
    const plain = await pair();
    const partitioned = await pair(
      SOURCE_DDL.replace(
        'PRIMARY KEY (site, code));',
        `PRIMARY KEY (site, code)) PARTITION BY HASH (site);
        CREATE TABLE reading_point_0 PARTITION OF reading_point FOR VALUES WITH (MODULUS 2, REMAINDER 0);
        CREATE TABLE reading_point_1 PARTITION OF reading_point FOR VALUES WITH (MODULUS 2, REMAINDER 1);`,
      ),
    );
    // A table the statistics call larger than PLACES_MAX_ROWS: no places are collected there.
    const large = await pair();
    await large.source.pool.query(
      "UPDATE pg_class SET reltuples = 4000000 WHERE oid = 'reading_point'::regclass",
    );
    for (const [{ source, target }, places] of [
      [plain, true],
      [partitioned, false],
      [large, false],
    ] as const) {
      await sync(source.pool, target.pool);
      // Rows in both partitions, which number their rows alike.
      await source.pool.query(`UPDATE reading_point SET title = 'moved' WHERE code IN ('c1', 'c2', 'c3', 'c4');
        DELETE FROM reading_point WHERE code = 'c5'`);
      const read = recordingPool(source.pool);
      expect(await sync(read.pool, target.pool)).toMatchObject({ updated: 2, deleted: 1 });
      await expectEqual(source.pool, target.pool);
      const declared = read.queries.find((query) => query.text.startsWith('DECLARE'));
      const select = String(declared?.text).replace(/^DECLARE .*? CURSOR FOR /s, '');
      const plan = JSON.stringify(
        (await source.pool.query(`EXPLAIN (FORMAT JSON) ${select}`, declared?.values)).rows,
      );
      expect(select.includes('::tid[])')).toBe(places);
      expect(plan.includes('"Tid Scan"')).toBe(places);
      expect(plan.includes('"Seq Scan"')).toBe(!places);
    }
  });

  it('past 5,000 changed rows and 5% of the table, reads them by a scan, or compares every row where a sample shows few changed in content', async () => {
    const { source, target } = await pair(tenantOneSource(40_000, '(g - 1) / 100'));
    await sync(source.pool, target.pool);
    // The census row, read as an array: rows, NULL keys, changed, live, places.
    const census = (read: ReturnType<typeof recordingPool>) => {
      const row = read.queries.find((query) => query.text.includes('AS "census"'))?.rows?.[0] as
        | unknown[]
        | undefined;
      return { changed: row?.[2], places: row?.[4] as string | null | undefined };
    };
    const sampled = (read: ReturnType<typeof recordingPool>) =>
      read.queries.filter(
        (query) => query.text.startsWith('DECLARE') && / LIMIT \$/.test(query.text),
      );
    // 2,000 changed rows (5% of 40,000): read where they are, no sample taken.
    await source.pool.query("UPDATE reading_point SET title = 'a' WHERE site < 20");
    const few = recordingPool(source.pool);
    expect((await sync(few.pool, target.pool)).detection?.mode).toBe('incremental');
    expect(census(few)?.changed).toBe('2000');
    expect(census(few)?.places?.split('(')).toHaveLength(2001);
    expect(sampled(few)).toHaveLength(0);
    // 6,000 rows written again (15%), of which this many in a thousand change in content: a
    // reload or a `SET x = x` below one in 64.
    for (const [perThousand, mode] of [
      [1000, 'incremental'],
      [50, 'incremental'],
      [4, 'full'],
      [0, 'full'],
    ] as const) {
      await source.pool.query(
        `UPDATE reading_point SET title = CASE WHEN substr(code, 2)::int % 1000 < ${perThousand} THEN title || 'x' ELSE title END WHERE site < 60`,
      );
      const detection = {
        mode,
        reason:
          mode === 'full'
            ? expect.stringMatching(
                /^6000 of 40000 rows changed since the watermark, but \d+ of 1000 sampled differ from the target's: comparing every row costs less$/,
              )
            : expect.any(String),
      };
      // A dry run takes the path the run does.
      expect((await sync(source.pool, target.pool, { dryRun: true })).detection).toMatchObject(
        detection,
      );
      const read = recordingPool(source.pool);
      const result = await sync(read.pool, target.pool);
      expect(result.detection).toMatchObject(detection);
      expect(result).toMatchObject({ updated: 6 * perThousand, inserted: 0, deleted: 0 });
      expect(census(read)).toMatchObject({ changed: '6000', places: null });
      expect(sampled(read)).toHaveLength(1);
      await expectEqual(source.pool, target.pool);
    }
  });

  it('ends equal to the source whatever mix of changes past 5,000 rows it reads, and writes nothing on the next run', async () => {
    const { source, target } = await pair(tenantOneSource(40_000, '(g - 1) / 100'));
    await sync(source.pool, target.pool);
    let round = 0;
    // Each change picks rows of tenant 1 by a hash of their code: this many in 1,024.
    const picked = (share: number, salt: string) =>
      `tenant_id = 1 AND (hashtext(code || '${salt}') & 1023) < ${share}`;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          rewritten: fc.integer({ min: 0, max: 400 }),
          changed: fc.integer({ min: 0, max: 80 }),
          deleted: fc.integer({ min: 0, max: 40 }),
          moved: fc.integer({ min: 0, max: 20 }),
          inserted: fc.integer({ min: 0, max: 3_000 }),
        }),
        async ({ rewritten, changed, deleted, moved, inserted }) => {
          round += 1;
          await source.pool.query(`UPDATE reading_point SET title = title WHERE ${picked(rewritten, `r${round}`)};
UPDATE reading_point SET amount = amount + 1 WHERE ${picked(changed, `c${round}`)};
DELETE FROM reading_point WHERE ${picked(deleted, `d${round}`)};
UPDATE reading_point SET tenant_id = 2 WHERE ${picked(moved, `m${round}`)};
INSERT INTO reading_point SELECT 500 + g / 100, 'n${round}-' || g, 1, 'new', g, 'busy' FROM generate_series(1, ${inserted}) AS g;`);
          await sync(source.pool, target.pool);
          await expectEqual(source.pool, target.pool);
          expect(await sync(source.pool, target.pool)).toMatchObject({
            inserted: 0,
            updated: 0,
            deleted: 0,
          });
        },
      ),
      {
        numRuns: 8,
        // Past 5,000 rows both ways: rewritten as they were (compared in full), and changed.
        examples: [
          [{ rewritten: 400, changed: 0, deleted: 0, moved: 0, inserted: 0 }],
          [{ rewritten: 0, changed: 80, deleted: 40, moved: 20, inserted: 3_000 }],
        ],
      },
    );
  });

  it('fails the entity, changing nothing, where the read of changed rows brings fewer than the census counted', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    await source.pool.query(
      "UPDATE reading_point SET title = 'changed' WHERE code IN ('c1', 'c3', 'c5')",
    );
    // A read that loses a row on the way: one place fewer than the census found.
    const lossy = recordingPool(source.pool, undefined, (query) =>
      query.text.startsWith('DECLARE')
        ? {
            ...query,
            values: query.values?.map((value) =>
              typeof value === 'string' && value.startsWith('{"(')
                ? value.replace(/^\{"\([^)]*\)",/, '{')
                : value,
            ),
          }
        : query,
    );
    const before = await target.pool.query('SELECT * FROM point ORDER BY site, code');
    const result = await performSync({
      source: lossy.pool,
      target: target.pool,
      tenantId: 1,
      entities: [point],
    });
    expect(result.entities.point?.status).toBe('failed');
    expect(String(result.entities.point?.error?.message)).toMatch(
      /^point: the source counted 3 changed rows but read 2 /,
    );
    expect((await target.pool.query('SELECT * FROM point ORDER BY site, code')).rows).toEqual(
      before.rows,
    );
    expect(lossy.queries.some((query) => query.text.startsWith('DECLARE'))).toBe(true);
  });

  it('sees a transaction that was open during a sync and commits after it', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    const writer = await source.pool.connect();
    try {
      await writer.query('BEGIN');
      await writer.query("UPDATE reading_point SET title = 'late' WHERE code = 'c1'");
      await writer.query("INSERT INTO reading_point VALUES (1, 'late', 1, 'l', 0, 'calm')");
      await writer.query("DELETE FROM reading_point WHERE code = 'c3'");
      // A savepoint rolled back and one kept, in the same transaction.
      await writer.query('SAVEPOINT a');
      await writer.query("UPDATE reading_point SET title = 'gone' WHERE code = 'c5'");
      await writer.query('ROLLBACK TO SAVEPOINT a');
      await writer.query('SAVEPOINT b');
      await writer.query("UPDATE reading_point SET title = 'kept' WHERE code = 'c13'");
      await writer.query('RELEASE SAVEPOINT b');
      // Another transaction starts and commits meanwhile: its changes are seen at once.
      await source.pool.query("UPDATE reading_point SET title = 'meanwhile' WHERE code = 'c15'");
      const during = await sync(source.pool, target.pool);
      expect(during).toMatchObject({ updated: 1, inserted: 0, deleted: 0 });
      await writer.query('COMMIT');
    } finally {
      writer.release();
    }
    const after = await sync(source.pool, target.pool);
    expect(after.detection?.mode).toBe('incremental');
    expect(after).toMatchObject({ updated: 2, inserted: 1, deleted: 1 });
    await expectEqual(source.pool, target.pool);
  });

  it('follows rows that move to another tenant, one target per tenant', async () => {
    const { source, target } = await pair();
    const other = await createDatabase('inc_dst2');
    await other.pool.query(TARGET_DDL);
    await sync(source.pool, target.pool, {}, 1);
    await sync(source.pool, other.pool, {}, 2);
    await source.pool.query(
      "UPDATE reading_point SET tenant_id = 2 WHERE code IN ('c1', 'c3'); UPDATE reading_point SET tenant_id = 1 WHERE code = 'c2'",
    );
    const one = await sync(source.pool, target.pool, {}, 1);
    const two = await sync(source.pool, other.pool, {}, 2);
    expect(one).toMatchObject({ inserted: 1, deleted: 2 });
    expect(two).toMatchObject({ inserted: 2, deleted: 1 });
    expect([one.detection?.mode, two.detection?.mode]).toEqual(['incremental', 'incremental']);
    await expectEqual(source.pool, target.pool, 1);
    await expectEqual(source.pool, other.pool, 2);
  });

  it('comes out right after TRUNCATE and reload, VACUUM FULL and CLUSTER on the source', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    await source.pool.query(`BEGIN;
      CREATE TEMP TABLE saved AS SELECT * FROM reading_point;
      TRUNCATE reading_point;
      INSERT INTO reading_point SELECT * FROM saved WHERE code <> 'c1';
      UPDATE reading_point SET title = 'reloaded' WHERE code = 'c3';
      COMMIT;`);
    const reloaded = await sync(source.pool, target.pool);
    expect(reloaded).toMatchObject({ updated: 1, deleted: 1 });
    expect(reloaded.detection?.mode).toBe('incremental');
    await source.pool.query('VACUUM FULL reading_point');
    await source.pool.query('CLUSTER reading_point USING reading_point_pkey');
    await source.pool.query("DELETE FROM reading_point WHERE code = 'c5'");
    const rewritten = await sync(source.pool, target.pool);
    expect(rewritten).toMatchObject({ updated: 0, inserted: 0, deleted: 1 });
    await expectEqual(source.pool, target.pool);
  });

  it('waits for a TRUNCATE in progress instead of reading the table empty', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    const truncater = await source.pool.connect();
    try {
      await truncater.query('BEGIN');
      await truncater.query('CREATE TEMP TABLE saved AS SELECT * FROM reading_point');
      await truncater.query('TRUNCATE reading_point');
      await truncater.query('INSERT INTO reading_point SELECT * FROM saved');
      // The sync starts while the TRUNCATE holds its lock, and must not take its snapshot first:
      // a snapshot older than the TRUNCATE reads the reloaded table empty.
      const running = sync(source.pool, target.pool);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await truncater.query('COMMIT');
      const result = await running;
      expect(result).toMatchObject({ deleted: 0, inserted: 0, updated: 0 });
    } finally {
      truncater.release();
    }
    await expectEqual(source.pool, target.pool);
  });

  it('finds deletes when the counts balance out: a delete and an insert in one run', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    await source.pool.query(
      "DELETE FROM reading_point WHERE code = 'c1'; INSERT INTO reading_point VALUES (3, 'x', 1, 'x', 0, 'calm')",
    );
    const recorded = recordingPool(source.pool);
    const result = await sync(recorded.pool, target.pool);
    expect(result).toMatchObject({ inserted: 1, deleted: 1, detection: { mode: 'incremental' } });
    await expectEqual(source.pool, target.pool);
    // One row to find among 200: compared by bucket, a few bytes a bucket.
    expect(recorded.statements.some((s) => s.startsWith(BUCKETS))).toBe(true);
    expect(recorded.statements.some((s) => s.startsWith(KEY_SET))).toBe(false);
  });

  it("finds many deleted rows from both sides' key sets, read whole, once each", async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    // 20 of tenant 1's 200 rows deleted, as many inserted: a difference for every 10 rows.
    await source.pool.query(`DELETE FROM reading_point WHERE code IN (SELECT 'c' || g FROM generate_series(1, 39, 2) AS g);
      INSERT INTO reading_point SELECT 100 + g, 'k' || g, 1, 'k', g, 'calm' FROM generate_series(1, 20) AS g`);
    // A dry run finds the same, as surely, and changes nothing.
    const dry = recordingPool(source.pool);
    expect(await sync(dry.pool, target.pool, { dryRun: true })).toMatchObject({
      inserted: 20,
      deleted: 20,
      detection: { mode: 'incremental' },
    });
    expect(dry.statements.some((s) => s.startsWith(BUCKETS))).toBe(false);
    const recorded = recordingPool(source.pool);
    const result = await sync(recorded.pool, target.pool);
    expect(result).toMatchObject({ inserted: 20, deleted: 20, detection: { mode: 'incremental' } });
    await expectEqual(source.pool, target.pool);
    expect(recorded.statements.filter((s) => s.startsWith(KEY_SET))).toHaveLength(1);
    expect(recorded.statements.some((s) => s.startsWith(BUCKETS))).toBe(false);
  });

  it("reads both sides' keys as soon as the rows read show enough gone, before the last are read", async () => {
    const { source, target } = await pair(tenantOneSource(300_000, 'g / 1000'));
    await sync(source.pool, target.pool);
    // New keys first in key order, then more changed rows than one batch brings.
    await source.pool.query(`INSERT INTO reading_point SELECT -1, 'n' || g, 1, 'n', g, 'busy' FROM generate_series(1, 700) AS g;
      DELETE FROM reading_point WHERE site = 7;
      UPDATE reading_point SET title = 'changed' WHERE site BETWEEN 100 AND 111`);
    const recorded = recordingPool(source.pool);
    expect(await sync(recorded.pool, target.pool)).toMatchObject({
      inserted: 700,
      updated: 12_000,
      deleted: 1000,
      detection: { mode: 'incremental' },
    });
    await expectEqual(source.pool, target.pool);
    // Asked for after the first batch, before the last was read: the read of the keys begins
    // (with its savepoint) before the last FETCH, and its COPY runs once the cursor is closed.
    const { statements } = recorded;
    const keySet = statements.findIndex((s) => s.startsWith(KEY_SET));
    const keysAsked = statements.slice(0, keySet).findLastIndex((s) => s.startsWith('SAVEPOINT'));
    const fetches = statements.flatMap((s, i) => (s.startsWith('FETCH') ? [i] : []));
    expect(fetches.length).toBeGreaterThan(1);
    expect(keysAsked).toBeGreaterThan(fetches[0] as number);
    expect(keysAsked).toBeLessThan(fetches.at(-1) as number);
  });

  it('marks rows gone once, then leaves them: a soft-deleting entity compares no keys while nothing else went', async () => {
    const soft = defineEntity({
      name: 'point',
      table: 'point',
      columns: point.columns,
      key: ['site', 'code'],
      tenantColumn: 'tenant_id',
      source: { table: 'reading_point', columns: { label: 'title' } },
      onMissing: { set: { label: null } },
    });
    const { source, target } = await pair();
    const softSync = (pool: PgPool) => sync(pool, target.pool, { entities: [soft] });
    await softSync(source.pool);
    // 30 rows gone; 10 others take the soft delete's values on the source itself.
    await source.pool.query(`DELETE FROM reading_point WHERE code IN (SELECT 'c' || g FROM generate_series(1, 59, 2) AS g);
      UPDATE reading_point SET title = NULL WHERE code IN (SELECT 'c' || g FROM generate_series(61, 79, 2) AS g)`);
    expect(await softSync(source.pool)).toMatchObject({
      updated: 10,
      deleted: 30,
      detection: { mode: 'incremental' },
    });
    const labels = async () =>
      (
        await target.pool.query(
          'SELECT count(*)::int AS rows, count(label)::int AS labelled FROM point WHERE tenant_id = 1',
        )
      ).rows[0];
    expect(await labels()).toEqual({ rows: 200, labelled: 160 });
    const keysRead = async (expected: Partial<EntityResult>) => {
      const recorded = recordingPool(source.pool);
      expect(await softSync(recorded.pool)).toMatchObject({
        ...expected,
        detection: { mode: 'incremental' },
      });
      return recorded.statements.some((s) => s.startsWith(KEY_SET) || s.startsWith(BUCKETS));
    };
    expect(await keysRead({ inserted: 0, updated: 0, deleted: 0 })).toBe(false);
    await source.pool.query("DELETE FROM reading_point WHERE code = 'c81'");
    expect(await keysRead({ deleted: 1 })).toBe(true);
    expect(await keysRead({ inserted: 0, updated: 0, deleted: 0 })).toBe(false);
    // A marked row back on the source takes its values again.
    await source.pool.query("INSERT INTO reading_point VALUES (1, 'c1', 1, 'back', 1.5, 'calm')");
    expect(await keysRead({ updated: 1, deleted: 0 })).toBe(false);
    expect(await labels()).toEqual({ rows: 200, labelled: 160 });
    const back = await target.pool.query("SELECT label FROM point WHERE code = 'c1'");
    expect(back.rows).toEqual([{ label: 'back' }]);
  });

  it("marks every row gone where a transform writes the soft delete's values itself", async () => {
    const soft = defineEntity({
      name: 'point',
      table: 'point',
      columns: point.columns.extend({
        label: z
          .string()
          .nullable()
          .transform((label) => (label === '' ? null : label)),
      }),
      key: ['site', 'code'],
      tenantColumn: 'tenant_id',
      source: { table: 'reading_point', columns: { label: 'title' } },
      onMissing: { set: { label: null } },
    });
    const { source, target } = await pair();
    const softSync = () => sync(source.pool, target.pool, { entities: [soft] });
    await softSync();
    // Unmarked on the source, marked once written: counts of unmarked rows no longer tell.
    await source.pool.query("UPDATE reading_point SET title = '' WHERE code = 'c1'");
    expect(await softSync()).toMatchObject({ updated: 1, detection: { mode: 'incremental' } });
    await source.pool.query("DELETE FROM reading_point WHERE code = 'c3'");
    expect(await softSync()).toMatchObject({ deleted: 1, detection: { mode: 'incremental' } });
    const marked = await target.pool.query(
      "SELECT code FROM point WHERE label IS NULL AND code IN ('c1', 'c3') ORDER BY code",
    );
    expect(marked.rows).toEqual([{ code: 'c1' }, { code: 'c3' }]);
  });

  it('reads no keys from the source where the changed rows hide no deleted one', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    // As many changed rows as could hide deleted ones behind new ones: none are.
    await source.pool.query(
      "UPDATE reading_point SET title = title || '!' WHERE tenant_id = 1 AND site < 10",
    );
    const recorded = recordingPool(source.pool);
    expect(await sync(recorded.pool, target.pool)).toMatchObject({
      updated: 40,
      deleted: 0,
      detection: { mode: 'incremental' },
    });
    await expectEqual(source.pool, target.pool);
    expect(recorded.statements.some((s) => s.startsWith(KEY_SET))).toBe(false);
    expect(recorded.statements.some((s) => s.startsWith(BUCKETS))).toBe(false);
  });

  it('leaves alone target rows with a NULL in a key column that allows one', async () => {
    const { source, target } = await pair(
      SOURCE_DDL,
      `CREATE TABLE point (site int, code text, tenant_id int NOT NULL, label text, amount numeric,
        mood text, UNIQUE (site, code))`,
    );
    // First in the table, where a row counted by mistake would shift every position after it.
    await target.pool.query("INSERT INTO point VALUES (NULL, 'local', 1, 'kept', 1, 'calm')");
    await sync(source.pool, target.pool);
    await source.pool.query(`DELETE FROM reading_point WHERE code IN (SELECT 'c' || g FROM generate_series(1, 39, 2) AS g);
      INSERT INTO reading_point SELECT 100 + g, 'k' || g, 1, 'k', g, 'calm' FROM generate_series(1, 20) AS g`);
    const recorded = recordingPool(source.pool);
    expect(await sync(recorded.pool, target.pool)).toMatchObject({
      inserted: 20,
      deleted: 20,
      detection: { mode: 'incremental' },
    });
    expect(recorded.statements.some((s) => s.startsWith(KEY_SET))).toBe(true);
    expect(recorded.statements.some((s) => s.startsWith(BUCKETS))).toBe(false);
    const kept = await target.pool.query("DELETE FROM point WHERE code = 'local' RETURNING label");
    expect(kept.rows).toEqual([{ label: 'kept' }]);
    await expectEqual(source.pool, target.pool);
  });

  it('deletes the right rows of a partitioned target, whose partitions share row positions', async () => {
    const { source, target } = await pair(
      SOURCE_DDL,
      `CREATE TABLE point (site int NOT NULL, code text NOT NULL, tenant_id int NOT NULL,
        label text, amount numeric, mood text, PRIMARY KEY (site, code)) PARTITION BY HASH (site);
      CREATE TABLE point_0 PARTITION OF point FOR VALUES WITH (MODULUS 2, REMAINDER 0);
      CREATE TABLE point_1 PARTITION OF point FOR VALUES WITH (MODULUS 2, REMAINDER 1);`,
    );
    await sync(source.pool, target.pool);
    const shared = await target.pool.query(
      'SELECT ctid FROM point_0 INTERSECT SELECT ctid FROM point_1',
    );
    expect(shared.rowCount).toBeGreaterThan(0);
    await source.pool.query(
      "DELETE FROM reading_point WHERE code IN (SELECT 'c' || g FROM generate_series(1, 79, 2) AS g)",
    );
    const recorded = recordingPool(source.pool);
    expect(await sync(recorded.pool, target.pool)).toMatchObject({
      deleted: 40,
      detection: { mode: 'incremental' },
    });
    expect(recorded.statements.some((s) => s.startsWith(KEY_SET))).toBe(true);
    await expectEqual(source.pool, target.pool);
  });

  it('compares by bucket where the key sets do not add up: rows the target lost by hand', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    await target.pool.query(
      "DELETE FROM point WHERE code IN (SELECT 'c' || g FROM generate_series(1, 39, 2) AS g)",
    );
    const recorded = recordingPool(source.pool);
    const result = await sync(recorded.pool, target.pool);
    expect(result).toMatchObject({ inserted: 20, deleted: 0, detection: { mode: 'incremental' } });
    await expectEqual(source.pool, target.pool);
    expect(recorded.statements.some((s) => s.startsWith(KEY_SET))).toBe(true);
    expect(recorded.statements.some((s) => s.startsWith(BUCKETS))).toBe(true);
  });

  it('takes an orphan once its parent arrives, though the orphan itself never changes', async () => {
    const source = await createDatabase('inc_src');
    const target = await createDatabase('inc_dst');
    await source.pool.query(
      'CREATE TABLE site (id int PRIMARY KEY); CREATE TABLE gauge (id int PRIMARY KEY, site_id int)',
    );
    await target.pool.query(
      'CREATE TABLE site (id int PRIMARY KEY); CREATE TABLE gauge (id int PRIMARY KEY, site_id int REFERENCES site)',
    );
    const site = defineEntity({
      name: 'site',
      table: 'site',
      columns: z.object({ id: col.int() }),
      key: ['id'],
      source: { table: 'site' },
    });
    const gauge = defineEntity({
      name: 'gauge',
      table: 'gauge',
      columns: z.object({ id: col.int(), site_id: col.int() }),
      key: ['id'],
      source: { table: 'gauge' },
      references: [{ entity: 'site', columns: { site_id: 'id' } }],
    });
    await source.pool.query('INSERT INTO site VALUES (1); INSERT INTO gauge VALUES (1, 1), (2, 2)');
    const run = async () =>
      (await performSync({ source: source.pool, target: target.pool, entities: [site, gauge] }))
        .entities;
    expect((await run()).gauge).toMatchObject({ inserted: 1, skipped: 1 });
    await source.pool.query('INSERT INTO site VALUES (3)');
    expect((await run()).gauge).toMatchObject({ inserted: 0, skipped: 1 });
    await source.pool.query('INSERT INTO site VALUES (2)');
    const third = await run();
    expect(third.site.detection?.mode).toBe('incremental');
    expect(third.gauge).toMatchObject({ inserted: 1, skipped: 0 });
    // Nothing left waiting: the watermark moves on, and the next run reads nothing.
    const fourth = await run();
    expect(fourth.gauge).toMatchObject({ inserted: 0, detection: { mode: 'incremental' } });
  });

  it("follows a global junction's rows into the tenant when their parent moves there, though the rows themselves never change", async () => {
    const source = await createDatabase('inc_src');
    const target = await createDatabase('inc_dst');
    const ddl = (fk: string) => `CREATE TABLE bay (id int PRIMARY KEY, tenant_id int NOT NULL);
      CREATE TABLE bay_tag (bay_id int NOT NULL ${fk}, tag text NOT NULL, PRIMARY KEY (bay_id, tag))`;
    await source.pool.query(ddl(''));
    await target.pool.query(ddl('REFERENCES bay'));
    const bay = defineEntity({
      name: 'bay',
      table: 'bay',
      columns: z.object({ id: col.int(), tenant_id: col.int() }),
      key: ['id'],
      tenantColumn: 'tenant_id',
    });
    const bayTag = defineEntity({
      name: 'bay_tag',
      table: 'bay_tag',
      columns: z.object({ bay_id: col.int(), tag: col.text() }),
      key: ['bay_id', 'tag'],
      references: [{ entity: 'bay', columns: { bay_id: 'id' } }],
    });
    await source.pool.query(`INSERT INTO bay VALUES (1, 1), (2, 1), (3, 2), (4, 2);
      INSERT INTO bay_tag VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')`);
    const run = async (from: PgPool = source.pool) => {
      const result = await performSync({
        source: from,
        target: target.pool,
        tenantId: 1,
        entities: [bay, bayTag],
      });
      expect(result.ok).toBe(true);
      return result.entities.bay_tag;
    };
    const tags = async (pool: Pool, tenantOnly: boolean) =>
      (
        await pool.query(
          `SELECT bay_id, tag FROM bay_tag WHERE ${tenantOnly ? 'bay_id IN (SELECT id FROM bay WHERE tenant_id = 1)' : 'true'} ORDER BY 1, 2`,
        )
      ).rows;
    expect(await run()).toMatchObject({ inserted: 2, detection: { mode: 'full' } });
    // Bay 3 comes to tenant 1 with its tag, and one of tenant 1's tags goes: the counts balance.
    await source.pool.query(
      'UPDATE bay SET tenant_id = 1 WHERE id = 3; DELETE FROM bay_tag WHERE bay_id = 1',
    );
    const recorded = recordingPool(source.pool);
    expect(await run(recorded.pool)).toMatchObject({
      inserted: 1,
      deleted: 1,
      detection: { mode: 'incremental' },
    });
    expect(await tags(target.pool, false)).toEqual(await tags(source.pool, true));
    // One difference among two rows: found from key sets, read through the tenant's bays.
    const keySets = recorded.statements.filter((s) => s.startsWith(KEY_SET));
    expect(keySets).toHaveLength(1);
    expect(keySets[0]).toContain('"bay"');
    // Bay 4 arrives new in tenant 1, its tag written long before; bay 2 leaves with its tag.
    await source.pool.query(
      'UPDATE bay SET tenant_id = 1 WHERE id = 4; UPDATE bay SET tenant_id = 2 WHERE id = 2',
    );
    expect(await run()).toMatchObject({ inserted: 1, detection: { mode: 'incremental' } });
    expect(await tags(target.pool, false)).toEqual(await tags(source.pool, true));
    expect(await run()).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
  });

  it('repairs rows removed or added directly on the target; edits that balance wait for the full comparison', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    await target.pool.query("DELETE FROM point WHERE code IN ('c1', 'c3')");
    expect(await sync(source.pool, target.pool)).toMatchObject({
      inserted: 2,
      detection: { mode: 'incremental' },
    });
    await target.pool.query("INSERT INTO point VALUES (99, 'stray', 1, 's', 0, 'calm')");
    expect(await sync(source.pool, target.pool)).toMatchObject({
      deleted: 1,
      detection: { mode: 'incremental' },
    });
    await expectEqual(source.pool, target.pool);
    // A row removed and another added, or a value edited, leave the counts as they were: the
    // periodic full comparison is what repairs them.
    await target.pool.query(
      "DELETE FROM point WHERE code = 'c1'; INSERT INTO point VALUES (99, 'stray', 1, 's', 0, 'calm'); UPDATE point SET label = 'hand' WHERE code = 'c3'",
    );
    expect(await sync(source.pool, target.pool)).toMatchObject({ inserted: 0, deleted: 0 });
    await target.pool.query(
      "UPDATE meter_sync_watermark SET verified_at = now() - interval '25 hours'",
    );
    expect(await sync(source.pool, target.pool)).toMatchObject({
      inserted: 1,
      updated: 1,
      deleted: 1,
      detection: { mode: 'full' },
    });
    await expectEqual(source.pool, target.pool);
  });

  it('plans incrementally what the sync then does', async () => {
    const { source, target } = await pair();
    await sync(source.pool, target.pool);
    await source.pool.query(
      "UPDATE reading_point SET title = 'p' WHERE code = 'c1'; DELETE FROM reading_point WHERE code = 'c3'; INSERT INTO reading_point VALUES (1, 'n', 1, 'n', 1, 'calm')",
    );
    const planned = await sync(source.pool, target.pool, { dryRun: true });
    const done = await sync(source.pool, target.pool);
    const counts = ({ inserted, updated, deleted, unchanged }: EntityResult) => ({
      inserted,
      updated,
      deleted,
      unchanged,
    });
    expect(planned.detection?.mode).toBe('incremental');
    expect(counts(planned)).toEqual(counts(done));
    expect(counts(done)).toEqual({ inserted: 1, updated: 1, deleted: 1, unchanged: 198 });
  });

  describe('falls back to a full comparison, and says why', () => {
    const reasonAfter = async (
      change: (pools: { source: Pool; target: Pool }) => Promise<void>,
      options: Partial<Parameters<typeof performSync>[0]> = {},
    ) => {
      const { source, target } = await pair();
      await sync(source.pool, target.pool);
      await change({ source: source.pool, target: target.pool });
      const result = await sync(source.pool, target.pool, options);
      await expectEqual(source.pool, target.pool);
      expect(result.detection?.mode).toBe('full');
      return result.detection?.reason;
    };

    it.each([
      [
        'an enum value renamed (content changes with no new row version)',
        "ALTER TYPE mood RENAME VALUE 'calm' TO 'still'",
        /source table .*changed/,
      ],
      [
        'a column dropped and added again with a default',
        "ALTER TABLE reading_point DROP COLUMN title; ALTER TABLE reading_point ADD COLUMN title text DEFAULT 'd'",
        /source table .*changed/,
      ],
      [
        'the table swapped by a rename',
        "CREATE TABLE fresh (LIKE reading_point INCLUDING ALL); INSERT INTO fresh SELECT * FROM reading_point WHERE code <> 'c1'; ALTER TABLE reading_point RENAME TO old_point; ALTER TABLE fresh RENAME TO reading_point",
        /source table .*changed/,
      ],
    ])('%s', async (_case, sql, reason) => {
      expect(await reasonAfter(({ source }) => source.query(sql).then(() => undefined))).toMatch(
        reason,
      );
    });

    it('a role that may not create, or read and replace, the watermarks: the sync goes on, in full', async () => {
      const { source, target } = await pair();
      await target.pool.query(`DO $$ BEGIN CREATE ROLE inc_limited LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        GRANT SELECT, INSERT, UPDATE, DELETE ON point TO inc_limited`);
      const asLimited = new URL(target.url);
      asLimited.username = 'inc_limited';
      asLimited.password = '';
      const limited = openPool(asLimited.toString(), 2);
      const first = await sync(source.pool, limited);
      expect(first).toMatchObject({ status: 'ok', inserted: 200, detection: { mode: 'full' } });
      expect(first.detection?.reason).toMatch(/no "meter_sync_watermark" table.*meter-sync init/);
      // The table made by another role, which grants this one only SELECT.
      await sync(source.pool, target.pool);
      await target.pool.query('GRANT SELECT ON meter_sync_watermark TO inc_limited');
      await source.pool.query("UPDATE reading_point SET title = 'moved' WHERE code = 'c1'");
      const result = await sync(source.pool, limited);
      expect(result).toMatchObject({ status: 'ok', updated: 1, detection: { mode: 'full' } });
      expect(result.detection?.reason).toMatch(
        /may not read and replace .*GRANT SELECT, INSERT, DELETE ON "meter_sync_watermark"/,
      );
      await expectEqual(source.pool, target.pool);
    });

    it('the target table emptied and refilled by hand', async () => {
      const reason = await reasonAfter(async ({ target }) => {
        await target.query(
          "BEGIN; CREATE TEMP TABLE saved AS SELECT * FROM point; TRUNCATE point; INSERT INTO point SELECT * FROM saved; UPDATE point SET label = 'hand' WHERE code = 'c1'; COMMIT",
        );
      });
      expect(reason).toMatch(/target table changed/);
    });

    it('the definition changed', async () => {
      const { source, target } = await pair();
      await sync(source.pool, target.pool);
      const narrower = defineEntity({
        name: 'point',
        table: 'point',
        columns: point.columns.omit({ mood: true }),
        key: ['site', 'code'],
        tenantColumn: 'tenant_id',
        source: { table: 'reading_point', columns: { label: 'title' } },
      });
      const result = await performSync({
        source: source.pool,
        target: target.pool,
        tenantId: 1,
        entities: [narrower],
      });
      expect(result.entities.point.detection).toMatchObject({
        mode: 'full',
        reason: expect.stringMatching(/definition/),
      });
    });

    it('a full comparison asked for, and one due', async () => {
      expect(await reasonAfter(async () => undefined, { full: true })).toMatch(/asked for/);
      expect(
        await reasonAfter(({ target }) =>
          target
            .query("UPDATE meter_sync_watermark SET verified_at = now() - interval '2 days'")
            .then(() => undefined),
        ),
      ).toMatch(/periodic/);
      expect(await reasonAfter(async () => undefined, { incremental: false })).toMatch(
        /turned off/,
      );
    });

    it('a watermark ahead of the source (restored from a backup, or an older standby)', async () => {
      const reason = await reasonAfter(({ target }) =>
        target
          .query("UPDATE meter_sync_watermark SET position = '999999999'")
          .then(() => undefined),
      );
      expect(reason).toMatch(/behind the watermark/);
    });

    it('the database swapped for a copy (same name, same rows, new database)', async () => {
      const { source, target } = await pair();
      await sync(source.pool, target.pool);
      const admin = openPool(databaseUrl('postgres'), 1);
      await source.pool.end();
      const copy = `${source.name}_copy`;
      await admin.query(`CREATE DATABASE "${copy}" TEMPLATE "${source.name}"`);
      await admin.query(`ALTER DATABASE "${source.name}" RENAME TO "${source.name}_old"`);
      await admin.query(`ALTER DATABASE "${copy}" RENAME TO "${source.name}"`);
      const swapped = openPool(databaseUrl(source.name), 2);
      await swapped.query("UPDATE reading_point SET title = 'copied' WHERE code = 'c1'");
      const result = await sync(swapped, target.pool);
      expect(result.detection).toMatchObject({
        mode: 'full',
        reason: expect.stringMatching(/another database/),
      });
      await expectEqual(swapped, target.pool);
      await swapped.end();
      await admin.query(`DROP DATABASE "${source.name}_old"`);
    });
  });

  describe('a source on another cluster', () => {
    const servers: { stop(): Promise<void> }[] = [];
    afterAll(async () => {
      for (const server of servers) await server.stop();
    });

    it("is not trusted with the first cluster's watermark, though its xids look later", async () => {
      const { source, target } = await pair();
      await sync(source.pool, target.pool);
      const server = await startPostgres();
      servers.push(server);
      const other = new pg.Pool({ connectionString: server.url('postgres'), max: 2 });
      try {
        await other.query(SOURCE_DDL);
        // Enough transactions that the new cluster's xids pass the stored watermark.
        for (let i = 0; i < 30; i++) await other.query('SELECT pg_current_xact_id()');
        await other.query("UPDATE reading_point SET title = 'other' WHERE code = 'c1'");
        const result = await sync(other, target.pool);
        expect(result.detection).toMatchObject({
          mode: 'full',
          reason: expect.stringMatching(/another cluster/),
        });
        await expectEqual(other, target.pool);
      } finally {
        await other.end();
      }
    });
  });
});
