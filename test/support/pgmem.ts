import { type IMemoryDb, newDb } from 'pg-mem';
import type { PgPool } from '../../src/index.js';
import { syncSchemaSql } from '../../src/index.js';
import { clientSystemSchemaSql, seedClientSystem } from '../../src/sample/index.js';

export interface MemDatabase {
  readonly db: IMemoryDb;
  readonly pool: PgPool & {
    query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
    end(): Promise<void>;
  };
}

/** A pg-mem database reached through its node-postgres adapter, as users wire it. */
export function memDatabase(sql?: string): MemDatabase {
  const db = newDb();
  if (sql) db.public.none(sql);
  const { Pool } = db.adapters.createPg();
  return { db, pool: new Pool() };
}

/** A seeded remote with the built-in tables and an empty sync database. */
export async function builtInPair(tenants: readonly number[] = [1, 2]) {
  const remote = memDatabase(clientSystemSchemaSql);
  await seedClientSystem(remote.pool, tenants);
  const local = memDatabase(syncSchemaSql);
  return { remote, local };
}

/** Collects what a sync logs, for assertions on log lines. */
export function recordingLogger() {
  const lines: {
    level: 'info' | 'warn' | 'error' | 'debug';
    message: string;
    data: Record<string, unknown>;
  }[] = [];
  const at =
    (level: 'info' | 'warn' | 'error' | 'debug') =>
    (data: Record<string, unknown>, message: string) => {
      lines.push({ level, message, data });
    };
  return {
    lines,
    logger: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') },
  };
}
