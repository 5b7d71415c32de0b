import { z } from 'zod/v4';
import { col } from '../entity/columns.js';
import { defineEntity } from '../entity/define.js';

/** Device models (manufacturer, model). Global: shared by every tenant. */
export const device = defineEntity({
  name: 'device',
  table: 'device',
  columns: z.object({
    device_id: col.bigint(),
    manufacturer: col.text().nullable(),
    model_number: col.text().nullable(),
    description: col.text().nullable(),
    type: col.text().nullable(),
    active: col.boolean().nullable(),
  }),
  key: ['device_id'],
});
