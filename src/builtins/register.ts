import { z } from 'zod/v4';
import { col } from '../entity/columns.js';
import { defineEntity } from '../entity/define.js';

/** Modbus register definitions. Tenant-scoped. */
export const register = defineEntity({
  name: 'register',
  table: 'register',
  columns: z.object({
    register_id: col.bigint(),
    tenant_id: col.bigint(),
    name: col.text().nullable(),
    register: col.int().nullable(),
    unit: col.text().nullable(),
    field_name: col.text().nullable(),
  }),
  key: ['register_id'],
  tenantColumn: 'tenant_id',
});
