import { expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtIns,
  col,
  createPgSyncDatabase,
  DataError,
  defineEntity,
  type PgPool,
  type SyncDatabase,
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

/** Text rows as the engine writes them: meter_id, element, tenant_id, value, tags, extra. */
const TEXT_ROWS = [
  ['1', 'A', '1', '1.5', '{x,y}', '{"a": [1, 2]}'],
  ['1', 'B', '1', null, null, null],
  ['2', 'A', '2', '7', '{}', '[1, "two"]'],
] as const;

const PARSED = [
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

/** A fresh database with an empty `reading` table, and a way to store a row as it is. */
export interface ContractSubject {
  readonly db: SyncDatabase;
  insertRaw(row: Record<string, string | null>): Promise<void>;
}

/** A subject on a pool (pg-mem or PostgreSQL) where READING_DDL has run. */
export function onPool(pool: Queryable): ContractSubject {
  return {
    db: createPgSyncDatabase(pool),
    async insertRaw(row) {
      const columns = Object.keys(row);
      await pool.query(
        `INSERT INTO reading (${columns.map((c) => `"${c}"`).join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
        Object.values(row),
      );
    },
  };
}

/** The generic SyncDatabase operations, run against every implementation. */
export function syncDatabaseSuite(open: () => Promise<ContractSubject>) {
  const all = { scope: {}, hash: 'text' as const };
  const seeded = async () => {
    const { db } = await open();
    await db.transaction((tx) => tx.write(reading, TEXT_ROWS, {}));
    return db;
  };

  it('writes text rows, reports inserts and updates by key, and queries them typed', async () => {
    const { db } = await open();
    const first = await db.transaction((tx) => tx.write(reading, TEXT_ROWS, {}));
    expect(first.inserted.map((key) => key.join('/')).sort()).toEqual(['1/A', '1/B', '2/A']);
    expect(first.updated).toEqual([]);
    const tenant1 = await db.query(reading, { tenantId: 1 });
    expect(tenant1.sort((a, b) => a.element.localeCompare(b.element))).toEqual(PARSED.slice(0, 2));
    expect(await db.query(reading)).toHaveLength(3);
    const again = await db.transaction((tx) =>
      tx.write(reading, [TEXT_ROWS[0], ['1', 'B', '1', '2', null, null]], { tenantId: 1 }),
    );
    expect(again.inserted).toEqual([]);
    expect(again.updated).toEqual([['1', 'B']]);
  });

  it('never takes over a row of another tenant', async () => {
    const db = await seeded();
    await db.transaction((tx) =>
      tx.write(reading, [['2', 'A', '1', '99', null, null]], { tenantId: 1 }),
    );
    const rows = await db.query(reading);
    expect(rows.find((r) => r.meter_id === 2n)).toMatchObject({ value: '7', tenant_id: 2 });
  });

  it('deletes by composite key only within the scope', async () => {
    const db = await seeded();
    const deleted = await db.transaction((tx) =>
      tx.deleteKeys(
        reading,
        [
          ['1', 'B'],
          ['2', 'A'],
        ],
        { tenantId: 1 },
      ),
    );
    expect(deleted).toBe(1);
    expect((await db.query(reading)).map((r) => `${r.meter_id}${r.element}`).sort()).toEqual([
      '1A',
      '2A',
    ]);
  });

  it('soft-deletes by key within the scope, leaving rows that already hold the values', async () => {
    const db = await seeded();
    const changed = await db.transaction((tx) =>
      tx.setColumns(
        reading,
        [
          ['1', 'A'],
          ['1', 'B'],
          ['2', 'A'],
        ],
        { value: null },
        { tenantId: 1 },
      ),
    );
    expect(changed).toBe(1);
    expect((await db.query(reading)).filter((r) => r.value === null)).toHaveLength(2);
  });

  it('finds stored keys and keys stored under another tenant', async () => {
    const db = await seeded();
    await db.transaction(async (tx) => {
      const stored = await tx.existingKeys(reading, [
        ['1', 'A'],
        ['3', 'A'],
        ['2', 'A'],
      ]);
      expect(stored.map((key) => key.join('/')).sort()).toEqual(['1/A', '2/A']);
      const elsewhere = await tx.keysOutsideScope(
        reading,
        [
          ['1', 'A'],
          ['2', 'A'],
        ],
        { tenantId: 1 },
      );
      expect(elsewhere).toEqual([['2', 'A']]);
    });
  });

  it('lists keys and hashes in key order, the same for the same content', async () => {
    const db = await seeded();
    const description = await db.describe(reading);
    const request = { ...all, columns: description as NonNullable<typeof description> };
    const read = () =>
      db.transaction(async (tx) => {
        const out = [];
        for await (const batch of tx.keyHashes(reading, request)) out.push(...batch);
        return out;
      });
    const before = await read();
    expect(before.map((row) => row.key.join('/'))).toEqual(['1/A', '1/B', '2/A']);
    await db.transaction((tx) => tx.write(reading, [['1', 'B', '1', '3', null, null]], {}));
    const after = await read();
    expect(after[0]?.hash).toBe(before[0]?.hash);
    expect(after[1]?.hash).not.toBe(before[1]?.hash);
  });

  it('reads the key set of a scope whole, one hash a key, and names the keys behind it', async () => {
    const db = await seeded();
    const description = (await db.describe(reading)) as NonNullable<
      Awaited<ReturnType<SyncDatabase['describe']>>
    >;
    const request = { scope: { tenantId: 1 }, hash: 'sql' as const, columns: description };
    const read = () => db.transaction(async (tx) => tx.keySet?.(reading, request).keys);
    const keys = await read();
    // Where a database cannot read keys in bulk, it says so and the engine compares buckets.
    if (keys === undefined) return;
    expect(keys.hashes.length).toBe(16);
    const named = await db.transaction(async (tx) => {
      const set = await tx.keySet?.(reading, request).keys;
      return set?.keysAt([1, 0]);
    });
    expect(named?.map((key) => key.join('/')).sort()).toEqual(['1/A', '1/B']);
    // The same key hashes alike whatever its row holds; another tenant's row is not in scope.
    await db.transaction((tx) => tx.write(reading, [['1', 'B', '1', '9', null, null]], {}));
    const again = await read();
    const hashesOf = (bytes: Uint8Array | undefined) =>
      [0, 8].map((at) => Buffer.from(bytes?.subarray(at, at + 8) ?? []).toString('hex')).sort();
    expect(hashesOf(again?.hashes)).toEqual(hashesOf(keys.hashes));
    // A row that no longer holds the key it was read with is left out.
    const moved = await db.transaction(async (tx) => {
      const set = await tx.keySet?.(reading, request).keys;
      await tx.deleteKeys(reading, [['1', 'A']], { tenantId: 1 });
      return set?.keysAt([0, 1]);
    });
    expect(moved?.map((key) => key.join('/'))).toEqual(['1/B']);
    // Read apart from the transaction, the keys are the committed ones (1/B is left in scope);
    // read in it, its new row's too.
    const { apart, count } = await db.transaction(async (tx) => {
      await tx.write(reading, [['3', 'C', '1', null, null, null]], {});
      const set = tx.keySet?.(reading, request);
      const hashes = (await set?.keys)?.hashes;
      return { apart: set?.apart, count: (hashes?.length ?? 0) / 8 };
    });
    expect(count).toBe(apart ? 1 : 2);
  });

  it('describes the table and reports a missing one', async () => {
    const { db } = await open();
    const description = await db.describe(reading);
    expect(description?.get('extra')?.kind).toBe('json');
    expect(description?.get('tags')?.kind).toBe('array');
    expect(description?.get('value')?.kind).toBe('scalar');
    expect(await db.describe(builtIns.meter)).toBeUndefined();
  });

  it('commits a transaction that resolves', async () => {
    const { db } = await open();
    await db.transaction(async (tx) => {
      await tx.write(reading, TEXT_ROWS, {});
      await tx.deleteKeys(reading, [['2', 'A']], {});
    });
    expect(await db.query(reading)).toHaveLength(2);
  });

  it('names the entity, key and column of a stored row the schema rejects', async () => {
    const subject = await open();
    await subject.insertRaw({ meter_id: '5', element: 'A', tenant_id: '1', value: null });
    const strict = defineEntity({
      name: 'strict',
      table: 'reading',
      columns: reading.columns.extend({ value: col.numeric() }),
      key: ['meter_id', 'element'],
    });
    const error = await subject.db.query(strict).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect(error).toMatchObject({ entity: 'strict', column: 'value' });
    expect((error as Error).message).toMatch(
      /strict: .*row \(meter_id=5, element="A"\) column "value"/,
    );
  });
}
