import { z } from 'zod/v4';
import { col } from '../entity/columns.js';
import { defineEntity } from '../entity/define.js';

/**
 * One row per meter element, read through a join of the source's `meter` and `meter_element`
 * tables; its name is the meter's name and the element's name joined by `-`. Tenant-scoped.
 */
export const meter = defineEntity({
  name: 'meter',
  table: 'meter',
  columns: z.object({
    meter_id: col.bigint(),
    meter_element_id: col.bigint(),
    tenant_id: col.bigint(),
    name: col.text().nullable(),
    element: col.text().nullable(),
    device_id: col.bigint().nullable(),
    ip: col.text().nullable(),
    port: col.int().nullable(),
    active: col.boolean().nullable(),
  }),
  key: ['meter_id', 'meter_element_id'],
  tenantColumn: 'tenant_id',
  source: {
    query: `SELECT m."meter_id", e."meter_element_id", m."tenant_id",
       m."name" || '-' || e."name" AS "name", e."element", m."device_id", m."ip", m."port", m."active"
  FROM "meter" AS m
  JOIN "meter_element" AS e ON e."meter_id" = m."meter_id"
 WHERE m."tenant_id" = $1 AND e."tenant_id" = $1`,
  },
  references: [{ entity: 'device', columns: { device_id: 'device_id' } }],
});
