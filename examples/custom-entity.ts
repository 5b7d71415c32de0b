/**
 * A custom entity next to the built-ins, synced from one pg-mem database into another.
 *
 *   npx tsx examples/custom-entity.ts
 *
 * Swap the pg-mem pools for `new pg.Pool({ connectionString })` to run it against real servers.
 */

import {
  builtInEntities,
  col,
  createRegistry,
  defineEntity,
  performSync,
  syncSchemaSql,
} from 'meter-sync';
import { newDb } from 'pg-mem';
import { z } from 'zod';

// Alarm thresholds per register and level, tenant-scoped. On the remote the table is called
// `register_alarm` and two columns have other names; a threshold removed there is disabled
// here rather than deleted, so the local history that points at it stays valid.
const alarmThreshold = defineEntity({
  name: 'alarm_threshold',
  table: 'alarm_threshold',
  columns: z.object({
    register_id: col.bigint(),
    level: col.text(),
    tenant_id: col.bigint(),
    threshold: col.numeric(),
    enabled: col.boolean(),
  }),
  key: ['register_id', 'level'],
  tenantColumn: 'tenant_id',
  source: { table: 'register_alarm', columns: { level: 'severity', threshold: 'limit_value' } },
  references: [{ entity: 'register', columns: { register_id: 'register_id' } }],
  onMissing: { set: { enabled: false } },
});

const registry = createRegistry([...builtInEntities, alarmThreshold]);

// The remote (Client System): normally a pg.Pool on the customer's server.
const remote = newDb();
remote.public.none(`
  CREATE TABLE device (device_id int PRIMARY KEY, manufacturer text, model_number text, description text, type text, active boolean);
  CREATE TABLE meter (meter_id int PRIMARY KEY, tenant_id int, name text, device_id int, ip text, port int, active boolean);
  CREATE TABLE meter_element (meter_element_id int PRIMARY KEY, meter_id int, tenant_id int, element char(1), name text);
  CREATE TABLE register (register_id int PRIMARY KEY, tenant_id int, name text, register int, unit text, field_name text);
  CREATE TABLE device_register (id serial PRIMARY KEY, device_id int, register_id int);
  CREATE TABLE register_alarm (register_id int, severity text, tenant_id int, limit_value numeric, enabled boolean);

  INSERT INTO device VALUES (1, 'Schneider Electric', 'PM5560', 'PowerLogic power meter', 'power_meter', true);
  INSERT INTO meter VALUES (10, 7, 'Main board', 1, '10.0.7.10', 502, true);
  INSERT INTO meter_element VALUES (100, 10, 7, 'A', 'Phase A'), (101, 10, 7, 'B', 'Phase B');
  INSERT INTO register VALUES (1, 7, 'Active energy import', 2700, 'kWh', 'active_energy'),
                              (2, 7, 'Voltage L1-N', 3028, 'V', 'voltage_l1');
  INSERT INTO device_register (device_id, register_id) VALUES (1, 1), (1, 2);
  INSERT INTO register_alarm VALUES (2, 'high', 7, 253.0, true), (2, 'low', 7, 207.0, true);
`);

// The sync database: the built-in tables plus one for the custom entity.
const local = newDb();
local.public.none(syncSchemaSql);
local.public.none(`CREATE TABLE alarm_threshold (
  register_id bigint NOT NULL REFERENCES register (register_id), level text NOT NULL, tenant_id bigint NOT NULL,
  threshold numeric NOT NULL, enabled boolean NOT NULL, PRIMARY KEY (register_id, level))`);

const source = new (remote.adapters.createPg().Pool)();
const target = new (local.adapters.createPg().Pool)();

const logger = {
  info: (data: Record<string, unknown>, message: string) => {
    if (message === 'entity synced') console.log(`  ${message}: ${JSON.stringify(data)}`);
  },
  warn: (data: Record<string, unknown>, message: string) =>
    console.warn(`  warning: ${message}`, data.sampleKeys),
  error: (data: Record<string, unknown>, message: string) =>
    console.error(`  error: ${message}`, data.err),
};

console.log('first sync:');
const first = await performSync({ source, target, tenantId: 7, entities: registry, logger });

remote.public.none(`DELETE FROM register_alarm WHERE severity = 'low';
  UPDATE register_alarm SET limit_value = 250 WHERE severity = 'high';`);
console.log('after the remote dropped the low alarm and lowered the high one:');
const second = await performSync({ source, target, tenantId: 7, entities: registry, logger });

console.table(
  local.public.many(
    'SELECT register_id, level, threshold, enabled FROM alarm_threshold ORDER BY level',
  ),
);
if (!first.ok || !second.ok) process.exitCode = 1;
