import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, DataError, defineEntity, performSync, type SyncEvent } from '../../src/index.js';
import { recordingLogger } from '../support/pgmem.js';
import {
  builtInPairOnPostgres,
  createDatabase,
  openPool,
  recordingPool,
} from '../support/postgres.js';

const comparedAs = (lines: ReturnType<typeof recordingLogger>['lines'], entity: string) =>
  lines.find((line) => line.message === 'entity compared' && line.data.entity === entity)?.data;

describe('the pipeline on PostgreSQL on both sides', () => {
  it('compares with typed hashes in SQL, in a sync and in a dry run alike', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const { lines, logger } = recordingLogger();
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1, logger });
    // Into an empty table every key is a candidate; afterwards the fingerprints choose.
    expect(comparedAs(lines, 'register')).toMatchObject({ hash: 'sql', candidates: 'all' });
    lines.length = 0;
    await remote.pool.query("UPDATE register SET unit = 'MWh' WHERE register_id = 102");
    const planned = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      logger,
      dryRun: true,
      full: true,
    });
    expect(comparedAs(lines, 'register')).toMatchObject({ hash: 'sql', candidates: 'all' });
    expect(comparedAs(lines, 'device')).toMatchObject({ hash: 'sql', differing: 0 });
    expect(planned.entities.register).toMatchObject({ updated: 1, unchanged: 3 });
  });

  it("reads no junction row of another tenant's register, and skips those whose register is missing", async () => {
    const { remote, local } = await builtInPairOnPostgres([1, 2]);
    // Without the source's foreign key a junction row may name a register that exists nowhere.
    await remote.pool.query(`ALTER TABLE device_register DROP CONSTRAINT device_register_register_id_fkey;
      INSERT INTO device_register (device_id, register_id) VALUES (3, 999)`);
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(result.entities.device_register).toMatchObject({
      status: 'ok',
      inserted: 6,
      skipped: 1,
    });
    expect(result.entities.device_register.warnings).toHaveLength(1);
    expect(result.entities.device_register.warnings[0]).toMatchObject({
      code: 'orphaned-rows',
      count: 1,
      sampleKeys: [{ device_id: 3n, register_id: 999n }],
    });
    const again = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(again.entities.device_register).toMatchObject({ inserted: 0, deleted: 0, skipped: 1 });
  });

  it('moves only bucket summaries when nothing changed, and only changed rows after a change (full comparison)', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    const quiet = recordingPool(remote.pool);
    const unchanged = await performSync({
      source: quiet.pool,
      target: local.pool,
      tenantId: 1,
      incremental: false,
    });
    expect(
      Object.values(unchanged.entities).every((e) => e.inserted + e.updated + e.deleted === 0),
    ).toBe(true);
    // Only the per-bucket fingerprints travel: no cursor over rows or per-row hashes.
    const fingerprints = quiet.statements.filter((s) => s.startsWith('SELECT encode(string_agg'));
    expect(fingerprints.length).toBe(4);
    expect(quiet.statements.filter((s) => s.startsWith('DECLARE'))).toEqual([]);

    await remote.pool.query("UPDATE register SET unit = 'MWh' WHERE register_id = 102");
    const events: SyncEvent[] = [];
    const changed = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      onEvent: (e) => events.push(e),
      incremental: false,
    });
    expect(changed.entities.register).toMatchObject({ updated: 1, unchanged: 3 });
    const read = events.filter(
      (e) => e.type === 'entity-progress' && e.entity === 'register' && e.phase === 'reading',
    );
    // The rows of the differing bucket travel (here all four registers share one).
    expect(read.map((e) => (e.type === 'entity-progress' ? e.rows : -1))).toEqual([4]);
  });

  it('sees the same change made to several rows of one bucket (an even number cannot cancel out)', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await remote.pool.query("UPDATE register SET unit = 'kWh' WHERE tenant_id = 1");
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    // The four registers share one bucket: change one column from the same value to the same
    // value in two of them, then in all four.
    for (const [where, unit, rows] of [
      ['register_id IN (101, 102)', 'MWh', 2],
      ['tenant_id = 1', 'Wh', 4],
    ] as const) {
      await remote.pool.query(`UPDATE register SET unit = $1 WHERE ${where}`, [unit]);
      const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
      expect(result.entities.register).toMatchObject({ updated: rows });
    }
  });

  it('lists changed keys', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    await remote.pool.query(`UPDATE register SET unit = 'MWh' WHERE register_id = 102;
      INSERT INTO register VALUES (109, 1, 'Frequency', 3110, 'Hz', 'frequency');
      DELETE FROM device_register WHERE register_id = 104; DELETE FROM register WHERE register_id = 104;`);
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      listChanges: true,
    });
    expect(result.entities.register.changes).toEqual({
      inserted: [{ register_id: 109n }],
      updated: [{ register_id: 102n }],
      deleted: [{ register_id: 104n }],
    });
    expect(result.entities.device_register.changes?.deleted).toEqual([
      { device_id: 2n, register_id: 104n },
    ]);
  });

  it("reads a source column as the target column's type where the two differ", async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await remote.pool.query('ALTER TABLE meter ALTER COLUMN port TYPE text USING port::text');
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(result.entities.meter).toMatchObject({ status: 'ok', inserted: 6, warnings: [] });
    const ports = 'SELECT DISTINCT meter_id::int AS id, port::int AS port FROM meter ORDER BY 1';
    expect((await local.pool.query(ports)).rows).toEqual((await remote.pool.query(ports)).rows);
    const again = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(again.entities.meter).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
  });
});

