import pg from 'pg';

/** A PostgreSQL database running in this process (PGlite: PostgreSQL compiled to WASM). */
export interface EmbeddedDatabase {
  /** A node-postgres pool on it. PGlite has one session, so the pool has one connection. */
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

/** PGlite, an optional peer dependency of meter-sync, is not installed. */
export class PGliteMissingError extends Error {
  constructor(cause: unknown) {
    super(
      'install @electric-sql/pglite to run the demo (npm install @electric-sql/pglite): it runs PostgreSQL in this process',
      { cause },
    );
    this.name = 'PGliteMissingError';
  }
}

/** Whether an import failed because the package itself is not installed. */
function isMissing(error: unknown, specifier: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes(`'${specifier}`)
  );
}

async function loadPGlite() {
  try {
    // Loaded on demand: the WASM build (tens of MB) is only needed by the demo.
    return await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite/node-postgres'),
    ]);
  } catch (error) {
    if (isMissing(error, '@electric-sql/pglite')) throw new PGliteMissingError(error);
    throw error;
  }
}

/**
 * Starts an in-memory PGlite database; no server, no files. Takes a few seconds.
 * @throws {PGliteMissingError} when `@electric-sql/pglite` is not installed.
 */
export async function startEmbeddedDatabase(): Promise<EmbeddedDatabase> {
  const [{ PGlite }, { createPgConfig }] = await loadPGlite();
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
