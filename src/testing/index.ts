/**
 * Test helpers: in-memory databases (pg-mem) with the built-in schema on both sides, so an agent
 * codebase can unit-test its sync wiring without a server. Needs `pg-mem` (a dev dependency).
 *
 * @example
 * ```ts
 * import { performSync } from 'meter-sync';
 * import { createTestDatabases } from 'meter-sync/testing';
 *
 * const { source, target } = await createTestDatabases({ tenants: [1, 2] });
 * const result = await performSync({ source: source.pool, target: target.pool, tenantId: 1 });
 * ```
 */
import { syncSchemaSql } from '../builtins/sync-schema.js';
import { clientSystemSchemaSql, seedClientSystem } from '../sample/index.js';
import { createMemoryDatabase, type MemoryDatabase } from './memory-database.js';

export { clientSystemSchemaSql, type SeedTarget, seedClientSystem } from '../sample/index.js';
export { createMemoryDatabase, type MemoryDatabase, type MemoryPool } from './memory-database.js';

export interface TestClientSystemOptions {
  /** The tenants to seed: tenant t gets meters 10t+1…10t+2 and registers 100t+1…100t+4. Default [1, 2]. */
  readonly tenants?: readonly number[] | undefined;
  /** Fill the tables with the sample data. Default true; false leaves them empty. */
  readonly seed?: boolean | undefined;
  /** More SQL to run after the tables are made (and seeded): your own tables and rows. */
  readonly sql?: string | undefined;
}

/**
 * A Client System (source) on pg-mem with the tables the built-in entities read, seeded with
 * realistic sample data: 3 shared devices, and per tenant 2 meters with elements A–C, 4 Modbus
 * registers, and the devices' wiring to them in `device_register`.
 */
export async function createTestClientSystem(
  options: TestClientSystemOptions = {},
): Promise<MemoryDatabase> {
  const database = await createMemoryDatabase(clientSystemSchemaSql);
  if (options.seed ?? true) await seedClientSystem(database.pool, options.tenants ?? [1, 2]);
  if (options.sql) database.db.public.none(options.sql);
  return database;
}

/**
 * An empty sync database (target) on pg-mem with the built-in entities' tables
 * (`syncSchemaSql`), plus `sql` for your own entities' tables.
 */
export async function createTestSyncDatabase(
  options: { readonly sql?: string | undefined } = {},
): Promise<MemoryDatabase> {
  const database = await createMemoryDatabase(syncSchemaSql);
  if (options.sql) database.db.public.none(options.sql);
  return database;
}

/** Both sides at once: a seeded Client System (`source`) and an empty sync database (`target`). */
export async function createTestDatabases(
  options: TestClientSystemOptions & { readonly targetSql?: string | undefined } = {},
): Promise<{ source: MemoryDatabase; target: MemoryDatabase }> {
  const [source, target] = await Promise.all([
    createTestClientSystem(options),
    createTestSyncDatabase({ sql: options.targetSql }),
  ]);
  return { source, target };
}