describe('source rows are validated wherever they go', () => {
  const reading = defineEntity({
    name: 'reading',
    table: 'reading',
    columns: z.object({ id: col.int(), tenant_id: col.int(), unit: col.text() }),
    key: ['id'],
    tenantColumn: 'tenant_id',
    source: {
      query: 'SELECT id, tenant_id, unit FROM remote_reading WHERE tenant_id = $1 OR id = 99',
    },
  });

  async function pair(rows: string) {
    const remote = await createDatabase('valid_remote');
    const local = await createDatabase('valid_local');
    await remote.pool.query(
      `CREATE TABLE remote_reading (id int, tenant_id int, unit text); INSERT INTO remote_reading VALUES ${rows}`,
    );
    await local.pool.query(
      'CREATE TABLE reading (id int PRIMARY KEY, tenant_id int NOT NULL, unit text, note text)',
    );
    return { remote, local };
  }

  it.each([
    [
      "(1, 1, 'kWh'), (2, 1, NULL)",
      /reading: source row \(id=2\) column "unit" is NULL, which the schema does not allow/,
    ],
    ["(1, 1, 'kWh'), (1, 1, 'V')", /reading: the source returned key \(id=1\) more than once/],
    [
      "(1, 1, 'kWh'), (99, 2, 'V')",
      /reading: source row \(id=99\) has tenant_id=2, outside the run's tenant/,
    ],
  ])(
    'fails the entity for %s, into an empty table and into a filled one',
    async (rows, message) => {
      const { remote, local } = await pair(rows);
      const intoEmpty = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        entities: [reading],
      });
      expect(intoEmpty.entities.reading.status).toBe('failed');
      expect(intoEmpty.entities.reading.error).toBeInstanceOf(DataError);
      expect(intoEmpty.entities.reading.error?.message).toMatch(message);
      await local.pool.query("INSERT INTO reading VALUES (50, 1, 'kW', 'local')");
      const intoFilled = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        entities: [reading],
      });
      expect(intoFilled.entities.reading.error?.message).toMatch(message);
      expect((await local.pool.query('SELECT id FROM reading')).rows).toEqual([{ id: 50 }]);
    },
  );
});

