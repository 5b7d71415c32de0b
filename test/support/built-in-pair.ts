/**
 * Probes and set-up shared by the tests on a real server, whichever server they run on: the
 * suite's shared one (`postgres.ts`) or a fault test's own (`faults/support/cluster.ts`).
 */
import type pg from 'pg';
import { syncSchemaSql } from '../../src/index.js';
import {
  clientSystemSchemaSql,
  type SeedTarget,
  seedClientSystem,
} from '../../src/sample/index.js';

/** A seeded Client System with the built-in tables in `remote`, the sync schema in `local`. */
export async function seedBuiltInPair(
  remote: SeedTarget,
  local: SeedTarget,
  tenants: readonly number[] = [1, 2],
): Promise<void> {
  await remote.query(clientSystemSchemaSql);
  await seedClientSystem(remote, tenants);
  await local.query(syncSchemaSql);
}

/** Sessions of a database that sit inside an open transaction, as `admin` sees them. */
export async function idleInTransaction(admin: pg.Pool, database: string): Promise<number> {
  const { rows } = await admin.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
    [database],
  );
  return rows[0].n;
}
