/**
 * Integer keys packed into 64 bits in key sets, on PostgreSQL 15: what the statements of both
 * sides pack is what the run unpacks, for every mix of integer types and every value of them,
 * and a target key too wide for the source's types makes the engine compare another way.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createPgSource } from '../../src/db/pg/source.js';
import type { ReadRequest, TableDescription } from '../../src/db/types.js';
import { compareKeySets, summariseKeys } from '../../src/diff/key-sets.js';
import {
  col,
  createPgSyncDatabase,
  defineEntity,
  type EntityResult,
  performSync,
} from '../../src/index.js';
import { createDatabase, openPool, recordingPool } from '../support/postgres.js';

type IntegerType = 'smallint' | 'integer' | 'bigint';
const BITS: Record<IntegerType, number> = { smallint: 16, integer: 32, bigint: 64 };
const RANGE: Record<IntegerType, readonly [bigint, bigint]> = {
  smallint: [-(2n ** 15n), 2n ** 15n - 1n],
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** Key column types on the source and (as wide or wider) on the target. */
const LAYOUTS: readonly { source: IntegerType[]; target: IntegerType[] }[] = [
  { source: ['integer', 'integer'], target: ['bigint', 'bigint'] },
  { source: ['bigint'], target: ['bigint'] },
  { source: ['smallint', 'integer', 'smallint'], target: ['smallint', 'bigint', 'integer'] },
  { source: ['integer'], target: ['integer'] },
  {
    source: ['smallint', 'smallint', 'smallint', 'smallint'],
    target: ['integer', 'smallint', 'bigint', 'smallint'],
  },
];

/** A value of the type: its ends and their neighbours, small ones, anything. */
const integerOf = (type: IntegerType) => {
  const [min, max] = RANGE[type];
  return fc.oneof(
    fc.constantFrom(min, min + 1n, -1n, 0n, 1n, max - 1n, max),
    fc.bigInt({ min: -3n, max: 3n }),
    fc.bigInt({ min, max }),
  );
};

const entityOf = (table: string, width: number) =>
  defineEntity({
    name: table,
    table,
    columns: z.object({
      ...Object.fromEntries(Array.from({ length: width }, (_, i) => [`k${i}`, col.bigint()])),
      tenant_id: col.int(),
    }),
    key: Array.from({ length: width }, (_, i) => `k${i}`) as ['tenant_id'],
    tenantColumn: 'tenant_id',
  });

const tableSql = (table: string, types: readonly IntegerType[]) =>
  `CREATE TABLE "${table}" (${types.map((type, i) => `k${i} ${type} NOT NULL`).join(', ')}, tenant_id int NOT NULL, PRIMARY KEY (${types.map((_, i) => `k${i}`).join(', ')}))`;

const insertSql = (table: string, keys: readonly (readonly bigint[])[], tenant = 1) =>
  keys.length === 0
    ? 'SELECT 1'
    : `INSERT INTO "${table}" VALUES ${keys.map((key) => `(${[...key, tenant].join(', ')})`).join(', ')}`;

const text = (key: readonly (bigint | string)[]) => key.map(String).join('/');

/** A database whose table `table` holds two rows of tenant 1 and one of tenant 2. */
async function twoTenants(database: string, table: string) {
  const source = await createDatabase(database);
  await source.pool.query(tableSql(table, ['integer', 'integer']));
  await source.pool.query(
    insertSql(table, [
      [1n, 1n],
      [2n, 2n],
    ]),
  );
  await source.pool.query(insertSql(table, [[3n, 3n]], 2));
  return { source, entity: entityOf(table, 2) };
}

