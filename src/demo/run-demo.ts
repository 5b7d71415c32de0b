import { syncSchemaSql } from '../builtins/index.js';
import type { SyncResult } from '../engine/result.js';
import { performSync } from '../perform-sync.js';
import { clientSystemSchemaSql, seedClientSystem } from '../sample/index.js';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './embedded-postgres.js';

/** Receives the demo's story as it happens. */
export interface DemoReporter {
  /** A step of the story, one line. */
  step(text: string): void;
  /** A sync's result, with a title. */
  result(title: string, result: SyncResult): void;
}

/** What the demo did, for the caller to check. */
export interface DemoOutcome {
  readonly first: SyncResult;
  readonly second: SyncResult;
  readonly third: SyncResult;
  /** The sync database's registers of tenant 1 after the second sync. */
  readonly registers: readonly { register_id: string; name: string }[];
  /** Rows of tenant 2 in the sync database (tenant isolation: none). */
  readonly otherTenantRows: number;
}

const TENANT = 1n;

/**
 * The whole story on two embedded PostgreSQL databases: a Client System with two tenants and an
 * empty sync database; a first sync of tenant 1; changes on the Client System (an update, an
 * insert, a delete, a junction row of the other tenant); a second sync that carries exactly those; and a
 * third that finds nothing to do.
 */
export async function runDemo(report: DemoReporter): Promise<DemoOutcome> {
  report.step(
    'Starting two embedded PostgreSQL databases (PGlite: PostgreSQL in WASM, no server)…',
  );
  const [remote, local] = await Promise.all([startEmbeddedDatabase(), startEmbeddedDatabase()]);
  try {
    return await tell(report, remote, local);
  } finally {
    await Promise.all([remote.close(), local.close()]);
  }
}

async function tell(
  report: DemoReporter,
  remote: EmbeddedDatabase,
  local: EmbeddedDatabase,
): Promise<DemoOutcome> {
  const source = remote.pool;
  const target = local.pool;
  await source.query(clientSystemSchemaSql);
  await seedClientSystem(source, [1, 2]);
  report.step(
    'Client System: 3 devices; tenants 1 and 2 with 2 meters x 3 elements and 4 registers each; devices wired to registers in device_register.',
  );
  await target.query(syncSchemaSql);
  report.step('Sync database: empty tables device, meter, register, device_register.');

  const first = await performSync({ source, target, tenantId: TENANT });
  report.result('First sync of tenant 1 into the empty sync database', first);
  report.step(
    "Tenant 2's meters and registers stay out; device_register is global, and only its rows for tenant 1's registers are read.",
  );

  await source.query('BEGIN');
  await source.query('UPDATE register SET name = $1 WHERE register_id = $2', [
    'Active energy import (total)',
    101,
  ]);
  await source.query(
    'INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES ($1, $2, $3, $4, $5, $6)',
    [105, 1, 'Power factor total', 3190, null, 'power_factor'],
  );
  await source.query(
    'INSERT INTO device_register (device_id, register_id) VALUES ($1, $2)',
    [1, 105],
  );
  await source.query('DELETE FROM device_register WHERE register_id = $1', [104]);
  await source.query('DELETE FROM register WHERE register_id = $1', [104]);
  await source.query(
    'INSERT INTO device_register (device_id, register_id) VALUES ($1, $2)',
    [1, 202],
  );
  await source.query('COMMIT');
  report.step('Changes on the Client System:');
  report.step('  update  register 101 renamed "Active energy import (total)"');
  report.step('  insert  register 105 "Power factor total", wired to device 1');
  report.step('  delete  register 104 "Voltage L2-N" and its wiring to device 2');
  report.step("  wire    device 1 to register 202, which is tenant 2's: not tenant 1's to read");

  const second = await performSync({ source, target, tenantId: TENANT });
  report.result('Second sync: exactly the changes', second);
  const junction = second.entities.device_register;
  report.step(
    `The new junction row (device 1, register 202) is tenant 2's: not read, ${junction.inserted} junction row inserted and ${junction.skipped} skipped.`,
  );

  const third = await performSync({ source, target, tenantId: TENANT });
  const writes = Object.values(third.entities).reduce(
    (sum, entity) => sum + entity.inserted + entity.updated + entity.deleted,
    0,
  );
  report.step(`A third sync finds nothing to change: ${writes} rows written.`);

  const { rows: registers } = await target.query<{ register_id: string; name: string }>(
    'SELECT register_id::text AS register_id, name FROM register WHERE tenant_id = $1 ORDER BY register_id',
    [TENANT.toString()],
  );
  const { rows: counts } = await target.query<{ n: number }>(
    'SELECT (SELECT count(*) FROM meter WHERE tenant_id = $1)::int + (SELECT count(*) FROM register WHERE tenant_id = $1)::int AS n',
    ['2'],
  );
  report.step(
    `Sync database now holds registers ${registers.map((row) => row.register_id).join(', ')} of tenant 1 and ${counts[0]?.n ?? 0} rows of tenant 2.`,
  );
  return { first, second, third, registers, otherTenantRows: counts[0]?.n ?? 0 };
}
