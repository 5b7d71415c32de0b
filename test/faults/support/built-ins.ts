/**
 * The built-in entities on a fault test's server: a seeded Client System, an empty sync
 * database, and their contents as comparable row texts, table by table.
 */
import { expect } from 'vitest';
import { seedBuiltInPair } from '../../support/built-in-pair.js';
import { type Cluster, rowDifference, rowTexts } from './cluster.js';

type Queryable = Parameters<typeof rowTexts>[0];

export const TABLES = ['device', 'meter', 'register', 'device_register'] as const;
export type Table = (typeof TABLES)[number];
export type Contents = Record<Table, string[]>;

/** Creates `source` (seeded for `tenants`) and `target` (empty) databases; returns their URLs. */
export async function createBuiltInPair(
  cluster: Cluster,
  names: { source: string; target: string },
  tenants: readonly number[] = [1, 2],
) {
  const sourceUrl = await cluster.createDatabase(names.source);
  const targetUrl = await cluster.createDatabase(names.target);
  await seedBuiltInPair(
    cluster.pool(sourceUrl, { max: 1 }),
    cluster.pool(targetUrl, { max: 1 }),
    tenants,
  );
  return { sourceUrl, targetUrl };
}

/**
 * What the sync of `tenant` must make of the source, per target table: devices, the tenant's
 * meter elements (named as the built-in meter query names them) and registers, and the junction
 * rows of the tenant's registers (the others are orphans to the target).
 */
const SOURCE_SQL: Record<Table, string> = {
  device: `SELECT ROW(device_id::text, manufacturer, model_number, description, type, active::text)::text AS r FROM device`,
  meter: `SELECT ROW(m.meter_id::text, e.meter_element_id::text, m.tenant_id::text, m.name || '-' || e.name,
      e.element::text, m.device_id::text, m.ip, m.port::text, m.active::text)::text AS r
    FROM meter AS m JOIN meter_element AS e ON e.meter_id = m.meter_id
   WHERE m.tenant_id = $1 AND e.tenant_id = $1`,
  register: `SELECT ROW(register_id::text, tenant_id::text, name, register::text, unit, field_name)::text AS r
    FROM register WHERE tenant_id = $1`,
  device_register: `SELECT ROW(dr.device_id::text, dr.register_id::text)::text AS r
    FROM device_register AS dr JOIN register AS g ON g.register_id = dr.register_id WHERE g.tenant_id = $1`,
};

/** The sync database's tables, whole: any row of another tenant is a difference too. */
const TARGET_SQL: Record<Table, string> = {
  device: SOURCE_SQL.device,
  meter: `SELECT ROW(meter_id::text, meter_element_id::text, tenant_id::text, name, element, device_id::text,
      ip, port::text, active::text)::text AS r FROM meter`,
  register: `SELECT ROW(register_id::text, tenant_id::text, name, register::text, unit, field_name)::text AS r
    FROM register`,
  device_register: `SELECT ROW(device_id::text, register_id::text)::text AS r FROM device_register`,
};

/** The source's rows as the target should hold them after a sync of `tenant`. */
export async function expectedContents(source: Queryable, tenant: number): Promise<Contents> {
  const entries = await Promise.all(
    TABLES.map(async (table) => {
      const sql = SOURCE_SQL[table];
      return [table, await rowTexts(source, sql, sql.includes('$1') ? [tenant] : [])];
    }),
  );
  return Object.fromEntries(entries) as Contents;
}

/** The target's rows. */
export async function targetContents(target: Queryable): Promise<Contents> {
  const entries = await Promise.all(
    TABLES.map(async (table) => [table, await rowTexts(target, TARGET_SQL[table])]),
  );
  return Object.fromEntries(entries) as Contents;
}

/**
 * Asserts that the target holds exactly what the source says, table by table, and returns the
 * number of rows compared (both sides).
 */
export async function expectTargetEqualsSource(
  source: Queryable,
  target: Queryable,
  tenant: number,
  tables: readonly Table[] = TABLES,
): Promise<number> {
  const [want, have] = await Promise.all([
    expectedContents(source, tenant),
    targetContents(target),
  ]);
  let rows = 0;
  for (const table of tables) {
    const difference = rowDifference(want[table], have[table]);
    expect(difference, `${table}: rows missing on / unexpected in the target`).toEqual({
      missing: [],
      unexpected: [],
    });
    expect(have[table]).toHaveLength(want[table].length);
    rows += want[table].length + have[table].length;
  }
  return rows;
}
