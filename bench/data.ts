/**
 * The benchmark's data: a register-like table with a composite key and a tenant column. The
 * source uses `integer` keys, the sync database `bigint`, as real systems drift. Tenant 1 holds
 * `rows` rows; tenant 2 a few thousand more, which a sync of tenant 1 must not touch.
 */
import { z } from 'zod';
import { col, defineEntity } from '../src/index.js';

export const readingRegister = defineEntity({
  name: 'reading_register',
  table: 'reading_register',
  columns: z.object({
    site_id: col.bigint(),
    register_no: col.bigint(),
    tenant_id: col.bigint(),
    name: col.text().nullable(),
    unit: col.text().nullable(),
    scale: col.numeric().nullable(),
    active: col.boolean().nullable(),
    updated_at: col.timestamptz().nullable(),
  }),
  key: ['site_id', 'register_no'],
  tenantColumn: 'tenant_id',
});

/** The same entity in plain zod, as an existing codebase writes it. */
export const readingRegisterPlain = defineEntity({
  name: 'reading_register',
  table: 'reading_register',
  columns: z.object({
    site_id: z.number().int(),
    register_no: z.number().int(),
    tenant_id: z.number().int(),
    name: z.string().nullable(),
    unit: z.string().nullable(),
    scale: z.string().nullable(),
    active: z.boolean().nullable(),
    updated_at: z.date().nullable(),
  }),
  key: ['site_id', 'register_no'],
  tenantColumn: 'tenant_id',
});

export const COLUMNS = 'site_id, register_no, tenant_id, name, unit, scale, active, updated_at';

export const sourceDdl = `CREATE TABLE reading_register (
  site_id integer NOT NULL, register_no integer NOT NULL, tenant_id integer NOT NULL,
  name text, unit text, scale numeric(12,4), active boolean, updated_at timestamptz,
  PRIMARY KEY (site_id, register_no));
CREATE INDEX reading_register_tenant_idx ON reading_register (tenant_id);`;

export const targetDdl = `CREATE TABLE reading_register (
  site_id bigint NOT NULL, register_no bigint NOT NULL, tenant_id bigint NOT NULL,
  name text, unit text, scale numeric(12,4), active boolean, updated_at timestamptz,
  PRIMARY KEY (site_id, register_no));
CREATE INDEX reading_register_tenant_idx ON reading_register (tenant_id);`;

/** Rows 1..n of tenant 1 (1000 registers per site), then 5000 rows of tenant 2. */
export function generate(rows: number): string {
  return `INSERT INTO reading_register
SELECT i / 1000, i % 1000, 1, 'Register ' || i, (ARRAY['kWh','kW','V','A'])[1 + i % 4], (i % 100000) / 100.0,
       i % 7 <> 0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second 1 microsecond'
FROM generate_series(1, ${Number(rows)}) AS i;
INSERT INTO reading_register
SELECT 900000 + i / 1000, i % 1000, 2, 'Other ' || i, 'kWh', 1, true, now() FROM generate_series(1, 5000) AS i;
ANALYZE reading_register;`;
}

/**
 * Changes `fraction` of tenant 1's rows on the source: half updated, a quarter deleted, and a
 * quarter as many new rows inserted. Deterministic.
 */
export function change(
  rows: number,
  fraction: number,
): { sql: string; updates: number; deletes: number; inserts: number } {
  const changed = Math.round(rows * fraction);
  const updates = Math.round(changed / 2);
  const deletes = Math.round(changed / 4);
  const inserts = changed - updates - deletes;
  // Rows are picked by a stride over their ordinal so the changes spread over the whole table.
  const stride = (count: number) => Math.max(1, Math.floor(rows / Math.max(1, count)));
  return {
    updates,
    deletes,
    inserts,
    sql: `
UPDATE reading_register SET name = name || ' (renamed)', updated_at = updated_at + interval '1 hour'
 WHERE tenant_id = 1 AND (site_id * 1000 + register_no) % ${stride(updates)} = 1
   AND (site_id * 1000 + register_no) <= ${stride(updates) * updates};
DELETE FROM reading_register
 WHERE tenant_id = 1 AND (site_id * 1000 + register_no) % ${stride(deletes)} = 2
   AND (site_id * 1000 + register_no) <= ${stride(deletes) * deletes};
INSERT INTO reading_register
SELECT 500000 + i / 1000, i % 1000, 1, 'New register ' || i, 'kWh', 0.5, true, timestamptz '2025-01-01 00:00:00+00'
FROM generate_series(1, ${inserts}) AS i;
ANALYZE reading_register;`,
  };
}
