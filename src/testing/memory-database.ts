import type { IMemoryDb } from 'pg-mem';
import type { PgPool } from '../db/pg/pool.js';
import { ConfigurationError } from '../errors.js';
import { declareColumnTypes } from './declared-columns.js';

/** pg-mem's node-postgres pool, with the methods tests use. */
export interface MemoryPool extends PgPool {
  query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  end(): Promise<void>;
}

/** An in-memory database (pg-mem) and a pool on it, to pass to `performSync` or an agent. */
export interface MemoryDatabase {
  /** pg-mem's handle, e.g. `db.public.none(sql)`, `db.public.many(sql)`, `db.backup()`. */
  readonly db: IMemoryDb;
  /** A node-postgres-style pool on the database: what meter-sync takes as `source` / `target`. */
  readonly pool: MemoryPool;
}

/**
 * An empty pg-mem database, with `sql` (DDL, seed statements) run on it when given.
 * Needs `pg-mem`, a peer dependency: `npm install --save-dev pg-mem`.
 *
 * meter-sync sees the column types its DDL declares (pg-mem itself reads `bigint` back as
 * `integer`, `numeric(10,2)` as `float`, `varchar(5)` as `text`), so values are decoded, checked
 * and printed as PostgreSQL would; see "On pg-mem" in the reference for what still differs.
 */
export async function createMemoryDatabase(sql?: string): Promise<MemoryDatabase> {
  const { newDb } = await loadPgMem();
  const db = newDb();
  declareColumnTypes(db);
  if (sql) db.public.none(sql);
  const { Pool } = db.adapters.createPg();
  return { db, pool: new Pool() as MemoryPool };
}

async function loadPgMem(): Promise<typeof import('pg-mem')> {
  try {
    return await import('pg-mem');
  } catch (error) {
    throw new ConfigurationError('meter-sync/testing needs pg-mem: npm install --save-dev pg-mem', {
      cause: error,
    });
  }
}
