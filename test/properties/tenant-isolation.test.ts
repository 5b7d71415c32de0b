import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, createRegistry, defineEntity, type PgPool, performSync } from '../../src/index.js';
import { memDatabase } from '../support/pgmem.js';
import { createDatabase } from '../support/postgres.js';

/**
 * Three tenant-scoped entities: zones (soft-deleted when missing), points in a zone, and a
 * junction of zones and tags. A sync for tenant 1 must not insert, update or delete a single row
 * of tenants 2 and 3 in any of them, whatever both sides hold.
 */
const zone = defineEntity({
  name: 'zone',
  table: 'zone',
  columns: z.object({
    zone_id: col.int(),
    tenant_id: col.int(),
    label: col.text(),
    active: col.boolean(),
  }),
  key: ['zone_id'],
  tenantColumn: 'tenant_id',
  onMissing: { set: { active: false } },
});
const point = defineEntity({
  name: 'point',
  table: 'zone_point',
  columns: z.object({
    zone_id: col.int(),
    point_no: col.int(),
    tenant_id: col.int(),
    reading: col.int(),
  }),
  key: ['zone_id', 'point_no'],
  tenantColumn: 'tenant_id',
  references: [{ entity: 'zone', columns: { zone_id: 'zone_id' } }],
});
const zoneTag = defineEntity({
  name: 'zone_tag',
  table: 'zone_tag',
  columns: z.object({ zone_id: col.int(), tag: col.text(), tenant_id: col.int() }),
  key: ['zone_id', 'tag'],
  tenantColumn: 'tenant_id',
  references: [{ entity: 'zone', columns: { zone_id: 'zone_id' } }],
});
const registry = createRegistry([zone, point, zoneTag]);

const DDL = `CREATE TABLE zone (zone_id int PRIMARY KEY, tenant_id int NOT NULL, label text NOT NULL, active boolean NOT NULL);
CREATE TABLE zone_point (zone_id int NOT NULL REFERENCES zone (zone_id), point_no int NOT NULL, tenant_id int NOT NULL, reading int NOT NULL, PRIMARY KEY (zone_id, point_no));
CREATE TABLE zone_tag (zone_id int NOT NULL REFERENCES zone (zone_id), tag text NOT NULL, tenant_id int NOT NULL, PRIMARY KEY (zone_id, tag));`;

interface Side {
  zones: { zone_id: number; tenant_id: number; label: string; active: boolean }[];
  points: { zone_id: number; point_no: number; reading: number }[];
  tags: { zone_id: number; tag: string }[];
}

/** A database's contents where every point and tag belongs to its zone's tenant. */
const side: fc.Arbitrary<Side> = fc
  .uniqueArray(
    fc.record({
      zone_id: fc.integer({ min: 1, max: 10 }),
      tenant_id: fc.constantFrom(1, 2, 3),
      label: fc.constantFrom('north', 'south', 'roof'),
      active: fc.boolean(),
    }),
    { selector: (z) => z.zone_id, maxLength: 8 },
  )
  .chain((zones) => {
    const ids = zones.map((z) => z.zone_id);
    if (ids.length === 0) return fc.constant({ zones, points: [], tags: [] });
    return fc.record({
      zones: fc.constant(zones),
      points: fc.uniqueArray(
        fc.record({
          zone_id: fc.constantFrom(...ids),
          point_no: fc.integer({ min: 1, max: 3 }),
          reading: fc.integer({ min: 0, max: 9 }),
        }),
        { selector: (p) => `${p.zone_id}/${p.point_no}`, maxLength: 10 },
      ),
      tags: fc.uniqueArray(
        fc.record({ zone_id: fc.constantFrom(...ids), tag: fc.constantFrom('hvac', 'pv', 'ev') }),
        {
          selector: (t) => `${t.zone_id}/${t.tag}`,
          maxLength: 8,
        },
      ),
    });
  });

type Queryable = PgPool & {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
};

async function fill(db: Queryable, contents: Side) {
  const tenantOf = new Map(contents.zones.map((z) => [z.zone_id, z.tenant_id]));
  for (const z of contents.zones) {
    await db.query('INSERT INTO zone VALUES ($1, $2, $3, $4)', [
      z.zone_id,
      z.tenant_id,
      z.label,
      z.active,
    ]);
  }
  for (const p of contents.points) {
    await db.query('INSERT INTO zone_point VALUES ($1, $2, $3, $4)', [
      p.zone_id,
      p.point_no,
      tenantOf.get(p.zone_id),
      p.reading,
    ]);
  }
  for (const t of contents.tags) {
    await db.query('INSERT INTO zone_tag VALUES ($1, $2, $3)', [
      t.zone_id,
      t.tag,
      tenantOf.get(t.zone_id),
    ]);
  }
}

/** Every row of tenants other than 1, in a stable order, per table. */
async function otherTenants(db: Queryable) {
  const read = async (text: string) =>
    (await db.query(text)).rows.map((row) => JSON.stringify(row));
  return {
    zone: await read('SELECT * FROM zone WHERE tenant_id <> 1 ORDER BY zone_id'),
    point: await read('SELECT * FROM zone_point WHERE tenant_id <> 1 ORDER BY zone_id, point_no'),
    zoneTag: await read('SELECT * FROM zone_tag WHERE tenant_id <> 1 ORDER BY zone_id, tag'),
  };
}

async function isolationHolds(source: Queryable, target: Queryable, from: Side, to: Side) {
  await fill(source, from);
  await fill(target, to);
  const before = await otherTenants(target);
  const result = await performSync({ source, target, tenantId: 1, entities: registry });
  expect(Object.values(result.entities).map((e) => e.error?.message)).toEqual([
    undefined,
    undefined,
    undefined,
  ]);
  expect(await otherTenants(target)).toEqual(before);
  const again = await performSync({ source, target, tenantId: 1, entities: registry });
  for (const entity of Object.values(again.entities)) {
    expect(entity).toMatchObject({ status: 'ok', inserted: 0, updated: 0, deleted: 0 });
  }
  expect(await otherTenants(target)).toEqual(before);
}

describe("a sync for one tenant never touches another tenant's rows (property)", () => {
  it('holds on pg-mem', async () => {
    await fc.assert(
      fc.asyncProperty(side, side, async (from, to) => {
        await isolationHolds(memDatabase(DDL).pool, memDatabase(DDL).pool, from, to);
      }),
      { numRuns: 80 },
    );
  });

  describe('on PostgreSQL', () => {
    let source: Queryable;
    let target: Queryable;
    beforeAll(async () => {
      source = (await createDatabase('iso_remote')).pool;
      target = (await createDatabase('iso_local')).pool;
      await source.query(DDL);
      await target.query(DDL);
    });

    it('holds', async () => {
      await fc.assert(
        fc.asyncProperty(side, side, async (from, to) => {
          for (const db of [source, target]) await db.query('TRUNCATE zone_tag, zone_point, zone');
          await isolationHolds(source, target, from, to);
        }),
        { numRuns: 50 },
      );
    });
  });
});