describe('soft deletes', () => {
  it('soft-deletes a missing row once and revives it when it returns', async () => {
    const site = defineEntity({
      name: 'site',
      table: 'site',
      columns: z.object({
        site_id: col.int(),
        tenant_id: col.int(),
        label: col.text(),
        active: col.boolean(),
      }),
      key: ['site_id'],
      tenantColumn: 'tenant_id',
      source: { table: 'customer_site', columns: { site_id: 'id', label: 'site_name' } },
      onMissing: { set: { active: false } },
    });
    const remote = await createDatabase('soft_remote');
    const local = await createDatabase('soft_local');
    await remote.pool.query(`CREATE TABLE customer_site (id int PRIMARY KEY, tenant_id int, site_name text, active boolean);
      INSERT INTO customer_site VALUES (1, 5, 'North', true), (2, 5, 'South', true), (3, 6, 'Elsewhere', true)`);
    await local.pool.query(
      'CREATE TABLE site (site_id int PRIMARY KEY, tenant_id int, label text, active boolean)',
    );
    const sync = () =>
      performSync({ source: remote.pool, target: local.pool, tenantId: 5, entities: [site] });
    expect((await sync()).entities.site).toMatchObject({ inserted: 2 });
    await remote.pool.query('DELETE FROM customer_site WHERE id = 2');
    expect((await sync()).entities.site).toMatchObject({ deleted: 1, updated: 0, unchanged: 1 });
    expect((await sync()).entities.site).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    expect((await local.pool.query('SELECT site_id, active FROM site ORDER BY 1')).rows).toEqual([
      { site_id: 1, active: true },
      { site_id: 2, active: false },
    ]);
    await remote.pool.query("INSERT INTO customer_site VALUES (2, 5, 'South', true)");
    expect((await sync()).entities.site).toMatchObject({ updated: 1 });
  });
});

describe('failures while reading', () => {
  it('fails an entity whose source errors in the middle of its rows, and the next entity still runs', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await remote.pool.query(
      'CREATE TABLE numbers AS SELECT i AS id, 1 AS tenant_id FROM generate_series(1, 20000) AS i',
    );
    await local.pool.query(
      'CREATE TABLE numbers (id int PRIMARY KEY, tenant_id int, inverse numeric)',
    );
    const numbers = defineEntity({
      name: 'numbers',
      table: 'numbers',
      columns: z.object({ id: col.int(), tenant_id: col.int(), inverse: col.numeric() }),
      key: ['id'],
      tenantColumn: 'tenant_id',
      // Row 15000 divides by zero, well into the stream of rows.
      source: {
        query:
          'SELECT id, tenant_id, 1.0 / (id - 15000) AS inverse FROM numbers WHERE tenant_id = $1',
      },
    });
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [numbers, ...(await import('../../src/index.js')).builtInEntities],
      logger,
    });
    expect(comparedAs(lines, 'numbers')).toMatchObject({ hash: 'sql' });
    expect(result.entities.numbers.status).toBe('failed');
    expect(result.entities.numbers.error?.message).toMatch(
      /numbers: reading the source failed: division by zero/,
    );
    expect((await local.pool.query('SELECT count(*)::int AS n FROM numbers')).rows[0].n).toBe(0);
    expect(result.entities.register).toMatchObject({ status: 'ok', inserted: 4 });
    expect(result.entities.device_register).toMatchObject({ status: 'ok', inserted: 6 });
  });
});

