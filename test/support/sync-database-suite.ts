import { expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtIns,
  col,
  createPgSyncDatabase,
  DataError,
  defineEntity,
  type PgPool,
} from '../../src/index.js';

type Queryable = PgPool & {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
};

export const reading = defineEntity({
  name: 'reading',
  table: 'reading',
  columns: z.object({
    meter_id: col.bigint(),
    element: col.text(),
    tenant_id: col.int(),
    value: col.numeric().nullable(),
    tags: col.array(col.text()).nullable(),
    extra: col.json().nullable(),
  }),
  key: ['meter_id', 'element'],
  tenantColumn: 'tenant_id',
});

export const READING_DDL = `CREATE TABLE reading (id serial, meter_id bigint NOT NULL, element text NOT NULL, tenant_id int NOT NULL,
  value numeric, tags text[], extra jsonb, PRIMARY KEY (meter_id, element))`;

/** The generic SyncDatabase operations, run against a pool made by `open` (pg-mem or PostgreSQL). */
export function syncDatabaseSuite(open: () => Promise<Queryable>) {
  const rows = [
    {
      meter_id: 1n,
      element: 'A',
      tenant_id: 1,
      value: '1.5',
      tags: ['x', 'y'],
      extra: { a: [1, 2] },
    },
    { meter_id: 1n, element: 'B', tenant_id: 1, value: null, tags: null, extra: null },
    { meter_id: 2n, element: 'A', tenant_id: 2, value: '7', tags: [], extra: [1, 'two'] },
  ];

  it('upserts and queries typed rows within a scope', async () => {
    const db = createPgSyncDatabase(await open());
    expect(await db.upsert(reading, rows)).toBe(3);
    const tenant1 = await db.query(reading, { tenantId: 1 });
    expect(tenant1.sort((a, b) => a.element.localeCompare(b.element))).toEqual(rows.slice(0, 2));
    expect(await db.query(reading)).toHaveLength(3);
  });

  it('updates by composite key and leaves other tenants alone', async () => {
    const db = createPgSyncDatabase(await open());
    await db.upsert(reading, rows);
    await db.upsert(reading, [{ ...rows[0], value: '2', tags: ['z'] }] as typeof rows, {
      tenantId: 1,
    });
    await db.upsert(reading, [{ ...rows[2], value: '99', tenant_id: 1 }] as typeof rows, {
      tenantId: 1,
    });
    const all = await db.query(reading);
    expect(all.find((r) => r.element === 'A' && r.meter_id === 1n)).toMatchObject({
      value: '2',
      tags: ['z'],
    });
    expect(all.find((r) => r.meter_id === 2n)).toMatchObject({ value: '7', tenant_id: 2 });
  });

  it('deletes by composite key only within the scope', async () => {
    const db = createPgSyncDatabase(await open());
    await db.upsert(reading, rows);
    const keys = [
      { meter_id: 1n, element: 'B' },
      { meter_id: 2n, element: 'A' },
    ];
    expect(await db.deleteByKey(reading, keys, { tenantId: 1 })).toBe(1);
    expect((await db.query(reading)).map((r) => `${r.meter_id}${r.element}`).sort()).toEqual([
      '1A',
      '2A',
    ]);
  });

  it('soft-deletes by key within the scope', async () => {
    const db = createPgSyncDatabase(await open());
    await db.upsert(reading, rows);
    const changed = await db.updateByKey(
      reading,
      [
        { meter_id: 1n, element: 'A' },
        { meter_id: 2n, element: 'A' },
      ],
      { value: null },
      { tenantId: 1 },
    );
    expect(changed).toBe(1);
    expect((await db.query(reading)).filter((r) => r.value === null)).toHaveLength(2);
  });

  it('finds keys stored under another tenant', async () => {
    const db = createPgSyncDatabase(await open());
    await db.upsert(reading, rows);
    const found = await db.keysOutsideScope(
      reading,
      [
        { meter_id: 1n, element: 'A' },
        { meter_id: 2n, element: 'A' },
      ],
      { tenantId: 1 },
    );
    expect(found.map((key) => String(key.meter_id))).toEqual(['2']);
  });

  it('describes the table and reports a missing one', async () => {
    const db = createPgSyncDatabase(await open());
    const description = await db.describe(reading);
    expect(description?.get('extra')?.kind).toBe('json');
    expect(description?.get('tags')?.kind).toBe('array');
    expect(description?.get('value')?.kind).toBe('scalar');
    expect(await db.describe(builtIns.meter)).toBeUndefined();
  });

  it('commits a transaction that resolves', async () => {
    const pool = await open();
    const db = createPgSyncDatabase(pool);
    await db.transaction(async (tx) => {
      await tx.upsert(reading, rows);
      await tx.deleteByKey(reading, [{ meter_id: 2n, element: 'A' }]);
    });
    expect(await db.query(reading)).toHaveLength(2);
  });

  it('names the entity, key and column of a stored row the schema rejects', async () => {
    const pool = await open();
    await pool.query(
      "INSERT INTO reading (meter_id, element, tenant_id, value) VALUES (5, 'A', 1, NULL)",
    );
    const strict = defineEntity({
      name: 'strict',
      table: 'reading',
      columns: reading.columns.extend({ value: col.numeric() }),
      key: ['meter_id', 'element'],
    });
    const error = await createPgSyncDatabase(pool)
      .query(strict)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect(error).toMatchObject({ entity: 'strict', column: 'value' });
    expect((error as Error).message).toMatch(
      /strict: stored row \(meter_id=5, element="A"\) column "value"/,
    );
  });
}
