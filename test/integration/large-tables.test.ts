import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineEntity, performSync } from '../../src/index.js';
import { createDatabase } from '../support/postgres.js';

const ROWS = 300_000;
const DDL = `CREATE TABLE reg (site integer, no integer, tenant_id integer NOT NULL, name text,
  scale numeric(12,4), opened_at timestamptz, PRIMARY KEY (site, no))`;

/** A table of the size that once broke plain zod schemas and dry runs, in plain zod. */
const reg = defineEntity({
  name: 'reg',
  table: 'reg',
  columns: z.object({
    site: z.number().int(),
    no: z.number().int(),
    tenant_id: z.number().int(),
    name: z.string().nullable(),
    scale: z.string().nullable(),
    opened_at: z.date().nullable(),
  }),
  key: ['site', 'no'],
  tenantColumn: 'tenant_id',
});

const digest =
  "SELECT count(*)::int AS n, md5(string_agg(r::text, ',' ORDER BY site, no)) AS digest FROM reg AS r WHERE tenant_id = 1";

describe(`a ${ROWS.toLocaleString('en')}-row table in plain zod`, () => {
  it('syncs whole, plans exactly the changes after 1% changed, writing nothing, then applies them', async () => {
    const remote = await createDatabase('large_remote');
    const local = await createDatabase('large_local');
    await remote.pool.query(`${DDL};
      INSERT INTO reg SELECT i / 1000, i % 1000, 1, 'Register ' || i, (i % 9999) / 7.0,
        timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second 1 microsecond'
      FROM generate_series(1, ${ROWS}) AS i;
      INSERT INTO reg SELECT 9000 + i, 0, 2, 'other', 1, now() FROM generate_series(1, 100) AS i;`);
    await local.pool.query(DDL);
    const sync = (dryRun = false) =>
      performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        entities: [reg],
        dryRun,
      });

    expect((await sync()).entities.reg).toMatchObject({ status: 'ok', inserted: ROWS });
    const source = await remote.pool.query(digest);
    expect((await local.pool.query(digest)).rows).toEqual(source.rows);

    await remote.pool.query(`UPDATE reg SET name = name || ' (moved)' WHERE tenant_id = 1 AND no % 100 = 7;
      DELETE FROM reg WHERE tenant_id = 1 AND no % 1000 = 11;
      INSERT INTO reg SELECT 8000 + i, 1, 1, 'new', NULL, NULL FROM generate_series(1, 50) AS i;`);
    const changed = ROWS / 100;
    const deleted = ROWS / 1000;
    const before = (await local.pool.query(digest)).rows;
    const planned = await sync(true);
    expect(planned.entities.reg).toMatchObject({
      status: 'ok',
      inserted: 50,
      updated: changed,
      deleted,
      unchanged: ROWS - changed - deleted,
    });
    expect((await local.pool.query(digest)).rows).toEqual(before);

    const applied = await sync();
    const { durationMs: _a, ...plannedCounts } = planned.entities.reg;
    const { durationMs: _b, ...appliedCounts } = applied.entities.reg;
    expect(appliedCounts).toEqual(plannedCounts);
    expect((await local.pool.query(digest)).rows).toEqual((await remote.pool.query(digest)).rows);
    expect((await sync()).entities.reg).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
  }, 240_000);
});

describe('change lists at any number of changes', () => {
  it('lists every key of 150,000 inserts and 150,000 updates, as committed', async () => {
    const remote = await createDatabase('lists_remote');
    const local = await createDatabase('lists_local');
    const ddl = 'CREATE TABLE item (id int PRIMARY KEY, tenant_id int NOT NULL, label text)';
    await remote.pool.query(`${ddl};
      INSERT INTO item SELECT i, 1, 'v' || i FROM generate_series(1, 150000) AS i`);
    await local.pool.query(ddl);
    const item = defineEntity({
      name: 'item',
      table: 'item',
      columns: z.object({ id: z.number(), tenant_id: z.number(), label: z.string() }),
      key: ['id'],
      tenantColumn: 'tenant_id',
    });
    const sync = () =>
      performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        entities: [item],
        listChanges: true,
      });
    const first = await sync();
    expect(first.entities.item).toMatchObject({ status: 'ok', inserted: 150000 });
    expect(first.entities.item.changes?.inserted).toHaveLength(150000);
    expect(new Set(first.entities.item.changes?.inserted.map((key) => key.id)).size).toBe(150000);
    await remote.pool.query("UPDATE item SET label = label || '!'");
    const second = await sync();
    expect(second.entities.item).toMatchObject({ status: 'ok', updated: 150000 });
    expect(second.entities.item.changes?.updated).toHaveLength(150000);
    const differing = await local.pool.query(
      "SELECT count(*)::int AS n FROM item WHERE label NOT LIKE '%!'",
    );
    expect(differing.rows[0].n).toBe(0);
  }, 120_000);
});
