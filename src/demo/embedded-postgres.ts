import pg from 'pg';

/** A PostgreSQL database running in this process (PGlite: PostgreSQL compiled to WASM). */
export interface EmbeddedDatabase {
  /** A node-postgres pool on it. PGlite has one session, so the pool has one connection. */
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

/** Starts an in-memory PGlite database; no server, no files. Takes a few seconds. */
export async function startEmbeddedDatabase(): Promise<EmbeddedDatabase> {
  // Loaded on demand: the WASM build is only needed by the demo.
  const [{ PGlite }, { createPgConfig }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite/node-postgres'),
  ]);
  const database = new PGlite();
  await database.waitReady;
  const pool = new pg.Pool(createPgConfig(database) as pg.PoolConfig);
  return {
    pool,
    async close() {
      await pool.end();
      await database.close();
    },
  };
}
