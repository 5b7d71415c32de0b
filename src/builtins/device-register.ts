import { z } from 'zod/v4';
import { col } from '../entity/columns.js';
import { defineEntity } from '../entity/define.js';

/**
 * Which registers a device has: the junction of `device` and `register`. Keyed by the pair, so
 * the source's surrogate id and the sync database's own `device_register_id` are never compared.
 * Global: associations are not tenant-scoped.
 */
export const deviceRegister = defineEntity({
  name: 'device_register',
  table: 'device_register',
  columns: z.object({
    device_id: col.bigint(),
    register_id: col.bigint(),
  }),
  key: ['device_id', 'register_id'],
  references: [
    { entity: 'device', columns: { device_id: 'device_id' } },
    { entity: 'register', columns: { register_id: 'register_id' } },
  ],
});