describe('an empty table loaded in bulk', () => {
  /** The source's `item`, synced into `table`. */
  const itemInto = (table: string) =>
    defineEntity({
      name: 'item',
      table,
      columns: z.object({ id: col.int(), tenant_id: col.int(), label: col.text() }),
      key: ['id'],
      tenantColumn: 'tenant_id',
      source: { table: 'item' },
    });
  const item = itemInto('item');
  async function pair(rows: string) {
    const remote = await createDatabase('bulk_remote');
    const local = await createDatabase('bulk_local');
    await remote.pool.query(
      `CREATE TABLE item (id int, tenant_id int, label text); INSERT INTO item VALUES ${rows}`,
    );
    await local.pool.query('CREATE TABLE item (id int PRIMARY KEY, tenant_id int, label text)');
    return { remote, local };
  }

  it('searches the source for rows with a NULL key only where a key column may hold one', async () => {
    const searches = async (ddl: string) => {
      const remote = await createDatabase('bulk_null_remote');
      const local = await createDatabase('bulk_null_local');
      await remote.pool.query(`${ddl}; INSERT INTO item VALUES (1, 1, 'a'), (2, 1, 'b')`);
      await local.pool.query('CREATE TABLE item (id int PRIMARY KEY, tenant_id int, label text)');
      const recorded = recordingPool(remote.pool);
      const result = await performSync({
        source: recorded.pool,
        target: local.pool,
        tenantId: 1,
        entities: [item],
      });
      expect(result.entities.item).toMatchObject({ status: 'ok', inserted: 2 });
      return recorded.statements.filter((s) => /IS NULL\) LIMIT \$\d+$/.test(s)).length;
    };
    expect(await searches('CREATE TABLE item (id int, tenant_id int, label text)')).toBe(1);
    expect(await searches('CREATE TABLE item (id int NOT NULL, tenant_id int, label text)')).toBe(
      0,
    );
  });

  it('takes the rows in one load when every row is valid by its types', async () => {
    const { remote, local } = await pair("(1, 1, 'a'), (2, 1, 'b'), (3, 2, 'other')");
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [item],
      logger,
    });
    expect(result.entities.item).toMatchObject({ status: 'ok', inserted: 2 });
    expect(lines.some((line) => line.message === 'entity loaded in bulk')).toBe(true);
    expect((await local.pool.query('SELECT id, label FROM item ORDER BY id')).rows).toEqual([
      { id: 1, label: 'a' },
      { id: 2, label: 'b' },
    ]);
  });

  it('leaves the columns rows are looked up by analyzed, so that later changes by key use its index; a role that does not own it loads all the same', async () => {
    const remote = await createDatabase('bulk_remote');
    const local = await createDatabase('bulk_local');
    await remote.pool.query(
      "CREATE TABLE item (id int, tenant_id int, label text); INSERT INTO item SELECT g, 1, 'x' FROM generate_series(1, 20000) AS g",
    );
    await local.pool.query(`CREATE TABLE item (id int PRIMARY KEY, tenant_id int, label text);
      CREATE TABLE item_copy (LIKE item INCLUDING ALL);
      DO $$ BEGIN CREATE ROLE bulk_writer LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
      GRANT SELECT, INSERT, UPDATE, DELETE ON item_copy TO bulk_writer`);
    const tuples = async (table: string) =>
      Number(
        (await local.pool.query('SELECT reltuples FROM pg_class WHERE oid = $1::regclass', [table]))
          .rows[0].reltuples,
      );
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [item],
    });
    expect(result.entities.item).toMatchObject({ status: 'ok', inserted: 20000 });
    // Never analyzed, reltuples is -1; analyzed, it is the row count.
    expect(await tuples('item')).toBe(20000);

    await local.pool.query(
      'GRANT SELECT, INSERT, UPDATE, DELETE ON meter_sync_watermark TO bulk_writer',
    );
    const asWriter = new URL(local.url);
    asWriter.username = 'bulk_writer';
    asWriter.password = '';
    const writer = openPool(asWriter.toString(), 2);
    const copy = itemInto('item_copy');
    const second = await performSync({
      source: remote.pool,
      target: writer,
      tenantId: 1,
      entities: [copy],
    });
    expect(second.entities.item.error?.message).toBeUndefined();
    expect(second.entities.item).toMatchObject({ status: 'ok', inserted: 20000 });
    expect(await tuples('item_copy')).toBe(-1);
  });

  it('lists every key of the rows when the run lists changes, in place of the load', async () => {
    const { remote, local } = await pair("(1, 1, 'a'), (2, 1, 'b'), (3, 2, 'other')");
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [item],
      logger,
      listChanges: true,
    });
    expect(lines.some((line) => line.message === 'entity loaded in bulk')).toBe(false);
    expect(result.entities.item).toMatchObject({ status: 'ok', inserted: 2 });
    expect(result.entities.item.changes).toEqual({
      inserted: [{ id: 1 }, { id: 2 }],
      updated: [],
      deleted: [],
    });
  });

  it.each([
    [
      "(1, 1, 'a'), (2, 1, NULL)",
      /item: source row \(id=2\) column "label" is NULL, which the schema does not allow/,
    ],
    [
      "(1, 1, 'a'), (3, 1, 'x'), (3, 1, 'y')",
      /item: the source returned key \(id=3\) more than once/,
    ],
  ])('undoes the load and names the row at fault for %s', async (rows, message) => {
    const { remote, local } = await pair(rows);
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [item],
      logger,
    });
    expect(lines.some((line) => line.message === 'bulk load declined')).toBe(true);
    expect(result.entities.item.status).toBe('failed');
    expect(result.entities.item.error?.message).toMatch(message);
    expect((await local.pool.query('SELECT count(*)::int AS n FROM item')).rows[0].n).toBe(0);
  });
});
