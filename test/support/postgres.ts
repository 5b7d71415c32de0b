import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import { idleInTransaction as idleInTransactionOn, seedBuiltInPair } from './built-in-pair.js';

const pools: pg.Pool[] = [];
const databases: string[] = [];

function adminPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: inject('postgresUrl'), max: 2 });
  pools.push(pool);
  return pool;
}

let admin: pg.Pool | undefined;

/** The connection string of a database on the test server. */
export function databaseUrl(database: string): string {
  const url = new URL(inject('postgresUrl'));
  url.pathname = `/${database}`;
  return url.toString();
}

/** Creates an empty database on the test server; dropped after the file's tests. */
export async function createDatabase(
  prefix: string,
): Promise<{ name: string; url: string; pool: pg.Pool }> {
  admin ??= adminPool();
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE "${name}"`);
  databases.push(name);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pools.push(pool);
  return { name, url, pool };
}

/** A pool of its own on an existing database (e.g. as another role). */
export function openPool(url: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pools.push(pool);
  return pool;
}

afterAll(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.end().catch(() => undefined)));
  if (databases.length > 0) {
    const cleanup = new pg.Client({ connectionString: inject('postgresUrl') });
    await cleanup.connect();
    for (const name of databases.splice(0)) {
      await cleanup.query(`DROP DATABASE IF EXISTS "${name}"`).catch(() => undefined);
    }
    await cleanup.end();
  }
  admin = undefined;
});

/** A seeded remote with the built-in tables and an empty sync database, on the real server. */
export async function builtInPairOnPostgres(tenants: readonly number[] = [1, 2]) {
  const remote = await createDatabase('remote');
  const local = await createDatabase('local');
  await seedBuiltInPair(remote.pool, local.pool, tenants);
  return { remote, local };
}

/** Sessions of a database that sit inside an open transaction. */
export async function idleInTransaction(database: string): Promise<number> {
  admin ??= adminPool();
  return idleInTransactionOn(admin, database);
}

/** A statement as `recordingPool` sent it, with the rows it returned. */
export interface RecordedQuery {
  text: string;
  values?: unknown[] | undefined;
  rows?: unknown[];
}

/**
 * Wraps a pool so every statement sent through it is recorded (its text in `statements`; text,
 * parameters and rows in `queries`), a hook can run first, and `rewrite` can change it on the
 * way, as a fault would.
 */
export function recordingPool(
  pool: pg.Pool,
  before?: (text: string) => Promise<void>,
  rewrite: (query: RecordedQuery) => RecordedQuery = (query) => query,
) {
  const statements: string[] = [];
  const queries: RecordedQuery[] = [];
  return {
    statements,
    queries,
    pool: {
      async connect() {
        const client = await pool.connect();
        return {
          // COPY streams (pg-copy-streams) are submitted as objects with a text and must go
          // through synchronously; everything else may wait for the hook.
          query(config: { text: string; values?: unknown[]; submit?: unknown }) {
            statements.push(config.text);
            if (typeof config.submit === 'function') return client.query(config as never);
            const query = rewrite({ text: config.text, values: config.values });
            queries.push(query);
            return (before?.(config.text) ?? Promise.resolve())
              .then(() => client.query({ ...config, ...query } as pg.QueryConfig))
              .then((result) => {
                query.rows = result.rows;
                return result;
              });
          },
          release: (error?: Error | boolean) => client.release(error),
          // The library listens for a connection lost between statements.
          on: (event: 'error', listener: (error: Error) => void) => client.on(event, listener),
          removeListener: (event: 'error', listener: (error: Error) => void) =>
            client.removeListener(event, listener),
          // pg-copy-streams drives the connection itself.
          connection: (client as unknown as { connection: unknown }).connection,
        };
      },
    },
  };
}