describe('packed integer keys (PostgreSQL)', () => {
  it('packs on both sides what the run unpacks, and compares exactly, for every layout and value', async () => {
    const source = await createDatabase('packed_src');
    const target = await createDatabase('packed_dst');
    const db = createPgSyncDatabase(target.pool);
    let run = 0;
    for (const layout of LAYOUTS) {
      const tuple = fc.tuple(...layout.source.map(integerOf));
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(tuple, { maxLength: 60, selector: (key) => text(key) }),
          fc.array(fc.nat(), { maxLength: 60 }),
          fc.uniqueArray(tuple, { maxLength: 20, selector: (key) => text(key) }),
          async (shared, dropped, extra) => {
            run += 1;
            const table = `keys_${run}`;
            const entity = entityOf(table, layout.source.length);
            // The target holds the shared keys less some, the source the shared ones and others.
            const gone = new Set(dropped.map((i) => i % Math.max(1, shared.length)));
            const onTarget = shared.filter((_, i) => !gone.has(i));
            const sharedText = new Set(shared.map(text));
            const onSource = [...shared, ...extra.filter((key) => !sharedText.has(text(key)))];
            // Another tenant's row is in neither key set.
            await source.pool.query(tableSql(table, layout.source));
            await source.pool.query(insertSql(table, onSource));
            await target.pool.query(tableSql(table, layout.target));
            await target.pool.query(insertSql(table, onTarget));
            const elsewhere = extra.filter((key) => !sharedText.has(text(key))).slice(0, 1);
            await target.pool.query(insertSql(table, elsewhere, 2));

            const description = (await db.describe(entity)) as TableDescription;
            const request: ReadRequest = {
              scope: { tenantId: 1 },
              hash: 'sql',
              columns: description,
              keysOnly: true,
            };
            const snapshot = await createPgSource(source.pool).open({ tables: [{ name: table }] });
            let sourceValues: Uint8Array;
            let bits: readonly number[] | undefined;
            try {
              bits = await snapshot.packedKey?.(entity, request);
              expect(bits).toEqual(layout.source.map((type) => BITS[type]));
              const set = await snapshot.keySet?.(entity, { ...request, packedKey: bits });
              sourceValues = (set as NonNullable<typeof set>).hashes;
            } finally {
              await snapshot.close();
            }
            const packed = { ...request, packedKey: bits };
            const { all, targetOnly, difference } = await db.transaction(async (tx) => {
              const set = await tx.keySet?.(entity, packed).keys;
              if (!set) throw new Error('no key set');
              const positions = Array.from({ length: set.hashes.length / 8 }, (_, i) => i);
              const keys = Math.max(sourceValues.length, set.hashes.length) / 8;
              const difference = compareKeySets(
                summariseKeys(sourceValues, { keys, packed: true }),
                summariseKeys(set.hashes, { keys, packed: true, grouped: true }),
              );
              return {
                all: await set.keysAt(positions),
                targetOnly: await set.keysAt(difference.targetOnly),
                difference,
              };
            });
            const sourceKeys = new Set(onSource.map(text));
            expect(all.map(text).sort()).toEqual(onTarget.map(text).sort());
            expect(targetOnly.map(text).sort()).toEqual(
              onTarget
                .map(text)
                .filter((key) => !sourceKeys.has(key))
                .sort(),
            );
            const targetKeys = new Set(onTarget.map(text));
            expect(difference.sourceOnly).toBe(
              onSource.filter((k) => !targetKeys.has(text(k))).length,
            );
            expect(difference.ambiguous).toBe(false);
          },
        ),
        { numRuns: 40 },
      );
    }
  });

  it('sets the tenant for COPY reads once a snapshot, and again after a read that failed', async () => {
    const { source, entity } = await twoTenants('tenant_setting', 'counted');
    // Its table lacks a column the entity names: every read of it fails.
    const broken = defineEntity({
      name: 'broken',
      table: 'counted',
      columns: z.object({
        k0: col.bigint(),
        k1: col.bigint(),
        tenant_id: col.int(),
        gone: col.int(),
      }),
      key: ['k0', 'k1'],
      tenantColumn: 'tenant_id',
    });
    const description = (await createPgSyncDatabase(source.pool).describe(
      entity,
    )) as TableDescription;
    const request: ReadRequest = {
      scope: { tenantId: 1 },
      hash: 'sql',
      columns: description,
      keysOnly: true,
    };
    const recorded = recordingPool(source.pool);
    const snapshot = await createPgSource(recorded.pool).open({ tables: [{ name: 'counted' }] });
    const keys = async () => {
      const set = await snapshot.keySet?.(entity, { ...request, packedKey: [32, 32] });
      return (set?.hashes.length ?? 0) / 8;
    };
    const settings = () =>
      recorded.statements.filter((s) => s.startsWith('SELECT set_config($1, $2, true)')).length;
    try {
      const before = settings();
      expect(await keys()).toBe(2);
      expect(await keys()).toBe(2);
      expect(settings() - before).toBe(1);
      await expect(
        snapshot.fingerprints(broken, {
          ...request,
          columns: new Map([
            ...description,
            ['gone', { name: 'gone', type: 'integer', kind: 'scalar', typeName: 'int4' }],
          ]),
        }),
      ).rejects.toThrow();
      // The rollback may have undone the setting: it is set again.
      expect(await keys()).toBe(2);
      expect(settings() - before).toBe(2);
    } finally {
      await snapshot.close();
    }
  });

  it("sets the run's tenant for COPY reads with the snapshot's settings: no statement before a key read", async () => {
    const { source, entity } = await twoTenants('tenant_pinned', 'pinned');
    const description = (await createPgSyncDatabase(source.pool).describe(
      entity,
    )) as TableDescription;
    const recorded = recordingPool(source.pool);
    const snapshot = await createPgSource(recorded.pool).open({
      tables: [{ name: 'pinned' }],
      tenantId: 2,
    });
    const statementsBefore = recorded.statements.length;
    try {
      const set = await snapshot.keySet?.(entity, {
        scope: { tenantId: 2 },
        hash: 'sql',
        columns: description,
        keysOnly: true,
        packedKey: [32, 32],
      });
      // Tenant 2's one row, not tenant 1's two: the pinned setting is the run's tenant.
      expect(set?.hashes.length).toBe(8);
      const sent = recorded.statements.slice(statementsBefore);
      expect(sent.filter((s) => s.startsWith('SELECT set_config'))).toEqual([]);
      expect(sent.filter((s) => s.startsWith('COPY'))).toHaveLength(1);
    } finally {
      await snapshot.close();
    }
  });

  it('gives no key set where a target key is wider than the source can hold, in the transaction and apart', async () => {
    const { url } = await createDatabase('packed_wide');
    const setup = openPool(url, 1);
    await setup.query(tableSql('wide', ['bigint', 'bigint']));
    await setup.query(
      insertSql('wide', [
        [1n, 2n],
        [2n ** 40n, 3n],
      ]),
    );
    const entity = entityOf('wide', 2);
    for (const max of [1, 4]) {
      const db = createPgSyncDatabase(openPool(url, max));
      const outcome = await db.transaction(async (tx) => {
        const description = (await tx.describe(entity)) as TableDescription;
        const read = tx.keySet?.(entity, {
          scope: { tenantId: 1 },
          hash: 'sql',
          columns: description,
          keysOnly: true,
          packedKey: [32, 32],
        });
        const keys = await read?.keys;
        // The transaction goes on: a refused key set leaves it usable.
        await tx.write(entity, [[String(max), '9', '1']], {});
        return { apart: read?.apart, keys };
      });
      expect(outcome).toEqual({ apart: max > 1, keys: undefined });
    }
    expect((await setup.query('SELECT count(*)::int AS n FROM wide')).rows[0].n).toBe(4);
  });

  it('syncs deletes found from packed keys, and from buckets where the target holds a key the source cannot', async () => {
    const source = await createDatabase('packed_sync_src');
    const target = await createDatabase('packed_sync_dst');
    const counter = defineEntity({
      name: 'counter',
      table: 'counter',
      columns: z.object({
        site: col.bigint(),
        slot: col.bigint(),
        tenant_id: col.int(),
        reading: col.text().nullable(),
      }),
      key: ['site', 'slot'],
      tenantColumn: 'tenant_id',
      source: { table: 'source_counter' },
    });
    await source.pool.query(`CREATE TABLE source_counter (site int, slot int, tenant_id int NOT NULL,
        reading text, PRIMARY KEY (site, slot));
      INSERT INTO source_counter SELECT g / 20 - 10, g % 20 - 5, 1, 'r' || g FROM generate_series(1, 2000) AS g`);
    await target.pool.query(`CREATE TABLE counter (site bigint, slot bigint, tenant_id int NOT NULL,
        reading text, PRIMARY KEY (site, slot))`);
    const sync = async () => {
      const recorded = recordingPool(source.pool);
      const result = await performSync({
        source: recorded.pool,
        target: target.pool,
        tenantId: 1,
        entities: [counter],
      });
      const entity = result.entities.counter as EntityResult;
      expect(entity.error).toBeUndefined();
      const rows = async (pool: typeof source.pool, table: string) =>
        (
          await pool.query(
            `SELECT site::text, slot::text, reading FROM ${table} WHERE tenant_id = 1 ORDER BY 1, 2`,
          )
        ).rows;
      expect(await rows(target.pool, 'counter')).toEqual(await rows(source.pool, 'source_counter'));
      return { entity, statements: recorded.statements };
    };
    await sync();
    // One row in ten gone, as many new: key sets, packed on both sides.
    /** Deletes one row in ten (how many it says) and inserts 200. */
    const churn = async (from: number) => {
      const { rows } = await source.pool.query(
        `WITH gone AS (DELETE FROM source_counter WHERE site < 1000 AND (site * 20 + slot + 1000) % 10 = ${from} RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
      );
      await source.pool.query(
        `INSERT INTO source_counter SELECT 1000 + ${from}, g, 1, 'n' FROM generate_series(1, 200) AS g`,
      );
      return rows[0].n as number;
    };
    const deleted = await churn(3);
    expect(deleted).toBe(200);
    const packed = await sync();
    expect(packed.entity).toMatchObject({ inserted: 200, deleted: 200 });
    expect(packed.entity.detection?.mode).toBe('incremental');
    const keySets = packed.statements.filter((s) => s.startsWith('COPY (SELECT string_agg('));
    expect(keySets).toHaveLength(1);
    expect(keySets[0]).toContain('<< 32');
    // A key no source integer can hold, put on the target by hand: the key sets cannot be read
    // packed, and buckets find it with the rest.
    await target.pool.query(`INSERT INTO counter VALUES (${2n ** 40n}, 1, 1, 'by hand')`);
    expect(await churn(7)).toBe(200);
    const wide = await sync();
    expect(wide.entity).toMatchObject({ inserted: 200, deleted: 201 });
    expect(wide.entity.detection?.mode).toBe('incremental');
  });
});
